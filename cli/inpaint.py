"""The `vdp inpaint` command: language-driven video inpainting (LGVI, and LGVI-I for chat requests) of a video file.

Every argument is checked, and the input video is read and checked, before a model is loaded; a bad one exits with
status 2 and a one-line message naming the argument and its value.
"""

import functools
import sys
from pathlib import Path

from ..diffusers_pipelines.lgvi.defaults import EMBEDDED, EMBEDDED_DESCRIPTION, OFFICIAL, SMOKE_TEST
from ..video_io import SUPPORTED_EXTENSIONS
from ._common import (
    add_device_arguments,
    call_pipeline,
    check_at_least,
    check_finite,
    check_memory_before_loading,
    check_output,
    check_prompt_argument,
    check_seed,
    check_steps,
    device_and_dtype,
    embedded_notice,
    load_or_embedded,
    place_pipeline,
    run_settings,
    smoke_test_notice,
    write_output,
)
from .upscale import add_upscale_argument, check_upscale_argument, load_upscaler, upscale_frames, upscaler_settings

# the embedded LGVI's (and the LGVI-I smoke test's) scheduler (DDIM, 1000 trained timesteps shifted by steps_offset=1) plans at most 999 steps
SMOKE_TEST_MAX_STEPS = 999


def _settings_of(defaults) -> dict:
    """The command's settings (option names) from the pipeline's defaults (argument names)."""
    return {"height": defaults.height, "width": defaults.width, "steps": defaults.num_inference_steps,
            "gs": defaults.guidance_scale, "igs": defaults.image_guidance_scale, "seed": defaults.seed,
            "max_frames": defaults.max_frames, "max_new_tokens": defaults.max_new_tokens}


def add_commands(commands) -> None:
    """Adds `inpaint` to the `vdp` subcommands."""
    inpaint = commands.add_parser(
        "inpaint",
        help="LGVI: remove what an instruction names from a video (language-driven video inpainting)",
        description=(
            "Edit a video as a referring expression says ('remove the bird on the left'), or, with --lgvi-i, as a "
            "chat request that LLaVA turns into the edit prompt; no mask is needed. Without --model it runs the "
            "embedded LGVI, a small model trained on the pack's shapes world: it removes the shapes of a shapes-world "
            "video at 32x32, whatever the instruction names (other videos come out resized and blurred, not edited); with --lgvi-i and no --model, a "
            "random-weight smoke-test model whose output is noise. Settings not given are the official ones (with "
            "--model) or the embedded model's."
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
                         help=f"LGVI-I: the most tokens LLaVA may write (official: {OFFICIAL.max_new_tokens}; smoke "
                              f"test: {SMOKE_TEST.max_new_tokens})")
    inpaint.add_argument("--steps", type=int, help=f"denoising steps (official: {OFFICIAL.num_inference_steps}; "
                                                   f"embedded: {EMBEDDED.num_inference_steps}; LGVI-I smoke test: "
                                                   f"{SMOKE_TEST.num_inference_steps})")
    inpaint.add_argument("--gs", type=float, help=f"text guidance scale (official: {OFFICIAL.guidance_scale}; "
                                                   f"embedded: {EMBEDDED.guidance_scale})")
    inpaint.add_argument("--igs", type=float, help=f"video guidance scale (official: {OFFICIAL.image_guidance_scale}; "
                                                   f"embedded: {EMBEDDED.image_guidance_scale})")
    inpaint.add_argument("--seed", type=int, help=f"seed of the VAE sample and the noise (official: {OFFICIAL.seed})")
    inpaint.add_argument("--width", type=int, help=f"frame width, a multiple of 8 (official: {OFFICIAL.width}; "
                                                   f"embedded: {EMBEDDED.width}; LGVI-I smoke test: {SMOKE_TEST.width})")
    inpaint.add_argument("--height", type=int, help=f"frame height, a multiple of 8 (official: {OFFICIAL.height}; "
                                                    f"embedded: {EMBEDDED.height}; LGVI-I smoke test: "
                                                    f"{SMOKE_TEST.height})")
    inpaint.add_argument("--max-frames", type=int, help=f"use the first N frames (official: {OFFICIAL.max_frames}; "
                                                       f"embedded: {EMBEDDED.max_frames})")
    inpaint.add_argument("--fps", type=float,
                         help=f"frame rate of the written video (default: the input's, else {OFFICIAL.fps:g})")
    add_device_arguments(inpaint, cuda_dtype="fp16", cuda_dtype_note=" (official)")
    add_upscale_argument(inpaint)
    inpaint.set_defaults(run=functools.partial(_inpaint, parser=inpaint))


def _settings(args, parser) -> dict:
    """The run's settings: the official ones (with --model), else the embedded LGVI's (or the LGVI-I smoke test's),
    overridden by the given arguments, checked."""
    settings = _settings_of(OFFICIAL if args.model is not None else SMOKE_TEST if args.lgvi_i else EMBEDDED)
    for name in ("steps", "gs", "igs", "seed", "width", "height", "max_frames"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    for name in ("width", "height"):
        if settings[name] < 8 or settings[name] % 8:
            parser.error(f"argument --{name}: {name}={settings[name]} must be a positive multiple of 8")
    if args.max_new_tokens is not None:
        settings["max_new_tokens"] = args.max_new_tokens
    for name in ("steps", "max_frames", "max_new_tokens"):
        check_at_least(parser, name, settings[name])
    check_seed(parser, settings["seed"])
    for name in ("gs", "igs"):
        check_finite(parser, name, settings[name])
    return settings


def _inpaint(args, parser) -> int:
    settings = _settings(args, parser)
    check_prompt_argument(parser, "instruction", args.instruction)
    if not Path(args.input_video).is_file():
        parser.error(f"argument input_video: input_video='{args.input_video}' is not a file")
    check_output(parser, args.output, args.fps if args.fps is not None else OFFICIAL.fps,
                 inputs={"input_video": args.input_video})
    check_upscale_argument(args, parser, output=args.output)
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
    check_steps(parser, settings["steps"], model, SMOKE_TEST_MAX_STEPS)

    import torch

    from ..video_io import read_video

    try:
        video = read_video(args.input_video, max_frames=settings["max_frames"])
    except (ValueError, OSError) as error:
        parser.error(f"argument input_video: cannot read '{args.input_video}': {error}")
    frames = torch.from_numpy(video.frames).float() / 255
    fps = args.fps if args.fps is not None else (video.fps or OFFICIAL.fps)

    device, dtype = device_and_dtype(args, parser)
    upscaler = None if args.upscale is None else load_upscaler(parser, args.upscale, device)
    max_new_tokens = settings["max_new_tokens"]
    check_memory_before_loading(parser, model, device, dtype, frames.shape[0], settings["height"], settings["width"],
                                option="--max-frames")
    if model is None and args.lgvi_i:
        smoke_test_notice("a tiny LGVI-I", "Its output is noise, not an edited video. For real edits: vdp download "
                                           "lgvi-i, then pass --model with its folder.")
    elif model is None:
        embedded_notice(EMBEDDED_DESCRIPTION, "For real videos: vdp download lgvi, then pass --model with its folder.")
    if args.lgvi_i:
        from ..diffusers_pipelines.lgvi.lgvi_i import (
            build_tiny_lgvi_i_pipeline,
            load_lgvi_i_pipeline,
        )

        pipe = load_or_embedded(
            parser, model,
            lambda folder, dtype: load_lgvi_i_pipeline(folder, *map(str, lgvi_i_folders), torch_dtype=dtype,
                                                       max_new_tokens=max_new_tokens),
            lambda: build_tiny_lgvi_i_pipeline(max_new_tokens=max_new_tokens), dtype, what="LGVI-I",
        )
    else:
        pipe = load_or_embedded(parser, model, _load_lgvi, _build_lgvi, dtype)
    place_pipeline(pipe, args, parser, device)
    output = call_pipeline(
        parser, pipe, {"prompt": "instruction", "video": "input_video", "guidance_scale": "--gs",
                       "image_guidance_scale": "--igs"},
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
    frames = output.frames[0]
    if upscaler is not None:
        frames = upscale_frames(frames, upscaler, prog="vdp inpaint")
        settings.update(upscaler_settings(upscaler))
    write_output(args.output, frames, fps,
                 run_settings(args, "inpaint", **settings, fps=fps, lgvi_i=args.lgvi_i,
                              model=None if model is None else str(model)))
    return 0


def _load_lgvi(folder: str, dtype):
    from ..diffusers_pipelines.lgvi import InpaintByInstructionPipeline

    return InpaintByInstructionPipeline.from_pretrained(folder, dtype=dtype)


def _build_lgvi():
    from ..diffusers_pipelines.lgvi.embedded import load_embedded_lgvi_pipeline

    return load_embedded_lgvi_pipeline()


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
