"""The weights manifest: every official checkpoint the pack can use, read from ``weights_manifest.json``.

An entry says where a checkpoint is on the Hub (repo, pinned revision, files to fetch) or, for checkpoints
published elsewhere (VBench's evaluators), at which URLs (a file, or a member of a zip archive), how to check
it (sizes and sha256 where known), where it goes on disk (``<models root>/<kind>/<name>``, the same
layout as ComfyUI's ``models/video_diffusion_pack/``) and which class of the pack loads it.
"""

import difflib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = PACKAGE_ROOT / "weights_manifest.json"
SCHEMA_PATH = PACKAGE_ROOT / "weights_manifest.schema.json"

# The pack's sub-folder of ComfyUI's models folder, holding one folder per kind of weights.
MODELS_SUBFOLDER = "video_diffusion_pack"
# Where the pack looks for downloaded weights outside ComfyUI: $VDP_MODELS_DIR/<kind>/<name>/.
MODELS_DIR_VARIABLE = "VDP_MODELS_DIR"
DEFAULT_MODELS_DIR = Path("models") / MODELS_SUBFOLDER


@dataclass(frozen=True)
class ManifestFile:
    """A file an entry's folder must hold; ``size`` (bytes) and ``sha256`` are None until verified."""

    path: str
    size: Optional[int]
    sha256: Optional[str]


@dataclass(frozen=True)
class UrlFile:
    """Where a file of an entry without a Hub repository is downloaded from: the content at ``url``, or the member
    ``archive_member`` of the zip archive there."""

    path: str
    url: str
    archive_member: Optional[str] = None


@dataclass(frozen=True)
class WeightsEntry:
    """One checkpoint of the manifest (the fields are documented in ``weights_manifest.schema.json``)."""

    name: str
    description: str
    repo_id: Optional[str]
    revision: Optional[str]
    allow_patterns: Tuple[str, ...]
    files: Tuple[ManifestFile, ...]
    approximate_download_gb: Optional[float]
    licence: Optional[str]
    gated: Optional[bool]
    pack_classes: Tuple[str, ...]
    layout_format: str
    layout_description: str
    comfyui_folder: str
    requires: Tuple[str, ...]
    conversion_description: Optional[str]
    conversion_command: Optional[str]
    notes: str
    urls: Tuple[UrlFile, ...] = ()
    evaluates: Tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """The Hub repo id, or the URL of the first file for an entry published at URLs."""
        return self.repo_id if self.repo_id is not None else self.urls[0].url

    @property
    def kind(self) -> str:
        """The kind folder, e.g. ``"vchitect"`` for ``models/video_diffusion_pack/vchitect/Vchitect-2.0-2B``."""
        return self.comfyui_folder.split("/")[2]

    def folder_in(self, models_root: Union[str, Path]) -> Path:
        """The entry's folder under a models root (a folder holding ``<kind>/<name>/``)."""
        return Path(models_root) / self.kind / self.name

    def download_command(self, comfyui_models: Union[str, Path, None] = None) -> str:
        """The exact ``vdp download`` command that puts this entry in place.

        Args:
            comfyui_models (`str` or `Path`, *optional*): ComfyUI's ``models`` folder; without it the command
                downloads into the default models root (``$VDP_MODELS_DIR`` or ``./models/video_diffusion_pack``).
        """
        command = f"vdp download {shlex.quote(self.name)}"
        if comfyui_models is not None:
            command += f" --comfyui-models {shlex.quote(str(comfyui_models))}"
        return command


class UnknownEntryError(KeyError):
    """A name that is not in the manifest; the message lists the names there are."""

    def __str__(self) -> str:
        return str(self.args[0])


class Manifest:
    """The entries of a weights manifest, looked up by name (any case) or by Hub repo id."""

    def __init__(self, entries: List[WeightsEntry], path: Path):
        self.path = path
        self.entries: Dict[str, WeightsEntry] = {entry.name: entry for entry in entries}

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> List[str]:
        return list(self.entries)

    def get(self, name: str) -> WeightsEntry:
        """The entry called ``name`` (case-insensitive) or whose Hub repo id is ``name``.

        Raises:
            UnknownEntryError: naming the value, the entries there are and the closest one.
        """
        for entry in self.entries.values():
            if name.lower() in (entry.name.lower(), (entry.repo_id or entry.name).lower()):
                return entry
        close = difflib.get_close_matches(name.lower(), [n.lower() for n in self.entries], n=1)
        hint = ""
        if close:
            hint = f" Did you mean {next(n for n in self.entries if n.lower() == close[0])!r}?"
        raise UnknownEntryError(f"name={name!r} is not in {self.path.name}; choose one of: {', '.join(self.entries)}.{hint}")

    def entry_for_class(self, class_name: str) -> WeightsEntry:
        """The first entry whose ``pack_classes`` name ``class_name`` (the class's official weights)."""
        for entry in self.entries.values():
            if class_name in entry.pack_classes:
                return entry
        raise UnknownEntryError(f"no entry of {self.path.name} names the pack class {class_name!r}")

    def with_requirements(self, entry: WeightsEntry) -> List[WeightsEntry]:
        """``entry``'s required entries (recursively, each once) followed by ``entry`` itself.

        Raises:
            ValueError: the entries require each other in a cycle (`load_manifest` refuses such a manifest).
        """
        return _requirement_order(self.entries, entry, self.path)


def _requirement_order(entries: Dict[str, WeightsEntry], entry: WeightsEntry, path: Path) -> List[WeightsEntry]:
    """``entry``'s required entries (recursively, each once), then ``entry``; refuses a cycle, naming its entries."""
    ordered: List[WeightsEntry] = []

    def visit(current: WeightsEntry, chain: Tuple[str, ...]) -> None:
        if current.name in chain:
            cycle = chain[chain.index(current.name):] + (current.name,)
            raise ValueError(f"{path}: entries require each other in a cycle: {' -> '.join(cycle)}; remove one of "
                             f"these requirements")
        for required in current.requires:
            visit(entries[required], chain + (current.name,))
        if current not in ordered:
            ordered.append(current)

    visit(entry, ())
    return ordered


def _entry_from_json(item: dict) -> WeightsEntry:
    conversion = item["conversion"] or {}
    return WeightsEntry(
        name=item["name"],
        description=item["description"],
        repo_id=item["repo_id"],
        revision=item["revision"],
        allow_patterns=tuple(item["allow_patterns"]),
        files=tuple(ManifestFile(path=f["path"], size=f["size"], sha256=f["sha256"]) for f in item["files"]),
        approximate_download_gb=item["approximate_download_gb"],
        licence=item["licence"],
        gated=item["gated"],
        pack_classes=tuple(item["pack_classes"]),
        layout_format=item["layout"]["format"],
        layout_description=item["layout"]["description"],
        comfyui_folder=item["comfyui_folder"],
        requires=tuple(item["requires"]),
        conversion_description=conversion.get("description"),
        conversion_command=conversion.get("command"),
        notes=item["notes"],
        urls=tuple(UrlFile(path=u["path"], url=u["url"], archive_member=u.get("archive_member")) for u in item.get("urls", ())),
        evaluates=tuple(item.get("evaluates", ())),
    )


def _check_consistency(entries: List[WeightsEntry], path: Path) -> None:
    """What the JSON schema cannot say: unique names, folders that match names, known requirements without cycles,
    covered files."""
    from huggingface_hub.utils import filter_repo_objects

    seen = set()
    for entry in entries:
        if entry.name.lower() in seen:
            raise ValueError(f"{path}: entry name {entry.name!r} appears twice (names are compared without case)")
        seen.add(entry.name.lower())
        if Path(entry.comfyui_folder).name != entry.name:
            raise ValueError(
                f"{path}: entry {entry.name!r} has comfyui_folder={entry.comfyui_folder!r}; its last part must be the name"
            )
        for file in entry.files:
            if not list(filter_repo_objects([file.path], allow_patterns=list(entry.allow_patterns))):
                raise ValueError(
                    f"{path}: entry {entry.name!r} lists file {file.path!r}, which none of its allow_patterns "
                    f"{list(entry.allow_patterns)} fetches"
                )
        if not entry.pack_classes and not entry.evaluates:
            raise ValueError(f"{path}: entry {entry.name!r} names no pack class and no VBench dimension (evaluates)")
        by_path = [url.path for url in entry.urls]
        if entry.urls and sorted(by_path) != sorted(file.path for file in entry.files):
            raise ValueError(
                f"{path}: entry {entry.name!r} has urls for {sorted(by_path)} but lists the files "
                f"{sorted(file.path for file in entry.files)}; every file needs exactly one URL"
            )
    names = {entry.name for entry in entries}
    for entry in entries:
        unknown = [name for name in entry.requires if name not in names]
        if unknown:
            raise ValueError(f"{path}: entry {entry.name!r} requires {unknown}, which are not entries of the manifest")
    by_name = {entry.name: entry for entry in entries}
    for entry in entries:
        _requirement_order(by_name, entry, path)


def load_manifest(path: Union[str, Path, None] = None) -> Manifest:
    """Reads and validates a weights manifest (by default the one shipped with the pack).

    Args:
        path (`str` or `Path`, *optional*): another manifest file in the same format, e.g. one with newer revisions.

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: the path is a folder.
        ValueError: the file is not UTF-8 JSON, or does not follow ``weights_manifest.schema.json`` (the message names
            the entry and field), or is inconsistent (duplicate names, unknown or cyclic requirements, files no pattern
            fetches).
    """
    import jsonschema

    path = Path(path) if path is not None else MANIFEST_PATH
    if path.is_dir():
        raise IsADirectoryError(
            f"weights manifest {str(path)!r} is a folder, not a file; give the manifest's .json file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"weights manifest {str(path)!r} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"weights manifest {str(path)!r} is not UTF-8 text (JSON): {error.reason} at byte "
                         f"{error.start}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"weights manifest {str(path)!r} is not valid JSON: {error}") from None
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
    if error is not None:
        location = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ValueError(f"weights manifest {str(path)!r} does not follow {SCHEMA_PATH.name} at {location}: {error.message}")
    entries = [_entry_from_json(item) for item in document["entries"]]
    _check_consistency(entries, path)
    return Manifest(entries, path)


def missing_pack_classes(entry: WeightsEntry) -> List[str]:
    """The entry's pack classes that this version of the pack does not have yet.

    Checked without importing them (so instantly): a class counts as present when the package exports its name and
    the module that defines it is there.
    """
    from .. import _LAZY_EXPORTS

    missing = []
    for name in entry.pack_classes:
        module = _LAZY_EXPORTS.get(name)
        module_path = PACKAGE_ROOT.joinpath(*module.lstrip(".").split(".")) if module is not None else None
        if module_path is None or not (module_path.with_suffix(".py").is_file() or (module_path / "__init__.py").is_file()):
            missing.append(name)
    return missing


def missing_dimensions(entry: WeightsEntry) -> List[str]:
    """The VBench dimensions of ``entry.evaluates`` that this version of the pack does not compute yet (found
    without importing torch)."""
    from ..evaluation.vbench.registry import available_dimensions

    available = set(available_dimensions())
    return [name for name in entry.evaluates if name not in available]


def default_models_root() -> Path:
    """``$VDP_MODELS_DIR`` when set, else ``./models/video_diffusion_pack``: the root of ``<kind>/<name>/`` folders."""
    return Path(os.environ.get(MODELS_DIR_VARIABLE) or DEFAULT_MODELS_DIR)


def comfyui_models_root(comfyui_models: Union[str, Path]) -> Path:
    """The pack's models root inside ComfyUI's ``models`` folder: ``<comfyui_models>/video_diffusion_pack``.

    Raises:
        ValueError: ``comfyui_models`` is not a folder, or is ComfyUI's own folder rather than its ``models`` folder.
    """
    folder = Path(comfyui_models)
    if not folder.is_dir():
        raise ValueError(f"comfyui_models='{folder}' is not a folder; pass ComfyUI's models folder (ComfyUI/models)")
    if (folder / "models").is_dir() and (folder / "custom_nodes").is_dir():
        raise ValueError(
            f"comfyui_models='{folder}' is ComfyUI's own folder; pass its models folder: '{folder / 'models'}'"
        )
    return folder / MODELS_SUBFOLDER


def find_local_folder(path: Union[str, Path], entry: WeightsEntry, marker: str = "model_index.json") -> Path:
    """The folder of ``entry`` that ``path`` designates, in any of the layouts the pack writes.

    ``path`` may be the entry's folder itself (a diffusers folder holding ``marker``), ComfyUI's folder, its
    ``models`` folder, or a models root holding ``<kind>/<name>/`` (``models/video_diffusion_pack``).

    Raises:
        FileNotFoundError: no layout matches; the message lists the places looked at and the download command.
    """
    path = Path(path)
    candidates = [
        path,
        path / entry.kind / entry.name,
        path / MODELS_SUBFOLDER / entry.kind / entry.name,
        path / "models" / MODELS_SUBFOLDER / entry.kind / entry.name,
    ]
    for candidate in candidates:
        if (candidate / marker).is_file():
            return candidate
    looked_at = ", ".join(f"'{candidate / marker}'" for candidate in candidates)
    raise FileNotFoundError(
        f"'{path}' holds no {entry.name} folder: looked for {looked_at}. It may be a diffusers folder with "
        f"{marker}, ComfyUI's models folder or a models root with {entry.kind}/{entry.name}/; download it with "
        f"`{entry.download_command()}`"
    )
