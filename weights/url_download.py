"""Downloads a manifest entry that is published at URLs instead of a Hub repository (VBench's evaluator
checkpoints: OpenAI's CLIP files, DINO, RAFT's zip archive, GitHub releases), then verifies every file.

The steps, each of which stops with a message naming the entry, the file and what was expected:

1. Every file name (the manifest's `path` and, for an archive, its `archive_member`) must be a plain relative path,
   so that nothing outside the folder is ever looked at or written.
2. A file already in the folder is kept when it has the manifest's sha256 (or, where the manifest has none, when
   it is unchanged since a verified download recorded it); one that differs is never replaced unless
   ``overwrite=True``, and then the message lists it.
3. The rest is fetched with urllib (https, http or file URLs) into a temporary file beside the target, hashed while
   it streams, the archive member extracted from a zip, checked against the manifest's size and sha256 and renamed
   into place, so that no file is ever half-written. Partial files an interrupted run left are removed first.
4. The verified files are recorded for ``local_state`` (source: the URL).
"""

import hashlib
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Dict, Optional

from .local import RecordedFile, file_sha256, not_a_folder_in_the_way, read_record, write_record
from .manifest import UrlFile, WeightsEntry

# where partial files of a running download live (removed when a later run starts)
_PARTIAL_FOLDER = Path(".cache") / "video_diffusion_pack" / "partial"
_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 60
URL_COMMIT = "direct download"  # what the download record stores as the commit of a URL entry


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _expected(entry: WeightsEntry, path: str):
    return next(file for file in entry.files if file.path == path)


def _check_names(entry: WeightsEntry) -> None:
    from .download import UnsafeFileNameError, _unsafe_name_reason

    for url in entry.urls:
        for label, name in (("path", url.path), ("archive_member", url.archive_member)):
            if name is None:
                continue
            reason = _unsafe_name_reason(name)
            if reason is not None:
                raise UnsafeFileNameError(
                    f"{entry.name}: {label} {name!r} is not a plain path inside the folder ({reason}); such a name "
                    f"could reach files outside the folder, so it is refused. Nothing was written."
                )


def _stream(response, target, digest) -> int:
    size = 0
    for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
        target.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    return size


def _fetch(entry: WeightsEntry, url: UrlFile, partial: Path) -> Path:
    """The file of `url` as a temporary file under `partial` (the archive member extracted)."""
    from .download import HashMismatchError, WeightsDownloadError

    handle = tempfile.NamedTemporaryFile(dir=partial, prefix=".url.", suffix=".part", delete=False)
    fetched = Path(handle.name)
    try:
        with handle:
            try:
                request = urllib.request.Request(url.url, headers={"User-Agent": "video_diffusion_pack"})
                with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
                    announced = response.headers.get("Content-Length")
                    size = _stream(response, handle, hashlib.sha256())
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise WeightsDownloadError(
                    f"{entry.name}: cannot download {url.url} ({type(error).__name__}: {error}). Files already in "
                    f"place are kept; run the command again when the address can be reached"
                ) from None
        if announced is not None and announced.isdigit() and int(announced) != size:
            raise HashMismatchError(
                f"{entry.name}: {url.url} announced {announced} bytes but sent {size}; the transfer was cut. Run the "
                f"command again."
            )
        if url.archive_member is None:
            return fetched
        try:
            archive = zipfile.ZipFile(fetched)
        except zipfile.BadZipFile:
            raise WeightsDownloadError(f"{entry.name}: {url.url} is not a zip archive (it should hold "
                                       f"{url.archive_member})") from None
        with archive:
            if url.archive_member not in archive.namelist():
                shown = ", ".join(archive.namelist()[:10])
                raise WeightsDownloadError(
                    f"{entry.name}: the archive {url.url} holds no {url.archive_member} (it holds: {shown})"
                )
            member = tempfile.NamedTemporaryFile(dir=partial, prefix=".member.", suffix=".part", delete=False)
            with member, archive.open(url.archive_member) as source:
                shutil.copyfileobj(source, member, _CHUNK_BYTES)
        fetched.unlink()
        return Path(member.name)
    except BaseException:
        fetched.unlink(missing_ok=True)
        raise


def _difference(entry: WeightsEntry, path: str, local: RecordedFile) -> Optional[str]:
    expected = _expected(entry, path)
    if expected.size is not None and local.size != expected.size:
        return f"size is {local.size} bytes, expected {expected.size} (weights manifest)"
    if expected.sha256 is not None and local.sha256 != expected.sha256:
        return f"sha256 is {local.sha256}, expected {expected.sha256} (weights manifest)"
    return None


def _recorded(path: Path) -> RecordedFile:
    stat = path.stat()
    return RecordedFile(size=stat.st_size, sha256=file_sha256(path), git_blob_sha1=None, mtime_ns=stat.st_mtime_ns)


def _remove_partial(partial: Path) -> int:
    freed = 0
    if partial.is_dir():
        for leftover in partial.glob(".*.part"):
            try:
                freed += leftover.stat().st_size
                leftover.unlink()
            except OSError:
                continue
    return freed


def download_url_entry(
    entry: WeightsEntry,
    folder,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] = _stderr,
):
    """Puts ``entry``'s files (an entry with ``urls``) in ``folder`` and verifies them; see the module docstring.

    Raises:
        UnsafeFileNameError, LocalFilesDifferError, HashMismatchError, WeightsDownloadError: with the entry, the
            file and what was expected.
    """
    from .download import DownloadReport, HashMismatchError, LocalFilesDifferError, WeightsDownloadError
    from .local import DownloadRecord

    folder = Path(folder)
    if not entry.urls:
        raise WeightsDownloadError(f"{entry.name}: the manifest gives no URL for it")
    in_the_way = not_a_folder_in_the_way(folder)
    if in_the_way is not None:
        raise WeightsDownloadError(f"{entry.name}: cannot make the folder '{folder}': {in_the_way}")
    _check_names(entry)
    report = DownloadReport(entry=entry, folder=folder, commit=URL_COMMIT)

    previous = read_record(folder)
    previous_files = previous.files if previous is not None and previous.repo_id == entry.source else {}
    verified: Dict[str, RecordedFile] = {}
    differing = []
    for url in entry.urls:
        target = folder / url.path
        if not target.is_file():
            continue
        recorded = previous_files.get(url.path)
        if recorded is not None and recorded.unchanged(target):
            local = recorded
        elif _expected(entry, url.path).sha256 is not None:
            local = _recorded(target)
        else:
            differing.append((url.path, "no verified download recorded it and the manifest has no sha256 to check "
                                        "it against"))
            continue
        difference = _difference(entry, url.path, local)
        if difference is None:
            verified[url.path] = local
            report.kept.append(url.path)
        else:
            differing.append((url.path, difference))
    if differing and not overwrite:
        listed = "; ".join(f"{path}: {difference}" for path, difference in differing)
        raise LocalFilesDifferError(
            f"{entry.name}: {len(differing)} file(s) in '{folder}' cannot be vouched for and were left untouched: "
            f"{listed}. Move them away, or pass --overwrite to replace them. Nothing was downloaded."
        )

    to_fetch = [url for url in entry.urls if url.path not in verified]
    if to_fetch:
        partial = folder / _PARTIAL_FOLDER
        partial.mkdir(parents=True, exist_ok=True)
        report.removed_partial_bytes = _remove_partial(partial)
        for url in to_fetch:
            log(f"{entry.name}: fetching {url.path} from {url.url}"
                + (f" (member {url.archive_member})" if url.archive_member else ""))
            fetched = _fetch(entry, url, partial)
            local = _recorded(fetched)
            difference = _difference(entry, url.path, local)
            if difference is not None:
                fetched.unlink()
                raise HashMismatchError(
                    f"{entry.name}: {url.path} downloaded from {url.url} failed verification and was deleted: "
                    f"{difference}. Nothing was replaced."
                )
            target = folder / url.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file():
                log(f"{entry.name}: replacing {url.path}")
                report.replaced.append(url.path)
            fetched.replace(target)
            stat = target.stat()
            verified[url.path] = RecordedFile(size=local.size, sha256=local.sha256, git_blob_sha1=None,
                                              mtime_ns=stat.st_mtime_ns)
            report.fetched.append(url.path)
        shutil.rmtree(partial, ignore_errors=True)

    write_record(folder, DownloadRecord(repo_id=entry.source, commit=URL_COMMIT, files=verified))
    return report
