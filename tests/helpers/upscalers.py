"""Tiny random-weight upscalers in real architectures' layouts, built from spandrel's own classes: ESRGAN's RRDBNet
(as ESRGAN/Real-ESRGAN x4 files store it, and Real-ESRGAN x2plus's pixel-unshuffle variant) and Real-ESRGAN's
SRVGGNetCompact; their state dicts are what the released .pth/.safetensors files hold, at a few hundred kB."""

import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN


def tiny_esrgan_state_dict(scale: int = 4, unshuffle: bool = False, seed: int = 0) -> dict:
    """RRDBNet with 8 filters and one RRDB block. `unshuffle`: the Real-ESRGAN x2plus layout (the frame is
    pixel-unshuffled by 2, so the network upsamples by 2 * scale and its tiles must be multiples of 4)."""
    torch.manual_seed(seed)
    if unshuffle:
        network = ESRGAN(in_nc=12, num_filters=8, num_blocks=1, scale=2 * scale, shuffle_factor=2)
    else:
        network = ESRGAN(num_filters=8, num_blocks=1, scale=scale)
    state_dict = network.state_dict()
    # random weights put the output near 0, where clamping to 0..1 would hide every difference: centre it on grey
    last_bias = [key for key in state_dict if key.endswith(".bias")][-1]
    state_dict[last_bias] = torch.full_like(state_dict[last_bias], 0.5)
    return state_dict


def tiny_compact_state_dict(scale: int = 2, seed: int = 0) -> dict:
    """SRVGGNetCompact (Real-ESRGAN's realesr-general / animevideo layout) with 8 features and 2 body convolutions:
    4 convolutions of 3x3, so an output pixel sees 4 input pixels around it. Scale 1 is a restoration model."""
    torch.manual_seed(seed)
    return Compact(num_feat=8, num_conv=2, upscale=scale).state_dict()


def save_state_dict(state_dict: dict, path) -> None:
    """As the released files are: safetensors for .safetensors, a pickled dict (torch.save) for .pth."""
    if str(path).endswith(".safetensors"):
        save_file({key: value.contiguous() for key, value in state_dict.items()}, str(path))
    else:
        torch.save(state_dict, path)
