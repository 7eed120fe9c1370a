"""CFG-Cache's frequency split: the (uncond - cond) residual cut into its low- and high-frequency parts."""

import functools
from typing import Tuple

import torch

__all__ = ["cfg_cache_residuals"]


@functools.lru_cache(maxsize=32)
def _low_frequency_mask(height: int, width: int, radius: int, device: torch.device) -> torch.Tensor:
    """The official centred disc `dy^2 + dx^2 <= radius^2` (in fftshift coordinates), in `rfft2` layout [H, W//2+1]."""
    dy = torch.fft.fftfreq(height, d=1.0 / height, device=device)
    dx = torch.fft.rfftfreq(width, d=1.0 / width, device=device)
    return (dy[:, None] ** 2 + dx[None, :] ** 2 <= radius**2).to(torch.float32)


def cfg_cache_residuals(difference: torch.Tensor, radius_divisor: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Splits an (uncond - cond) difference [..., H, W] into its real low- and high-frequency parts.

    `low = IFFT2(M * FFT2(difference))` with the official disc M of radius `min(H, W) // radius_divisor` about the
    zero frequency, `high = difference - low`; both float32. M is symmetric about the zero frequency, so `low` is
    real and `rfft2` suffices.

    Args:
        difference (`torch.Tensor`): the residual at a full step, spatial dims last.
        radius_divisor (`int`): see `FasterCacheConfig.radius_divisor`.
    """
    height, width = difference.shape[-2:]
    radius = min(height, width) // radius_divisor
    difference = difference.float()
    mask = _low_frequency_mask(height, width, radius, difference.device)
    low = torch.fft.irfft2(torch.fft.rfft2(difference) * mask, s=(height, width))
    return low, difference - low
