"""Track colours of the DaS tracking video: each point keeps the colour of its frame-0 screen position and depth."""

import torch

# inverse depth is normalised between these percentiles of the frame-0 points (official: np.percentile 2 and 98)
LOW_PERCENTILE = 2.0
HIGH_PERCENTILE = 98.0


def colorize_tracks(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Colours [N, 3] in 0..1 from frame-0 positions, as the official CoTracker/MoGe paths compute them.

    R = u / W, G = v / H (clipped to 0..1), B = clip((1/z - p2) / (p98 - p2), 0, 1), where p2 and p98 are the
    2nd and 98th percentiles (linear interpolation, as numpy's default) of 1/z over the frame-0 points in front
    of the camera. Points behind the camera or without a position in frame 0 get B = 0 (and R, G from their
    position where it is finite, else 0). When every depth is equal, B is 0 (the official code divides by 1e-10).

    Args:
        points (`torch.Tensor` [T, N, 3]): (u, v) pixel coordinates and depth z per frame.
        height (`int`), width (`int`): frame size in pixels.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points has shape {tuple(points.shape)}; expected [frames, points, 3]")
    first = points[0].to(torch.float64)
    u, v, z = first.unbind(-1)
    red = torch.nan_to_num(u / width, nan=0.0).clamp(0, 1)
    green = torch.nan_to_num(v / height, nan=0.0).clamp(0, 1)
    valid = torch.isfinite(z) & (z > 0)
    blue = torch.zeros_like(z)
    if valid.any():
        inverse_depth = 1.0 / z[valid]
        low, high = torch.quantile(
            inverse_depth, torch.tensor([LOW_PERCENTILE / 100, HIGH_PERCENTILE / 100], dtype=torch.float64)
        ).tolist()
        if high > low:
            blue[valid] = ((inverse_depth - low) / (high - low)).clamp(0, 1)
    return torch.stack([red, green, blue], dim=-1).to(torch.float32)
