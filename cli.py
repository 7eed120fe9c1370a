"""The `vdp` command: generate a video from a prompt, and report versions, devices and local weights.

``vdp generate`` checks every argument before it imports torch or loads a model, and exits with
status 2 and a one-line message naming the argument and its value when one is wrong.
"""

import argparse
import functools
import math
import os
import platform
import sys
from pathlib import Path

from . import __version__
from .video_io import SUPPORTED_EXTENSIONS, check_video_output

# Official checkpoints the pack can load: Hub repo id -> kind folder under models/video_diffusion_pack/.
OFFICIAL_WEIGHTS = {
    "Vchitect/Vchitect-2.0-2B": "vchitect",
}

# Where `vdp info` looks for downloaded weights: <root>/<kind>/<name>/model_index.json.
MODELS_DIR_VARIABLE = "VDP_MODELS_DIR"
DEFAULT_MODELS_DIR = Path("models") / "video_diffusion_pack"

# Settings of the official Vchitect-2.0 inference script (5 s at 8 fps).
OFFICIAL_DEFAULTS = dict(steps=100, height=432, width=768, frames=40, guidance=7.5)
# Settings for the embedded smoke-test model, small enough to finish in well under a minute on a 2-core CPU.
SMOKE_TEST_DEFAULTS = dict(steps=8, height=64, width=64, frames=8, guidance=7.5)

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Frame sizes must be multiples of the VAE's 8x downsampling times the transformer's 2x2 patches, as the
# pipeline checks; repeated here so that the check runs before torch is imported.
_SIZE_MULTIPLE = 16


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`vdp generate: error: ...`) and exit with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The `vdp` argument parser with its `generate` and `info` subcommands."""
    parser = _ArgumentParser(prog="vdp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"video_diffusion_pack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    generate = commands.add_parser(
        "generate",
        help="text-to-video with Vchitect-2.0 (+ RepVideo)",
        description=(
            "Generate a video from a text prompt. Without --model it runs the embedded random-weight "
            "smoke-test model, whose output is noise-like, to check the installation."
        ),
    )
    generate.add_argument("prompt", help="text prompt")
    generate.add_argument("-o", "--output", required=True, help=f"video file to write ({', '.join(SUPPORTED_EXTENSIONS)})")
    generate.add_argument(
        "--model",
        help="folder of a Vchitect-2.0 pipeline (the official Vchitect/Vchitect-2.0-2B download or a save_pretrained folder)",
    )
    generate.add_argument("--steps", type=int, help="denoising steps (official: 100; smoke test: 8)")
    generate.add_argument("--frames", type=int, help="number of frames (official: 40; smoke test: 8)")
    generate.add_argument("--height", type=int, help="height in pixels, divisible by 16 (official: 432; smoke test: 64)")
    generate.add_argument("--width", type=int, help="width in pixels, divisible by 16 (official: 768; smoke test: 64)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the initial noise, 0..2**64-1 (default: 0)")
    generate.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: 7.5)")
    generate.add_argument("--negative-prompt", help="text to steer away from")
    generate.add_argument("--fps", type=float, default=8.0, help="frame rate of the written video (default: 8)")
    generate.add_argument("--repvideo", action="store_true", help="turn on RepVideo cross-layer representation aggregation")
    generate.add_argument("--dynamic-cfg", action="store_true", help="the official Vchitect-2.0 per-step guidance ramp")
    generate.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    generate.add_argument("--dtype", choices=tuple(_DTYPES), help="default: bf16 on cuda, fp32 on cpu")
    generate.set_defaults(run=functools.partial(_generate, parser=generate))

    info = commands.add_parser("info", help="versions, devices and the official weights found locally")
    info.set_defaults(run=_info)
    return parser


def main(argv=None) -> int:
    """Entry point of the `vdp` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.run(args)


def _check_generate_arguments(args, parser) -> None:
    """Fill in the defaults and check every argument of `vdp generate`; exit with status 2 on the first bad one."""
    defaults = SMOKE_TEST_DEFAULTS if args.model is None else OFFICIAL_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    try:
        check_video_output(args.output, args.fps)
    except ValueError as error:
        option = "--fps" if str(error).startswith("fps=") else "-o/--output"
        parser.error(f"argument {option}: {error}")
    for name in ("height", "width"):
        value = getattr(args, name)
        if value <= 0:
            parser.error(f"argument --{name}: {name}={value} must be > 0")
        if value % _SIZE_MULTIPLE:
            parser.error(f"argument --{name}: {name}={value} must be divisible by {_SIZE_MULTIPLE}")
    if args.frames < 1:
        parser.error(f"argument --frames: frames={args.frames} must be >= 1")
    if args.steps < 1:
        parser.error(f"argument --steps: steps={args.steps} must be >= 1")
    if not 0 <= args.seed < 2**64:
        parser.error(f"argument --seed: seed={args.seed} must be in 0..2**64-1")
    if not math.isfinite(args.guidance):
        parser.error(f"argument --guidance: guidance={args.guidance} must be a finite number")
    if args.dynamic_cfg and args.guidance < 0:
        parser.error(f"argument --guidance: guidance={args.guidance} must be >= 0 with --dynamic-cfg")
    if args.model is not None:
        model = Path(args.model)
        if not model.is_dir():
            parser.error(f"argument --model: model='{model}' is not a folder")
        if not (model / "model_index.json").is_file():
            parser.error(f"argument --model: model='{model}' has no model_index.json (expected a diffusers pipeline folder)")


def _generate(args, parser) -> int:
    _check_generate_arguments(args, parser)

    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: device='cuda' but torch finds no CUDA device (torch.cuda.is_available() is False)")
    if args.dtype is None:
        args.dtype = "bf16" if args.device == "cuda" else "fp32"
    dtype = getattr(torch, _DTYPES[args.dtype])

    from .diffusers_pipelines.vchitect_repvideo import VchitectRepVideoPipeline
    from .diffusers_pipelines.vchitect_repvideo.tiny import build_tiny_vchitect_pipeline
    from .video_io import write_video

    if args.model is None:
        print(
            "vdp: no --model given, so this runs the embedded smoke-test model: a tiny Vchitect-2.0 with random "
            "weights. Its output is noise-like, not a real video. For real videos download the official weights "
            "(hf download Vchitect/Vchitect-2.0-2B --local-dir models/video_diffusion_pack/vchitect/Vchitect-2.0-2B) "
            "and pass --model models/video_diffusion_pack/vchitect/Vchitect-2.0-2B.",
            file=sys.stderr,
        )
        pipe = build_tiny_vchitect_pipeline()
        if dtype != torch.float32:  # the builder makes float32 weights
            pipe.to(dtype=dtype)
    else:
        try:
            pipe = VchitectRepVideoPipeline.from_pretrained(args.model, torch_dtype=dtype)
        except (OSError, ValueError) as error:
            parser.exit(1, f"{parser.prog}: error: could not load the pipeline from '{args.model}': {error}\n")
    pipe.to(args.device)
    if args.repvideo:
        pipe.transformer.enable_repvideo()

    try:
        output = pipe(
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            height=args.height,
            width=args.width,
            num_frames=args.frames,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            use_dynamic_cfg=args.dynamic_cfg,
            generator=torch.Generator("cpu").manual_seed(args.seed),
            output_type="np",
        )
    except ValueError as error:  # the pipeline's input checks that depend on the loaded model (e.g. its largest size)
        parser.error(str(error))
    path = write_video(args.output, output.frames[0], fps=args.fps)
    print(path)
    return 0


def _info(args) -> int:
    import diffusers
    import torch
    import transformers

    print(f"video_diffusion_pack {__version__}")
    print(f"python {platform.python_version()}")
    print(f"torch {torch.__version__}")
    print(f"diffusers {diffusers.__version__}")
    print(f"transformers {transformers.__version__}")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count()))
        print(f"cuda: available (CUDA {torch.version.cuda}): {names}")
    else:
        print("cuda: not available (torch runs on cpu)")

    print("official weights found:")
    found = _find_hub_cache_weights() + _find_local_weights()
    for line in found:
        print(f"  {line}")
    if not found:
        print(f"  none (looked in the Hugging Face cache and {_models_root()}/<kind>/<name>/)")
    return 0


def _models_root() -> Path:
    return Path(os.environ.get(MODELS_DIR_VARIABLE) or DEFAULT_MODELS_DIR)


def _find_hub_cache_weights() -> list:
    """Official repos in the Hugging Face cache, as `repo (hub cache): snapshot folder` lines."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []
    lines = []
    for repo in sorted(cache.repos, key=lambda repo: repo.repo_id):
        if repo.repo_type == "model" and repo.repo_id in OFFICIAL_WEIGHTS:
            for revision in repo.revisions:
                lines.append(f"{repo.repo_id} (hub cache, {repo.size_on_disk_str}): {revision.snapshot_path}")
    return lines


def _find_local_weights() -> list:
    """Pipeline folders (with model_index.json) under <models root>/<kind>/ for each official kind."""
    root = _models_root()
    lines = []
    for kind in sorted(set(OFFICIAL_WEIGHTS.values())):
        for index_file in sorted((root / kind).glob("*/model_index.json")):
            lines.append(f"{kind}: {index_file.parent}")
    return lines
