"""Write and read short videos (.mp4, .webp, .gif) for the pipelines, the nodes and the `vdp` command.

Frames go in as one video in channels-last layout, ``[F, H, W, 3]``: the layout of the pipelines'
``output_type="np"`` frames (one entry of the batch, ``out.frames[0]``) and of ComfyUI ``IMAGE``
tensors. Channels-first ``[F, 3, H, W]`` is refused rather than guessed, because ``W == 3`` would
make the two layouts indistinguishable.

Files are encoded to a hidden temporary file in the target folder and renamed onto the target when
complete, so an error or an interrupt never leaves a half-written video behind (an existing file at
the target stays as it was).
"""

import math
import numbers
import os
import secrets
import sys
import warnings
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
from PIL import Image, ImageSequence

SUPPORTED_EXTENSIONS = (".mp4", ".webp", ".gif")

# GIF stores frame delays in 1/100 s, and browsers show delays under 0.02 s as 0.1 s.
_GIF_MAX_FPS = 50.0


class Video(NamedTuple):
    """A decoded video: ``frames`` is a uint8 array ``[F, H, W, 3]``; ``fps`` is the average frame
    rate, or ``None`` for a file that stores no timing (a WebP of one distinct frame is a still image)."""

    frames: np.ndarray
    fps: Optional[float]


def write_video(
    path: Union[str, os.PathLike],
    frames,
    fps: float = 8,
    *,
    quality: Optional[int] = None,
) -> Path:
    """Encode ``frames`` to ``path``; the extension chooses the format.

    Formats:
        - ``.mp4``: H.264 (libx264) in yuv420p, which plays everywhere. yuv420p needs an even width
          and height, so an odd size is padded by one row/column repeating the edge pixels (with a
          warning); the file is then one pixel larger than the input.
        - ``.webp``: animated lossy WebP (Pillow), loops forever.
        - ``.gif``: animated GIF (Pillow), 256 colours, loops forever. Frame delays are stored in
          1/100 s, so the frame rate is approximated (8 fps plays at 1/0.12 s); at most 50 fps.

        WebP and GIF merge identical consecutive frames into one longer frame: the animation plays
        the same, but the file stores fewer frames.

    Args:
        path (`str` or `os.PathLike`): output file; its folder must exist. Replaced if it exists.
        frames: one video, channels last, ``[F, H, W, 3]``: a numpy array or torch tensor, float in
            0..1 or uint8 in 0..255 (float values are rounded to the nearest 1/255), or a list of
            PIL images of one size (converted to RGB).
        fps (`float`, defaults to 8): frames per second, > 0. Vchitect-2.0 videos are 8 fps.
        quality (`int`, *optional*): 0 (smallest file) to 100 (best). ``.mp4`` maps it to x264
            CRF ``round(51 * (100 - quality) / 100)`` (100 is lossless H.264, which some players
            cannot decode); ``.webp`` uses it as WebP quality. ``None`` keeps the encoder's default
            (CRF 23; WebP 80). GIF has no quality setting, so it must be ``None`` for ``.gif``.

    Returns:
        `pathlib.Path`: the written file.

    Raises:
        ValueError: before any encoding, for a missing folder, an unsupported extension, bad
            frames (empty, wrong shape or dtype, NaN, out of range), ``fps <= 0`` or a bad quality.
    """
    path = Path(path)
    extension = check_video_output(path, fps, quality)
    fps = float(fps)
    video = _frames_to_uint8(frames)

    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        if extension == ".mp4":
            _encode_mp4(temporary, video, fps, quality)
        else:
            _encode_with_pillow(temporary, video, fps, quality, extension)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def read_video(path: Union[str, os.PathLike]) -> Video:
    """Decode a ``.mp4``, ``.webp`` or ``.gif`` file into RGB uint8 frames.

    Args:
        path (`str` or `os.PathLike`): the video file.

    Returns:
        `Video`: ``(frames, fps)``, unpackable as ``frames, fps = read_video(path)``; ``frames`` is
        ``[F, H, W, 3]`` uint8 with the frames as stored in the file.
    """
    path = Path(path)
    extension = _supported_extension(path, "path")
    if not path.is_file():
        raise FileNotFoundError(f"path '{path}': no such file")
    if extension == ".mp4":
        return _decode_mp4(path)
    return _decode_with_pillow(path)


def check_video_output(path: Union[str, os.PathLike], fps: float = 8, quality: Optional[int] = None) -> str:
    """Check the output arguments of ``write_video`` without encoding anything; return the lower-case extension.

    Raises:
        ValueError: naming the argument and its value (missing folder, unsupported extension, fps, quality).
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"output path '{path}': folder '{folder}' does not exist")
    extension = _supported_extension(path, "output path")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps={fps!r} must be a finite number > 0")
    if extension == ".gif" and fps > _GIF_MAX_FPS:
        raise ValueError(
            f"fps={fps!r} is too high for .gif: GIF delays are 1/100 s and browsers slow down delays under 0.02 s; use fps <= {_GIF_MAX_FPS:g} or .mp4"
        )
    if quality is not None:
        if extension == ".gif":
            raise ValueError(f"quality={quality!r} cannot be used for .gif (a 256-colour format with no quality setting); leave it None")
        if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) or not 0 <= quality <= 100:
            raise ValueError(f"quality={quality!r} must be an integer from 0 to 100")
    return extension


def _supported_extension(path: Path, label: str) -> str:
    extension = path.suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"{label} '{path}': extension '{path.suffix}' is not supported; use one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return extension


def _frames_to_uint8(frames) -> np.ndarray:
    """Validate one video in any accepted form and return it as a contiguous uint8 ``[F, H, W, 3]`` array."""
    if isinstance(frames, (list, tuple)):
        return _pil_frames_to_uint8(frames)

    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if torch is not None and isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        frames = frames.numpy() if frames.dtype == torch.uint8 else frames.float().numpy()
    if not isinstance(frames, np.ndarray):
        raise ValueError(
            f"frames of type {type(frames).__name__} are not supported; pass a numpy array or torch tensor [F, H, W, 3], or a list of PIL images"
        )

    if frames.ndim == 5:
        raise ValueError(
            f"frames with shape {tuple(frames.shape)} hold a batch of videos; pass one video [F, H, W, 3], e.g. out.frames[0]"
        )
    if frames.ndim != 4:
        raise ValueError(f"frames with shape {tuple(frames.shape)} must have 4 dimensions [F, H, W, 3]")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: a video needs at least one frame")
    if frames.shape[-1] != 3:
        hint = " (channels first; move the channels last, e.g. frames.permute(0, 2, 3, 1))" if frames.shape[1] == 3 else ""
        raise ValueError(f"frames with shape {tuple(frames.shape)} must be [F, H, W, 3] with 3 RGB channels last{hint}")
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"frames with shape {tuple(frames.shape)} have an empty height or width")

    if frames.dtype == np.uint8:
        return np.ascontiguousarray(frames)
    if not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(f"frames of dtype {frames.dtype} are not supported; use float values in 0..1 or uint8")
    if np.isnan(frames).any():
        raise ValueError("frames contain NaN values")
    low, high = float(frames.min()), float(frames.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"float frames must lie in 0..1; these range from {low:g} to {high:g}")
    return np.round(frames * 255.0).astype(np.uint8)


def _pil_frames_to_uint8(images) -> np.ndarray:
    if len(images) == 0:
        raise ValueError("frames is empty: a video needs at least one frame")
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise ValueError(f"frames[{index}] is a {type(image).__name__}; a list of frames must hold PIL images only")
        if image.size != images[0].size:
            raise ValueError(f"frames[{index}] has size {image.size}, frames[0] has {images[0].size}; all frames need one size")
    return np.stack([np.asarray(image.convert("RGB")) for image in images])


def _encode_mp4(path: Path, video: np.ndarray, fps: float, quality: Optional[int]) -> None:
    import av

    height, width = video.shape[1:3]
    pad_height, pad_width = height % 2, width % 2
    if pad_height or pad_width:
        warnings.warn(
            f"mp4 (H.264 yuv420p) needs an even width and height: padding {width}x{height} to "
            f"{width + pad_width}x{height + pad_height} by repeating the edge pixels",
            stacklevel=3,
        )
        video = np.pad(video, ((0, 0), (0, pad_height), (0, pad_width), (0, 0)), mode="edge")

    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width = width + pad_width
        stream.height = height + pad_height
        stream.pix_fmt = "yuv420p"
        if quality is not None:
            stream.options = {"crf": str(round(51 * (100 - quality) / 100))}
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def _encode_with_pillow(path: Path, video: np.ndarray, fps: float, quality: Optional[int], extension: str) -> None:
    images = [Image.fromarray(frame) for frame in video]
    options = {"save_all": True, "append_images": images[1:], "loop": 0}
    if extension == ".webp":
        options.update(format="WEBP", duration=round(1000 / fps))
        if quality is not None:
            options["quality"] = quality
    else:
        # Pillow truncates delays to 1/100 s; rounding here keeps the closest delay.
        options.update(format="GIF", duration=round(100 / fps) * 10)
    images[0].save(path, **options)


def _decode_mp4(path: Path) -> Video:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames:
        raise ValueError(f"path '{path}': the video stream holds no frames")
    return Video(np.stack(frames), float(rate) if rate else None)


def _decode_with_pillow(path: Path) -> Video:
    with Image.open(path) as image:
        frames, durations_ms = [], []
        for frame in ImageSequence.Iterator(image):
            frames.append(np.asarray(frame.convert("RGB")))
            durations_ms.append(frame.info.get("duration"))
    if None in durations_ms or sum(durations_ms) == 0:
        return Video(np.stack(frames), None)
    return Video(np.stack(frames), 1000.0 * len(frames) / sum(durations_ms))
