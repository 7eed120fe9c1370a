"""The `vdp inpaint` command: language-driven video inpainting (LGVI, and LGVI-I for chat requests) of a video file.

Every argument is checked, and the input video is read and checked, before a model is loaded; a bad one exits with
status 2 and a one-line message naming the argument and its value.
"""

import functools
import math
import sys
from pathlib import Path

from ..video_io import SUPPORTED_EXTENSIONS, check_video_output

# the official inference settings (inference_referring.py: the first 24 frames at 512x320, 50 steps, seed 0;
# inference_interactive.py: the same, and LLaVA writes up to 1024 tokens)
OFFICIAL = dict(height=320, width=512, steps=50, gs=3.0, igs=1.5, seed=0, max_frames=24, max_new_tokens=1024)
# the embedded smoke-test model at a small size and few steps: it runs in seconds on a CPU
SMOKE_TEST = dict(OFFICIAL, height=32, width=48, steps=3, max_new_tokens=8)
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def add_commands(commands) -> None:
    """Adds `inpaint` to the `vdp` subcommands."""
    inpaint = commands.add_parser(
        "inpaint",
        help="LGVI: remove what an instruction names from a video (language-driven video inpainting)",
        description=(
            "Edit a video as a referring expression says ('remove the bird on the left'), or, with --lgvi-i, as a "
            "chat request that LLaVA turns into the edit prompt; no mask is needed. Without --model it runs the "
            "embedded random-weight smoke-test model, whose output is noise."
        ),
    )
    inpaint.add_argument("input_video", help=f"the video to edit ({', '.join(SUPPORTED_EXTENSIONS)})")
    inpaint.add_argument("instruction", help="what to remove, e.g. 'remove the bird on the left'")
    inpaint.add_argument("-o", "--output", required=True, help=f"video file to write ({', '.join(SUPPORTED_EXTENSIONS)})")
    inpaint.add_argument("--model", help="folder of an LGVI pipeline (the official jianzongwu/lgvi download), or of "
                                         "LGVI-I (jianzongwu/lgvi-i, which holds llava/llava_weights.pth)")
    inpaint.add_argument("--lgvi-i", action="store_true",
                         help="LGVI-I: the instruction is a chat request; LLaVA-1.5 writes the edit prompt (implied "
                              "when --model is an LGVI-I folder)")
    inpaint.add_argument("--llava", help="LGVI-I: the liuhaotian/llava-v1.5-7b folder, or a models root holding "
                                         "lgvi/llava-v1.5-7b (default: the folder vdp download uses)")
    inpaint.add_argument("--clip", help="LGVI-I: the openai/clip-vit-large-patch14-336 folder, or a models root "
                                        "holding lgvi/clip-vit-large-patch14-336 (default: the folder vdp download uses)")
    inpaint.add_argument("--max-new-tokens", type=int,
                         help="LGVI-I: the most tokens LLaVA may write (official: 1024; smoke test: 8)")
    inpaint.add_argument("--steps", type=int, help="denoising steps (official: 50; smoke test: 3)")
    inpaint.add_argument("--gs", type=float, help="text guidance scale (official: 3.0)")
    inpaint.add_argument("--igs", type=float, help="video guidance scale (official: 1.5)")
    inpaint.add_argument("--seed", type=int, help="seed of the VAE sample and the noise (official: 0)")
    inpaint.add_argument("--width", type=int, help="frame width, a multiple of 8 (official: 512; smoke test: 48)")
    inpaint.add_argument("--height", type=int, help="frame height, a multiple of 8 (official: 320; smoke test: 32)")
    inpaint.add_argument("--max-frames", type=int, help="use the first N frames (official: 24)")
    inpaint.add_argument("--fps", type=float, help="frame rate of the written video (default: the input's, else 8)")
    inpaint.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    inpaint.add_argument("--dtype", choices=tuple(_DTYPES), help="default: fp16 on cuda (official), fp32 on cpu")
    inpaint.set_defaults(run=functools.partial(_inpaint, parser=inpaint))


def _settings(args, parser) -> dict:
    """The run's settings: the official (or smoke-test) ones, overridden by the given arguments, checked."""
    settings = dict(SMOKE_TEST if args.model is None else OFFICIAL)
    for name in ("steps", "gs", "igs", "seed", "width", "height", "max_frames"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    for name in ("width", "height"):
        if settings[name] < 8 or settings[name] % 8:
            parser.error(f"argument --{name}: {name}={settings[name]} must be a positive multiple of 8")
    if args.max_new_tokens is not None:
        settings["max_new_tokens"] = args.max_new_tokens
    for name in ("steps", "max_frames", "max_new_tokens"):
        if settings[name] < 1:
            parser.error(f"argument --{name.replace('_', '-')}: {name}={settings[name]} must be >= 1")
    if not 0 <= settings["seed"] < 2**64:
        parser.error(f"argument --seed: seed={settings['seed']} must be in 0..2**64-1")
    for name in ("gs", "igs"):
        if not math.isfinite(settings[name]):
            parser.error(f"argument --{name}: {name}={settings[name]} must be a finite number")
    return settings


def _inpaint(args, parser) -> int:
    settings = _settings(args, parser)
    if not args.instruction.strip():
        parser.error(f"argument instruction: instruction={args.instruction!r} is empty; say what to remove")
    if not Path(args.input_video).is_file():
        parser.error(f"argument input_video: input_video='{args.input_video}' is not a file")
    try:
        check_video_output(args.output, args.fps if args.fps is not None else 8.0)
    except ValueError as error:
        parser.error(f"argument {'--fps' if str(error).startswith('fps=') else '-o/--output'}: {error}")
    model, lgvi_i_folders = None, None
    if args.model is not None:
        from ..weights.manifest import find_local_folder, load_manifest

        manifest = load_manifest()
        try:
            model = find_local_folder(args.model, manifest.get("lgvi-i" if args.lgvi_i else "lgvi"))
        except FileNotFoundError as error:
            parser.error(f"argument --model: {error}")
        from ..diffusers_pipelines.lgvi.lgvi_i import OVERLAY_PATH

        args.lgvi_i = args.lgvi_i or (model / OVERLAY_PATH).is_file()
        if args.lgvi_i:
            lgvi_i_folders = _lgvi_i_folders(args, parser, manifest, model)
    elif args.llava is not None or args.clip is not None:
        parser.error("argument --llava/--clip: they name the LGVI-I weights; give --model with the lgvi-i folder too")

    import torch

    from ..video_io import read_video, write_video

    try:
        video = read_video(args.input_video)
    except (ValueError, OSError) as error:
        parser.error(f"argument input_video: cannot read '{args.input_video}': {error}")
    frames = torch.from_numpy(video.frames[: settings["max_frames"]]).float() / 255
    fps = args.fps if args.fps is not None else (video.fps or 8.0)

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: device='cuda' but torch finds no CUDA device")
    dtype = getattr(torch, _DTYPES[args.dtype or ("fp16" if args.device == "cuda" else "fp32")])
    from ..diffusers_pipelines.lgvi import InpaintByInstructionPipeline
    from ..diffusers_pipelines.lgvi.tiny import build_tiny_inpaint_pipeline

    if model is None:
        name = "lgvi-i" if args.lgvi_i else "lgvi"
        print(f"vdp: no --model given, so this runs the embedded smoke-test model: a tiny {name.upper()} with random "
              f"weights. Its output is noise, not an edited video. For real edits: vdp download {name}, then pass "
              f"--model with its folder.", file=sys.stderr)
        if args.lgvi_i:
            from ..diffusers_pipelines.lgvi.lgvi_i import build_tiny_lgvi_i_pipeline

            pipe = build_tiny_lgvi_i_pipeline(max_new_tokens=settings["max_new_tokens"])
        else:
            pipe = build_tiny_inpaint_pipeline()
        if dtype != torch.float32:  # the builders make float32 weights
            pipe.to(dtype=dtype)
    elif lgvi_i_folders is not None:
        from ..diffusers_pipelines.lgvi.lgvi_i import load_lgvi_i_pipeline

        try:
            pipe = load_lgvi_i_pipeline(str(model), *map(str, lgvi_i_folders), torch_dtype=dtype,
                                        max_new_tokens=settings["max_new_tokens"])
        except (OSError, ValueError, KeyError) as error:
            parser.exit(1, f"{parser.prog}: error: could not load LGVI-I from '{model}': {error}\n")
    else:
        try:
            pipe = InpaintByInstructionPipeline.from_pretrained(str(model), torch_dtype=dtype)
        except (OSError, ValueError) as error:
            parser.exit(1, f"{parser.prog}: error: could not load the pipeline from '{model}': {error}\n")
    pipe.to(args.device)
    output = pipe(
        video=frames,
        prompt=args.instruction,
        height=settings["height"],
        width=settings["width"],
        num_inference_steps=settings["steps"],
        guidance_scale=settings["gs"],
        image_guidance_scale=settings["igs"],
        generator=torch.Generator("cpu").manual_seed(settings["seed"]),
        output_type="np",
    )
    if output.instructions:
        print(f"vdp: LLaVA wrote the edit prompt: {output.instructions[0]!r}", file=sys.stderr)
    print(write_video(args.output, output.frames[0], fps=fps))
    return 0


def _lgvi_i_folders(args, parser, manifest, model: Path):
    """The LLaVA and CLIP folders LGVI-I needs, from --llava / --clip or the default models root; checked."""
    from ..weights.manifest import default_models_root, find_local_folder

    folders = []
    for option, entry_name in (("llava", "llava-v1.5-7b"), ("clip", "clip-vit-large-patch14-336")):
        given = getattr(args, option)
        try:
            folders.append(find_local_folder(given or default_models_root(), manifest.get(entry_name), "config.json"))
        except FileNotFoundError as error:
            parser.error(f"argument --{option}: LGVI-I ('{model}') needs it: {error}")
    return folders
