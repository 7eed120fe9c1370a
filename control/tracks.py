"""3D point tracks in screen space (the content of a DaS tracking video), and loading tracker outputs from files.

Pixel convention: u grows to the right, v downwards, and pixel (i, j) covers [i, i+1) x [j, j+1); the renderer
paints a point into pixel (floor(u), floor(v)).
"""

import os
import pickle
import zipfile
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from ._inputs import as_tensor
from .camera import Camera
from .colorize import colorize_tracks

TRACK_FILE_EXTENSIONS = (".npz", ".pt", ".pth")
TRACK_KEYS = ("tracks", "pred_tracks")
VISIBILITY_KEYS = ("visibility", "pred_visibility", "vis")
# SpatialTracker's visibility threshold (its visualiser and the official DaS code)
DEFAULT_VISIBILITY_THRESHOLD = 0.9


def check_colors(colors: torch.Tensor, name: str = "colors") -> None:
    """ValueError unless every colour is finite and in 0..1."""
    if not bool(torch.isfinite(colors).all()):
        raise ValueError(f"{name} has NaN or infinite values; expected RGB in 0..1")
    if colors.numel() and (colors.min() < 0 or colors.max() > 1):
        raise ValueError(f"{name} span {colors.min().item():g}..{colors.max().item():g}; expected RGB in 0..1")


@dataclass
class Tracks:
    """Point tracks in screen space, with the colours they carry in the tracking video.

    Args:
        points (`torch.Tensor` [T, N, 3]): u, v in pixels and depth z (> 0 in front of the camera) per frame.
        visibility (`torch.Tensor` [T, N] bool): whether the point is seen in the frame; invisible points are not drawn.
        height (`int`), width (`int`): frame size in pixels.
        colors (`torch.Tensor` [N, 3] in 0..1, *optional*): defaults to `colorize_tracks` of frame 0.
        world_points (`torch.Tensor` [T, N, 3], *optional*): the points in world coordinates (frame-0 camera), when
            known (e.g. from `tracks_from_depth`); with `camera` this lets object motion act in 3D.
        camera (`Camera`, *optional*): the cameras that project `world_points` to `points`.
    """

    points: torch.Tensor
    visibility: torch.Tensor
    height: int
    width: int
    colors: Optional[torch.Tensor] = None
    world_points: Optional[torch.Tensor] = None
    camera: Optional[Camera] = None

    def __post_init__(self):
        for name, value in (("height", self.height), ("width", self.width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        self.points = as_tensor(self.points, "points", torch.float32)
        if self.points.ndim != 3 or self.points.shape[-1] != 3 or self.points.shape[0] < 1:
            raise ValueError(f"points has shape {tuple(self.points.shape)}; expected [frames, points, 3] (u, v, depth)")
        self.visibility = as_tensor(self.visibility, "visibility")
        if self.visibility.dtype != torch.bool:
            raise ValueError(f"visibility has dtype {self.visibility.dtype}; expected bool (threshold it first)")
        if self.visibility.shape != self.points.shape[:2]:
            raise ValueError(
                f"visibility has shape {tuple(self.visibility.shape)}; expected {tuple(self.points.shape[:2])} "
                f"(frames, points) to match points"
            )
        if self.colors is None:
            # invisible points may hold NaN; their colours are never drawn
            self.colors = torch.nan_to_num(colorize_tracks(self.points, self.height, self.width), nan=0.0).clamp(0, 1)
        self.colors = as_tensor(self.colors, "colors", torch.float32)
        if self.colors.shape != (self.points.shape[1], 3):
            raise ValueError(f"colors has shape {tuple(self.colors.shape)}; expected [{self.points.shape[1]}, 3]")
        check_colors(self.colors)
        if (self.world_points is None) != (self.camera is None):
            raise ValueError("world_points and camera go together: give both or neither")
        if self.world_points is not None:
            self.world_points = as_tensor(self.world_points, "world_points", torch.float32)
            if self.world_points.shape != self.points.shape:
                raise ValueError(
                    f"world_points has shape {tuple(self.world_points.shape)}; expected {tuple(self.points.shape)}"
                )
            if self.camera.num_frames != self.num_frames:
                raise ValueError(f"camera has {self.camera.num_frames} frames but the tracks have {self.num_frames}")

    @property
    def num_frames(self) -> int:
        return self.points.shape[0]

    @property
    def num_points(self) -> int:
        return self.points.shape[1]

    @classmethod
    def from_world_points(
        cls, world_points: torch.Tensor, camera: Camera, height: int, width: int, colors: Optional[torch.Tensor] = None
    ) -> "Tracks":
        """Tracks of world points [N, 3] or [T, N, 3] seen by `camera`; points behind the camera are invisible."""
        if world_points.ndim == 2:
            world_points = world_points.expand(camera.num_frames, -1, -1)
        uv, depth = camera.project(world_points)
        visibility = depth > 0
        points = torch.cat([uv, depth[..., None]], dim=-1)
        return cls(points, visibility, height, width, colors=colors, world_points=world_points.contiguous(), camera=camera)


def _pick(data: dict, keys, path: str, what: str):
    for key in keys:
        if key in data:
            return data[key]
    raise ValueError(f"{path!r} has no {what}: expected one of the keys {list(keys)}, found {sorted(data)}")


def _sample_depth(depth: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Depth at the pixels holding each track point ([T, H, W] depth, [T, N, 2] uv -> [T, N]), clamped to the frame."""
    num_frames, height, width = depth.shape
    x = torch.nan_to_num(uv[..., 0], nan=0.0).floor().long().clamp(0, width - 1)
    y = torch.nan_to_num(uv[..., 1], nan=0.0).floor().long().clamp(0, height - 1)
    return depth[torch.arange(num_frames)[:, None], y, x]


def load_tracks(
    path: Union[str, os.PathLike],
    height: int,
    width: int,
    depth: Optional[torch.Tensor] = None,
    visibility_threshold: float = DEFAULT_VISIBILITY_THRESHOLD,
) -> Tracks:
    """Loads tracker output for motion transfer from `.npz` or `.pt`.

    Layouts read:
    - SpatialTracker (as the official DaS `batch_tracking.py` stores it): ``tracks`` [1, T, N, 3] or [T, N, 3]
      holding (x px, y px, depth), ``visibility`` [1, T, N] or [T, N];
    - CoTracker: ``pred_tracks`` (or ``tracks``) [1, T, N, 2] or [T, N, 2] in pixels, ``pred_visibility``
      [1, T, N] (or [1, T, N, 1]). Depth then comes from `depth` (the official CoTracker path samples a depth
      video at the track positions); without it every point gets depth 1 and the blue channel is 0.

    Float visibilities are thresholded at `visibility_threshold`; a missing visibility means all visible.

    Args:
        path (`str`): the file.
        height (`int`), width (`int`): the size of the video the tracks were computed on, in pixels.
        depth (`torch.Tensor` [T, H, W], *optional*): depth video for 2D tracks.
        visibility_threshold (`float`, defaults to 0.9): for float visibilities.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in TRACK_FILE_EXTENSIONS:
        raise ValueError(f"tracks file {path!r} has extension {extension!r}; expected one of {TRACK_FILE_EXTENSIONS}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tracks file {path!r} does not exist")
    if isinstance(visibility_threshold, bool) or not isinstance(visibility_threshold, (int, float)) or not (
            0 <= visibility_threshold <= 1):
        raise ValueError(f"visibility_threshold={visibility_threshold!r} must be a number in 0..1")
    try:
        if extension == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                data = {key: torch.from_numpy(archive[key]) for key in archive.files}
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"tracks file {path!r} holds Python objects that the safe loader refuses "
                         f"({str(error).strip().splitlines()[0]}); expected tensors") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, TypeError) as error:
        raise ValueError(f"tracks file {path!r} is truncated, corrupt or not a {extension} file "
                         f"({str(error).strip().splitlines()[0]})") from None
    if extension != ".npz":
        if isinstance(data, torch.Tensor):
            data = {"tracks": data}
        if not isinstance(data, dict):
            raise ValueError(f"{path!r} holds a {type(data).__name__}; expected a dict of tensors or a tensor")
    tracks = as_tensor(_pick(data, TRACK_KEYS, path, "tracks"), "tracks", torch.float32)
    if tracks.ndim == 4 and tracks.shape[0] == 1:
        tracks = tracks[0]
    if tracks.ndim != 3 or tracks.shape[-1] not in (2, 3):
        raise ValueError(f"tracks in {path!r} have shape {tuple(tracks.shape)}; expected [1, T, N, 2 or 3] or [T, N, 2 or 3]")
    visibility = next((data[key] for key in VISIBILITY_KEYS if key in data), None)
    if visibility is None:
        visibility = torch.ones(tracks.shape[:2], dtype=torch.bool)
    visibility = as_tensor(visibility, "visibility")
    while visibility.ndim > 2 and visibility.shape[0] == 1:
        visibility = visibility[0]
    if visibility.ndim == 3 and visibility.shape[-1] == 1:
        visibility = visibility[..., 0]
    if visibility.shape != tracks.shape[:2]:
        raise ValueError(f"visibility in {path!r} has shape {tuple(visibility.shape)}; expected {tuple(tracks.shape[:2])}")
    if visibility.dtype != torch.bool:
        visibility = visibility.to(torch.float32) >= visibility_threshold

    if tracks.shape[-1] == 2:
        if depth is None:
            z = torch.ones(tracks.shape[:2])
        else:
            depth = as_tensor(depth, "depth", torch.float32)
            if depth.shape != (tracks.shape[0], height, width):
                raise ValueError(
                    f"depth has shape {tuple(depth.shape)}; expected [{tracks.shape[0]}, {height}, {width}] "
                    f"(one depth map per track frame, at the tracked video's size)"
                )
            if not bool(torch.isfinite(depth).all()):
                raise ValueError("depth has NaN or infinite values")
            z = _sample_depth(depth, tracks)
        tracks = torch.cat([tracks, z[..., None]], dim=-1)
    return Tracks(tracks, visibility, height, width)
