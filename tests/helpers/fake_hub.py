"""A small Hugging Face Hub on 127.0.0.1: the endpoints huggingface_hub's downloads use, for tests with the real client.

Served, as the Hub serves them:
- ``GET /api/models/{repo}/revision/{rev}`` (``?blobs=true``): the repo's commit, gating and files with sizes,
  git blob ids and LFS sha256;
- ``GET /api/models/{repo}/tree/{rev}?recursive=true``: the file and folder listing;
- ``HEAD`` / ``GET /{repo}/resolve/{rev}/{path}``: file metadata headers (``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag``, ``X-Linked-Size``, ``Content-Length``) and content, with ``Range`` requests answered by
  ``206 Partial Content``.
And the endpoints huggingface_hub's uploads (``create_repo``, ``upload_folder`` / ``create_commit``) use:
- ``POST /api/repos/create``: a new empty model repo (409 when it exists, which ``exist_ok=True`` accepts);
- ``POST /api/models/{repo}/preupload/{rev}``: every file is answered ``uploadMode: regular`` (sent inline in the
  commit; this Hub has no LFS or Xet storage), with the ``oid`` of an identical file already there;
- ``POST /api/models/{repo}/commit/{rev}``: the ndjson commit (``header``, ``file`` with base64 content,
  ``deletedFile``, ``deletedFolder``) applied to the repo, answered with ``commitUrl`` and ``commitOid``; a token
  that is not in ``FakeHub.write_tokens`` (when that set is not empty) gets 403.
Errors carry the ``X-Error-Code`` / ``X-Error-Message`` headers the client turns into its exceptions
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``: 401 without a token, 403 with a token
that has no access).

Faults to test against: content that differs from the listed hash, a connection cut after some bytes of the
first transfer of a file, and a first transfer that stalls until the test releases it.
"""

import base64
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Set
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model")


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class FakeRepo:
    """A model repository at one commit. Files whose names end in ``LFS_SUFFIXES`` are stored in LFS.

    Attributes:
        commit_id: the commit the repo is at (by default a hash of its content).
        served_content: path -> bytes served instead of the file's content (the listing keeps the true hashes).
        cut_first_transfer_after: path -> bytes sent by the first full GET of that file before the connection drops.
        stall_first_transfer_after: path -> bytes sent by the first full GET before it waits for `FakeHub.release`.
    """

    repo_id: str
    files: Dict[str, bytes]
    commit_id: Optional[str] = None
    gated: bool = False
    tokens_with_access: Set[str] = field(default_factory=set)
    served_content: Dict[str, bytes] = field(default_factory=dict)
    cut_first_transfer_after: Dict[str, int] = field(default_factory=dict)
    stall_first_transfer_after: Dict[str, int] = field(default_factory=dict)

    @property
    def commit(self) -> str:
        if self.commit_id is not None:
            return self.commit_id
        digest = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path])
        return digest.hexdigest()

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def lfs_pointer(self, path: str) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256(path)}\nsize {len(self.files[path])}\n".encode()

    def blob_id(self, path: str) -> str:
        return git_blob_id(self.lfs_pointer(path) if self.is_lfs(path) else self.files[path])

    def sibling(self, path: str) -> dict:
        item = {"rfilename": path, "size": len(self.files[path]), "blobId": self.blob_id(path)}
        if self.is_lfs(path):
            item["lfs"] = {"sha256": self.sha256(path), "size": len(self.files[path]), "pointerSize": len(self.lfs_pointer(path))}
        return item

    def tree(self) -> List[dict]:
        folders = sorted({"/".join(path.split("/")[:i]) for path in self.files for i in range(1, path.count("/") + 1)})
        entries = [{"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest(), "size": 0}
                   for folder in folders]
        for path in sorted(self.files):
            item = {"type": "file", "path": path, "oid": self.blob_id(path), "size": len(self.files[path])}
            if self.is_lfs(path):
                item["lfs"] = {"oid": self.sha256(path), "size": len(self.files[path]), "pointerSize": len(self.lfs_pointer(path))}
            entries.append(item)
        return entries


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    range: Optional[str]
    authorization: Optional[str]


class FakeHub:
    """The server; use as a context manager. ``url`` is what HF_ENDPOINT should be set to."""

    def __init__(self):
        self.repos: Dict[str, FakeRepo] = {}
        self.requests: List[LoggedRequest] = []
        #: tokens allowed to create repos and commit (empty: any request may)
        self.write_tokens: Set[str] = set()
        #: the commits received: (repo_id, summary, paths added, paths deleted)
        self.commits: List[tuple] = []
        self.stalled = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._faults_used: Set[tuple] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def release(self) -> None:
        """Lets stalled transfers go on (they then drop their connection)."""
        self._released.set()

    def file_requests(self, repo_id: str, method: str = "GET") -> List[LoggedRequest]:
        prefix = f"/{repo_id}/resolve/"
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _log(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _first_use(self, fault: tuple) -> bool:
        with self._lock:
            if fault in self._faults_used:
                return False
            self._faults_used.add(fault)
            return True


def _handler_for(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep the test output clean
            pass

        # ------------------------------------------------------------------ responses
        def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, repo: Optional[FakeRepo] = None):
            headers = {"X-Error-Code": code, "X-Error-Message": message}
            if repo is not None:
                headers["X-Repo-Commit"] = repo.commit
            self._send(status, json.dumps({"error": message}).encode(), headers)

        def _json(self, payload):
            self._send(200, json.dumps(payload).encode())

        # ------------------------------------------------------------------ routing
        def do_GET(self):
            self._route()

        def do_HEAD(self):
            self._route()

        def do_POST(self):
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            hub._log(LoggedRequest("POST", path, None, self.headers.get("Authorization")))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self._write_ok():
                return
            segments = path.strip("/").split("/")
            if segments == ["api", "repos", "create"]:
                return self._create_repo(json.loads(body))
            if segments[:2] == ["api", "models"] and len(segments) >= 6 and segments[4] in ("preupload", "commit"):
                repo = self._repo("/".join(segments[2:4]))
                if repo is None or not self._revision_ok(repo, segments[5]):
                    return
                if segments[4] == "preupload":
                    return self._preupload(repo, json.loads(body))
                return self._commit(repo, body)
            self._error(404, "NotFound", f"no route for POST {path}")

        # ------------------------------------------------------------------ uploads
        def _write_ok(self) -> bool:
            if not hub.write_tokens:
                return True
            authorization = self.headers.get("Authorization") or ""
            if authorization[len("Bearer "):] in hub.write_tokens and authorization.startswith("Bearer "):
                return True
            self._error(403 if authorization else 401, "Forbidden", "You don't have the rights to write here")
            return False

        def _create_repo(self, payload: dict):
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if repo_id in hub.repos:
                # the Hub's 409 body carries the repo's url, which create_repo(exist_ok=True) returns
                message = "You already created this model repo"
                return self._send(409, json.dumps({"error": message, "url": f"{hub.url}/{repo_id}"}).encode(),
                                  {"X-Error-Code": "Conflict", "X-Error-Message": message})
            hub.add(FakeRepo(repo_id, {}))
            self._json({"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def _preupload(self, repo: FakeRepo, payload: dict):
            files = []
            for item in payload["files"]:
                known = repo.files.get(item["path"])
                files.append({"path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
                              "oid": git_blob_id(known) if known is not None else None})
            self._json({"files": files})

        def _commit(self, repo: FakeRepo, body: bytes):
            summary, added, deleted = "", [], []
            files = dict(repo.files)
            for line in body.decode().splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                key, value = entry["key"], entry["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    if value.get("encoding") != "base64":
                        return self._error(400, "BadRequest", f"file {value.get('path')}: encoding must be base64")
                    files[value["path"]] = base64.b64decode(value["content"])
                    added.append(value["path"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                    deleted.append(value["path"])
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    for name in [n for n in files if n.startswith(prefix)]:
                        files.pop(name)
                        deleted.append(name)
                else:
                    return self._error(400, "BadRequest", f"this Hub takes no {key!r} entries (no LFS storage)")
            repo.files = files
            hub.commits.append((repo.repo_id, summary, added, deleted))
            self._json({"success": True, "commitOid": repo.commit, "commitUrl": f"{hub.url}/{repo.repo_id}/commit/"
                                                                                f"{repo.commit}"})

        def _route(self):
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            hub._log(LoggedRequest(self.command, path, self.headers.get("Range"), self.headers.get("Authorization")))
            segments = path.strip("/").split("/")
            if segments[:2] == ["api", "models"] and len(segments) >= 6 and segments[4] in ("revision", "tree"):
                repo = self._repo("/".join(segments[2:4]))
                if repo is None or not self._revision_ok(repo, segments[5]):
                    return
                if segments[4] == "revision":
                    return self._json(self._model_info(repo))
                return self._json(repo.tree())
            if len(segments) >= 5 and segments[2] == "resolve":
                repo = self._repo("/".join(segments[:2]))
                if repo is None or not self._revision_ok(repo, segments[3]) or not self._access_ok(repo):
                    return
                return self._file(repo, "/".join(segments[4:]))
            self._error(404, "NotFound", f"no route for {path}")

        def _repo(self, repo_id: str) -> Optional[FakeRepo]:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
            return repo

        def _revision_ok(self, repo: FakeRepo, revision: str) -> bool:
            if revision in ("main", repo.commit):
                return True
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return False

        def _access_ok(self, repo: FakeRepo) -> bool:
            if not repo.gated:
                return True
            authorization = self.headers.get("Authorization") or ""
            token = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else None
            if token is None:
                self._error(401, "GatedRepo", f"Access to model {repo.repo_id} is restricted. You must have access to it "
                                              "and be authenticated to access it. Please log in.", repo)
                return False
            if token not in repo.tokens_with_access:
                self._error(403, "GatedRepo", f"Access to model {repo.repo_id} is restricted and you are not in the "
                                              "authorized list.", repo)
                return False
            return True

        def _model_info(self, repo: FakeRepo) -> dict:
            return {
                "_id": repo.commit[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": repo.commit,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "tags": [],
                "siblings": [repo.sibling(path) for path in sorted(repo.files)],
            }

        # ------------------------------------------------------------------ files
        def _file(self, repo: FakeRepo, path: str):
            if path not in repo.files:
                return self._error(404, "EntryNotFound", f"{path} does not exist on 'main'", repo)
            content = repo.served_content.get(path, repo.files[path])
            headers = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
            if repo.is_lfs(path):
                headers["ETag"] = f'"{repo.sha256(path)}"'
                headers["X-Linked-Etag"] = f'"{repo.sha256(path)}"'
                headers["X-Linked-Size"] = str(len(repo.files[path]))
            else:
                headers["ETag"] = f'"{repo.blob_id(path)}"'
            requested = self.headers.get("Range")
            if self.command == "GET" and requested:
                start_text, _, end_text = requested[len("bytes="):].partition("-")
                start = int(start_text)
                end = int(end_text) if end_text else len(content) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
                return self._send(206, content[start:end + 1], headers, "application/octet-stream")
            if self.command == "GET" and path in repo.cut_first_transfer_after and hub._first_use(("cut", repo.repo_id, path)):
                return self._partial_then_drop(content, repo.cut_first_transfer_after[path], headers, stall=False)
            if self.command == "GET" and path in repo.stall_first_transfer_after and hub._first_use(("stall", repo.repo_id, path)):
                return self._partial_then_drop(content, repo.stall_first_transfer_after[path], headers, stall=True)
            self._send(200, content, headers, "application/octet-stream")

        def _partial_then_drop(self, content: bytes, sent_bytes: int, headers: dict, stall: bool):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(content)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content[:sent_bytes])
            self.wfile.flush()
            if stall:
                hub.stalled.set()
                hub._released.wait(timeout=120)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return Handler
