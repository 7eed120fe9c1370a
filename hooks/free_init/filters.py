"""FreeInit's 3-D low-pass filters (vectorised, cached) and the frequency mix of re-noised latents and fresh noise."""

import functools
from typing import Sequence, Tuple

import torch

from .config import METHODS, _is_real

__all__ = ["build_frequency_filter", "frequency_filter", "mix_frequencies"]


def build_frequency_filter(
    shape: Sequence[int],
    method: str,
    order: int = 4,
    spatial_stop_frequency: float = 0.25,
    temporal_stop_frequency: float = 0.25,
) -> torch.Tensor:
    """A centred (fftshift-ed) 3-D low-pass filter of shape ``(frames, height, width)``, float32, on the CPU.

    Vectorised in float64 with the official formulas' order of operations, then rounded to float32 as the
    official code stores them. With ``d^2 = ((d_s/d_t)(2t/T-1))^2 + (2h/H-1)^2 + (2w/W-1)^2``:
    gaussian ``exp(-d^2 / (2 d_s^2))``, butterworth ``1 / (1 + (d^2 / d_s^2)^order)``, ideal
    ``d^2 <= d_s^2`` (the official code's ``d_s * 2`` is a typo for ``d_s ** 2``), box: ones on
    ``±round(T//2 * d_t)`` frames and ``±round(H//2 * d_s)`` rows and columns around the centre.

    Args:
        shape (`Sequence[int]`): ``(frames, height, width)`` of the latent.
        method (`str`): ``"butterworth"``, ``"gaussian"``, ``"ideal"`` or ``"box"``.
        order (`int`, defaults to 4): butterworth order.
        spatial_stop_frequency (`float`, defaults to 0.25), temporal_stop_frequency (`float`, defaults to 0.25):
            ``d_s`` and ``d_t``, in (0, 1].
    """
    frames, height, width = _check_filter_arguments(
        shape, method, order, spatial_stop_frequency, temporal_stop_frequency
    )
    d_s, d_t = float(spatial_stop_frequency), float(temporal_stop_frequency)
    if method == "box":
        box = torch.zeros(frames, height, width)
        half_t, half_s = round(frames // 2 * d_t), round(int(height // 2) * d_s)
        centre_t, centre_h, centre_w = frames // 2, height // 2, width // 2
        box[
            max(centre_t - half_t, 0) : centre_t + half_t,
            max(centre_h - half_s, 0) : centre_h + half_s,
            max(centre_w - half_s, 0) : centre_w + half_s,
        ] = 1.0
        return box

    def axis(size: int) -> torch.Tensor:
        return 2 * torch.arange(size, dtype=torch.float64) / size - 1

    squared_distance = (
        ((d_s / d_t) * axis(frames))[:, None, None] ** 2
        + (axis(height) ** 2)[None, :, None]
        + (axis(width) ** 2)[None, None, :]
    )
    if method == "gaussian":
        values = torch.exp(-1 / (2 * d_s**2) * squared_distance)
    elif method == "butterworth":
        values = 1 / (1 + (squared_distance / d_s**2) ** order)
    else:
        values = (squared_distance <= d_s**2).to(torch.float64)
    return values.to(torch.float32)


def _check_filter_arguments(
    shape, method, order, spatial_stop_frequency, temporal_stop_frequency
) -> Tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3 or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in shape):
        raise ValueError(f"shape={shape!r} must be (frames, height, width), three integers >= 1")
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {METHODS}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order={order!r} must be an integer >= 1")
    for name, value in zip(("spatial_stop_frequency", "temporal_stop_frequency"),
                           (spatial_stop_frequency, temporal_stop_frequency)):
        if not _is_real(value) or not 0 < value <= 1:
            raise ValueError(f"{name}={value!r} must be in (0, 1]")
    return shape


def frequency_filter(
    shape: Sequence[int],
    method: str,
    order: int = 4,
    spatial_stop_frequency: float = 0.25,
    temporal_stop_frequency: float = 0.25,
    device="cpu",
) -> torch.Tensor:
    """``build_frequency_filter`` on ``device``, cached by (shape, parameters, device). Do not modify the result."""
    return _cached_filter(
        tuple(int(size) for size in shape), method, order, float(spatial_stop_frequency),
        float(temporal_stop_frequency), str(torch.device(device)),
    )


@functools.lru_cache(maxsize=32)
def _cached_filter(shape, method, order, spatial_stop_frequency, temporal_stop_frequency, device) -> torch.Tensor:
    return build_frequency_filter(shape, method, order, spatial_stop_frequency, temporal_stop_frequency).to(device)


def mix_frequencies(
    low_source: torch.Tensor, high_source: torch.Tensor, low_pass: torch.Tensor, dims: Sequence[int] = (-3, -2, -1)
) -> torch.Tensor:
    """``IFFT(FFT(low_source) * LPF + FFT(high_source) * (1 - LPF)).real`` over ``dims`` (the official ``freq_mix_3d``).

    The FFTs run in float32 whatever the inputs' dtype; the result has ``low_source``'s dtype. The centred
    filter is moved to FFT order once instead of shifting both spectra and their mix, which gives the same
    numbers (a shift only permutes elements).

    Args:
        low_source (`torch.Tensor`): tensor whose low frequencies are kept (the re-noised latent).
        high_source (`torch.Tensor`): tensor whose high frequencies are taken (fresh noise), same shape.
        low_pass (`torch.Tensor`): centred filter of shape ``[low_source.shape[d] for d in dims]``, values in 0..1.
        dims (`Sequence[int]`, defaults to (-3, -2, -1)): the frame, height and width axes.
    """
    if low_source.shape != high_source.shape:
        raise ValueError(
            f"low_source {tuple(low_source.shape)} and high_source {tuple(high_source.shape)} differ in shape"
        )
    dims = tuple(d % low_source.ndim for d in dims)
    expected = tuple(low_source.shape[d] for d in dims)
    if tuple(low_pass.shape) != expected:
        raise ValueError(f"low_pass has shape {tuple(low_pass.shape)}; expected {expected} (the sizes of dims {dims})")
    view = [1] * low_source.ndim
    for d, size in zip(dims, expected):
        view[d] = size
    filter_dims = tuple(range(-len(dims), 0))
    low_pass = torch.fft.ifftshift(low_pass.to(device=low_source.device, dtype=torch.float32), dim=filter_dims)
    high_pass = 1 - low_pass
    low_pass, high_pass = low_pass.reshape(view), high_pass.reshape(view)
    low_spectrum = torch.fft.fftn(low_source.to(torch.float32), dim=dims)
    high_spectrum = torch.fft.fftn(high_source.to(torch.float32), dim=dims)
    mixed = torch.fft.ifftn(low_spectrum * low_pass + high_spectrum * high_pass, dim=dims).real
    return mixed.to(low_source.dtype)
