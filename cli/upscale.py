"""The `vdp upscale` command, and `--upscale FILE` of `vdp generate`, `vdp das` and `vdp inpaint`: upscale a video's
frames with a super-resolution model spandrel loads (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN, ...), in tiles.

Every argument is checked (the input video and the model file exist, the output is writable and not an input, tile
and overlap are sane) before torch is imported; the model is loaded and checked to be an upscaler before the video is
upscaled, and before a generating command loads its pipeline.
"""

import functools
import sys
from pathlib import Path

from ..upscale import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    MODEL_FILE_EXTENSIONS,
    UpscaleModelError,
    check_tiling_arguments,
    check_upscale_model_file,
)
from ..video_io import SUPPORTED_EXTENSIONS
from ._common import DEVICES, DTYPES, check_output, device_and_dtype, run_settings, write_output

# frame rate of a written video when the input stores none (a still WebP or GIF)
DEFAULT_FPS = 8.0


def add_commands(commands) -> None:
    """Adds `upscale` to the `vdp` subcommands."""
    upscale = commands.add_parser(
        "upscale",
        help="upscale a video with a super-resolution model spandrel loads (ESRGAN, Real-ESRGAN, SwinIR, HAT, ...)",
        description=(
            "Upscale every frame of a video by the model's scale, in overlapping tiles so that memory stays bounded "
            "at any size. The written video remembers the settings (vdp info), and those of the video it came from."
        ),
    )
    upscale.add_argument("input_video", help=f"the video to upscale ({', '.join(SUPPORTED_EXTENSIONS)})")
    upscale.add_argument("-o", "--output", required=True, help=f"video file to write ({', '.join(SUPPORTED_EXTENSIONS)})")
    upscale.add_argument("--model", required=True,
                         help=f"the upscaler's weights ({', '.join(MODEL_FILE_EXTENSIONS)}), any super-resolution "
                              "model spandrel detects")
    upscale.add_argument("--tile", type=int, default=DEFAULT_TILE,
                         help=f"side of the square tiles in input pixels, a multiple of what the model needs; 0: "
                              f"whole frames (default: {DEFAULT_TILE})")
    upscale.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                         help=f"least overlap of neighbouring tiles in input pixels, at most tile/2; the seams are "
                              f"blended across its middle half (default: {DEFAULT_OVERLAP})")
    upscale.add_argument("--batch", type=int, default=1, help="frames per model call (default: 1)")
    upscale.add_argument("--fps", type=float, help=f"frame rate of the written video (default: the input's, else "
                                                   f"{DEFAULT_FPS:g})")
    upscale.add_argument("--device", choices=DEVICES, help="default: cuda when available, else cpu")
    upscale.add_argument("--dtype", choices=tuple(DTYPES),
                         help="default: fp32 on cpu; on cuda fp16 where the architecture supports it, else bf16, "
                              "else fp32")
    upscale.set_defaults(run=functools.partial(_upscale, parser=upscale), cuda_dtype="fp16")


def add_upscale_argument(parser) -> None:
    """Adds --upscale FILE to a command that writes a video."""
    parser.add_argument("--upscale", metavar="FILE",
                        help=f"upscale the frames with this super-resolution model before writing them "
                             f"({', '.join(MODEL_FILE_EXTENSIONS)}, any model spandrel detects; tiles of "
                             f"{DEFAULT_TILE} with an overlap of {DEFAULT_OVERLAP}; vdp upscale has the settings)")


def check_upscale_argument(args, parser, option: str = "--upscale", output=None) -> None:
    """Exit with status 2 unless the upscaler file of `option` exists and has a kind spandrel reads (torch-free), and
    is not the output file."""
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    if value is None:
        return
    try:
        check_upscale_model_file(value, label=option.lstrip("-"))
    except UpscaleModelError as error:
        parser.error(f"argument {option}: {error}")
    if output is not None:
        check_output(parser, output, getattr(args, "fps", None) or DEFAULT_FPS, inputs={option: value})


def load_upscaler(parser, path, device: str, dtype=None, option: str = "--upscale"):
    """The upscaler of `path` on `device`, checked to be one; exit with status 2 naming `option` when it is not.

    `dtype` None: fp32 on cpu; on cuda fp16 where the architecture supports it, else bf16, else fp32.
    """
    import torch

    from ..upscale import load_upscale_model

    try:
        model = load_upscale_model(path, device=device, dtype=dtype, label=option.lstrip("-"))
    except UpscaleModelError as error:
        parser.error(f"argument {option}: {error}")
    if dtype is None and device == "cuda":
        if model.supports_half:
            model.to(dtype=torch.float16)
        elif model.supports_bfloat16:
            model.to(dtype=torch.bfloat16)
    return model


def upscale_frames(frames, model, *, tile=DEFAULT_TILE, overlap=DEFAULT_OVERLAP, batch: int = 1, prog: str = "vdp"):
    """`upscale_video` with a progress bar on stderr and one line saying what runs."""
    from tqdm.auto import tqdm

    from ..upscale import describe, upscale_video

    print(f"{prog}: upscaling {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} with {describe(model)}",
          file=sys.stderr, flush=True)
    bar = None

    def progress(done, total):
        nonlocal bar
        bar = bar or tqdm(desc="upscale", total=total, unit="call", file=sys.stderr)
        bar.update(done - bar.n)

    try:
        return upscale_video(frames, model, tile=tile, overlap=overlap, batch=batch, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def upscaler_settings(model) -> dict:
    """What a written video remembers of the upscaler that made it."""
    return {"upscale_architecture": model.architecture.name, "upscale_scale": model.scale}


def _check_arguments(args, parser) -> None:
    if not Path(args.input_video).is_file():
        parser.error(f"argument input_video: input_video='{args.input_video}' is not a file")
    try:
        check_tiling_arguments(args.tile, args.overlap, args.batch)
    except ValueError as error:
        name = str(error).split("=", 1)[0]
        parser.error(f"argument --{name}: {error}")
    if args.fps is not None and args.fps <= 0:
        parser.error(f"argument --fps: fps={args.fps} must be a finite number > 0")
    check_output(parser, args.output, args.fps or DEFAULT_FPS,
                 inputs={"input_video": args.input_video, "--model": args.model})
    try:
        check_upscale_model_file(args.model)
    except UpscaleModelError as error:
        parser.error(f"argument --model: {error}")


def _upscale(args, parser) -> int:
    _check_arguments(args, parser)
    from ..video_io import read_video, read_video_metadata

    try:
        video = read_video(args.input_video)
        source_settings = read_video_metadata(args.input_video)
    except (ValueError, OSError) as error:
        parser.error(f"argument input_video: cannot read '{args.input_video}': {error}")
    fps = args.fps if args.fps is not None else (video.fps or DEFAULT_FPS)
    check_output(parser, args.output, fps)

    device, dtype = device_and_dtype(args, parser)
    model = load_upscaler(parser, args.model, device, dtype if args.dtype is not None else None, option="--model")
    from ..upscale import check_tile_fits

    try:
        check_tile_fits(model, args.tile)
    except ValueError as error:
        parser.error(f"argument --tile: {error}")
    frames = upscale_frames(video.frames, model, tile=args.tile, overlap=args.overlap, batch=args.batch,
                            prog="vdp upscale")
    settings = run_settings(args, "upscale", input_video=str(args.input_video), fps=fps, device=device,
                            dtype=str(model.dtype).removeprefix("torch."), **upscaler_settings(model))
    settings.pop("model_revision", None)  # a single weights file has no download record
    if source_settings:
        settings["source"] = source_settings
    write_output(args.output, frames, fps, settings)
    return 0
