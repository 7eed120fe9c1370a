"""The `vdp` command: generate a video from a prompt, download the official weights, report versions and weights.

``vdp generate`` checks every argument before it imports torch or loads a model, and exits with
status 2 and a one-line message naming the argument and its value when one is wrong.
"""

import argparse
import contextlib
import functools
import math
import os
import platform
import signal
import sys
from pathlib import Path

from .. import __version__
from ..video_io import SUPPORTED_EXTENSIONS, check_video_output
from ..weights.manifest import DEFAULT_MODELS_DIR, MODELS_DIR_VARIABLE, default_models_root

# Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
_INTERRUPTED_STATUS = 130

# Settings of the official Vchitect-2.0 inference script (5 s at 8 fps).
OFFICIAL_DEFAULTS = dict(steps=100, height=432, width=768, frames=40, guidance=7.5)
# Settings for the embedded smoke-test model, small enough to finish in well under a minute on a 2-core CPU.
SMOKE_TEST_DEFAULTS = dict(steps=8, height=64, width=64, frames=8, guidance=7.5)

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Frame sizes must be multiples of the VAE's 8x downsampling times the transformer's 2x2 patches, as the
# pipeline checks; repeated here so that the check runs before torch is imported.
_SIZE_MULTIPLE = 16
# FasterCache presets (hooks/faster_cache.py FASTER_CACHE_PRESETS), repeated so that --fastercache is checked
# before torch is imported; the first is what a bare --fastercache uses.
_FASTERCACHE_PRESETS = ("vchitect-2.0", "cogvideox", "default")


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`vdp generate: error: ...`) and exit with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The `vdp` argument parser with its subcommands (generate, info, download, das, track-video)."""
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
    generate.add_argument(
        "--freeinit", type=int, metavar="N",
        help="FreeInit with N sampling passes (butterworth, d_s = d_t = 0.25, re-noise level chosen for the "
             "schedule); each pass costs the full --steps",
    )
    generate.add_argument(
        "--fastercache", nargs="?", const=_FASTERCACHE_PRESETS[0], choices=_FASTERCACHE_PRESETS, metavar="PRESET",
        help="FasterCache: from about a third of the steps on, reuse attention outputs and rebuild the negative-prompt branch "
             f"from the positive one on planned steps. PRESET: {', '.join(_FASTERCACHE_PRESETS)} (default: "
             f"{_FASTERCACHE_PRESETS[0]}); write --fastercache=PRESET before the prompt",
    )
    generate.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    generate.add_argument("--dtype", choices=tuple(_DTYPES), help="default: bf16 on cuda, fp32 on cpu")
    generate.set_defaults(run=functools.partial(_generate, parser=generate))

    info = commands.add_parser("info", help="versions, devices and the official weights found locally")
    info.set_defaults(run=_info)

    download = commands.add_parser(
        "download",
        help="download official weights from the Hugging Face Hub, verified, into the pack's folder layout",
        description=(
            "Download a checkpoint of the weights manifest (and the checkpoints it is used with) from the Hugging Face "
            "Hub, check every file's size and hash, and place it in <models root>/<kind>/<name>/, the layout of "
            "ComfyUI/models/video_diffusion_pack/. Files already there are kept when they match and never replaced "
            "when they differ, unless --overwrite. Gated repositories need HF_TOKEN (or `hf auth login`)."
        ),
    )
    download.add_argument("name", nargs="?", metavar="NAME", help="entry of the weights manifest (see --list); its Hub repo id works too")
    download.add_argument("--list", action="store_true", help="show every entry as missing, present or verified (offline)")
    target = download.add_mutually_exclusive_group()
    target.add_argument("--dest", help="folder to put NAME in, instead of the layout (its required entries are not fetched)")
    target.add_argument(
        "--comfyui-models",
        help=f"ComfyUI's models folder: use ComfyUI/models/video_diffusion_pack/<kind>/<name>/ (default: "
             f"${MODELS_DIR_VARIABLE}/<kind>/<name>/, or {DEFAULT_MODELS_DIR}/<kind>/<name>/ without the variable)",
    )
    download.add_argument("--revision", help="branch, tag or commit to take instead of the manifest's pinned revision")
    download.add_argument("--overwrite", action="store_true", help="replace files that differ from the Hub's (listed first)")
    download.add_argument("--manifest", help="another weights manifest in the same format (default: the pack's)")
    download.set_defaults(run=functools.partial(_download, parser=download))

    from .das import add_commands as add_das_commands

    add_das_commands(commands)

    from .inpaint import add_commands as add_inpaint_commands

    add_inpaint_commands(commands)

    from .convert import add_commands as add_convert_commands

    add_convert_commands(commands)
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
    if args.freeinit is not None and args.freeinit < 1:
        parser.error(f"argument --freeinit: freeinit={args.freeinit} must be >= 1 (the number of sampling passes)")
    if args.model is not None:
        args.model = str(_pipeline_folder(args.model, parser))


def _pipeline_folder(model: str, parser) -> Path:
    """The Vchitect-2.0 pipeline folder --model designates: a diffusers folder, a folder holding the pack's layout
    (ComfyUI's, its models folder, a models root), or the manifest name of weights downloaded into the default root."""
    from ..weights.manifest import find_local_folder, load_manifest

    entry = load_manifest().entry_for_class("VchitectRepVideoPipeline")
    path = Path(model)
    if not path.is_dir():
        default_folder = entry.folder_in(default_models_root())
        if model.lower() == entry.name.lower() and (default_folder / "model_index.json").is_file():
            return default_folder
        hint = f" (the {entry.name} weights are not in {default_folder}: `{entry.download_command()}`)" if (
            model.lower() == entry.name.lower()) else ""
        parser.error(f"argument --model: model='{path}' is not a folder{hint}")
    try:
        return find_local_folder(path, entry)
    except FileNotFoundError:
        parser.error(
            f"argument --model: model='{path}' has no model_index.json (expected a diffusers pipeline folder, or "
            f"a folder holding {entry.comfyui_folder} as ComfyUI does; `{entry.download_command()}` puts the "
            f"official weights in {entry.folder_in(default_models_root())})"
        )


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

    from ..diffusers_pipelines.vchitect_repvideo import VchitectRepVideoPipeline
    from ..diffusers_pipelines.vchitect_repvideo.tiny import build_tiny_vchitect_pipeline
    from ..video_io import write_video

    if args.model is None:
        print(
            "vdp: no --model given, so this runs the embedded smoke-test model: a tiny Vchitect-2.0 with random "
            "weights. Its output is noise-like, not a real video. For real videos download the official weights "
            "(vdp download Vchitect-2.0-2B) and pass --model Vchitect-2.0-2B.",
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
    if args.freeinit is not None:
        from ..hooks.free_init import FreeInitConfig, apply_free_init

        apply_free_init(pipe, FreeInitConfig(num_iters=args.freeinit))
    if args.fastercache is not None:
        from ..hooks.faster_cache import FasterCacheConfig, apply_faster_cache

        apply_faster_cache(pipe, FasterCacheConfig.preset(args.fastercache))

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

    from ..weights import MISSING, load_manifest, local_state

    manifest = load_manifest()
    root = default_models_root()
    print(f"official weights ({manifest.path.name}), in {root}/<kind>/<name>/ (set {MODELS_DIR_VARIABLE} to look elsewhere):")
    hub_cache = _hub_cache_snapshots({entry.repo_id for entry in manifest})
    for entry in manifest:
        state = local_state(entry, entry.folder_in(root))
        if state.status == MISSING:
            print(f"  {entry.name}: missing ({state.detail}); get it with `{entry.download_command()}`")
        else:
            print(f"  {entry.name}: {state.status} ({state.detail}): {state.folder}")
        for line in hub_cache.get(entry.repo_id, []):
            print(f"  {entry.name}: in the Hugging Face cache {line}")
    other = _other_pipeline_folders(manifest, root)
    if other:
        print("other pipeline folders:")
        for line in other:
            print(f"  {line}")
    return 0


def _hub_cache_snapshots(repo_ids: set) -> dict:
    """Repo id -> `(size): snapshot folder` lines for the given repos in the Hugging Face cache."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return {}
    snapshots = {}
    for repo in sorted(cache.repos, key=lambda repo: repo.repo_id):
        if repo.repo_type == "model" and repo.repo_id in repo_ids:
            snapshots[repo.repo_id] = [f"({repo.size_on_disk_str}): {revision.snapshot_path}" for revision in repo.revisions]
    return snapshots


def _other_pipeline_folders(manifest, root: Path) -> list:
    """Pipeline folders (with model_index.json) under <root>/<kind>/ that are not manifest entries, as `kind: folder`."""
    names = {entry.name for entry in manifest}
    lines = []
    for kind in sorted({entry.kind for entry in manifest}):
        for index_file in sorted((root / kind).glob("*/model_index.json")):
            if index_file.parent.name not in names:
                lines.append(f"{kind}: {index_file.parent}")
    return lines


def _download(args, parser) -> int:
    from ..weights import WeightsDownloadError, comfyui_models_root, download_entry, load_manifest, missing_pack_classes

    try:
        manifest = load_manifest(args.manifest)
    except (OSError, ValueError) as error:
        parser.error(f"argument --manifest: {error}")
    if args.list and args.name is not None:
        parser.error(f"argument --list: lists every entry and takes no NAME (got name={args.name!r})")
    if args.list and (args.dest is not None or args.revision is not None or args.overwrite):
        parser.error("argument --list: only --comfyui-models and --manifest go with --list")
    if not args.list and args.name is None:
        parser.error(f"argument NAME: give the entry to download (one of: {', '.join(manifest.names)}) or --list")
    root = default_models_root()
    if args.comfyui_models is not None:
        try:
            root = comfyui_models_root(args.comfyui_models)
        except ValueError as error:
            parser.error(f"argument --comfyui-models: {error}")
    if args.list:
        return _list_weights(manifest, root, args.comfyui_models)

    try:
        entry = manifest.get(args.name)
    except KeyError as error:
        parser.error(f"argument NAME: {error}")
    if args.revision is not None and (not args.revision.strip() or args.revision != args.revision.strip()):
        parser.error(f"argument --revision: revision={args.revision!r} must be a branch, tag or commit name")
    if args.dest is not None:
        if Path(args.dest).exists() and not Path(args.dest).is_dir():
            parser.error(f"argument --dest: dest='{args.dest}' is a file, not a folder")
        plan = [(entry, Path(args.dest))]
        if entry.requires:
            required = ", ".join(f"`{manifest.get(name).download_command()}`" for name in entry.requires)
            print(f"vdp download: {entry.name} is used with {', '.join(entry.requires)}, which --dest does not fetch: {required}",
                  file=sys.stderr)
    else:
        plan = [(item, item.folder_in(root)) for item in manifest.with_requirements(entry)]

    for item, folder in plan:
        try:
            with _stop_at_once_on_ctrl_c(parser.prog, item.name):
                report = download_entry(item, folder, revision=args.revision if item is entry else None,
                                        overwrite=args.overwrite)
        except WeightsDownloadError as error:
            parser.exit(1, f"{parser.prog}: error: {error}\n")
        parts = [f"{len(report.fetched)} fetched", f"{len(report.kept)} already there"]
        if report.replaced:
            parts.append(f"{len(report.replaced)} replaced")
        print(
            f"{item.name}: {report.file_count} files verified against {item.repo_id} at commit {report.commit} "
            f"({', '.join(parts)})",
            file=sys.stderr,
        )
        if report.removed_partial_bytes:
            print(f"{item.name}: removed {report.removed_partial_bytes} bytes of partial files left by an interrupted "
                  f"download", file=sys.stderr)
        if item.conversion_description is not None:
            step = f"`{item.conversion_command}`" if item.conversion_command else "the converter is planned, not in this version"
            print(f"{item.name}: before use: {item.conversion_description} ({step})", file=sys.stderr)
        not_yet = missing_pack_classes(item)
        if not_yet:
            print(f"{item.name}: the pack classes that use these weights ({', '.join(not_yet)}) are planned, "
                  f"not in this version", file=sys.stderr)
        print(folder)
    return 0


@contextlib.contextmanager
def _stop_at_once_on_ctrl_c(prog: str, name: str):
    """Ctrl-C ends the process at once with status 130.

    huggingface_hub downloads in worker threads and, on Ctrl-C, would wait for every transfer under way to finish. Ending
    the process is safe: each file is written under a temporary name and renamed into place only once complete.
    """

    def stop(signal_number, frame):
        print(f"{prog}: interrupted during {name}. Finished files are kept and will be verified, not fetched again: "
              f"run the same command to go on.", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(_INTERRUPTED_STATUS)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _list_weights(manifest, root: Path, comfyui_models) -> int:
    """`vdp download --list`: one line per entry with its state in `root`, then its folder and what to do."""
    from ..weights import VERIFIED, local_state, missing_pack_classes

    print(f"weights in {root}/<kind>/<name>/ ({len(manifest)} entries of {manifest.path}):")
    header = ["NAME", "STATE", "HUB REPO", "DOWNLOAD", "LICENCE", "GATED", "PACK CODE"]
    rows = []
    for entry in manifest:
        state = local_state(entry, entry.folder_in(root))
        size = f"~{entry.approximate_download_gb:g} GB" if entry.approximate_download_gb is not None else "?"
        gated = {True: "yes", False: "no", None: "?"}[entry.gated]
        pack_code = "planned" if missing_pack_classes(entry) else "available"
        rows.append((entry, state, [entry.name, state.status, entry.repo_id, size, entry.licence or "?", gated, pack_code]))
    widths = [max(len(cells[column]) for cells in [header] + [row[2] for row in rows]) for column in range(len(header))]
    print("  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip())
    for entry, state, cells in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
        action = "" if state.status == VERIFIED else f"; get it with `{entry.download_command(comfyui_models)}`"
        print(f"    {state.folder}: {state.detail}{action}")
    return 0
