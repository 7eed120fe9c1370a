"""What every `vdp` command shares: the parser class, argument checks, device and dtype, model loading, output.

Nothing here imports torch or diffusers at module level: building the parser, `--help` and every argument error stay
free of them; `device_and_dtype`, `load_or_embedded` and `write_output` import them when a command runs.
"""

import argparse
import json
import math
import os
import signal
import sys
import threading

from ..video_io import check_video_output

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
DEVICES = ("cpu", "cuda")
# Exit status of a command stopped by Ctrl-C (128 + SIGINT) or by SIGTERM (128 + SIGTERM), as shells report them.
INTERRUPTED_STATUS = 130
TERMINATED_STATUS = 143


class CommandTerminated(BaseException):
    """Raised in the main thread on SIGTERM, so that the writers' cleanup runs as it does for Ctrl-C."""


def run_command(run, args, prog: str) -> int:
    """Runs a command's `run(args)`; Ctrl-C and SIGTERM end it with one line on stderr and status 130 / 143.

    SIGTERM's default action kills the process without running any cleanup, so while the command runs it raises
    CommandTerminated instead: like KeyboardInterrupt, it unwinds through every writer, which removes its temporary
    file or staging folder (nothing half-written is left), and no traceback is printed.
    """
    def terminate(signal_number, frame):
        raise CommandTerminated

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted by Ctrl-C (SIGINT); nothing half-written was left", file=sys.stderr)
        return INTERRUPTED_STATUS
    except CommandTerminated:
        print(f"{prog}: terminated by SIGTERM; nothing half-written was left", file=sys.stderr)
        return TERMINATED_STATUS
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`vdp generate: error: ...`) and exit with status 2."""

    def error(self, message):
        if message.endswith(": expected one argument"):  # e.g. --object-distance -1e6: argparse takes -1e6 for an option
            option = message[len("argument "):-len(": expected one argument")].split("/")[-1]
            message += f" (a value that starts with '-' is written {option}=VALUE, e.g. {option}=-1e6)"
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_device_arguments(parser, cuda_dtype: str = "bf16", cuda_dtype_note: str = "") -> None:
    """Adds --device and --dtype; on cuda the dtype defaults to `cuda_dtype`, on cpu to fp32."""
    parser.add_argument("--device", choices=DEVICES, help="default: cuda when available, else cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), help=f"default: {cuda_dtype} on cuda{cuda_dtype_note}, fp32 on cpu")
    parser.set_defaults(cuda_dtype=cuda_dtype)
    add_memory_arguments(parser)


def add_memory_arguments(parser) -> None:
    """Adds --memory PRESET and the switches that override it (see diffusers_pipelines/memory.py)."""
    from ..diffusers_pipelines.memory import GROUP_OFFLOAD_TYPES, MEMORY_PRESETS, OFFLOAD_MODES

    group = parser.add_argument_group("low memory", "a preset, then switches that override it")
    group.add_argument("--memory", choices=tuple(MEMORY_PRESETS), default="none",
                       help="none: all on the device; balanced: model offload, VAE tiling and slicing; low: block "
                            "group offload and fp8 weights too; lowest: sequential offload, fp8 (default: none)")
    group.add_argument("--offload", choices=OFFLOAD_MODES, help="model / sequential / group offload (cuda only, "
                                                                 "group also on cpu)")
    group.add_argument("--group-offload-type", choices=GROUP_OFFLOAD_TYPES)
    group.add_argument("--blocks-per-group", type=int, metavar="N")
    group.add_argument("--vae-tiling", action=argparse.BooleanOptionalAction, help="decode in overlapping tiles")
    group.add_argument("--vae-slicing", action=argparse.BooleanOptionalAction,
                       help="decode one video (2-D VAE: one frame chunk) at a time")
    group.add_argument("--fp8", action=argparse.BooleanOptionalAction,
                       help="store the denoiser's weights in float8 and compute in bf16 (overrides --dtype)")
    group.add_argument("--attention-backend", metavar="NAME", help="diffusers attention backend (native, flash, ...)")


def memory_arguments(args, parser, device: str):
    """The MemoryConfig of --memory and its switches; exits with status 2 on a bad one (torch-free)."""
    from ..diffusers_pipelines.memory import memory_config

    try:
        config = memory_config(args.memory, offload=args.offload, group_offload_type=args.group_offload_type,
                               blocks_per_group=args.blocks_per_group, vae_tiling=args.vae_tiling,
                               vae_slicing=args.vae_slicing, fp8=args.fp8, attention_backend=args.attention_backend)
    except ValueError as error:
        parser.error(f"argument --memory: {error}")
    if config.offload in ("model", "sequential") and device == "cpu":
        parser.error(f"argument --memory/--offload: offload={config.offload!r} needs --device cuda; on the cpu the "
                     "weights already live in host memory (use --offload none or group)")
    return config


def place_pipeline(pipe, args, parser, device: str):
    """Moves the pipeline to `device`, or lets the offload setting place it, and turns the memory settings on."""
    from ..diffusers_pipelines.memory import apply_memory

    config = memory_arguments(args, parser, device)
    if config.offload == "none":
        pipe.to(device)
    try:
        return apply_memory(pipe, config, device=device)
    except ValueError as error:
        parser.error(f"argument --memory: {error}")


def check_prompt_argument(parser, option: str, text: str) -> None:
    """The pack's one empty-prompt rule (as the pipelines' check_prompt_text): a prompt or instruction must hold a
    non-space character; exit with status 2 otherwise."""
    if not text.strip():
        parser.error(f"argument {option}: {option.lstrip('-').replace('-', '_')}={text!r} is empty; say what the "
                     "video should show (only the negative prompt may be empty)")


def scheduler_step_limit(model_folder, default: int) -> int:
    """The most denoising steps the scheduler of a pipeline folder can plan (num_train_timesteps less steps_offset,
    read from scheduler/scheduler_config.json without torch), or `default` (the embedded model's) without a folder
    or when the file cannot be read (loading then reports it)."""
    if model_folder is None:
        return default
    try:
        with open(os.path.join(str(model_folder), "scheduler", "scheduler_config.json"), encoding="utf-8") as file:
            config = json.load(file)
        return int(config.get("num_train_timesteps", 1000)) - int(config.get("steps_offset", 0) or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return default


def check_steps(parser, steps: int, model_folder, default_limit: int, option: str = "steps") -> None:
    """Exit with status 2 unless 1 <= steps <= the scheduler's limit (before any model loads)."""
    check_at_least(parser, option, steps)
    limit = scheduler_step_limit(model_folder, default_limit)
    if steps > limit:
        parser.error(f"argument --{option}: {option}={steps} must be at most {limit} (the scheduler plans at most "
                     f"{limit} steps: its trained timesteps less its offset)")


# options of the commands that the pipelines' argument names stand for, in their error messages
PIPELINE_OPTIONS = {"num_inference_steps": "--steps", "num_frames": "--frames", "height": "--height",
                    "width": "--width", "guidance_scale": "--guidance"}


def call_pipeline(parser, pipe, options=None, **kwargs):
    """`pipe(**kwargs)`; a ValueError of its input checks (which run before any model does) exits with status 2,
    blamed on the option its argument comes from (`options`: pipeline argument -> option, added to
    PIPELINE_OPTIONS)."""
    names = {**PIPELINE_OPTIONS, **(options or {})}
    try:
        return pipe(**kwargs)
    except ValueError as error:
        message = str(error)
        first = message.split("=", 1)[0].split(" ", 1)[0]
        option = names.get(first)
        parser.error(f"argument {option}: {message}" if option else message)


def check_output(parser, output, fps, option: str = "-o/--output", inputs=None) -> None:
    """Exit with status 2 unless `output` is a writable video path of a supported kind and `fps` a valid rate.

    `inputs` ({option: path or None}) are the files the command reads: an output that is one of them (the same
    file, through any link or spelling) is refused, because writing it would replace the source.
    """
    try:
        check_video_output(output, fps)
    except ValueError as error:
        parser.error(f"argument {'--fps' if str(error).startswith('fps=') else option}: {error}")
    for input_option, path in (inputs or {}).items():
        if path is not None and _same_file(output, path):
            parser.error(f"argument {option}: output '{output}' is the same file as {input_option} '{path}'; "
                         "writing it would replace the input, so give another output file")


def _same_file(first, second) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)  # hard links too
    except (OSError, ValueError):  # one of them does not exist (yet), so they are not one file
        return False


def check_at_least(parser, name: str, value: int, minimum: int = 1) -> None:
    """Exit with status 2 unless the integer argument --NAME is >= minimum."""
    if value < minimum:
        parser.error(f"argument --{name.replace('_', '-')}: {name}={value} must be >= {minimum}")


def check_seed(parser, seed: int) -> None:
    """Exit with status 2 unless the seed fits a torch.Generator (0..2**64-1)."""
    if not 0 <= seed < 2**64:
        parser.error(f"argument --seed: seed={seed} must be in 0..2**64-1")


def check_finite(parser, name: str, value: float) -> None:
    """Exit with status 2 unless the float argument --NAME is finite."""
    if not math.isfinite(value):
        parser.error(f"argument --{name.replace('_', '-')}: {name}={value} must be a finite number")


def device_and_dtype(args, parser):
    """(device name, torch dtype) from --device/--dtype: cuda when available, and the command's dtype there."""
    if hasattr(args, "memory"):  # refuse bad memory settings before torch is imported and any model loads
        memory_arguments(args, parser, args.device)
    import torch

    device = args.device
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: device='cuda' but torch finds no CUDA device (torch.cuda.is_available() is False)")
    if hasattr(args, "memory") and args.device is None:  # the device torch chose
        memory_arguments(args, parser, device)
    dtype_name = args.dtype or (args.cuda_dtype if device == "cuda" else "fp32")
    return device, getattr(torch, DTYPES[dtype_name])


def smoke_test_notice(model: str, advice: str) -> None:
    """Says on stderr that the embedded random-weight smoke-test model runs, and how to get real weights."""
    print(f"vdp: no --model given, so this runs the embedded smoke-test model: {model} with random weights. {advice}",
          file=sys.stderr)


def embedded_notice(description: str, advice: str) -> None:
    """Says on stderr that the embedded trained demo model runs, what it can draw, and how to get real weights."""
    print(f"vdp: no --model given, so this runs the embedded model: {description} {advice}", file=sys.stderr)


def check_memory_before_loading(parser, folder, device, dtype, num_frames: int, height: int, width: int,
                                option: str = "--frames") -> None:
    """Exit with status 2, before any weight of `folder` loads, when its weights and a run of `num_frames` x `height`
    x `width` (estimated from its files: `pipeline_utils.folder_memory_estimate`) exceed what `device` has free.
    Nothing to do for the embedded models (None), which the pipelines' own checks cover before sampling."""
    if folder is None:
        return
    from ..diffusers_pipelines.pipeline_utils import check_memory, folder_memory_estimate

    parts = folder_memory_estimate(folder, dtype, 1, num_frames, height, width)
    if not parts:
        return
    try:
        check_memory(f"frames={num_frames} at {height}x{width} with the weights of '{folder}'", parts, device, beyond="")
    except ValueError as error:
        parser.error(f"argument {option}: {error}")


def load_or_embedded(parser, folder, load, build, dtype, what: str = "the pipeline"):
    """The pipeline: `build()` (the embedded model, cast to `dtype`) when `folder` is None, else `load(folder, dtype)`.

    A folder that does not load exits with status 1 and one line naming it.
    """
    import torch

    if folder is None:
        pipe = build()
        if dtype != torch.float32:  # the builders make float32 weights
            pipe.to(dtype=dtype)
        return pipe
    try:
        return load(str(folder), dtype)
    except (OSError, ValueError, KeyError) as error:
        parser.exit(1, f"{parser.prog}: error: could not load {what} from '{folder}': {error}\n")


def write_output(path, frames, fps: float, settings=None) -> None:
    """Writes the video (frames [F, H, W, 3]), with the run's `settings` as metadata, and prints its path on stdout."""
    from ..video_io import write_video

    print(write_video(path, frames, fps=fps, metadata=settings))


# what a written video does not remember: where it went, how the command was wired, what --like read
_NOT_REMEMBERED = ("run", "output", "like", "cuda_dtype")


def run_settings(args, command: str, names=None, **resolved) -> dict:
    """What a written video remembers of its run: the command, the arguments (those of `names`, default all), the
    values the command `resolved` from them, the model folder's download revision and the pack's version."""
    from pathlib import Path

    from .. import __version__
    from ..weights.local import read_record

    settings = {"command": command, "video_diffusion_pack": __version__}
    for name, value in vars(args).items():
        if name in _NOT_REMEMBERED or (names is not None and name not in names):
            continue
        settings[name] = str(value) if isinstance(value, Path) else value
    settings.update(resolved)
    if settings.get("model") is not None:
        record = read_record(Path(settings["model"]))
        settings["model_revision"] = None if record is None else f"{record.repo_id}@{record.commit}"
    return settings


def apply_like(args, parser, command: str, names) -> None:
    """--like FILE: the settings of the run that wrote FILE fill every argument of `names` not given (None)."""
    from ..video_io import read_video_metadata

    try:
        settings = read_video_metadata(args.like)
    except (OSError, ValueError) as error:
        parser.error(f"argument --like: {error}")
    if settings.get("command") != command:
        parser.error(f"argument --like: '{args.like}' holds no settings of a `vdp {command}` run "
                     f"(found command={settings.get('command')!r})")
    for name in names:
        if getattr(args, name, None) is None and name in settings:
            setattr(args, name, settings[name])
