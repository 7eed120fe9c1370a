"""The `vdp download` and `vdp info` commands: the official weights, fetched and verified into the pack's layout, and
the versions, devices and weights found locally.
"""

import contextlib
import functools
import os
import platform
import signal
import sys
from pathlib import Path

from .. import __version__
from ..weights.manifest import (
    DEFAULT_MODELS_DIR,
    MODELS_DIR_VARIABLE,
    default_models_root,
)
from ._common import INTERRUPTED_STATUS


def add_commands(commands) -> None:
    """Adds `info` and `download` to the `vdp` subcommands."""
    info = commands.add_parser("info", help="versions, devices and the official weights found locally")
    info.add_argument("file", nargs="?", help="a video written by vdp: print the settings of the run that wrote it")
    info.set_defaults(run=_info)

    download = commands.add_parser(
        "download",
        help="download official weights from the Hugging Face Hub, verified, into the pack's folder layout",
        description=(
            "Download a checkpoint of the weights manifest (and the checkpoints it is used with) from the Hugging Face "
            "Hub (VBench's evaluator checkpoints: from the URLs the manifest gives), check every file's size and hash, and place it in <models root>/<kind>/<name>/, the layout of "
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


def _info(args) -> int:
    if getattr(args, "file", None) is not None:
        return _video_info(args.file)
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
    hub_cache = _hub_cache_snapshots({entry.repo_id for entry in manifest if entry.repo_id is not None})
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
    from ..weights import (
        WeightsDownloadError,
        comfyui_models_root,
        download_entry,
        load_manifest,
        missing_dimensions,
        missing_pack_classes,
    )

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
    if args.revision is not None and entry.repo_id is None:
        parser.error(f"argument --revision: {entry.name} is downloaded from {entry.source}, not a Hub repository, "
                     "so it has no revisions")
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
            f"{item.name}: {report.file_count} files verified against {item.source} at commit {report.commit} "
            f"({', '.join(parts)})",
            file=sys.stderr,
        )
        if report.removed_partial_bytes:
            print(f"{item.name}: removed {report.removed_partial_bytes} bytes of partial files left by an interrupted "
                  f"download", file=sys.stderr)
        if item.conversion_description is not None:
            step = f"`{item.conversion_command}`" if item.conversion_command else "the converter is planned, not in this version"
            print(f"{item.name}: before use: {item.conversion_description} ({step})", file=sys.stderr)
        not_yet = missing_pack_classes(item) + missing_dimensions(item)
        if not_yet:
            print(f"{item.name}: the pack classes or VBench dimensions that use these weights ({', '.join(not_yet)}) are planned, "
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
        os._exit(INTERRUPTED_STATUS)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _list_weights(manifest, root: Path, comfyui_models) -> int:
    """`vdp download --list`: one line per entry with its state in `root`, then its folder and what to do."""
    from ..weights import VERIFIED, local_state, missing_dimensions, missing_pack_classes

    print(f"weights in {root}/<kind>/<name>/ ({len(manifest)} entries of {manifest.path}):")
    header = ["NAME", "STATE", "HUB REPO / HOST", "DOWNLOAD", "LICENCE", "GATED", "PACK CODE"]
    rows = []
    for entry in manifest:
        state = local_state(entry, entry.folder_in(root))
        size = f"~{entry.approximate_download_gb:g} GB" if entry.approximate_download_gb is not None else "?"
        gated = {True: "yes", False: "no", None: "?"}[entry.gated]
        planned = missing_pack_classes(entry) or (entry.evaluates and len(missing_dimensions(entry)) == len(entry.evaluates))
        pack_code = "planned" if planned else "available"
        source = entry.repo_id or entry.urls[0].url.split("/")[2]  # a Hub repo, or the host of the URLs
        rows.append((entry, state, [entry.name, state.status, source, size, entry.licence or "?", gated, pack_code]))
    widths = [max(len(cells[column]) for cells in [header] + [row[2] for row in rows]) for column in range(len(header))]
    print("  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip())
    for entry, state, cells in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
        action = "" if state.status == VERIFIED else f"; get it with `{entry.download_command(comfyui_models)}`"
        print(f"    {state.folder}: {state.detail}{action}")
    return 0


def _video_info(path) -> int:
    """Prints the settings a video written by vdp carries (one `name: value` a line); exit 1 when it has none."""
    import json

    from ..video_io import read_video_metadata

    try:
        settings = read_video_metadata(path)
    except (OSError, ValueError) as error:
        print(f"vdp info: error: {error}", file=sys.stderr)
        return 1
    if not settings:
        print(f"vdp info: error: '{path}' carries no vdp settings (it was not written by vdp generate)", file=sys.stderr)
        return 1
    for name, value in settings.items():
        print(f"{name}: {json.dumps(value, ensure_ascii=False)}")
    return 0
