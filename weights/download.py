"""Downloads a manifest entry from the Hugging Face Hub with huggingface_hub, then verifies every file.

The steps, each of which stops with a message naming the entry, the file and what was expected:

1. List the repository at the entry's revision (pinned commit, or ``main``) with sizes and hashes. Every listed
   name must be a plain relative path, so that no file outside the folder is ever looked at, replaced or written.
2. Compare it with the manifest: every file the manifest names must be there, with the manifest's
   size and sha256 where the manifest knows them.
3. Compare it with the folder: files already there with the Hub's content are kept; a file that
   differs is never replaced unless ``overwrite=True``, and then the message lists it.
4. Fetch the rest with ``snapshot_download`` (parallel transfers, progress bars, ``HF_TOKEN``; a
   transfer cut by the network resumes from the bytes already received; files finished before an
   interrupted run are kept). Files land in place by rename, so none is ever half-written.
5. Check every file's size and hash (sha256 for LFS files, git's blob id for the others) against the
   Hub and the manifest, delete any that fail, and record the verified folder for ``local_state``.
"""

import glob
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .local import (
    DownloadRecord,
    RecordedFile,
    file_sha256,
    git_blob_sha1,
    not_a_folder_in_the_way,
    read_record,
    write_record,
)
from .manifest import WeightsEntry

_PARTIAL_DOWNLOADS = Path(".cache") / "huggingface" / "download"


class WeightsDownloadError(RuntimeError):
    """A download that cannot go on; the message says what to do."""


class GatedRepoAccessError(WeightsDownloadError):
    """The Hub repository is gated and the request had no token, or one without access."""


class LocalFilesDifferError(WeightsDownloadError):
    """Files in the folder differ from the Hub's and would have been replaced."""


class HashMismatchError(WeightsDownloadError):
    """A downloaded file's size or hash is not the expected one."""


class UnsafeFileNameError(WeightsDownloadError):
    """The Hub listing holds a file name that is not a plain relative path, so it could land outside the folder."""


@dataclass(frozen=True)
class RemoteFile:
    """A repository file as the Hub lists it: ``sha256`` for LFS files, ``blob_id`` (git sha1) for every file."""

    path: str
    size: int
    sha256: Optional[str]
    blob_id: str


@dataclass
class DownloadReport:
    """What `download_entry` did."""

    entry: WeightsEntry
    folder: Path
    commit: str
    fetched: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)
    replaced: List[str] = field(default_factory=list)
    removed_partial_bytes: int = 0

    @property
    def file_count(self) -> int:
        return len(self.fetched) + len(self.kept)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _hub_url(endpoint: Optional[str], repo_id: str) -> str:
    from huggingface_hub import constants

    return f"{(endpoint or constants.ENDPOINT).rstrip('/')}/{repo_id}"


def _is_transport_error(error: Exception) -> bool:
    """A connection, timeout or protocol failure of the HTTP library huggingface_hub uses (httpx or requests)."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, HfHubHTTPError):
        return False
    library = type(error).__module__.split(".")[0]
    return isinstance(error, (ConnectionError, TimeoutError)) or library in ("httpx", "httpx2", "httpcore", "requests", "urllib3")


def _explain(error: Exception, entry: WeightsEntry, revision: str, endpoint: Optional[str], token) -> WeightsDownloadError:
    """A `WeightsDownloadError` that says what went wrong with the Hub and what to do about it."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import OfflineModeIsEnabled

    page = _hub_url(endpoint, entry.repo_id)
    if isinstance(error, GatedRepoError):
        status = error.response.status_code if error.response is not None else None
        sent_token = token if isinstance(token, str) else (get_token() if token in (None, True) else None)
        if sent_token is None:
            reason = "no token was sent: HF_TOKEN is not set and no `hf auth login` token was found"
        elif status == 403:
            reason = "the token was sent, but its account has not been granted access yet"
        else:
            reason = f"the token was sent but refused (HTTP {status})"
        return GatedRepoAccessError(
            f"{entry.name}: the Hub repository {entry.repo_id} is gated and {reason}. Accept its conditions at "
            f"{page} with your Hugging Face account, then set HF_TOKEN to an access token of that account (or run "
            f"`hf auth login`) and run the command again."
        )
    if isinstance(error, RevisionNotFoundError):
        pinned = " (pinned in the weights manifest)" if revision == entry.revision else ""
        return WeightsDownloadError(
            f"{entry.name}: revision {revision!r}{pinned} of {entry.repo_id} does not exist on the Hub; pass "
            f"--revision main to take the newest commit"
        )
    if isinstance(error, RepositoryNotFoundError):
        return WeightsDownloadError(
            f"{entry.name}: the Hub shows no repository {entry.repo_id} to this request ({page}); it may be private, "
            f"renamed, or gated for accounts without a token (set HF_TOKEN)"
        )
    if isinstance(error, RemoteEntryNotFoundError):
        return WeightsDownloadError(f"{entry.name}: a file listed by the Hub disappeared during the download: {error}")
    if isinstance(error, OfflineModeIsEnabled):
        return WeightsDownloadError(
            f"{entry.name}: HF_HUB_OFFLINE is set, so the Hub is not contacted; unset it to download "
            f"(`vdp download --list` works offline)"
        )
    if isinstance(error, LocalEntryNotFoundError) or _is_transport_error(error):
        return WeightsDownloadError(
            f"{entry.name}: cannot reach the Hub at {_hub_url(endpoint, '').rstrip('/')} ({type(error).__name__}: "
            f"{error}). Files already downloaded are kept; run the command again when the connection is back "
            f"(`vdp download --list` works offline)"
        )
    if isinstance(error, HfHubHTTPError):
        return WeightsDownloadError(f"{entry.name}: the Hub refused a request for {entry.repo_id}: {error}")
    return WeightsDownloadError(f"{entry.name}: download from {entry.repo_id} failed: {type(error).__name__}: {error}")


def _unsafe_name_reason(name: str) -> Optional[str]:
    """Why a repository file name cannot be placed inside a folder as it is; None for a plain relative path.

    A plain path is '/'-separated parts, none of them empty, ``.`` or ``..``, with no backslash (a separator on
    Windows), no drive letter and no control character: joined onto any folder, it stays inside that folder.
    """
    if not name:
        return "it is empty"
    if name.startswith("/"):
        return "it is absolute"
    if "\\" in name:
        return "it holds a backslash"
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        return "it starts with a drive letter"
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return "it holds a control character"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "it has an empty, '.' or '..' part"
    return None


def _check_file_names(entry: WeightsEntry, names: List[str], commit: str) -> None:
    """Refuses the whole listing when any name is not a plain relative path, before any file is looked at."""
    unsafe = [(name, reason) for name in names if (reason := _unsafe_name_reason(name)) is not None]
    if unsafe:
        shown = "; ".join(f"{name!r} ({reason})" for name, reason in unsafe[:5])
        more = f" and {len(unsafe) - 5} more" if len(unsafe) > 5 else ""
        raise UnsafeFileNameError(
            f"{entry.name}: {entry.repo_id} at commit {commit} lists a file name that is not a plain path inside the "
            f"folder: {shown}{more}. Such a name could reach files outside the folder, so the listing is refused. "
            f"Nothing was written."
        )


def list_remote_files(entry: WeightsEntry, revision: str, *, token=None, endpoint=None) -> Tuple[str, Dict[str, RemoteFile]]:
    """The commit ``revision`` resolves to, and the repository files there that the entry's patterns select.

    Raises:
        UnsafeFileNameError: a listed name (selected or not) is not a plain relative path (`_unsafe_name_reason`).
        WeightsDownloadError: the Hub cannot be asked, or no listed file matches the entry's patterns.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    try:
        info = HfApi(endpoint=endpoint).model_info(entry.repo_id, revision=revision, files_metadata=True, token=token)
    except Exception as error:
        raise _explain(error, entry, revision, endpoint, token) from error
    siblings = info.siblings or []
    _check_file_names(entry, [s.rfilename for s in siblings], info.sha)
    selected = filter_repo_objects(siblings, allow_patterns=list(entry.allow_patterns), key=lambda s: s.rfilename)
    files = {
        s.rfilename: RemoteFile(
            path=s.rfilename,
            size=s.lfs.size if s.lfs is not None else s.size,
            sha256=s.lfs.sha256 if s.lfs is not None else None,
            blob_id=s.blob_id,
        )
        for s in selected
    }
    if not files:
        raise WeightsDownloadError(
            f"{entry.name}: no file of {entry.repo_id} at revision {revision!r} matches allow_patterns "
            f"{list(entry.allow_patterns)} ({len(siblings)} files in the repository)"
        )
    return info.sha, files


def _check_manifest_against_hub(entry: WeightsEntry, files: Dict[str, RemoteFile], commit: str) -> None:
    problems = []
    for expected in entry.files:
        remote = files.get(expected.path)
        if remote is None:
            problems.append(f"{expected.path} is not in the repository")
            continue
        if expected.size is not None and remote.size != expected.size:
            problems.append(f"{expected.path} has {remote.size} bytes on the Hub, the manifest expects {expected.size}")
        if expected.sha256 is not None and remote.sha256 is not None and remote.sha256 != expected.sha256:
            problems.append(f"{expected.path} has sha256 {remote.sha256} on the Hub, the manifest expects {expected.sha256}")
    if problems:
        raise WeightsDownloadError(
            f"{entry.name}: {entry.repo_id} at commit {commit} does not match the weights manifest: "
            + "; ".join(problems)
            + ". Nothing was downloaded."
        )


def _hash_local(path: Path, remote: RemoteFile, recorded: Optional[RecordedFile]) -> RecordedFile:
    """The file's size and hashes, reusing the download record when the file is unchanged since it was written."""
    if recorded is not None and recorded.unchanged(path) and recorded.sha256 is not None:
        if remote.sha256 is not None or recorded.git_blob_sha1 is not None:
            return recorded
    stat = path.stat()
    return RecordedFile(
        size=stat.st_size,
        sha256=file_sha256(path),
        git_blob_sha1=None if remote.sha256 is not None else git_blob_sha1(path),
        mtime_ns=stat.st_mtime_ns,
    )


def _difference(local: RecordedFile, remote: RemoteFile, entry: WeightsEntry) -> Optional[str]:
    """Why a local file is not the expected one (Hub, then manifest), or None when it is."""
    if remote.size is not None and local.size != remote.size:
        return f"size is {local.size} bytes, expected {remote.size} (the Hub's)"
    if remote.sha256 is not None and local.sha256 != remote.sha256:
        return f"sha256 is {local.sha256}, expected {remote.sha256} (the Hub's)"
    if remote.sha256 is None and local.git_blob_sha1 != remote.blob_id:
        return f"git blob id is {local.git_blob_sha1}, expected {remote.blob_id} (the Hub's)"
    for expected in entry.files:
        if expected.path == remote.path and expected.sha256 is not None and local.sha256 != expected.sha256:
            return f"sha256 is {local.sha256}, expected {expected.sha256} (weights manifest)"
    return None


def _remove_partial_downloads(folder: Path) -> int:
    """Deletes the partial files interrupted transfers left; returns the bytes freed.

    Called once every file of the entry is in place and verified, when none of them can be needed any more.
    """
    freed = 0
    for partial in (folder / _PARTIAL_DOWNLOADS).rglob("*.incomplete"):
        try:
            freed += partial.stat().st_size
            partial.unlink()
        except OSError:
            continue
    return freed


def download_entry(
    entry: WeightsEntry,
    folder,
    *,
    revision: Optional[str] = None,
    overwrite: bool = False,
    token=None,
    endpoint: Optional[str] = None,
    cache_dir=None,
    log: Callable[[str], None] = _stderr,
) -> DownloadReport:
    """Puts ``entry``'s files in ``folder`` and verifies them; see the module docstring for the steps (and
    `url_download` for an entry published at URLs instead of a Hub repository).

    Args:
        entry (`WeightsEntry`): the manifest entry.
        folder (`str` or `Path`): the target folder (created if needed), e.g. ``entry.folder_in(models_root)``.
        revision (`str`, *optional*): a branch, tag or commit instead of the manifest's revision.
        overwrite (`bool`, defaults to `False`): replace files in ``folder`` that differ from the Hub's.
        token (`str`, *optional*): Hub token; by default huggingface_hub's (``HF_TOKEN`` or `hf auth login`).
        endpoint (`str`, *optional*): Hub address; by default huggingface_hub's (``HF_ENDPOINT``).
        cache_dir (`str`, *optional*): huggingface_hub's cache folder (it checks there for files it already has).
        log (`Callable[[str], None]`): receives one line per step; by default printed to stderr.

    Raises:
        GatedRepoAccessError, LocalFilesDifferError, HashMismatchError, WeightsDownloadError: with the entry, the
            files and what was expected.
    """
    if entry.repo_id is None:  # published at URLs, not on the Hub
        if revision is not None:
            raise WeightsDownloadError(f"{entry.name}: is downloaded from {entry.source}, which has no revisions; "
                                       f"leave out the revision")
        from .url_download import download_url_entry

        return download_url_entry(entry, folder, overwrite=overwrite, log=log)
    from huggingface_hub import snapshot_download

    folder = Path(folder)
    in_the_way = not_a_folder_in_the_way(folder)
    if in_the_way is not None:
        raise WeightsDownloadError(f"{entry.name}: cannot make the folder '{folder}': {in_the_way}")
    revision = revision or entry.revision or "main"

    commit, remote_files = list_remote_files(entry, revision, token=token, endpoint=endpoint)
    _check_manifest_against_hub(entry, remote_files, commit)
    report = DownloadReport(entry=entry, folder=folder, commit=commit)

    previous = read_record(folder)
    previous_files = previous.files if previous is not None and previous.repo_id == entry.repo_id else {}
    verified: Dict[str, RecordedFile] = {}
    differing: List[Tuple[str, str]] = []
    for remote in remote_files.values():
        local_path = folder / remote.path
        if not local_path.is_file():
            continue
        local = _hash_local(local_path, remote, previous_files.get(remote.path))
        difference = _difference(local, remote, entry)
        if difference is None:
            verified[remote.path] = local
            report.kept.append(remote.path)
        else:
            differing.append((remote.path, difference))
    if differing and not overwrite:
        listed = "; ".join(f"{path}: {difference}" for path, difference in differing)
        raise LocalFilesDifferError(
            f"{entry.name}: {len(differing)} file(s) in '{folder}' differ from {entry.repo_id} at commit {commit} and "
            f"were left untouched: {listed}. Move them away, or pass --overwrite to replace them. Nothing was downloaded."
        )
    for path, difference in differing:
        log(f"{entry.name}: replacing {path} ({difference})")
        (folder / path).unlink()
        report.replaced.append(path)

    to_fetch = sorted(path for path in remote_files if path not in verified)
    if to_fetch:
        log(
            f"{entry.name}: fetching {len(to_fetch)} file(s) of {entry.repo_id} at commit {commit} into '{folder}'"
            + (f" ({len(report.kept)} already there)" if report.kept else "")
        )
        folder.mkdir(parents=True, exist_ok=True)
        try:
            snapshot_download(
                entry.repo_id,
                revision=commit,
                allow_patterns=[glob.escape(path) for path in to_fetch],
                local_dir=folder,
                cache_dir=cache_dir,
                token=token,
                endpoint=endpoint,
            )
        except Exception as error:
            raise _explain(error, entry, revision, endpoint, token) from error

    mismatches = []
    for path in to_fetch:
        local_path = folder / path
        if not local_path.is_file():
            mismatches.append(f"{path}: missing after the download")
            continue
        local = _hash_local(local_path, remote_files[path], None)
        difference = _difference(local, remote_files[path], entry)
        if difference is None:
            verified[path] = local
            report.fetched.append(path)
        else:
            local_path.unlink()
            mismatches.append(f"{path}: {difference}")
    if mismatches:
        raise HashMismatchError(
            f"{entry.name}: {len(mismatches)} downloaded file(s) from {entry.repo_id} at commit {commit} failed "
            f"verification and were deleted: {'; '.join(mismatches)}. Run the command again to download them anew."
        )

    write_record(folder, DownloadRecord(repo_id=entry.repo_id, commit=commit, files=verified))
    report.removed_partial_bytes = _remove_partial_downloads(folder)
    return report
