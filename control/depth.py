"""Tracks from a single image's depth map: unproject every pixel (or a grid) and follow the points along a camera.

This is the official image-input path (MoGe point map + `CameraMotionGenerator`), with the depth map and the
intrinsics as inputs so that any depth source works, and with points behind the camera dropped (the official
projection keeps them, mirrored). `estimate_depth` optionally gets the depth map from a local transformers
depth-estimation model.
"""

import os
from typing import Optional, Union

import torch

from ._inputs import as_image, as_tensor
from .camera import DEFAULT_FOV_DEGREES, DEFAULT_NUM_FRAMES, Camera, default_intrinsics
from .tracks import Tracks

# what transformers' depth-estimation models predict, by config.model_type
DISPARITY_MODEL_TYPES = ("depth_anything", "dpt")
DEPTH_MODEL_TYPES = ("zoedepth", "glpn", "depth_pro", "prompt_depth_anything")
PREDICTIONS = ("auto", "depth", "disparity")
# disparity below this fraction of the largest is clamped, so a relative depth map spans at most 1000x
MIN_RELATIVE_DISPARITY = 1e-3


def _check_depth(depth: torch.Tensor, height: int, width: int) -> None:
    if depth.ndim != 2:
        raise ValueError(f"depth has shape {tuple(depth.shape)}; expected [height, width]")
    if tuple(depth.shape) != (height, width):
        raise ValueError(
            f"depth is {depth.shape[0]}x{depth.shape[1]} but the image is {height}x{width} (HxW); resize the depth "
            f"map to the image first"
        )
    bad = ~torch.isfinite(depth) | (depth <= 0)
    if bad.any():
        row, column = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"depth must be finite and > 0 everywhere; {int(bad.sum())} of {depth.numel()} pixels are not (first at "
            f"row {row}, column {column}: {depth[row, column].item()})"
        )


def grid_pixels(height: int, width: int, grid_size: Optional[int] = None) -> torch.Tensor:
    """Integer pixel coordinates (x, y) [N, 2] of every pixel (`grid_size=None`) or of a grid_size x grid_size grid.

    The grid points are the pixels holding the centres of grid_size equal divisions of each axis (the official
    trackers use a 70 x 70 grid, 4900 points).
    """
    if grid_size is None:
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    else:
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or not 1 <= grid_size <= min(height, width):
            raise ValueError(f"grid_size={grid_size!r} must be an integer in 1..{min(height, width)} (or None for every pixel)")
        centres = (torch.arange(grid_size, dtype=torch.float64) + 0.5) / grid_size
        ys, xs = torch.meshgrid(
            (centres * height).floor().long(), (centres * width).floor().long(), indexing="ij"
        )
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def tracks_from_depth(
    image,
    depth,
    intrinsics: Optional[torch.Tensor] = None,
    camera: Union[Camera, torch.Tensor, str, None] = None,
    grid_size: Optional[int] = None,
    num_frames: int = DEFAULT_NUM_FRAMES,
    fov_degrees: float = DEFAULT_FOV_DEGREES,
) -> Tracks:
    """Tracks of the image's pixels seen from a moving camera.

    Each selected pixel centre (x + 0.5, y + 0.5) is unprojected with its depth and the image's intrinsics into
    the frame-0 camera (the world), then projected into every frame of `camera`. Frame 0 of an identity camera
    reproduces the input view. Points behind a frame's camera are invisible in that frame.

    Args:
        image: the input image [H, W, 3] (tensor, array or PIL); it fixes the frame size.
        depth: depth map [H, W], camera-space z, finite and > 0 (relative scale is fine; translations of the
            camera commands are in its units).
        intrinsics (`torch.Tensor` [3, 3], *optional*): K of the image in pixels; default: 55 degree horizontal field
            of view, centred (the official default).
        camera (*optional*): a `Camera` (its own per-frame intrinsics), a world-to-camera trajectory [T, 4, 4], or a
            command string such as ``"rot y 30"`` (both with `intrinsics`); default: a still camera.
        grid_size (`int`, *optional*): track a grid_size x grid_size grid instead of every pixel.
        num_frames (`int`, defaults to 49): frames, for a command string or the still camera.
        fov_degrees (`float`, defaults to 55): field of view of the default intrinsics.
    """
    from kornia.geometry.camera import unproject_points

    image = as_image(image, "image")
    height, width = image.shape[:2]
    depth = as_tensor(depth, "depth", torch.float32)
    if depth.ndim == 3 and depth.shape[0] == 1:
        depth = depth[0]
    _check_depth(depth, height, width)
    intrinsics = default_intrinsics(height, width, fov_degrees) if intrinsics is None else as_tensor(
        intrinsics, "intrinsics", torch.float32
    )
    if intrinsics.shape != (3, 3):
        raise ValueError(f"intrinsics has shape {tuple(intrinsics.shape)}; expected [3, 3]")
    if torch.isfinite(intrinsics).all() and abs(float(torch.linalg.det(intrinsics.double()))) < 1e-12:
        raise ValueError(f"intrinsics {intrinsics.tolist()} is singular (cannot be inverted to unproject the pixels)")
    if camera is None:
        camera = Camera.from_command("", height, width, num_frames, intrinsics=intrinsics)
    elif isinstance(camera, str):
        camera = Camera.from_command(camera, height, width, num_frames, intrinsics=intrinsics)
    elif not isinstance(camera, Camera):
        camera = Camera(intrinsics=intrinsics, world_to_camera=as_tensor(camera, "camera", torch.float32))

    pixels = grid_pixels(height, width, grid_size)
    point_depth = depth[pixels[:, 1], pixels[:, 0]]
    centres = pixels.to(torch.float32) + 0.5
    world_points = unproject_points(centres, point_depth[:, None], intrinsics, normalize=False)
    return Tracks.from_world_points(world_points, camera, height, width)


def disparity_to_depth(disparity) -> torch.Tensor:
    """Relative depth [H, W] from a relative disparity / inverse-depth map (larger is nearer), e.g. a depth model's
    output or a grey depth image where white is near.

    depth = 1 / disparity, with disparity clamped to >= 1e-3 of its maximum (so the depth spans at most 1000x and
    zero disparity stays finite), scaled to a median of 1: camera translations are then in units of the typical
    scene depth.
    """
    disparity = as_tensor(disparity, "disparity", torch.float32)
    if disparity.numel() == 0:
        raise ValueError(f"disparity is empty (shape {tuple(disparity.shape)}); expected a map [H, W]")
    if not torch.isfinite(disparity).all():
        raise ValueError("disparity contains NaN or infinite values")
    largest = disparity.max()
    if largest <= 0:
        raise ValueError(f"disparity has no positive value (max {largest.item()}): nothing is in front of the camera")
    depth = 1.0 / disparity.clamp_min(largest * MIN_RELATIVE_DISPARITY)
    return depth / depth.median()


def estimate_depth(
    image, model: Union[str, os.PathLike], prediction: str = "auto", device: Optional[str] = None
) -> torch.Tensor:
    """Depth map [H, W] of an image from a local transformers depth-estimation model folder.

    Runs ``transformers.pipeline("depth-estimation", model=model)`` and resizes its ``predicted_depth`` to the
    image (bilinear). Relative models predict disparity (Depth Anything, DPT); it is turned into depth by
    `disparity_to_depth` (median depth 1, so camera translations are in units of the typical scene depth).
    Metric models (ZoeDepth, GLPN, Depth Pro) return depth.

    Args:
        image: [H, W, 3] tensor/array in 0..1 or uint8, or a PIL image.
        model (`str`): a local model folder (config.json + weights + preprocessor config).
        prediction (`str`, defaults to "auto"): "disparity", "depth", or "auto" to decide from the model type
            (an unknown type is refused rather than guessed).
        device (`str`, *optional*): where the model runs (default: CPU).
    """
    from PIL import Image
    from transformers import AutoConfig, pipeline

    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction={prediction!r} must be one of {PREDICTIONS}")
    model = os.fspath(model)
    if not os.path.isfile(os.path.join(model, "config.json")):
        raise FileNotFoundError(f"model={model!r} is not a local transformers model folder (no config.json)")
    image = as_image(image, "image")
    height, width = image.shape[:2]
    if prediction == "auto":
        model_type = AutoConfig.from_pretrained(model).model_type
        if model_type in DISPARITY_MODEL_TYPES:
            prediction = "disparity"
        elif model_type in DEPTH_MODEL_TYPES:
            prediction = "depth"
        else:
            raise ValueError(
                f"model type {model_type!r} of {model!r}: unknown whether it predicts depth or disparity; pass "
                f"prediction='depth' or prediction='disparity'"
            )
    estimator = pipeline("depth-estimation", model=model, device=device or "cpu")
    picture = Image.fromarray((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    predicted = estimator(picture)["predicted_depth"].to(torch.float32).cpu()
    while predicted.ndim < 4:
        predicted = predicted[None]
    predicted = torch.nn.functional.interpolate(predicted, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    if not torch.isfinite(predicted).all():
        raise ValueError(f"the depth model {model!r} predicted non-finite values")
    if prediction == "depth":
        return predicted.clamp_min(torch.finfo(torch.float32).tiny)
    return disparity_to_depth(predicted)
