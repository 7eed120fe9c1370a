"""Input conversion shared by the control modules: numpy arrays, torch tensors, PIL images and lists to tensors."""

from typing import Optional

import numpy as np
import torch


def as_tensor(value, name: str, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """`value` (tensor, numpy array, nested list or PIL image) as a CPU-or-same-device tensor of `dtype`."""
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        try:
            from PIL import Image

            if isinstance(value, Image.Image):
                value = np.asarray(value.convert("RGB") if value.mode not in ("L", "F", "I", "I;16") else value)
        except ImportError:  # pragma: no cover - PIL is a dependency of the pack
            pass
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} of type {type(value).__name__} cannot be read as an array") from None
    return tensor if dtype is None else tensor.to(dtype)


def as_image(value, name: str) -> torch.Tensor:
    """An image [H, W, 3] (tensor/array in 0..1 or uint8 0..255, or a PIL image) as float32 [H, W, 3] in 0..1."""
    tensor = as_tensor(value, name)
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[-1] != 3:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected [height, width, 3]")
    if tensor.dtype == torch.uint8:
        return tensor.to(torch.float32) / 255.0
    return tensor.to(torch.float32)


def as_mask(value, name: str, height: int, width: int) -> torch.Tensor:
    """A mask [H, W] (bool, 0..1 floats, or uint8 0..255 thresholded at 127 as the official code) as bool."""
    tensor = as_tensor(value, name)
    if tensor.ndim == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim == 3 and tensor.shape[-1] in (1, 3):
        tensor = tensor[..., 0]
    if tensor.ndim != 2:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected [height, width]")
    if tuple(tensor.shape) != (height, width):
        raise ValueError(f"{name} is {tensor.shape[0]}x{tensor.shape[1]} but the frames are {height}x{width} (HxW)")
    if tensor.dtype == torch.bool:
        return tensor
    if tensor.dtype == torch.uint8:
        return tensor > 127
    return tensor.to(torch.float32) > 0.5
