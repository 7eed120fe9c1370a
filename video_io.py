"""Write and read short videos (.mp4, .webp, .gif) for the pipelines, the nodes and the `vdp` command.

Frames go in as one video in channels-last layout, ``[F, H, W, 3]``: the layout of the pipelines'
``output_type="np"`` frames (one entry of the batch, ``out.frames[0]``) and of ComfyUI ``IMAGE``
tensors. Channels-first ``[F, 3, H, W]`` is refused rather than guessed, because ``W == 3`` would
make the two layouts indistinguishable.

Files are encoded to a hidden temporary file in the target folder and renamed onto the target when
complete, so an error, Ctrl-C or SIGTERM never leaves a half-written video behind (an existing file
at the target stays as it was).

Reading streams: ``read_video`` decodes only the frames it returns (a frame range and an optional
resize), so its memory is bounded by the returned array, not by the length of the file. A file that
cannot be read as a video raises ``MediaReadError`` naming the file and what was expected.
"""

import contextlib
import json
import math
import numbers
import os
import secrets
import signal
import struct
import sys
import threading
import warnings
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, Optional, Tuple, Union

import numpy as np
from PIL import Image

SUPPORTED_EXTENSIONS = (".mp4", ".webp", ".gif")

# The frame rates each format stores to within its timing precision, as (lowest, highest):
# - mp4 stores the rate as a fraction (exact for integer and NTSC rates); one frame per 1000 s and
#   1000 fps are far beyond what players show. Below 1 fps the period is the fraction that is
#   limited, because Fraction(fps).limit_denominator(1001) is 0 under 1/2002 fps (read back as 24).
# - WebP stores whole milliseconds per frame: 1000 fps is a 1 ms delay, and a 0 ms delay would be
#   read as a still image; the low end is mp4's.
# - GIF stores 16-bit delays in 1/100 s (at most 655.35 s per frame), and browsers show delays
#   under 0.02 s as 0.1 s.
FPS_RANGES = {".mp4": (0.001, 1000.0), ".webp": (0.001, 1000.0), ".gif": (100 / 65535, 50.0)}

_WHAT_A_FILE_HOLDS = {
    ".mp4": "an MP4 file with a video stream",
    ".webp": "a WebP image (still or animated)",
    ".gif": "a GIF image (still or animated)",
}


# What Pillow raises for unknown, truncated or corrupt files (IndexError: a GIF cut inside its image data)
_PILLOW_DECODE_ERRORS = (OSError, EOFError, SyntaxError, IndexError, struct.error)


class MediaReadError(ValueError):
    """A file exists but cannot be read as the video or image its name promises; the message names
    the file, what is wrong with it and what was expected."""


class Video(NamedTuple):
    """A decoded video: ``frames`` is a uint8 array ``[F, H, W, 3]``; ``fps`` is the average frame
    rate, or ``None`` for a file that stores no timing (a WebP of one distinct frame is a still image)."""

    frames: np.ndarray
    fps: Optional[float]


def write_video(
    path: Union[str, bytes, os.PathLike],
    frames,
    fps: float = 8,
    *,
    quality: Optional[int] = None,
    metadata: Optional[dict] = None,
) -> Path:
    """Encode ``frames`` to ``path``; the extension chooses the format.

    Formats:
        - ``.mp4``: H.264 (libx264) in yuv420p, which plays everywhere. yuv420p needs an even width
          and height, so an odd size is padded by one row/column repeating the edge pixels (with a
          warning); the file is then one pixel larger than the input. The frame rate is stored as
          the nearest fraction with a numerator or denominator of at most 1001 (exact for integer
          and NTSC rates such as 30000/1001). So that the same frames give the same file, libx264's
          macroblock-tree rate control is off at widths of an odd number of 16-pixel macroblocks
          (``mbtree=0``; about 11% larger files at equal PSNR on a 720x480 test clip).
        - ``.webp``: animated lossy WebP (Pillow), loops forever. Frame delays are whole
          milliseconds, so the frame rate is stored as ``1000 / round(1000 / fps)``.
        - ``.gif``: animated GIF (Pillow), 256 colours, loops forever. Frame delays are stored in
          1/100 s, so the frame rate is approximated (8 fps plays at 1/0.12 s).

        WebP and GIF merge identical consecutive frames into one longer frame: the animation plays
        the same, but the file stores fewer frames.

    Args:
        path (`str`, `bytes` or `os.PathLike`): output file; its folder must exist. Replaced if it exists.
        frames: one video, channels last, ``[F, H, W, 3]``: a numpy array or torch tensor, float in
            0..1 or uint8 in 0..255 (float values are rounded to the nearest 1/255), or a list of
            PIL images of one size (converted to RGB).
        fps (`float`, defaults to 8): frames per second, within ``FPS_RANGES`` of the format:
            0.001 to 1000 for ``.mp4`` and ``.webp``, 100/65535 (about 0.0015) to 50 for ``.gif``.
            Vchitect-2.0 videos are 8 fps.
        quality (`int`, *optional*): 0 (smallest file) to 100 (best). ``.mp4`` maps it to x264
            CRF ``round(51 * (100 - quality) / 100)`` (100 is lossless H.264, which some players
            cannot decode); ``.webp`` uses it as WebP quality. ``None`` keeps the encoder's default
            (CRF 23; WebP 80). GIF has no quality setting, so it must be ``None`` for ``.gif``.
        metadata (`dict`, *optional*): JSON-serialisable settings stored in the file (the mp4 ``comment`` tag,
            the WebP XMP chunk, the GIF comment); ``read_video_metadata`` gives them back.

    Returns:
        `pathlib.Path`: the written file.

    Raises:
        ValueError: before any encoding, for a bad output path (see ``check_video_output``), bad
            frames (empty, wrong shape or dtype, NaN, out of range), an fps outside the format's
            range or a bad quality.
    """
    path = _as_path(path, "output path")
    extension = check_video_output(path, fps, quality)
    fps = float(fps)
    video = _frames_to_uint8(frames)
    comment = None
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValueError(f"metadata={type(metadata).__name__} must be a dict of JSON values or None")
        try:
            comment = json.dumps(metadata, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metadata must hold only JSON values (str, number, bool, None, list, dict): {error}") from None

    temporary = _temporary_path(path)
    with _sigterm_raises_system_exit():
        try:
            if extension == ".mp4":
                _encode_mp4(temporary, video, fps, quality, comment)
            else:
                _encode_with_pillow(temporary, video, fps, quality, extension, comment)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    return path


def read_video(
    path: Union[str, bytes, os.PathLike],
    *,
    start: int = 0,
    max_frames: Optional[int] = None,
    stride: int = 1,
    size: Optional[Tuple[int, int]] = None,
) -> Video:
    """Decode a ``.mp4``, ``.webp`` or ``.gif`` file into RGB uint8 frames, only the frames asked for.

    The frames returned are ``start, start + stride, start + 2 * stride, ...``, at most
    ``max_frames`` of them. Only those frames are converted and kept: an mp4 is seeked to the
    keyframe before ``start`` and decoding stops after the last frame returned, so memory is
    bounded by the returned array whatever the length of the file.

    Args:
        path (`str`, `bytes` or `os.PathLike`): the video file.
        start (`int`, defaults to 0): index of the first frame returned (0 is the first frame of
            the file). For an mp4 the index is counted at the stream's average frame rate.
        max_frames (`int`, *optional*): at most this many frames, >= 1; ``None`` reads to the end.
        stride (`int`, defaults to 1): keep every ``stride``-th frame from ``start``.
        size (`tuple[int, int]`, *optional*): ``(height, width)`` to resize every frame to
            (bicubic), as it is decoded; ``None`` keeps the stored size.

    Returns:
        `Video`: ``(frames, fps)``, unpackable as ``frames, fps = read_video(path)``; ``frames`` is
        ``[F, H, W, 3]`` uint8. ``fps`` is the file's average frame rate divided by ``stride``, so
        the returned frames play at the original speed (GIF and WebP: averaged over the delays
        from ``start`` to the last frame returned); ``None`` when the file stores no timing.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: for a bad argument, or a ``start`` past the last frame of the file.
        MediaReadError: the file cannot be read as the video its extension names (empty, truncated,
            not a video, no video stream); a subclass of ``ValueError``.
    """
    path = _as_path(path, "path")
    extension = _supported_extension(path, "path")
    _check_frame_selection(start, max_frames, stride, size)
    if not path.is_file():
        raise FileNotFoundError(f"path '{path}': no such file")
    if path.stat().st_size == 0:
        raise _unreadable(path, extension, "the file is empty (0 bytes)")
    if extension == ".mp4":
        return _decode_mp4(path, start, max_frames, stride, size)
    return _decode_with_pillow(path, extension, start, max_frames, stride, size)


def read_video_metadata(path: Union[str, bytes, os.PathLike]) -> dict:
    """The settings ``write_video(..., metadata=...)`` stored in a video; {} for a file without them.

    Raises:
        ValueError: the path is not a supported video file; MediaReadError: the file cannot be opened.
    """
    path = _as_path(path, "video path")
    extension = _supported_extension(path, "video path")
    if extension == ".mp4":
        import av

        try:
            with av.open(str(path)) as container:
                comment = container.metadata.get("comment")
        except (OSError, av.error.FFmpegError) as error:
            raise _unreadable(path, extension, str(error)) from error
    else:
        try:
            with Image.open(path) as image:
                comment = image.info.get("xmp" if extension == ".webp" else "comment")
        except OSError as error:
            raise _unreadable(path, extension, _pillow_reason(error)) from error
    if isinstance(comment, bytes):
        comment = comment.decode("utf-8", errors="replace")
    try:
        settings = json.loads(comment) if comment else {}
    except ValueError:
        return {}
    return settings if isinstance(settings, dict) else {}


def read_image(path: Union[str, bytes, os.PathLike], mode: str = "RGB") -> Image.Image:
    """Load an image file (PNG, JPEG, WebP, ... anything Pillow reads; the first frame of an animation) in ``mode``.

    Args:
        path (`str`, `bytes` or `os.PathLike`): the image file.
        mode (`str`, defaults to ``"RGB"``): the Pillow mode to convert to, e.g. ``"L"`` for a mask.

    Raises:
        FileNotFoundError: the file does not exist.
        MediaReadError: the file is empty, truncated, too large for Pillow or not an image.
    """
    path = _as_path(path, "path")
    if not path.is_file():
        raise FileNotFoundError(f"path '{path}': no such file")
    expected = "an image file (PNG, JPEG, WebP or another format Pillow reads)"
    if path.stat().st_size == 0:
        raise MediaReadError(f"path '{path}': the file is empty (0 bytes); expected {expected}")
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except Image.DecompressionBombError as error:
        problem = f"its size is refused as a decompression bomb ({error})"
        raise MediaReadError(f"path '{path}': {problem}; expected {expected}") from None
    except _PILLOW_DECODE_ERRORS as error:
        problem = f"Pillow cannot decode it ({_pillow_reason(error)})"
        raise MediaReadError(f"path '{path}': {problem}; expected {expected}") from None


def check_video_output(path: Union[str, bytes, os.PathLike], fps: float = 8, quality: Optional[int] = None) -> str:
    """Check the output arguments of ``write_video`` without encoding anything; return the lower-case extension.

    Raises:
        ValueError: naming the argument and its value: a NUL in the path, a missing or read-only
            folder, a path that is a folder, a file name longer than the file system allows, an
            unsupported extension, an fps outside the format's range (``FPS_RANGES``), a bad quality.
    """
    path = _as_path(path, "output path")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"output path '{path}': folder '{folder}' does not exist")
    name_bytes, name_max = len(os.fsencode(path.name)), _name_max(folder)
    if name_bytes > name_max:
        raise ValueError(
            f"output path '{path}': the file name is {name_bytes} bytes; this file system allows at most {name_max}"
        )
    if path.is_dir():
        allowed = ", ".join(SUPPORTED_EXTENSIONS)
        raise ValueError(f"output path '{path}' is a folder; give a file name ending in {allowed}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"output path '{path}': folder '{folder}' is not writable")
    extension = _supported_extension(path, "output path")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps={fps!r} must be a finite number > 0")
    lowest, highest = FPS_RANGES[extension]
    if not lowest <= fps <= highest:
        reason = {
            ".mp4": "one frame per 1000 s up to 1000 frames per second",
            ".webp": "WebP delays are whole milliseconds, up to 1000 s per frame",
            ".gif": "GIF delays are 1/100 s up to 655.35 s, and browsers slow down delays under 0.02 s",
        }[extension]
        raise ValueError(
            f"fps={fps!r} is too {'low' if fps < lowest else 'high'} for {extension} ({reason}); "
            f"use an fps from {lowest:.6g} to {highest:g}"
        )
    if quality is not None:
        if extension == ".gif":
            raise ValueError(
                f"quality={quality!r} cannot be used for .gif (a 256-colour format with no quality setting); "
                "leave it None"
            )
        if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) or not 0 <= quality <= 100:
            raise ValueError(f"quality={quality!r} must be an integer from 0 to 100")
    return extension


def _as_path(path, label: str) -> Path:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{label} of type {type(path).__name__} is not supported; pass a str or os.PathLike")
    if "\0" in os.fspath(path):
        raise ValueError(f"{label} {os.fspath(path)!r} contains a NUL character, which no file name can hold")
    return Path(path)


def _supported_extension(path: Path, label: str) -> str:
    extension = path.suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"{label} '{path}': extension '{path.suffix}' is not supported; "
            f"use one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return extension


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or the file system does not say
        return 255


@contextlib.contextmanager
def _sigterm_raises_system_exit():
    """While a file is written, make SIGTERM raise ``SystemExit(143)`` so the temporary file is removed.

    Only in the main thread and only while SIGTERM has its default action (which kills the process
    without running any cleanup); a handler set by the application is left alone.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def exit_on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _temporary_path(path: Path) -> Path:
    """A hidden name next to ``path`` that fits the file system even when ``path``'s own name is as long as allowed.

    The target's name is shortened (at a UTF-8 character boundary) to make room for the dot and the random suffix.
    """
    suffix = f".{secrets.token_hex(4)}.part"
    name = os.fsencode(path.name)
    keep = min(len(name), _name_max(path.parent) - 1 - len(suffix))
    while 0 < keep < len(name) and name[keep] & 0xC0 == 0x80:  # do not cut inside a multi-byte character
        keep -= 1
    return path.with_name(f".{os.fsdecode(name[:keep])}{suffix}")


def _is_whole_number(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_frame_selection(start, max_frames, stride, size) -> None:
    if not _is_whole_number(start) or start < 0:
        raise ValueError(f"start={start!r} must be an integer >= 0 (the index of the first frame returned)")
    if max_frames is not None and (not _is_whole_number(max_frames) or max_frames < 1):
        raise ValueError(f"max_frames={max_frames!r} must be an integer >= 1, or None to read to the end")
    if not _is_whole_number(stride) or stride < 1:
        raise ValueError(f"stride={stride!r} must be an integer >= 1")
    if size is not None and not (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(_is_whole_number(side) and side > 0 for side in size)
    ):
        raise ValueError(
            f"size={size!r} must be (height, width) with two integers > 0, or None to keep the stored size"
        )


def _unreadable(path: Path, extension: str, problem: str) -> MediaReadError:
    return MediaReadError(f"path '{path}': {problem}; expected {_WHAT_A_FILE_HOLDS[extension]}")


def _pillow_reason(error: Exception) -> str:
    if isinstance(error, (OSError, SyntaxError)) and str(error):
        return str(error)
    return "the data ends early or is corrupt"  # IndexError, struct.error, EOFError: Pillow read past the data


def _past_the_end(path: Path, start: int, frame_count: int) -> ValueError:
    return ValueError(f"start={start} is past the last frame of '{path}', which has {frame_count} frames")


class _FrameCollector:
    """Gathers decoded frames into one array, allocated at the first frame when the number of frames is
    known from the file, so the frames are never held twice (a list and its ``np.stack``)."""

    def __init__(self, expected: Optional[int]):
        self.expected = expected
        self.array: Optional[np.ndarray] = None
        self.overflow: list = []
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        if self.array is None and self.expected:
            self.array = np.empty((self.expected, *frame.shape), dtype=np.uint8)
        if self.array is not None and self.count < len(self.array):
            self.array[self.count] = frame
        else:  # no count in the file, or more frames than it announced
            self.overflow.append(frame)
        self.count += 1

    def frames(self) -> np.ndarray:
        stored = [] if self.array is None else [self.array[: self.count]]
        if not self.overflow:
            return stored[0]
        return np.concatenate(stored + [np.stack(self.overflow)])


def _expected_count(frame_count: int, start: int, max_frames: Optional[int], stride: int) -> Optional[int]:
    if frame_count <= 0:
        return None
    expected = len(range(start, frame_count, stride))
    return expected if max_frames is None else min(expected, max_frames)


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
            f"frames of type {type(frames).__name__} are not supported; "
            "pass a numpy array or torch tensor [F, H, W, 3], or a list of PIL images"
        )

    if frames.ndim == 5:
        raise ValueError(
            f"frames with shape {tuple(frames.shape)} hold a batch of videos; "
            "pass one video [F, H, W, 3], e.g. out.frames[0]"
        )
    if frames.ndim != 4:
        raise ValueError(f"frames with shape {tuple(frames.shape)} must have 4 dimensions [F, H, W, 3]")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: a video needs at least one frame")
    if frames.shape[-1] != 3:
        channels_first = frames.shape[1] == 3
        hint = " (channels first; move the channels last, e.g. frames.permute(0, 2, 3, 1))" if channels_first else ""
        raise ValueError(
            f"frames with shape {tuple(frames.shape)} must be [F, H, W, 3] with 3 RGB channels last{hint}"
        )
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
        raise ValueError(f"float frames must lie in 0..1; these range from {low:.9g} to {high:.9g}")
    return np.round(frames * 255.0).astype(np.uint8)


def _pil_frames_to_uint8(images) -> np.ndarray:
    if len(images) == 0:
        raise ValueError("frames is empty: a video needs at least one frame")
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise ValueError(
                f"frames[{index}] is a {type(image).__name__}; a list of frames must hold PIL images only"
            )
        if image.size != images[0].size:
            raise ValueError(
                f"frames[{index}] has size {image.size}, frames[0] has {images[0].size}; all frames need one size"
            )
    return np.stack([np.asarray(image.convert("RGB")) for image in images])


def _encode_mp4(path: Path, video: np.ndarray, fps: float, quality: Optional[int], comment: Optional[str] = None) -> None:
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

    # Below 1 fps the period is the fraction to keep simple (see FPS_RANGES).
    rate = Fraction(fps).limit_denominator(1001) if fps >= 1 else 1 / Fraction(1 / fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        if comment is not None:
            container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=rate)
        stream.width = width + pad_width
        stream.height = height + pad_height
        stream.pix_fmt = "yuv420p"
        stream.options = _x264_options(width + pad_width, quality)
        for frame in video:
            container.mux(stream.encode(_yuv420p_frame(frame)))
        container.mux(stream.encode(None))


def _x264_options(width: int, quality: Optional[int]) -> dict:
    """libx264's options: ``crf`` from ``quality``, and macroblock-tree rate control off for an odd number of
    macroblock columns.

    At an odd count libx264's macroblock-tree pass reads uninitialised stack memory as an index (valgrind: "use of
    uninitialised value of size 8" inside ``x264_encoder_encode`` at widths 48, 80, 112, 144 and 176; none at 32,
    64 or 96, nor with ``mbtree=0`` at 48, 80, 176 or 432), so the same frames could encode to different files
    depending on what the process ran before.
    """
    options = {} if quality is None else {"crf": str(round(51 * (100 - quality) / 100))}
    if -(-width // 16) % 2:
        options["mbtree"] = "0"
    return options


def _yuv420p_frame(rgb: np.ndarray):
    """The yuv420p frame libx264 encodes, every byte it is made from set: each plane's row padding (its line size is
    rounded up past the width, e.g. 48 -> 64 bytes) repeats the row's last pixel, in the RGB frame the conversion
    reads as in the YUV planes libx264 reads.

    Frames leave that padding uninitialised and both readers use it, so the same frames encoded to different files
    whenever a width was not a multiple of 64 (48x48: 9 distinct files in 30 encodings in one process).
    """
    import av

    source = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    _fill_row_padding(source.planes[0], 3)
    frame = source.reformat(format="yuv420p")
    for plane in frame.planes:
        _fill_row_padding(plane, 1)
    return frame


def _fill_row_padding(plane, bytes_per_pixel: int) -> None:
    """Sets the bytes of each row of ``plane`` past its pixels to the row's last pixel, repeated."""
    used = plane.width * bytes_per_pixel
    if plane.line_size <= used:
        return
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8)[:plane.height * plane.line_size]
    rows = rows.reshape(plane.height, plane.line_size).copy()
    padding = plane.line_size - used
    last = rows[:, used - bytes_per_pixel:used]
    rows[:, used:] = np.tile(last, (1, -(-padding // bytes_per_pixel)))[:, :padding]
    plane.update(rows)


def _encode_with_pillow(path: Path, video: np.ndarray, fps: float, quality: Optional[int], extension: str,
                        comment: Optional[str] = None) -> None:
    images = [Image.fromarray(frame) for frame in video]
    options = {"save_all": True, "append_images": images[1:], "loop": 0}
    if comment is not None:
        options["xmp" if extension == ".webp" else "comment"] = comment.encode("utf-8")
    if extension == ".webp":
        options.update(format="WEBP", duration=round(1000 / fps))
        if quality is not None:
            options["quality"] = quality
    else:
        # Pillow truncates delays to 1/100 s; rounding here keeps the closest delay.
        options.update(format="GIF", duration=round(100 / fps) * 10)
    images[0].save(path, **options)


def _decode_mp4(path: Path, start: int, max_frames: Optional[int], stride: int, size) -> Video:
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise _unreadable(path, ".mp4", f"FFmpeg cannot open it ({error.strerror})") from None
    with container:
        if not container.streams.video:
            # a file cut inside its header shows no stream, or one "data" stream without a codec
            kinds = sorted({stream.type for stream in container.streams} - {"data"})
            held = f"it holds only {' and '.join(kinds)} streams" if kinds else "the header is missing or truncated"
            raise _unreadable(path, ".mp4", f"no video stream ({held})")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        collector = _FrameCollector(_expected_count(stream.frames, start, max_frames, stride))
        last_index = start + (max_frames - 1) * stride if max_frames is not None else math.inf
        decoded, output_size = 0, size
        try:
            for index, frame in _numbered_frames(container, stream, rate, start):
                decoded = index + 1
                if index > last_index:
                    break
                if index < start or (index - start) % stride:
                    continue
                # a stream that changes resolution midway is scaled to its first returned frame's size
                height, width = output_size = output_size or (frame.height, frame.width)
                collector.add(frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="BICUBIC"))
                if index == last_index:
                    break
        except av.error.FFmpegError as error:
            raise _unreadable(
                path,
                ".mp4",
                f"decoding failed after {decoded} frames ({error.strerror}): the file is truncated or corrupt",
            ) from None
    if collector.count == 0:
        if decoded == 0:
            raise _unreadable(path, ".mp4", "the video stream holds no frames")
        raise _past_the_end(path, start, decoded)
    return Video(collector.frames(), float(rate) / stride if rate else None)


def _numbered_frames(container, stream, rate, start: int):
    """Yield ``(frame index, frame)``, starting at the keyframe before ``start`` when the stream can seek there.

    After a seek, the index comes from the timestamp at the average frame rate. When the stream has
    no usable timestamps or rate, or the seek lands after ``start``, decoding restarts at the first
    frame and the frames are counted.
    """
    import av

    if start > 0 and rate and stream.time_base:
        origin = stream.start_time or 0
        try:
            container.seek(origin + int(Fraction(start) / Fraction(rate) / stream.time_base), stream=stream)
        except av.error.FFmpegError:  # a stream that cannot seek is read from its first frame
            yield from enumerate(container.decode(stream))
            return
        frames = iter(container.decode(stream))
        first = next(frames, None)
        if first is not None and first.pts is not None:
            first_index = round((first.pts - origin) * stream.time_base * rate)
            if first_index <= start:
                yield first_index, first
                index = first_index
                for frame in frames:
                    # a frame without a timestamp follows the previous one
                    index = index + 1 if frame.pts is None else round((frame.pts - origin) * stream.time_base * rate)
                    yield index, frame
                return
        container.seek(origin, stream=stream)
    yield from enumerate(container.decode(stream))


def _decode_with_pillow(path: Path, extension: str, start: int, max_frames: Optional[int], stride: int, size) -> Video:
    try:
        with Image.open(path) as image:
            frame_count = getattr(image, "n_frames", 1)
            selected = range(start, frame_count, stride)[:max_frames]
            if not selected:
                raise _past_the_end(path, start, frame_count)
            collector = _FrameCollector(len(selected))
            durations_ms = []
            for index in range(start, selected[-1] + 1):
                image.seek(index)
                image.load()  # WebP sets the frame's duration only when it decodes the frame
                durations_ms.append(image.info.get("duration"))
                if index in selected:
                    rgb = image.convert("RGB")
                    if size is not None:
                        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC)
                    collector.add(np.asarray(rgb))
    except Image.DecompressionBombError as error:
        raise _unreadable(path, extension, f"its size is refused as a decompression bomb ({error})") from None
    except _PILLOW_DECODE_ERRORS as error:
        raise _unreadable(path, extension, f"Pillow cannot decode it ({_pillow_reason(error)})") from None
    frames = collector.frames()
    if None in durations_ms or sum(durations_ms) == 0:
        return Video(frames, None)
    return Video(frames, 1000.0 * len(durations_ms) / sum(durations_ms) / stride)
