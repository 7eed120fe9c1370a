"""Object manipulation for DaS: move the track points inside a mask about their centroid over the frames.

As the official `ObjectMotionGenerator.apply_motion`: the points whose frame-0 pixel lies in the mask are
selected, c is the centroid of their frame-0 positions, and frame t (fraction s = t / (T - 1)) applies
M_t = T(c) @ Motion(s) @ T(-c) to them, where Motion(s) translates by direction * distance * s or rotates about
the vertical (y) axis by distance * s degrees.

Directions (camera axes: x right, y down, z forward): up (0, -1, 0), down (0, 1, 0), left (-1, 0, 0),
right (1, 0, 0), front (0, 0, 1) i.e. away from the camera, back (0, 0, -1) i.e. towards it; rot turns about y.

Two spaces, chosen by what the tracks know:
- tracks with `world_points` and `camera` (from `tracks_from_depth`): the motion acts on the 3D points, which are
  then projected again. `distance` is in pixels at the object's frame-0 depth (a 3D length of
  distance * depth / fx), the same length for front/back;
- other tracks (loaded from a tracker): the motion acts on (u, v, z) as the official SpatialTracker path does,
  `distance` in pixels for u/v and in depth units for front/back.
"""

import math
from typing import Union

import torch

from ._inputs import as_mask
from .camera import MAX_CAMERA_VALUE, rotation_matrix
from .tracks import Tracks

DIRECTIONS = {
    "up": (0.0, -1.0, 0.0),
    "down": (0.0, 1.0, 0.0),
    "left": (-1.0, 0.0, 0.0),
    "right": (1.0, 0.0, 0.0),
    "front": (0.0, 0.0, 1.0),
    "back": (0.0, 0.0, -1.0),
}
MOTIONS = tuple(DIRECTIONS) + ("rot",)
# the official default distance (pixels, or degrees for rot)
DEFAULT_DISTANCE = 50.0


def object_motion_matrices(center: torch.Tensor, motion: str, distance: float, num_frames: int) -> torch.Tensor:
    """M_t = T(center) @ Motion(t / (T - 1)) @ T(-center) for every frame, [num_frames, 4, 4] float64.

    Args:
        center (`torch.Tensor` [3]): the fixed point of the motion.
        motion (`str`): one of up, down, left, right, front, back, rot.
        distance (`float`): length of the translation at the last frame, or the last frame's angle in degrees.
        num_frames (`int`): frames (>= 2).
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion={motion!r} must be one of {MOTIONS}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
        raise ValueError(f"num_frames={num_frames!r} must be an integer >= 2")
    fraction = torch.arange(num_frames, dtype=torch.float64) / (num_frames - 1)
    if motion == "rot":
        moves = rotation_matrix("y", distance * fraction)
    else:
        moves = torch.eye(4, dtype=torch.float64).repeat(num_frames, 1, 1)
        moves[:, :3, 3] = fraction[:, None] * distance * torch.tensor(DIRECTIONS[motion], dtype=torch.float64)
    to_center = torch.eye(4, dtype=torch.float64)
    to_center[:3, 3] = center.to(torch.float64)
    from_center = torch.eye(4, dtype=torch.float64)
    from_center[:3, 3] = -center.to(torch.float64)
    return to_center @ moves @ from_center


def _transform(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """[T, 4, 4] applied to [T, M, 3] points."""
    moved = points.to(torch.float64) @ matrices[:, :3, :3].transpose(1, 2) + matrices[:, None, :3, 3]
    return moved.to(points.dtype)


def selected_points(tracks: Tracks, mask) -> torch.Tensor:
    """[N] bool: points whose frame-0 pixel (floor(u), floor(v)) is inside the frame and in `mask` [H, W]."""
    mask = as_mask(mask, "mask", tracks.height, tracks.width)
    u, v = tracks.points[0, :, 0], tracks.points[0, :, 1]
    finite = torch.isfinite(u) & torch.isfinite(v)
    x = torch.where(finite, u, torch.full_like(u, -1)).floor().long()
    y = torch.where(finite, v, torch.full_like(v, -1)).floor().long()
    inside = finite & (x >= 0) & (x < tracks.width) & (y >= 0) & (y < tracks.height)
    selected = torch.zeros_like(inside)
    selected[inside] = mask[y[inside], x[inside]]
    return selected


def apply_object_motion(tracks: Tracks, mask, motion: str, distance: Union[int, float] = DEFAULT_DISTANCE) -> Tracks:
    """Tracks in which the object under `mask` moves (see the module docstring); colours are kept.

    Args:
        tracks (`Tracks`): the scene's tracks.
        mask: [H, W] bool, 0..1 float (> 0.5) or uint8 (> 127, as the official code) at the tracks' frame size.
        motion (`str`): up, down, left, right, front, back or rot.
        distance (`float`, defaults to 50): pixels (or degrees for rot) at the last frame.

    Raises:
        ValueError: unknown motion, non-finite distance, mask of another size, or a mask that selects no point.
    """
    if not isinstance(tracks, Tracks):
        raise TypeError(f"tracks={type(tracks).__name__} must be a Tracks")
    if motion not in MOTIONS:
        raise ValueError(f"motion={motion!r} must be one of {MOTIONS}")
    distance = float(distance)
    if not math.isfinite(distance):
        raise ValueError(f"distance={distance} must be finite")
    if abs(distance) > MAX_CAMERA_VALUE:
        raise ValueError(f"distance={distance:g} must lie in -{MAX_CAMERA_VALUE:g}..{MAX_CAMERA_VALUE:g} (larger "
                         f"moves overflow float32 in the projection)")
    if tracks.num_frames < 2:
        raise ValueError(f"object motion needs at least 2 frames; the tracks have {tracks.num_frames}")
    selected = selected_points(tracks, mask)
    if not selected.any():
        raise ValueError(
            f"mask selects no track point: none of the {tracks.num_points} points lies in the mask in frame 0 "
            f"(mask pixels set: {int(as_mask(mask, 'mask', tracks.height, tracks.width).sum())})"
        )

    if tracks.world_points is not None:
        center = tracks.world_points[0, selected].to(torch.float64).mean(0)
        camera = tracks.camera
        if motion != "rot":
            # `distance` pixels at the centroid's frame-0 depth, as a 3D length
            center_in_camera = camera.world_to_camera[0].to(torch.float64) @ torch.cat([center, center.new_ones(1)])
            distance = distance * center_in_camera[2].item() / camera.intrinsics[0, 0, 0].item()
        matrices = object_motion_matrices(center, motion, distance, tracks.num_frames)
        world_points = tracks.world_points.clone()
        world_points[:, selected] = _transform(matrices, world_points[:, selected])
        return Tracks.from_world_points(world_points, camera, tracks.height, tracks.width, colors=tracks.colors)

    center = tracks.points[0, selected].to(torch.float64).mean(0)
    matrices = object_motion_matrices(center, motion, distance, tracks.num_frames)
    points = tracks.points.clone()
    points[:, selected] = _transform(matrices, points[:, selected])
    return Tracks(points, tracks.visibility.clone(), tracks.height, tracks.width, colors=tracks.colors)
