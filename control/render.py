"""Vectorised point-splat renderer of DaS tracking videos: coloured squares on black, nearer points painted last.

The output equals the official per-point drawing (`draw_rectangle` for each point, far to near) pixel for pixel:
a point at (u, v) covers pixels floor(u) - s//2 .. floor(u) + s//2 and floor(v) - s//2 .. floor(v) + s//2
(inclusive, as PIL fills a rectangle; s is `point_size`), clipped to the frame. Every covered pixel takes the
colour of its nearest point; among points at equal depth the one with the higher index wins (the order a stable
far-to-near sort paints them in). Invisible points, points behind the camera (depth <= 0), points with
non-finite coordinates and points whose own pixel is outside the frame are not drawn.

One difference from the official validity test: it also drops points in the top pixel row (its `v > 0`); here
row 0 is drawn.
"""

import warnings
from typing import Optional

import torch

from .tracks import Tracks, check_colors

# pixels handled per chunk of frames: small temporaries are recycled by the allocator instead of being fresh
# pages each time (page faults on fresh memory cost more than the arithmetic on a CPU)
PIXELS_PER_CHUNK = 1 << 18
OUTPUT_DTYPES = (torch.float32, torch.uint8)


def render_tracking_video(
    tracks: Tracks,
    point_size: int = 2,
    colors: Optional[torch.Tensor] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Renders tracks as a tracking video [T, H, W, 3] (ComfyUI IMAGE layout).

    Args:
        tracks (`Tracks`): what to draw, with its frame size and colours.
        point_size (`int`, defaults to 2): the official `side_length`; a splat is 2 * (point_size // 2) + 1 pixels
            wide (official: 2 for dense depth points, 4 for CoTracker grids).
        colors (`torch.Tensor` [N, 3] in 0..1, *optional*): overrides `tracks.colors`.
        dtype (`torch.dtype`, defaults to float32): float32 in 0..1, or uint8 in 0..255 (colours rounded).
    """
    if not isinstance(tracks, Tracks):
        raise TypeError(f"tracks={type(tracks).__name__} must be a Tracks")
    if isinstance(point_size, bool) or not isinstance(point_size, int) or point_size < 1:
        raise ValueError(f"point_size={point_size!r} must be an integer >= 1")
    if point_size > max(tracks.height, tracks.width):
        raise ValueError(f"point_size={point_size} must be at most {max(tracks.height, tracks.width)} (a splat that wide "
                         f"already covers the whole {tracks.height}x{tracks.width} frame)")
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype={dtype} must be one of {OUTPUT_DTYPES}")
    colors = tracks.colors if colors is None else colors
    if colors.shape != (tracks.num_points, 3):
        raise ValueError(f"colors has shape {tuple(colors.shape)}; expected [{tracks.num_points}, 3]")
    check_colors(colors)
    if dtype == torch.uint8:
        palette = (colors.clamp(0, 1) * 255).round().to(torch.uint8)
    else:
        palette = colors.to(torch.float32)
    # entry 0 is the background, entry 1 + i the colour of point i
    palette = torch.cat([torch.zeros(1, 3, dtype=palette.dtype, device=palette.device), palette])

    height, width = tracks.height, tracks.width
    num_frames, num_points = tracks.num_frames, tracks.num_points
    key_dtype = torch.int16 if num_points < torch.iinfo(torch.int16).max else torch.int32
    video = torch.empty(num_frames, height, width, 3, dtype=dtype, device=tracks.points.device)
    frames_per_chunk = max(1, PIXELS_PER_CHUNK // (height * width))
    empty_frames = []
    for start in range(0, num_frames, frames_per_chunk):
        stop = min(num_frames, start + frames_per_chunk)
        last_painted, order = _last_painted_per_pixel(
            tracks.points[start:stop], tracks.visibility[start:stop], height, width, point_size // 2, key_dtype
        )
        empty_frames += [start + i for i in (~last_painted.flatten(1).any(1)).nonzero().flatten().tolist()]
        for frame in range(stop - start):
            # painting key -> colour: 0 is the background, 1 + r the r-th point painted in the frame
            key_palette = torch.cat([palette[:1], palette[1:][order[frame]]])
            torch.index_select(key_palette, 0, last_painted[frame].flatten(), out=video[start + frame].view(-1, 3))
    if empty_frames:
        warnings.warn(blank_frames_message(empty_frames, num_frames), BlankTrackingVideoWarning, stacklevel=2)
    return video


class BlankTrackingVideoWarning(UserWarning):
    """A tracking video has frames in which no track point is drawn."""


def blank_frames_message(empty_frames, num_frames: int) -> str:
    shown = ", ".join(map(str, empty_frames[:8])) + (", ..." if len(empty_frames) > 8 else "")
    return (f"{len(empty_frames)} of {num_frames} frames of the tracking video are black (frames {shown}): no track "
            f"point is visible there (behind the camera, off screen or marked invisible)")


def _last_painted_per_pixel(points, visibility, height, width, half: int, key_dtype: torch.dtype):
    """Per pixel of a chunk of frames, the key of the point painted last on it (0 where none is).

    Returns the keys [Tc, H, W] (int32: 1 + r for the r-th point painted in its frame) and the painting order
    [Tc, N] (point indices, far to near).

    A pixel is covered by the points whose own pixel lies within `half` of it in both directions (a square) and
    shows the one painted last, i.e. the largest key among them. So each point's key is written to its own pixel
    (largest key per pixel), then a (2 half + 1)-wide max filter, as a row and a column pass of shifted maxima,
    spreads the keys into squares (measured faster than scattering every pixel of every square, even for 4900
    points at 480x720).
    """
    num_frames, num_points, _ = points.shape
    device = points.device
    u, v, depth = points.unbind(-1)
    finite = torch.isfinite(u) & torch.isfinite(v) & torch.isfinite(depth)
    x = torch.where(finite, u, torch.zeros_like(u)).floor().long()
    y = torch.where(finite, v, torch.zeros_like(v)).floor().long()
    drawn = visibility & finite & (depth > 0) & (x >= 0) & (x < width) & (y >= 0) & (y < height)

    # painting order per frame: far to near, stable (equal depths keep index order); key = 1 + position in it
    sort_key = torch.where(drawn, depth, torch.full_like(depth, float("inf")))
    order = torch.sort(sort_key, dim=1, descending=True, stable=True).indices
    key = torch.empty_like(order)
    key.scatter_(1, order, torch.arange(1, num_points + 1, device=device).expand(num_frames, -1))

    # points that are not drawn go to a scratch pixel past the end of each frame, dropped afterwards
    scratch = height * width
    pixel = torch.where(drawn, y * width + x, scratch)
    centres = torch.zeros(num_frames, scratch + 1, dtype=key_dtype, device=device)
    centres.scatter_reduce_(1, pixel, key.to(key_dtype), reduce="amax")
    centres = centres[:, :scratch].view(num_frames, height, width)
    rows = centres.clone()
    for shift in range(1, half + 1):
        torch.maximum(rows[:, :, :-shift], centres[:, :, shift:], out=rows[:, :, :-shift])
        torch.maximum(rows[:, :, shift:], centres[:, :, :-shift], out=rows[:, :, shift:])
    squares = rows.clone()
    for shift in range(1, half + 1):
        torch.maximum(squares[:, :-shift], rows[:, shift:], out=squares[:, :-shift])
        torch.maximum(squares[:, shift:], rows[:, :-shift], out=squares[:, shift:])
    return squares.to(torch.int32), order
