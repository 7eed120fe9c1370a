"""Upscale videos with any single-image super-resolution model spandrel loads (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT,
SPAN, ...), in overlapping tiles so that memory stays bounded at any frame size.

Frames follow the pack's video convention, channels last ``[F, H, W, 3]``: a numpy array or torch tensor, uint8 in
0..255 (what ``read_video`` returns) or float in 0..1 (ComfyUI ``IMAGE``, the pipelines' ``output_type="np"``).

Tiling. A frame is cut into ``tile x tile`` squares that overlap by at least ``overlap`` pixels (the tiles are spread
evenly, so the last one ends at the frame's edge). The output pixels within ``overlap / 4`` of a tile's inner edge
saw the zero padding of the tile's border instead of the frame, so they are discarded; across the middle half of
each overlap the two tiles are blended with a linear ramp whose weights sum to one. Where the model's receptive
field reaches no further than ``overlap / 4`` input pixels, the tiled output therefore equals the untiled one up to
float rounding (measured: max |difference| <= 1e-6 in 0..1, ``tests/upscale``); deeper models differ only by how much
an output pixel depends on input pixels farther away than that (``benchmarks/upscale.py`` prints it).

Tiles start on multiples of the model's ``size_requirements.multiple_of`` (pixel-unshuffle and window-attention
models group pixels from the frame's corner), and the frame is padded to that multiple as spandrel pads an untiled
frame, so that every tile groups the same pixels as the untiled run.

Nothing here imports torch or spandrel at module level: ``check_upscale_model_file`` and ``check_tiling_arguments``
run before a command imports them.
"""

import math
import numbers
import warnings
from pathlib import Path
from typing import Callable, List, Optional

# the file kinds spandrel's ModelLoader reads
MODEL_FILE_EXTENSIONS = (".pth", ".pt", ".ckpt", ".safetensors")
# ComfyUI's "Upscale Image (using Model)" tiles 512 pixels with an overlap of 32
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32

_EXPECTED_MODEL = (
    "expected the weights of a single-image super-resolution model that spandrel detects (ESRGAN, Real-ESRGAN, "
    f"SwinIR, HAT, DAT, SPAN, Compact and the others spandrel lists), as a {', '.join(MODEL_FILE_EXTENSIONS)} file"
)


class UpscaleModelError(ValueError):
    """A model file that cannot be used to upscale; the message names the file, what is wrong and what was expected."""


def check_upscale_model_file(path, label: str = "model") -> Path:
    """Check, without reading it, that ``path`` can be an upscaler file: it exists and has an extension spandrel reads.

    Raises:
        UpscaleModelError: naming ``label`` and the path.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UpscaleModelError(f"{label} '{path}' {what}; {_EXPECTED_MODEL}")
    if path.suffix.lower() not in MODEL_FILE_EXTENSIONS:
        raise UpscaleModelError(f"{label} '{path}': extension '{path.suffix}' is not one spandrel reads; {_EXPECTED_MODEL}")
    return path


def load_upscale_model(source, *, device="cpu", dtype=None, label: str = "model"):
    """Load an upscaler with spandrel and check that it is one: a 3-channel image model with a scale of 2 or more.

    Args:
        source (`str`, `os.PathLike` or `dict`): a weights file spandrel reads (``.pth``, ``.pt``, ``.ckpt``,
            ``.safetensors``) or a state dict.
        device (`str` or `torch.device`, defaults to ``"cpu"``): where the model runs.
        dtype (`torch.dtype`, *optional*): the model's compute dtype; ``None`` keeps float32. fp16 and bf16 are
            refused for architectures spandrel marks as not supporting them.
        label (`str`, defaults to ``"model"``): the argument name used in error messages.

    Returns:
        `spandrel.ImageModelDescriptor`: call it through ``upscale_video``.

    Raises:
        UpscaleModelError: a file that cannot be read, that spandrel cannot identify, with non-finite weights, of a
            model that is not an upscaler (restoration, inpainting, face models, scale 1, not RGB), or a dtype the
            architecture does not support.
    """
    import spandrel
    import torch

    if isinstance(source, dict):
        name, state_dict = f"{label} (a state dict)", source
    else:
        path = check_upscale_model_file(source, label)
        name = f"{label} '{path}'"
        try:
            state_dict = spandrel.ModelLoader().load_state_dict_from_file(path)
        except Exception as error:  # pickle, zip, safetensors header and torch errors all mean an unreadable file
            raise UpscaleModelError(
                f"{name}: cannot be read as a {path.suffix} checkpoint ({type(error).__name__}: {error}); {_EXPECTED_MODEL}"
            ) from None
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise UpscaleModelError(f"{name}: weight '{key}' holds NaN or infinite values; the file is corrupt")
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError as error:
        keys = ", ".join(list(state_dict)[:5]) or "none"
        raise UpscaleModelError(
            f"{name}: spandrel cannot identify its architecture (UnsupportedModelError: {error or 'no architecture of spandrel {} matches its keys'.format(spandrel.__version__)}; "
            f"its first keys: {keys}); {_EXPECTED_MODEL}"
        ) from None
    except (KeyError, RuntimeError, ValueError, AssertionError) as error:  # detected, but its tensors do not fit
        raise UpscaleModelError(f"{name}: spandrel detects it but cannot load it ({type(error).__name__}: {error}); "
                                f"{_EXPECTED_MODEL}") from None
    check_upscale_model(descriptor, name)
    try:
        descriptor.to(device=device, dtype=dtype)
    except spandrel.UnsupportedDtypeError as error:
        raise UpscaleModelError(f"{name}: dtype={dtype} is not supported ({error}); use float32") from None
    return descriptor.eval()


def check_upscale_model(model, name: str = "model") -> None:
    """Raise ``UpscaleModelError`` unless ``model`` is a spandrel super-resolution model of scale >= 2 on RGB frames."""
    import spandrel

    if not isinstance(model, spandrel.ImageModelDescriptor):
        kind = type(model).__name__
        if isinstance(model, spandrel.MaskedImageModelDescriptor):
            kind = f"an inpainting model ({model.architecture.name}, it needs a mask)"
        raise UpscaleModelError(f"{name} is {kind}, not an upscaler; expected a spandrel ImageModelDescriptor of a "
                                "super-resolution model (load one with load_upscale_model)")
    what = f"{model.architecture.name} ({model.purpose}, scale {model.scale})"
    if model.purpose != "SR" or model.scale < 2:
        reason = "a restoration model that keeps the size" if model.scale == 1 else f"a {model.purpose} model"
        raise UpscaleModelError(f"{name} is {what}: {reason}, not an upscaler; expected a super-resolution model "
                                "(purpose SR) with a scale of 2 or more")
    if model.input_channels != 3 or model.output_channels != 3:
        raise UpscaleModelError(f"{name} is {what} with {model.input_channels} input and {model.output_channels} "
                                "output channels; videos are RGB, so the model must take and give 3 channels")


def check_tiling_arguments(tile: Optional[int], overlap: int, batch: int) -> None:
    """Check tile, overlap and batch on their own (before a model is loaded); raise ValueError naming the argument."""
    def whole(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if tile is not None and (not whole(tile) or tile < 0):
        raise ValueError(f"tile={tile!r} must be an integer >= 1 (the side of a square tile in input pixels), or "
                         "0 / None for whole frames")
    if not whole(overlap) or overlap < 0:
        raise ValueError(f"overlap={overlap!r} must be an integer >= 0")
    if tile and overlap > tile // 2:
        raise ValueError(f"overlap={overlap} must be at most half of tile={tile} ({tile // 2}), so that the seams of "
                         "a tile's two sides do not meet")
    if not whole(batch) or batch < 1:
        raise ValueError(f"batch={batch!r} must be an integer >= 1 (frames per model call)")


def check_tile_fits(model, tile: Optional[int]) -> None:
    """Raise ValueError when ``tile`` does not fit the model's size requirements (a minimum, a multiple)."""
    if not tile:
        return
    requirements = model.size_requirements
    multiple, minimum = requirements.multiple_of, max(requirements.minimum, 1)
    if tile % multiple or tile < minimum:
        suggestion = max(minimum, math.ceil(tile / multiple) * multiple)
        raise ValueError(
            f"tile={tile} does not fit {model.architecture.name} (scale {model.scale}): its tiles must be a multiple "
            f"of {multiple} pixels and at least {minimum}, e.g. tile={suggestion}"
        )


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> List[int]:
    """Start offsets of tiles of ``tile`` pixels that cover ``length`` pixels, overlapping by >= ``overlap``.

    The tiles are spread evenly from 0 to ``length - tile`` on multiples of ``multiple`` (``length`` and ``tile``
    must be multiples of it); one tile at 0 when it covers everything.
    """
    if length <= tile:
        return [0]
    units = (length - tile) // multiple
    count = math.ceil((length - overlap) / (tile - overlap))
    while True:
        if count - 1 >= units:  # a tile at every multiple: the largest overlap the multiple allows
            return [multiple * index for index in range(units + 1)]
        starts = [multiple * round(index * units / (count - 1)) for index in range(count)]
        if all(previous + tile - start >= overlap for previous, start in zip(starts, starts[1:])):
            return starts
        count += 1


def _seam_weights(starts: List[int], tile: int, overlap: int, scale: int):
    """Per tile, the 1-D output weights along one axis (float64 numpy): 1 inside, 0 in the quarter of the overlap
    next to an inner edge, a linear ramp across the middle half; the weights of neighbouring tiles sum to one."""
    import numpy as np

    band = overlap / 2
    # output pixel centres in input pixels, relative to the tile's start
    centres = (np.arange(tile * scale) + 0.5) / scale

    weights = []
    for index, start in enumerate(starts):
        weight = np.ones(tile * scale)
        if index > 0:
            width = starts[index - 1] + tile - start
            weight *= _ramp(centres, width / 2, band)
        if index + 1 < len(starts):
            width = start + tile - starts[index + 1]
            weight *= 1.0 - _ramp(centres - (starts[index + 1] - start), width / 2, band)
        weights.append(weight)
    return weights


def _ramp(positions, middle: float, band: float):
    """0 before ``middle - band / 2``, 1 after ``middle + band / 2``, linear between (a step at ``middle`` if no band)."""
    import numpy as np

    if band == 0:
        return (positions > middle).astype(np.float64)
    return np.clip((positions - (middle - band / 2)) / band, 0.0, 1.0)


def _as_frames(frames):
    """The frames as a CPU torch tensor [F, H, W, 3] (uint8 or float) and how to give the result back."""
    import numpy as np
    import torch

    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8 and not np.issubdtype(frames.dtype, np.floating):
            raise ValueError(f"frames of dtype {frames.dtype} are not supported; use uint8 in 0..255 or float in 0..1")
        kind, tensor = "numpy", torch.from_numpy(np.ascontiguousarray(frames))
    elif isinstance(frames, torch.Tensor):
        kind, tensor = "torch", frames.detach()
    else:
        raise ValueError(f"frames of type {type(frames).__name__} are not supported; pass a numpy array or torch "
                         "tensor [F, H, W, 3] (uint8 0..255 or float 0..1)")
    shape = tuple(tensor.shape)
    if tensor.ndim != 4 or shape[-1] != 3:
        hint = " (channels first; move the channels last)" if tensor.ndim == 4 and shape[1] == 3 else ""
        raise ValueError(f"frames with shape {shape} must be one video [F, H, W, 3] with 3 RGB channels last{hint}")
    if 0 in shape:
        raise ValueError(f"frames with shape {shape} are empty")
    if tensor.dtype == torch.uint8:
        return tensor, kind
    if not tensor.is_floating_point():
        raise ValueError(f"frames of dtype {tensor.dtype} are not supported; use uint8 in 0..255 or float in 0..1")
    finite = torch.isfinite(tensor)
    if not finite.all():
        bad = int((~finite).sum())
        raise ValueError(f"frames hold {bad} NaN or infinite values; frames must be finite, in 0..1")
    low, high = float(tensor.min()), float(tensor.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"float frames must lie in 0..1; these range from {low:.9g} to {high:.9g}")
    return tensor, kind


def upscale_video(
    frames,
    model,
    *,
    tile: Optional[int] = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
):
    """Upscale every frame of a video by the model's scale, tile by tile, ``batch`` frames per model call.

    Args:
        frames: one video ``[F, H, W, 3]``, numpy or torch, uint8 in 0..255 or float in 0..1 (finite).
        model (`spandrel.ImageModelDescriptor` or path): an upscaler from ``load_upscale_model`` (it runs on that
            model's device and dtype), or a weights file, loaded on the CPU in float32.
        tile (`int`, *optional*, defaults to 512): side of the square tiles in input pixels; a multiple of the
            model's ``size_requirements.multiple_of``, at least its minimum. ``None`` or 0: whole frames.
        overlap (`int`, defaults to 32): least overlap of neighbouring tiles in input pixels, at most ``tile // 2``.
            The quarter of it next to each tile edge is discarded, the middle half blended (see the module's note).
        batch (`int`, defaults to 1): frames per model call.
        progress (`callable`, *optional*): ``progress(done, total)`` after every model call; it may raise to stop
            (ComfyUI's interrupt does), as may Ctrl-C: the exception propagates and nothing is kept.

    Returns:
        The upscaled video ``[F, H * scale, W * scale, 3]`` on the CPU: uint8 for uint8 numpy input, float32 in 0..1
        otherwise (numpy for numpy input, a torch tensor for torch input, as ComfyUI ``IMAGE``).

    Raises:
        ValueError: bad frames (shape, dtype, NaN/inf, outside 0..1), bad tile/overlap/batch, a tile that does not fit
            the model, a model that is not an upscaler or whose output is not ``scale`` times its input, or
            non-finite output (e.g. fp16 overflow).
    """
    import numpy as np
    import spandrel
    import torch
    import torch.nn.functional as functional

    check_tiling_arguments(tile, overlap, batch)
    if not isinstance(model, spandrel.ModelBase):
        model = load_upscale_model(model)
    check_upscale_model(model)
    check_tile_fits(model, tile)
    video, kind = _as_frames(frames)

    count, height, width, _ = video.shape
    scale, multiple = model.scale, model.size_requirements.multiple_of
    tiled = bool(tile) and (height > tile or width > tile)
    if tiled and model.tiling != spandrel.ModelTiling.SUPPORTED:
        warnings.warn(f"{model.architecture.name} marks tiling as {model.tiling.name.lower()} (it relies on whole-"
                      f"frame information); tiles of {tile} may show seams. Use tile=None for whole frames.",
                      stacklevel=2)
    if tiled:
        # padded as spandrel pads an untiled frame, so that tiles start where the model's pixel groups start
        padded_height, padded_width = (math.ceil(side / multiple) * multiple for side in (height, width))
        tile_height, tile_width = min(tile, padded_height), min(tile, padded_width)
        rows = tile_starts(padded_height, tile_height, overlap, multiple)
        columns = tile_starts(padded_width, tile_width, overlap, multiple)
        row_weights = _seam_weights(rows, tile_height, overlap, scale)
        column_weights = _seam_weights(columns, tile_width, overlap, scale)
        # the weights of a tile are row weight x column weight, so their sum over tiles is the product of the sums
        row_total = np.zeros(padded_height * scale)
        column_total = np.zeros(padded_width * scale)
        for start, weight in zip(rows, row_weights):
            row_total[start * scale:(start + tile_height) * scale] += weight
        for start, weight in zip(columns, column_weights):
            column_total[start * scale:(start + tile_width) * scale] += weight
    else:
        rows, columns = [0], [0]

    device, dtype = model.device, model.dtype
    calls_per_batch = len(rows) * len(columns)
    total = math.ceil(count / batch) * calls_per_batch
    if kind == "numpy" and video.dtype == torch.uint8:
        result = np.empty((count, height * scale, width * scale, 3), dtype=np.uint8)
    else:
        result = torch.empty((count, height * scale, width * scale, 3), dtype=torch.float32)
    done = 0
    with torch.inference_mode():
        if tiled:
            as_device = lambda array: torch.as_tensor(array, dtype=torch.float32, device=device)
            row_weights = [as_device(weight) for weight in row_weights]
            column_weights = [as_device(weight) for weight in column_weights]
            normaliser = torch.outer(as_device(row_total), as_device(column_total))
        for first in range(0, count, batch):
            chunk = video[first:first + batch].to(device)
            chunk = chunk.float() / 255 if chunk.dtype == torch.uint8 else chunk.float()
            chunk = chunk.permute(0, 3, 1, 2).to(dtype)
            if not tiled:
                output = _call(model, chunk, name="frames").float()
                done += 1
                if progress is not None:
                    progress(done, total)
            else:
                chunk = _pad_like_spandrel(chunk, padded_height - height, padded_width - width, functional)
                output = torch.zeros((chunk.shape[0], 3, padded_height * scale, padded_width * scale),
                                     dtype=torch.float32, device=device)
                for row, row_weight in zip(rows, row_weights):
                    for column, column_weight in zip(columns, column_weights):
                        piece = chunk[..., row:row + tile_height, column:column + tile_width]
                        upscaled = _call(model, piece, name=f"the tile at ({row}, {column})").float()
                        upscaled *= torch.outer(row_weight, column_weight)
                        output[..., row * scale:(row + tile_height) * scale,
                               column * scale:(column + tile_width) * scale] += upscaled
                        done += 1
                        if progress is not None:
                            progress(done, total)
                output = output.div_(normaliser)[..., :height * scale, :width * scale]
            if not torch.isfinite(output).all():
                raise ValueError(f"the model's output for frames {first}..{first + len(chunk) - 1} holds NaN or "
                                 f"infinite values (dtype {dtype}: try float32)")
            output = output.permute(0, 2, 3, 1)
            if isinstance(result, np.ndarray):
                result[first:first + len(output)] = output.mul_(255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
            else:
                result[first:first + len(output)] = output.cpu()
    if kind == "numpy" and isinstance(result, torch.Tensor):
        return result.numpy()
    return result


def _call(model, image, name: str):
    """The model's output for ``image`` [B, 3, h, w], checked to be ``scale`` times larger."""
    output = model(image)
    expected = (image.shape[0], 3, image.shape[2] * model.scale, image.shape[3] * model.scale)
    if tuple(output.shape) != expected:
        raise ValueError(f"{model.architecture.name} says its scale is {model.scale}, but for {name} of "
                         f"{image.shape[2]}x{image.shape[3]} it returned {tuple(output.shape)}, not {expected}: the "
                         "scale does not divide its output; the file's layout is not one spandrel reads correctly")
    return output


def _pad_like_spandrel(image, pad_height: int, pad_width: int, functional):
    """Pad right and bottom as spandrel pads a frame to its size requirements: reflect, then replicate beyond."""
    if not pad_height and not pad_width:
        return image
    height, width = image.shape[-2:]
    reflect_height, reflect_width = min(pad_height, height - 1), min(pad_width, width - 1)
    image = functional.pad(image, (0, reflect_width, 0, reflect_height), mode="reflect")
    return functional.pad(image, (0, pad_width - reflect_width, 0, pad_height - reflect_height), mode="replicate")


def describe(model) -> str:
    """`ESRGAN x4 (float32, cpu)`: one line naming an upscaler."""
    return f"{model.architecture.name} x{model.scale} ({str(model.dtype).removeprefix('torch.')}, {model.device})"
