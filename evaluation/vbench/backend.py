"""The model backend of the VBench dimensions whose models the pack does not hold (GRiT, Tag2Text, CoTracker): the
model outputs either come from a file of precomputed outputs or from `official_backend.py` run by the Python of an
environment the user points at (one with the official vbench, and detectron2 for GRiT), in a subprocess.

Protocol (version 1). The pack writes a request

    {"protocol": "vdp-vbench-backend", "version": 1, "task": TASK, "checkpoint": FILE or null, "device": DEVICE,
     "videos": [{"id": ID, "frames": NPY, "resize_to": [H, W] or null}, ...], "output": RESPONSE}

and runs `PYTHON official_backend.py REQUEST`. While it runs, the pack hands over each video's frames (uint8
[F,H,W,3]) as the `.npy` file NPY, in order, renamed into place once written, at most two waiting; the backend
waits for each file and removes it once read. At the end the backend writes RESPONSE:

    {"protocol": "vdp-vbench-backend", "version": 1, "task": TASK, "outputs": {ID: OUTPUT, ...}}

A model-outputs file holds the same OUTPUTs keyed by task and video file name:
`{"format": "vdp-vbench-model-outputs", "version": 1, TASK: {FILE NAME: OUTPUT, ...}, ...}`.

The tasks and their OUTPUT per video:
- `grit_objectdet` (object_class, multiple_objects, spatial_relationship) and `grit_densecap` (color): one record per
  frame, `{"captions": [[description, [x0, y0, x1, y1]], ...], "objects": [name, ...]}` (`objects` is the
  frame's object-detection names, the official `det_obj`), or `{"error": message}` when the detector raised;
- `tag2text` (scene): one caption per frame;
- `cotracker` (camera_motion): the point tracks [T][N][2] in pixels (float) of a 10 x 10 grid.
"""

import json
import os
import subprocess
import tempfile
import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

PROTOCOL = "vdp-vbench-backend"
VERSION = 1
OUTPUTS_FORMAT = "vdp-vbench-model-outputs"
TASKS = ("grit_objectdet", "grit_densecap", "tag2text", "cotracker")
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_backend.py")
GRID_POINTS = 100
# videos whose frame files may wait for the backend at once
AHEAD = 2


class BackendError(RuntimeError):
    """The backend process failed (its exit status and the end of its error output are in the message)."""


BACKEND_DIMENSIONS = ("object_class", "multiple_objects", "color", "spatial_relationship", "scene", "camera_motion")


def backend_options(dimensions: Sequence[str], *, backend_python=None, model_outputs=None, save_model_outputs=None,
                    tracker_repo=None) -> Dict[str, Dict]:
    """`evaluate(..., dimension_options=...)` for the backend dimensions among `dimensions`: the same backend
    Python (or model-outputs file) for all of them, `tracker_repo` for camera_motion."""
    given = {"backend_python": backend_python, "model_outputs": model_outputs,
             "save_model_outputs": save_model_outputs}
    options = {}
    for name in dimensions:
        if name in BACKEND_DIMENSIONS:
            option = dict(given, tracker_repo=tracker_repo) if name == "camera_motion" else dict(given)
            options[name] = {key: value for key, value in option.items() if value is not None}
    return options


def check_output(task: str, output, frames: Optional[int], where: str):
    """`output` (one video's model output of `task`) checked; ValueError naming `where` and what is allowed."""
    if task in ("grit_objectdet", "grit_densecap"):
        if not isinstance(output, list) or (frames is not None and len(output) != frames):
            raise ValueError(f"{where}: must be a list of {frames} frame records, got {output!r:.120}")
        for index, record in enumerate(output):
            if isinstance(record, Mapping) and set(record) == {"error"} and isinstance(record["error"], str):
                continue
            good = isinstance(record, Mapping) and set(record) == {"captions", "objects"}
            good = good and isinstance(record["objects"], list) and all(isinstance(n, str) for n in record["objects"])
            good = good and isinstance(record["captions"], list) and all(
                isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and isinstance(c[1], list)
                and len(c[1]) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in c[1])
                for c in record["captions"]
            )
            if not good:
                raise ValueError(
                    f"{where}[{index}]: a frame record must be {{'captions': [[description, [x0, y0, x1, y1] "
                    f"integers], ...], 'objects': [names]}} or {{'error': message}}, got {record!r:.160}"
                )
    elif task == "tag2text":
        if not isinstance(output, list) or not all(isinstance(c, str) for c in output) or (
            frames is not None and len(output) != frames
        ):
            raise ValueError(f"{where}: must be a list of {frames} captions (strings), got {output!r:.120}")
    elif task == "cotracker":
        try:
            tracks = np.asarray(output, dtype=np.float64)
        except (TypeError, ValueError):
            tracks = None
        if tracks is None or tracks.ndim != 3 or tracks.shape[1:] != (GRID_POINTS, 2) or len(tracks) < 1:
            shape = None if tracks is None else tracks.shape
            raise ValueError(f"{where}: must be point tracks [T][{GRID_POINTS}][2] (a 10 x 10 grid), got shape {shape}")
        if not np.isfinite(tracks).all():
            raise ValueError(f"{where}: the point tracks hold non-finite values")
        return tracks
    else:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return output


def read_model_outputs(path, task: str, video_paths: Sequence[str], frames: Optional[int], name: str) -> List:
    """Each video's `task` output from the model-outputs file `path` (keyed by file name), checked; ValueError
    naming the file and every video it lacks."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: model_outputs={path!r} is not a file")
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{name}: model_outputs file {path!r} is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != OUTPUTS_FORMAT or data.get("version") != VERSION:
        raise ValueError(
            f"{name}: model_outputs file {path!r} is not a {OUTPUTS_FORMAT!r} version {VERSION} file "
            f"(its 'format' and 'version' keys)"
        )
    table = data.get(task)
    if not isinstance(table, dict):
        raise ValueError(f"{name}: model_outputs file {path!r} holds no {task!r} outputs (keys: {sorted(data)})")
    files = [os.path.basename(video) for video in video_paths]
    missing = [file for file in dict.fromkeys(files) if file not in table]
    if missing:
        raise ValueError(
            f"{name}: model_outputs file {path!r} lacks the {task!r} outputs of {len(missing)} video(s): "
            f"{missing[:10]}"
        )
    return [check_output(task, table[file], frames, f"{name}: {path!r} {task}[{file!r}]") for file in files]


def check_backend_python(python, name: str) -> str:
    """The backend interpreter `python` as a path; FileNotFoundError naming it when it is not an executable file."""
    python = os.fspath(python)
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise FileNotFoundError(
            f"{name}: backend_python={python!r} is not an executable file; give the Python of an environment with "
            f"the official vbench (and detectron2 for the GRiT dimensions)"
        )
    return python


def run_backend(python, task: str, frames: Iterable[np.ndarray], count: int, *, checkpoint: Optional[str], device,
                name: str, resize_to: Optional[Sequence] = None, frame_count: Optional[int] = None) -> List:
    """Each video's `task` output from `official_backend.py` run by `python` on the `count` videos of `frames`
    (uint8 [F,H,W,3] each, resized there to `resize_to[i]` (H, W) when given). The videos are handed over one
    file at a time while the backend runs, at most AHEAD of them waiting, so the disk holds a few videos' frames,
    not all. BackendError naming the backend, its exit status and the end of its output when it fails, ValueError
    when its response breaks the protocol."""
    python = check_backend_python(python, name)
    with tempfile.TemporaryDirectory(prefix="vdp-vbench-backend-") as work:
        videos = [
            {"id": str(index), "frames": os.path.join(work, f"frames_{index}.npy"),
             "resize_to": None if resize_to is None or resize_to[index] is None else [int(v) for v in resize_to[index]]}
            for index in range(count)
        ]
        response_file = os.path.join(work, "response.json")
        request = {"protocol": PROTOCOL, "version": VERSION, "task": task, "checkpoint": checkpoint,
                   "device": str(device), "videos": videos, "output": response_file}
        request_file = os.path.join(work, "request.json")
        with open(request_file, "w", encoding="utf-8") as stream:
            json.dump(request, stream)
        with open(os.path.join(work, "backend.log"), "w+", encoding="utf-8", errors="replace") as log:
            process = subprocess.Popen([python, RUNNER, request_file], stdout=log, stderr=log)
            try:
                for index, video in enumerate(frames):
                    while process.poll() is None and sum(
                        os.path.exists(item["frames"]) for item in videos[max(0, index - AHEAD):index]
                    ) >= AHEAD:
                        time.sleep(0.02)
                    if process.poll() is not None:
                        break
                    # written under another name, then renamed: the backend never reads half a file
                    with open(videos[index]["frames"] + ".part", "wb") as stream:
                        np.save(stream, np.ascontiguousarray(video, dtype=np.uint8))
                    os.replace(videos[index]["frames"] + ".part", videos[index]["frames"])
                returncode = process.wait()
            except BaseException:
                process.kill()
                process.wait()
                raise
            if returncode != 0:
                log.seek(0)
                tail = "\n".join(log.read().strip().splitlines()[-15:])
                raise BackendError(
                    f"{name}: the {task} backend ({python} {os.path.basename(RUNNER)}) failed with exit status "
                    f"{returncode}:\n{tail}"
                )
        try:
            with open(response_file, encoding="utf-8") as stream:
                response = json.load(stream)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{name}: the {task} backend ({python}) wrote no readable response: {error}") from None
    if not isinstance(response, dict) or response.get("protocol") != PROTOCOL or response.get("version") != VERSION \
            or response.get("task") != task or not isinstance(response.get("outputs"), dict):
        raise ValueError(f"{name}: the {task} backend ({python}) answered outside protocol {PROTOCOL!r} v{VERSION}: "
                         f"{response!r:.200}")
    outputs = response["outputs"]
    missing = [video["id"] for video in videos if video["id"] not in outputs]
    if missing:
        raise ValueError(f"{name}: the {task} backend ({python}) gave no output for videos {missing[:10]}")
    return [check_output(task, outputs[str(index)], frame_count, f"{name}: backend output for videos[{index}]")
            for index in range(count)]


def write_model_outputs(path, task: str, video_paths: Sequence[str], outputs: Sequence) -> None:
    """Adds (or replaces) the `task` outputs of `video_paths` in the model-outputs file `path`, written atomically,
    so that a later run reads them instead of running the backend."""
    path = os.fspath(path)
    data: Dict = {"format": OUTPUTS_FORMAT, "version": VERSION}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    table = data.setdefault(task, {})
    for video, output in zip(video_paths, outputs):
        table[os.path.basename(video)] = output.tolist() if hasattr(output, "tolist") else output
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".model_outputs.", suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def check_backend_options(name: str, video_paths: Sequence[str], task: str, frames: Optional[int],
                          backend_python=None, model_outputs=None, save_model_outputs=None) -> None:
    """The options of a backend dimension checked before any video is decoded: exactly one of `backend_python`
    and `model_outputs`, the file covering every video, `save_model_outputs` only with a backend."""
    if (backend_python is None) == (model_outputs is None):
        raise ValueError(
            f"{name}: give either backend_python (the Python of an environment with the official vbench) or "
            f"model_outputs (a {OUTPUTS_FORMAT!r} file), got backend_python={backend_python!r}, "
            f"model_outputs={model_outputs!r}"
        )
    if backend_python is not None:
        check_backend_python(backend_python, name)
    else:
        read_model_outputs(model_outputs, task, video_paths, frames, name)
        if save_model_outputs is not None:
            raise ValueError(f"{name}: save_model_outputs needs backend_python (the outputs come from model_outputs)")
    if save_model_outputs is not None:
        parent = os.path.dirname(os.path.abspath(os.fspath(save_model_outputs)))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise ValueError(f"{name}: save_model_outputs={save_model_outputs!r}: folder {parent!r} is not writable")


def model_outputs_of(name: str, task: str, video_paths: Sequence[str], frames_for_backend, *, frames: Optional[int],
                     checkpoint: Optional[str], device, backend_python=None,
                     model_outputs=None, save_model_outputs=None, resize_to=None) -> List:
    """Each video's `task` output: read from `model_outputs`, or from the backend run on the videos that
    `frames_for_backend()` yields one by one (then saved to `save_model_outputs` when given)."""
    check_backend_options(name, video_paths, task, frames, backend_python, model_outputs, save_model_outputs)
    if model_outputs is not None:
        return read_model_outputs(model_outputs, task, video_paths, frames, name)
    outputs = run_backend(backend_python, task, frames_for_backend(), len(video_paths), checkpoint=checkpoint,
                          device=device, name=name, resize_to=resize_to, frame_count=frames)
    if save_model_outputs is not None:
        write_model_outputs(save_model_outputs, task, video_paths, outputs)
    return outputs

