"""Cameras for tracking videos: intrinsics, world-to-camera trajectories from the official DaS command strings, projection.

Conventions (OpenCV, as the official code): camera x points right, y down, z forward; a pixel (i, j) covers
[i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5). The world is the camera of frame 0, so an identity
trajectory reproduces the input view.

A trajectory is a stack of world-to-camera matrices P_t ([T, 4, 4]); a scene point X is seen at P_t X. The
commands build P_t as the official `CameraMotionGenerator.get_default_motion` does:

- ``trans dx dy dz [s e]``: P_t translates by (dx, dy, dz) * ramp. The scene moves by +d in camera space, so the
  camera moves by -d: +dx moves the camera left, +dy moves it up, +dz moves it back (zoom out).
- ``rot x|y|z deg [s e]``: P_t is the rotation by deg * ramp about the camera's axis (right-handed). ``rot y 30``
  turns a point straight ahead towards +x (it appears to the right): the camera pans left.
- ``spiral r [s e]``: the camera travels the official spiral (x = r' sin 2pi t, y = 0.3 r' cos 2pi t,
  z = -0.5 r' with r' = 0.1 r sin pi t) while looking at (0, 0, 0.5 r). Unlike the official code, which puts a
  camera-to-world rotation into a world-to-camera matrix, P_t is the true world-to-camera look-at pose.

The ramp runs from 0 at frame s to 1 at frame e (default 0 and T-1), is 0 before s and holds 1 after e.
Commands are separated by ``;`` and chained in order: P = P_1 @ P_2 @ ...
"""

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from ._inputs import as_tensor

DEFAULT_FOV_DEGREES = 55.0
DEFAULT_NUM_FRAMES = 49
COMMANDS = ("trans", "rot", "spiral")
ROTATION_AXES = ("x", "y", "z")
# the official spiral's shape constants (`spiral_poses` defaults)
SPIRAL_TURN_SCALE = 0.1
SPIRAL_VERTICAL_SCALE = 0.3
SPIRAL_FORWARD_SCALE = 0.5
SPIRAL_TARGET_SCALE = 0.5

# numbers of camera commands beyond this overflow float32 once squared in the projection (and say nothing useful)
MAX_CAMERA_VALUE = 1e6
# a focal length beyond this (fov under about 1e-4 degrees at 1000 pixels) puts every point on the image centre
MAX_FOCAL_PIXELS = 1e9


@dataclass
class Camera:
    """Per-frame pinhole cameras.

    Args:
        intrinsics (`torch.Tensor` [T, 3, 3]): pixel-space K per frame.
        world_to_camera (`torch.Tensor` [T, 4, 4]): extrinsics per frame (OpenCV axes).
    """

    intrinsics: torch.Tensor
    world_to_camera: torch.Tensor

    def __post_init__(self):
        self.intrinsics = as_tensor(self.intrinsics, "intrinsics", dtype=torch.float32)
        self.world_to_camera = as_tensor(self.world_to_camera, "world_to_camera", dtype=torch.float32)
        if self.world_to_camera.ndim != 3 or self.world_to_camera.shape[1:] != (4, 4):
            raise ValueError(f"world_to_camera has shape {tuple(self.world_to_camera.shape)}; expected [frames, 4, 4]")
        if self.intrinsics.shape[-2:] != (3, 3):
            raise ValueError(f"intrinsics has shape {tuple(self.intrinsics.shape)}; expected [3, 3] or [frames, 3, 3]")
        if self.intrinsics.ndim == 2:
            self.intrinsics = self.intrinsics.expand(len(self.world_to_camera), 3, 3).clone()
        if self.intrinsics.shape != (len(self.world_to_camera), 3, 3):
            raise ValueError(
                f"intrinsics has shape {tuple(self.intrinsics.shape)}; expected [3, 3] or "
                f"[{len(self.world_to_camera)}, 3, 3] (one per frame of world_to_camera)"
            )
        for name, value in (("intrinsics", self.intrinsics), ("world_to_camera", self.world_to_camera)):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} contains NaN or infinite values")

    @property
    def num_frames(self) -> int:
        return len(self.world_to_camera)

    @classmethod
    def from_command(
        cls,
        command: str,
        height: int,
        width: int,
        num_frames: int = DEFAULT_NUM_FRAMES,
        fov_degrees: float = DEFAULT_FOV_DEGREES,
        intrinsics: Optional[torch.Tensor] = None,
    ) -> "Camera":
        """A camera following `command` (see the module docstring), with fixed intrinsics.

        Args:
            command (`str`): e.g. ``"rot y 30"`` or ``"trans 0 0 0.5 0 30; rot x 25 0 30"``; "" keeps the camera still.
            height (`int`), width (`int`): frame size in pixels.
            num_frames (`int`, defaults to 49): frames of the trajectory.
            fov_degrees (`float`, defaults to 55): horizontal field of view when `intrinsics` is not given.
            intrinsics (`torch.Tensor` [3, 3], *optional*): pixel-space K, e.g. from a depth model.
        """
        if intrinsics is None:
            intrinsics = default_intrinsics(height, width, fov_degrees)
        return cls(intrinsics=intrinsics, world_to_camera=camera_trajectory(command, num_frames))

    def project(self, world_points: torch.Tensor):
        """Projects world points [N, 3] (static) or [T, N, 3] into every frame.

        Returns:
            (`torch.Tensor` [T, N, 2], `torch.Tensor` [T, N]): pixel coordinates (u, v) and camera-space depth z.
            Points with z <= 0 (behind the camera) get u = v = NaN.
        """
        from kornia.geometry.linalg import transform_points

        if world_points.ndim == 2:
            world_points = world_points.expand(self.num_frames, -1, -1)
        if world_points.ndim != 3 or world_points.shape[0] != self.num_frames or world_points.shape[-1] != 3:
            raise ValueError(
                f"world_points has shape {tuple(world_points.shape)}; expected [N, 3] or [{self.num_frames}, N, 3]"
            )
        camera_points = transform_points(self.world_to_camera.to(world_points), world_points)
        depth = camera_points[..., 2]
        in_front = depth > 0
        image_points = camera_points @ self.intrinsics.to(world_points).transpose(1, 2)
        safe_depth = torch.where(in_front, image_points[..., 2], torch.ones_like(depth))
        uv = image_points[..., :2] / safe_depth[..., None]
        uv = torch.where(in_front[..., None], uv, torch.full_like(uv, float("nan")))
        return uv, depth


def default_intrinsics(height: int, width: int, fov_degrees: float = DEFAULT_FOV_DEGREES) -> torch.Tensor:
    """The official default K: fx = fy = (W/2) / tan(fov/2) (horizontal field of view), principal point (W/2, H/2)."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if not 0 < fov_degrees < 180:
        raise ValueError(f"fov_degrees={fov_degrees} must be in (0, 180)")
    focal = (width / 2) / math.tan(math.radians(fov_degrees) / 2)
    if not focal <= MAX_FOCAL_PIXELS:
        raise ValueError(f"fov_degrees={fov_degrees:g} gives a focal length of {focal:.3g} pixels; a field of view "
                         f"that narrow makes every point project to the image centre (fov must give a focal length "
                         f"<= {MAX_FOCAL_PIXELS:g} pixels)")
    return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)


def rotation_matrix(axis: str, degrees: Union[float, torch.Tensor]) -> torch.Tensor:
    """Right-handed rotation(s) about the camera's x, y or z axis as [..., 4, 4] (the official `rot_poses`)."""
    if axis not in ROTATION_AXES:
        raise ValueError(f"axis={axis!r} must be one of {ROTATION_AXES}")
    angle = torch.deg2rad(torch.as_tensor(degrees, dtype=torch.float64))
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = {
        "x": [[one, zero, zero], [zero, cos, -sin], [zero, sin, cos]],
        "y": [[cos, zero, sin], [zero, one, zero], [-sin, zero, cos]],
        "z": [[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]],
    }[axis]
    matrix = torch.zeros(angle.shape + (4, 4), dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            matrix[..., i, j] = rows[i][j]
    matrix[..., 3, 3] = 1
    return matrix


def look_at(camera_position: Sequence[float], target: Sequence[float]) -> torch.Tensor:
    """World-to-camera [4, 4] of a camera at `camera_position` looking at `target`, image y pointing down (+y world).

    At the origin looking at +z this is the identity.
    """
    position = torch.as_tensor(camera_position, dtype=torch.float64)
    forward = torch.as_tensor(target, dtype=torch.float64) - position
    if forward.norm() == 0:
        raise ValueError(f"look_at: target {list(target)} equals the camera position")
    forward = forward / forward.norm()
    right = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), forward)
    if right.norm() < 1e-9:
        raise ValueError(f"look_at: the view direction {forward.tolist()} is vertical; the image axes are undefined")
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ position
    return matrix


def spiral_pose(radius: float, fraction: float) -> torch.Tensor:
    """World-to-camera pose of the official spiral at `fraction` (0..1) of its course."""
    turn_radius = math.sin(math.pi * fraction) * radius * SPIRAL_TURN_SCALE
    theta = 2 * math.pi * fraction
    position = [
        turn_radius * math.sin(theta),
        turn_radius * math.cos(theta) * SPIRAL_VERTICAL_SCALE,
        -turn_radius * SPIRAL_FORWARD_SCALE,
    ]
    return look_at(position, [0.0, 0.0, radius * SPIRAL_TARGET_SCALE])


def _ramp(num_frames: int, start: int, end: int) -> torch.Tensor:
    """0 before `start`, linear to 1 at `end`, 1 after (a step at `start` when start == end)."""
    frames = torch.arange(num_frames, dtype=torch.float64)
    if end == start:
        return (frames >= start).to(torch.float64)
    return ((frames - start) / (end - start)).clamp(0, 1)


def _parse_numbers(command: str, words: Sequence[str], what: Sequence[str]):
    values = []
    for word, name in zip(words, what):
        try:
            values.append(float(word))
        except ValueError:
            raise ValueError(f"camera command {command!r}: {name}={word!r} is not a number") from None
        if not math.isfinite(values[-1]):
            raise ValueError(f"camera command {command!r}: {name}={word!r} must be finite")
        if abs(values[-1]) > MAX_CAMERA_VALUE:
            raise ValueError(f"camera command {command!r}: {name}={word} must lie in -{MAX_CAMERA_VALUE:g}.."
                             f"{MAX_CAMERA_VALUE:g} (larger values overflow the float32 projection)")
    return values


def _parse_range(command: str, words: Sequence[str], num_frames: int):
    if not words:
        return 0, num_frames - 1
    try:
        start, end = int(words[0]), int(words[1])
    except ValueError:
        raise ValueError(f"camera command {command!r}: frame range {' '.join(words)!r} must be two integers") from None
    if not 0 <= start <= end <= num_frames - 1:
        raise ValueError(
            f"camera command {command!r}: frame range {start}..{end} must satisfy 0 <= start <= end <= "
            f"{num_frames - 1} (the trajectory has {num_frames} frames)"
        )
    return start, end


def camera_trajectory(command: str, num_frames: int = DEFAULT_NUM_FRAMES) -> torch.Tensor:
    """World-to-camera matrices [num_frames, 4, 4] (float32) for official-style camera commands.

    Args:
        command (`str`): ``;``-separated ``trans dx dy dz [s e]``, ``rot x|y|z deg [s e]``, ``spiral r [s e]``
            (see the module docstring for the sign conventions). Empty: the camera stays at the identity.
        num_frames (`int`, defaults to 49): frames of the trajectory.

    Raises:
        ValueError: unknown command, wrong argument count, non-numeric values, bad axis, frame range outside
            0..num_frames-1, or a non-positive spiral radius.
    """
    if not isinstance(command, str):
        raise ValueError(f"command={command!r} must be a string such as 'rot y 30'")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
        raise ValueError(f"num_frames={num_frames!r} must be an integer >= 2")
    final = torch.eye(4, dtype=torch.float64).expand(num_frames, 4, 4).clone()
    for part in (piece.strip() for piece in command.split(";")):
        if not part:
            continue
        words = part.lower().split()
        kind, arguments = words[0], words[1:]
        if kind == "trans":
            if len(arguments) not in (3, 5):
                raise ValueError(f"camera command {part!r}: 'trans' takes 'dx dy dz' or 'dx dy dz start end'")
            offset = torch.tensor(_parse_numbers(part, arguments[:3], ("dx", "dy", "dz")), dtype=torch.float64)
            ramp = _ramp(num_frames, *_parse_range(part, arguments[3:], num_frames))
            current = torch.eye(4, dtype=torch.float64).expand(num_frames, 4, 4).clone()
            current[:, :3, 3] = ramp[:, None] * offset
        elif kind == "rot":
            if len(arguments) not in (2, 4):
                raise ValueError(f"camera command {part!r}: 'rot' takes 'axis degrees' or 'axis degrees start end'")
            axis = arguments[0]
            if axis not in ROTATION_AXES:
                raise ValueError(f"camera command {part!r}: axis={axis!r} must be one of {ROTATION_AXES}")
            (degrees,) = _parse_numbers(part, arguments[1:2], ("degrees",))
            ramp = _ramp(num_frames, *_parse_range(part, arguments[2:], num_frames))
            current = rotation_matrix(axis, degrees * ramp)
        elif kind == "spiral":
            if len(arguments) not in (1, 3):
                raise ValueError(f"camera command {part!r}: 'spiral' takes 'radius' or 'radius start end'")
            (radius,) = _parse_numbers(part, arguments[:1], ("radius",))
            if radius <= 0:
                raise ValueError(f"camera command {part!r}: radius={radius} must be > 0")
            ramp = _ramp(num_frames, *_parse_range(part, arguments[1:], num_frames))
            current = torch.stack([spiral_pose(radius, float(fraction)) for fraction in ramp])
        else:
            raise ValueError(f"camera command {part!r}: unknown command {kind!r}; expected one of {COMMANDS}")
        final = final @ current
    return final.to(torch.float32)
