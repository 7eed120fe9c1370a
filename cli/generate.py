"""The `vdp generate` command: text-to-video with Vchitect-2.0 (+ RepVideo) or RepVideo as released (CogVideoX-2B).

Every argument is checked before torch is imported or a model loads; a bad one exits with status 2 and a one-line
message naming the argument and its value.
"""

import argparse
import dataclasses
import functools
import os
import shlex
import sys
from pathlib import Path

from ..diffusers_pipelines.repvideo import defaults as repvideo_defaults
from ..diffusers_pipelines.vchitect import defaults as vchitect_defaults
from ..video_io import SUPPORTED_EXTENSIONS
from ..weights.manifest import default_models_root
from ._common import (
    add_device_arguments,
    apply_like,
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

# FasterCache presets (hooks/faster_cache.py FASTER_CACHE_PRESETS), repeated so that --fastercache is checked before
# torch is imported; a bare --fastercache takes the preset of the --pipeline.
FASTERCACHE_PRESETS = ("vchitect-2.0", "cogvideox", "default", "few-steps")

# FreeInitConfig's MAX_NUM_ITERS (hooks/free_init imports torch, so the bound is repeated here; a test compares them)
MAX_FREEINIT_ITERS = 16


@dataclasses.dataclass(frozen=True)
class _Pipeline:
    """What `vdp generate` needs to know of one pipeline before torch is imported."""

    title: str
    pipeline_class: str
    defaults: object  # the pipeline's defaults module: OFFICIAL and SMOKE_TEST
    size_multiple: int  # the VAE's spatial downsampling times the transformer's patch size
    frame_step: int  # frames must be 1 + a multiple of this; 1: any number
    fastercache_preset: str
    cuda_dtype: str
    tiny_model: str
    max_steps: int = 1000  # the embedded model's scheduler: num_train_timesteps less steps_offset


PIPELINES = {
    "vchitect": _Pipeline(
        title="Vchitect-2.0 (+ RepVideo with --repvideo)", pipeline_class="VchitectRepVideoPipeline",
        defaults=vchitect_defaults, size_multiple=16, frame_step=1, fastercache_preset="vchitect-2.0",
        cuda_dtype="bf16", tiny_model="a tiny Vchitect-2.0",
    ),
    "repvideo": _Pipeline(
        title="RepVideo as released (CogVideoX-2B)", pipeline_class="CogVideoXRepVideoPipeline",
        defaults=repvideo_defaults, size_multiple=16, frame_step=8, fastercache_preset="cogvideox",
        cuda_dtype="fp16", tiny_model="a tiny RepVideo (CogVideoX-2B)",
    ),
}
# option -> field of the pipeline defaults it sets
_SETTINGS = {"steps": "num_inference_steps", "frames": "num_frames", "height": "height", "width": "width",
             "guidance": "guidance_scale", "seed": "seed", "fps": "fps", "dynamic_cfg": "use_dynamic_cfg"}


class _PresetAction(argparse.Action):
    """Stores the preset given, or "" for a bare option (the pipeline's preset, known once --pipeline is parsed)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, "" if values is None else values)


def _values(field: str) -> str:
    """`vchitect: 100 (embedded 20); repvideo: 50 (embedded 4)`: one field of the defaults, for the help."""
    parts = []
    for name, pipeline in PIPELINES.items():
        embedded = getattr(pipeline.defaults, "EMBEDDED", pipeline.defaults.SMOKE_TEST)
        official, smoke_test = getattr(pipeline.defaults.OFFICIAL, field), getattr(embedded, field)
        parts.append(f"{name}: {official:g}" + ("" if official == smoke_test else f" (embedded {smoke_test:g})"))
    return "; ".join(parts)


def add_commands(commands) -> None:
    """Adds `generate` to the `vdp` subcommands."""
    generate = commands.add_parser(
        "generate",
        help="text-to-video with Vchitect-2.0 (+ RepVideo) or RepVideo as released (CogVideoX-2B)",
        description=(
            "Generate a video from a text prompt. Without --model it runs the --pipeline's embedded model: for "
            "vchitect (the default) a small Vchitect-2.0 trained briefly on the pack's shapes world (prompts like "
            "'a red circle moving left on a blue background', 48x48; undertrained: flat patches in the world's "
            "colours, not yet the named shape); for repvideo a random-weight smoke-test model whose output is "
            "noise-like. Settings not given are the pipeline's official ones (with --model) or the embedded model's."
        ),
    )
    generate.add_argument("prompt", nargs="?", help="text prompt (from the file with --like)")
    generate.add_argument("--like", metavar="FILE",
                          help="repeat the run that wrote FILE (a video written by vdp generate): its settings fill "
                               "every option not given")
    generate.add_argument("-o", "--output", required=True,
                          help=f"video file to write ({', '.join(SUPPORTED_EXTENSIONS)}); with --vbench a folder")
    generate.add_argument(
        "--vbench", metavar="DIMENSION",
        help="instead of one prompt, the VBench suite's prompts of DIMENSION (`vdp eval prompts --list`): writes the "
             "official file set {prompt}-{i}.mp4 into the -o folder, sample i from seed --seed + i, recorded in "
             "vbench_samples.json; files already there are kept, so a stopped run continues",
    )
    generate.add_argument("--samples", type=int, help="with --vbench: samples a prompt (default: 5, 25 for "
                                                      "temporal_flickering, which the static filter then thins)")
    generate.add_argument("--max-prompts", type=int, metavar="K",
                          help="with --vbench: only the suite's first K prompts of the dimension (a trial run; "
                               "standard-mode scoring needs them all)")
    generate.add_argument(
        "--pipeline", choices=tuple(PIPELINES),
        help="; ".join(f"{name}: {p.title}" for name, p in PIPELINES.items()) + " (default: vchitect)",
    )
    generate.add_argument(
        "--model",
        help="vchitect: folder of a Vchitect-2.0 pipeline (the official Vchitect/Vchitect-2.0-2B download or a "
             "save_pretrained folder); repvideo: the folder `vdp convert repvideo` wrote. A models root holding the "
             "pack's layout works too",
    )
    generate.add_argument("--steps", type=int, help=f"denoising steps ({_values('num_inference_steps')})")
    generate.add_argument("--frames", type=int, help=f"number of frames, 1 + a multiple of 8 for repvideo ({_values('num_frames')})")
    generate.add_argument("--height", type=int, help=f"height in pixels, divisible by 16 ({_values('height')})")
    generate.add_argument("--width", type=int, help=f"width in pixels, divisible by 16 ({_values('width')})")
    generate.add_argument("--seed", type=int, help=f"seed of the initial noise, 0..2**64-1 ({_values('seed')})")
    generate.add_argument("--guidance", type=float, help=f"classifier-free guidance scale ({_values('guidance_scale')})")
    generate.add_argument("--negative-prompt", help="text to steer away from")
    generate.add_argument("--fps", type=float, help=f"frame rate of the written video ({_values('fps')})")
    generate.add_argument("--repvideo", action="store_true", default=None,
                          help="turn on RepVideo cross-layer representation aggregation (repvideo: on as configured)")
    generate.add_argument(
        "--dynamic-cfg", action=argparse.BooleanOptionalAction,
        help="the official per-step guidance ramp (default: off for vchitect, on for repvideo)",
    )
    generate.add_argument(
        "--freeinit", type=int, metavar="N",
        help="FreeInit with N sampling passes (butterworth, d_s = d_t = 0.25, re-noise level chosen for the "
             "schedule); each pass costs the full --steps",
    )
    generate.add_argument(
        "--fastercache", nargs="?", action=_PresetAction, choices=FASTERCACHE_PRESETS, metavar="PRESET",
        help="FasterCache: from about a third of the steps on, reuse attention outputs and rebuild the negative-prompt "
             f"branch from the positive one on planned steps. PRESET: {', '.join(FASTERCACHE_PRESETS)} (default: "
             f"the pipeline's, {', '.join(f'{p.fastercache_preset} for {n}' for n, p in PIPELINES.items())}); write "
             f"--fastercache=PRESET before the prompt",
    )
    add_device_arguments(generate, cuda_dtype_note=" (repvideo: fp16, as released)")
    add_upscale_argument(generate)
    generate.set_defaults(run=functools.partial(_generate, parser=generate))


# the pipeline of a run that names none (and repeats no file with --like)
DEFAULT_PIPELINE = "vchitect"


def fastercache_preset(args):
    """The FasterCache preset the arguments ask for (a bare --fastercache: the pipeline's), or None."""
    if args.fastercache is None:
        return None
    return args.fastercache or PIPELINES[args.pipeline or DEFAULT_PIPELINE].fastercache_preset


# the arguments a written video remembers and `--like` repeats
REMEMBERED = ("pipeline", "prompt", "negative_prompt", "model", "steps", "frames", "height", "width", "seed",
              "guidance", "fps", "repvideo", "dynamic_cfg", "freeinit", "fastercache", "memory", "offload",
              "group_offload_type", "blocks_per_group", "vae_tiling", "vae_slicing", "fp8", "attention_backend", "dtype",
              "upscale")


def check_generate_arguments(args, parser) -> None:
    """Fill in the defaults and check every argument of `vdp generate`; exit with status 2 on the first bad one."""
    if args.vbench is not None:
        _check_vbench_arguments(args, parser)
    elif args.samples is not None or args.max_prompts is not None:
        parser.error(f"argument {'--samples' if args.samples is not None else '--max-prompts'}: only goes with --vbench")
    if args.like is not None:
        apply_like(args, parser, "generate", REMEMBERED)
    if args.prompt is None and args.vbench is None:
        parser.error("the following arguments are required: prompt (or --like FILE)")
    if args.pipeline is None:
        args.pipeline = DEFAULT_PIPELINE
    args.repvideo = bool(args.repvideo)
    pipeline = PIPELINES[args.pipeline]
    defaults = getattr(pipeline.defaults, "EMBEDDED", pipeline.defaults.SMOKE_TEST) if args.model is None \
        else pipeline.defaults.OFFICIAL
    for option, field in _SETTINGS.items():
        if getattr(args, option) is None:
            setattr(args, option, getattr(defaults, field))

    if args.vbench is None:
        check_output(parser, args.output, args.fps)
    else:  # a file in the folder (or the nearest folder that exists) stands for the videos
        check_output(parser, os.path.join(args.vbench_folder, "x.mp4"), args.fps)
    check_upscale_argument(args, parser, output=args.output if args.vbench is None else "x.mp4")
    for name in ("height", "width"):
        value = getattr(args, name)
        if value <= 0:
            parser.error(f"argument --{name}: {name}={value} must be > 0")
        if value % pipeline.size_multiple:
            parser.error(f"argument --{name}: {name}={value} must be divisible by {pipeline.size_multiple}")
    check_at_least(parser, "frames", args.frames)
    if (args.frames - 1) % pipeline.frame_step:
        parser.error(f"argument --frames: frames={args.frames} must be 1 + a multiple of {pipeline.frame_step} for "
                     f"--pipeline {args.pipeline} (its VAE encodes 4 frames in one and decodes an odd number of "
                     f"latent frames exactly), e.g. {pipeline.defaults.OFFICIAL.num_frames}")
    check_at_least(parser, "steps", args.steps)
    if args.vbench is None:
        check_prompt_argument(parser, "prompt", args.prompt)
    check_seed(parser, args.seed)
    if args.vbench is not None and args.seed + args.samples > 2**64:
        parser.error(f"argument --seed: seed={args.seed} + samples={args.samples} must be <= 2**64 (sample i uses seed + i)")
    check_finite(parser, "guidance", args.guidance)
    if args.dynamic_cfg and args.guidance < 0:
        parser.error(f"argument --guidance: guidance={args.guidance} must be >= 0 with --dynamic-cfg")
    if args.freeinit is not None and not 1 <= args.freeinit <= MAX_FREEINIT_ITERS:
        parser.error(f"argument --freeinit: freeinit={args.freeinit} must be in 1..{MAX_FREEINIT_ITERS} (the number "
                     "of sampling passes; the FreeInit paper uses up to 5)")
    if args.model is not None:
        args.model = str(_pipeline_folder(args.model, pipeline, parser))
    check_steps(parser, args.steps, args.model, pipeline.max_steps)


def _check_vbench_arguments(args, parser) -> None:
    """--vbench, --samples, --max-prompts and the -o folder (torch-free); fills --samples' default."""
    from ..evaluation.vbench.sampling import default_samples
    from ..evaluation.vbench.suite import FLICKER_SAMPLES_PER_PROMPT, prompts, suite_dimensions

    if args.vbench not in suite_dimensions():
        parser.error(f"argument --vbench: dimension='{args.vbench}' is not a VBench dimension; allowed: "
                     f"{', '.join(suite_dimensions())}")
    if args.prompt is not None:
        parser.error(f"argument prompt: --vbench takes the suite's prompts of {args.vbench}; give no prompt "
                     f"(got {args.prompt!r})")
    if args.like is not None:
        parser.error("argument --like: repeats one video; it does not go with --vbench")
    if args.samples is None:
        args.samples = default_samples(args.vbench)
    if not 1 <= args.samples <= FLICKER_SAMPLES_PER_PROMPT:
        parser.error(f"argument --samples: samples={args.samples} must be in 1..{FLICKER_SAMPLES_PER_PROMPT}")
    count = len(prompts(args.vbench))
    if args.max_prompts is not None and not 1 <= args.max_prompts:
        parser.error(f"argument --max-prompts: max_prompts={args.max_prompts} must be >= 1 ({args.vbench} has "
                     f"{count} prompts)")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"argument -o/--output: output='{args.output}' exists and is not a folder (--vbench writes a "
                     "folder of videos)")
    parent = os.path.abspath(args.output)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        parser.error(f"argument -o/--output: output='{args.output}' cannot be written (no write access to '{parent}')")
    args.vbench_folder = parent


def _converted_name(entry) -> str:
    """The folder name the manifest's conversion command writes the converted weights to (its -o)."""
    words = shlex.split(entry.conversion_command)
    return Path(words[words.index("-o") + 1]).name


def _pipeline_folder(model: str, pipeline: _Pipeline, parser) -> Path:
    """The pipeline folder --model designates: a diffusers folder, a folder holding the pack's layout (ComfyUI's, its
    models folder, a models root), or the manifest name of weights in the default root."""
    from ..weights.manifest import find_local_folder, load_manifest

    entry = load_manifest().entry_for_class(pipeline.pipeline_class)
    if entry.conversion_command is not None:
        # the released weights need converting: the pipeline loads the folder the converter writes beside them
        command = f"`{entry.conversion_command}`"
        name = _converted_name(entry)
        entry = dataclasses.replace(entry, name=name, comfyui_folder=f"{entry.comfyui_folder.rsplit('/', 1)[0]}/{name}")
        puts = f"{command} writes the converted weights to {entry.folder_in(default_models_root())}"
    else:
        command = f"`{entry.download_command()}`"
        puts = f"{command} puts the official weights in {entry.folder_in(default_models_root())}"
    path = Path(model)
    if not path.is_dir():
        default_folder = entry.folder_in(default_models_root())
        named = model.lower() == entry.name.lower()
        if named and (default_folder / "model_index.json").is_file():
            return default_folder
        hint = f" (the {entry.name} weights are not in {default_folder}: {command})" if named else ""
        parser.error(f"argument --model: model='{path}' is not a folder{hint}")
    try:
        return find_local_folder(path, entry)
    except FileNotFoundError:
        parser.error(
            f"argument --model: model='{path}' has no model_index.json (expected a diffusers pipeline folder, or "
            f"a folder holding {entry.comfyui_folder} as ComfyUI does; {puts})"
        )


def _load_vchitect(folder: str, dtype):
    from ..diffusers_pipelines.vchitect import VchitectRepVideoPipeline

    return VchitectRepVideoPipeline.from_pretrained(folder, dtype=dtype)


def _build_vchitect():
    from ..diffusers_pipelines.vchitect.embedded import load_embedded_vchitect_pipeline

    return load_embedded_vchitect_pipeline()


def _load_repvideo(folder: str, dtype):
    from ..diffusers_pipelines.repvideo import CogVideoXRepVideoPipeline

    return CogVideoXRepVideoPipeline.from_pretrained(folder, dtype=dtype)


def _build_repvideo():
    from ..diffusers_pipelines.repvideo.tiny import (
        build_tiny_cogvideox_repvideo_pipeline,
    )

    return build_tiny_cogvideox_repvideo_pipeline()


_LOADERS = {"vchitect": (_load_vchitect, _build_vchitect), "repvideo": (_load_repvideo, _build_repvideo)}
_REAL_WEIGHTS_ADVICE = {
    "vchitect": "For real videos download the official weights (vdp download Vchitect-2.0-2B) and pass --model "
                "Vchitect-2.0-2B.",
    "repvideo": "For real videos download the released weights (vdp download RepVideo), convert them (vdp convert "
                "repvideo) and pass --model with the converted folder.",
}


def _generate(args, parser) -> int:
    check_generate_arguments(args, parser)
    if args.vbench is not None:  # a folder another run began is refused before the pipeline loads
        _check_vbench_folder(args, parser)
        if vbench_complete(args):  # nothing to sample: no model loads
            return _generate_vbench(args, parser, None, fastercache_preset(args), None)
    pipe, preset, upscaler = prepare_pipeline(args, parser)
    if args.vbench is not None:
        return _generate_vbench(args, parser, pipe, preset, upscaler)
    frames, upscaled = sample_frames(args, parser, pipe, args.prompt, args.seed, upscaler)
    write_output(args.output, frames, args.fps,
                 run_settings(args, "generate", REMEMBERED, fastercache=preset, **upscaled))
    return 0


def _vbench_settings(args, preset, upscaler) -> dict:
    settings = run_settings(args, "generate", REMEMBERED, fastercache=preset,
                            **(upscaler_settings(upscaler) if upscaler is not None else {}))
    settings.pop("prompt", None)  # each video records its own prompt and seed
    return settings


def vbench_complete(args) -> bool:
    """Whether every video of the --vbench run is already in its -o folder (False with --upscale, whose settings
    are known once the upscaler loads)."""
    from ..evaluation.vbench import sampling

    if args.upscale is not None:
        return False

    planned = sampling.plan(args.vbench, args.samples, args.seed, args.max_prompts)
    return all(os.path.isfile(os.path.join(args.output, video.file_name)) for video in planned)


def _check_vbench_folder(args, parser) -> None:
    """Exit 1 when the -o folder holds videos of a run with other settings or seeds (before any model loads)."""
    from ..evaluation.vbench import sampling

    if args.upscale is not None:  # the upscaler's settings are known once it loads; generate() checks then
        return
    planned = sampling.plan(args.vbench, args.samples, args.seed, args.max_prompts)
    try:
        sampling.check_folder(planned, args.output, _vbench_settings(args, fastercache_preset(args), None))
    except ValueError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")


def _generate_vbench(args, parser, pipe, preset, upscaler) -> int:
    """The official file set of --vbench's prompts in the -o folder (`evaluation.vbench.sampling`)."""
    from ..evaluation.vbench import sampling

    planned = sampling.plan(args.vbench, args.samples, args.seed, args.max_prompts)
    settings = _vbench_settings(args, preset, upscaler)

    def sample(prompt, seed):
        return sample_frames(args, parser, pipe, prompt, seed, upscaler)[0]

    try:
        done = sampling.generate(planned, args.output, sample, fps=args.fps, settings=settings,
                                 progress=lambda line: print(f"vdp generate --vbench {args.vbench}: {line}",
                                                             file=sys.stderr, flush=True))
    except ValueError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(f"{args.output}: {len(done['written'])} video(s) written, {len(done['kept'])} already there "
          f"({len(planned)} = {len(planned) // args.samples} prompt(s) x {args.samples} of {args.vbench}); "
          f"seeds in {os.path.join(args.output, sampling.RECORD_NAME)}")
    return 0


def prepare_pipeline(args, parser):
    """(pipeline with the switches of `args` applied, FasterCache preset or None, upscaler or None), for checked
    `args`."""
    pipeline = PIPELINES[args.pipeline]
    args.cuda_dtype = pipeline.cuda_dtype
    device, dtype = device_and_dtype(args, parser)
    upscaler = None if args.upscale is None else load_upscaler(parser, args.upscale, device)
    if args.model is None and args.pipeline == "vchitect":
        embedded_notice(vchitect_defaults.EMBEDDED_DESCRIPTION, _REAL_WEIGHTS_ADVICE[args.pipeline])
    elif args.model is None:
        smoke_test_notice(pipeline.tiny_model, f"Its output is noise-like, not a real video. "
                                               f"{_REAL_WEIGHTS_ADVICE[args.pipeline]}")
    load, build = _LOADERS[args.pipeline]
    check_memory_before_loading(parser, args.model, device, dtype, args.frames, args.height, args.width)
    pipe = load_or_embedded(parser, args.model, load, build, dtype)
    place_pipeline(pipe, args, parser, device)
    if args.repvideo:
        pipe.transformer.enable_repvideo()
    if args.freeinit is not None:
        from ..hooks.free_init import FreeInitConfig, apply_free_init

        apply_free_init(pipe, FreeInitConfig(num_iters=args.freeinit))
    preset = fastercache_preset(args)
    if preset is not None:
        from ..hooks.faster_cache import FasterCacheConfig, apply_faster_cache

        apply_faster_cache(pipe, FasterCacheConfig.preset(preset))
    return pipe, preset, upscaler


def sample_frames(args, parser, pipe, prompt: str, seed: int, upscaler=None):
    """(frames [F,H,W,3] in 0..1, upscaler settings) of one video of `prompt` from `seed` with the settings of
    `args`."""
    import torch

    extra = {}
    if args.pipeline == "repvideo":  # T5 is cut to the transformer's text positions (226 for the released model)
        extra["max_sequence_length"] = pipe.transformer.config.max_text_seq_length
    output = call_pipeline(
        parser, pipe, {"prompt": "prompt"},
        prompt=prompt,
        negative_prompt=args.negative_prompt,
        height=args.height,
        width=args.width,
        num_frames=args.frames,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        use_dynamic_cfg=args.dynamic_cfg,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
        **extra,
    )
    frames, upscaled = output.frames[0], {}
    if upscaler is not None:
        frames, upscaled = upscale_frames(frames, upscaler, prog="vdp generate"), upscaler_settings(upscaler)
    return frames, upscaled
