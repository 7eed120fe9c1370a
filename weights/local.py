"""What is on disk for a manifest entry: missing, present or verified, with the record `vdp download` keeps.

After it has checked every file of an entry against the Hub, `vdp download` writes a record
(``<folder>/.cache/video_diffusion_pack/download.json``) with each file's size, hashes and
modification time. An entry is *verified* while every recorded file is unchanged (same size and
modification time) and agrees with the manifest; *present* when the files the manifest lists are
there but nothing vouches for them (for example a folder fetched with another tool); *missing*
otherwise. Checking the record reads no file content, so it is instant and works offline.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from .manifest import MODELS_DIR_VARIABLE, WeightsEntry

RECORD_PATH = Path(".cache") / "video_diffusion_pack" / "download.json"
RECORD_VERSION = 1
_CHUNK_BYTES = 8 * 1024 * 1024

MISSING, PRESENT, VERIFIED = "missing", "present", "verified"


def file_sha256(path: Path) -> str:
    """sha256 of a file's content (what the Hub reports for LFS files), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """git's object id of a file (what the Hub reports as blob id for files stored in git, not LFS)."""
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class RecordedFile:
    """A file as `vdp download` verified it."""

    size: int
    sha256: Optional[str]
    git_blob_sha1: Optional[str]
    mtime_ns: int

    def unchanged(self, path: Path) -> bool:
        """True when ``path`` has the recorded size and modification time (its content is not read)."""
        try:
            stat = path.stat()
        except OSError:
            return False
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


@dataclass(frozen=True)
class DownloadRecord:
    """Which repo and commit a folder was verified against, and its files."""

    repo_id: str
    commit: str
    files: Dict[str, RecordedFile]


def read_record(folder: Path) -> Optional[DownloadRecord]:
    """The folder's download record, or None when there is none or it cannot be read."""
    try:
        document = json.loads((folder / RECORD_PATH).read_text(encoding="utf-8"))
        if document.get("record_version") != RECORD_VERSION:
            return None
        files = {path: RecordedFile(**fields) for path, fields in document["files"].items()}
        return DownloadRecord(repo_id=document["repo_id"], commit=document["commit"], files=files)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(folder: Path, record: DownloadRecord) -> None:
    """Writes the record atomically (temporary file, then rename)."""
    target = folder / RECORD_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "record_version": RECORD_VERSION,
        "repo_id": record.repo_id,
        "commit": record.commit,
        "files": {
            path: {"size": f.size, "sha256": f.sha256, "git_blob_sha1": f.git_blob_sha1, "mtime_ns": f.mtime_ns}
            for path, f in sorted(record.files.items())
        },
    }
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".download.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def not_a_folder_in_the_way(folder: Path) -> Optional[str]:
    """Why ``folder`` cannot be a folder, when it or the nearest of its parents that exists is something else.

    Returns None when that nearest existing path is a folder (``folder`` is there or can be made); else a phrase
    naming the path that is not a folder, and ``$VDP_MODELS_DIR`` when the variable names it.
    """
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            return None
        if candidate.exists() or candidate.is_symlink():
            phrase = f"'{candidate}' is not a folder"
            named = os.environ.get(MODELS_DIR_VARIABLE)
            if named and Path(named) == candidate:
                phrase += f" (it is ${MODELS_DIR_VARIABLE}; point the variable at a folder)"
            return phrase
    return None


@dataclass(frozen=True)
class LocalState:
    """An entry's state in a folder; ``detail`` says why, in a few words."""

    status: str
    folder: Path
    detail: str


def _disagreement_with_manifest(entry: WeightsEntry, record: DownloadRecord) -> Optional[str]:
    for file in entry.files:
        recorded = record.files.get(file.path)
        if recorded is None:
            return f"{file.path} was not part of the verified download"
        if file.size is not None and recorded.size != file.size:
            return f"{file.path} has {recorded.size} bytes, the manifest says {file.size}"
        if file.sha256 is not None and recorded.sha256 != file.sha256:
            return f"{file.path} has sha256 {recorded.sha256}, the manifest says {file.sha256}"
    return None


def local_state(entry: WeightsEntry, folder: Path) -> LocalState:
    """The state of ``entry`` in ``folder``, from the file system and the download record only (no network)."""
    folder = Path(folder)
    if not folder.is_dir():
        in_the_way = not_a_folder_in_the_way(folder)
        return LocalState(MISSING, folder, "no folder" if in_the_way is None else f"no folder: {in_the_way}")
    absent = [file.path for file in entry.files if not (folder / file.path).is_file()]
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        return LocalState(MISSING, folder, f"{len(absent)} of {len(entry.files)} expected files absent: {shown}")
    record = read_record(folder)
    if record is None or record.repo_id != entry.source:
        return LocalState(PRESENT, folder, "not verified")
    changed = [path for path, recorded in record.files.items() if not recorded.unchanged(folder / path)]
    if changed:
        return LocalState(PRESENT, folder, f"changed since verified: {', '.join(sorted(changed)[:3])}")
    disagreement = _disagreement_with_manifest(entry, record)
    if disagreement is not None:
        return LocalState(PRESENT, folder, f"not verified: {disagreement}")
    return LocalState(VERIFIED, folder, f"{len(record.files)} files, commit {record.commit[:12]}")
