"""VBench-I2V camera_motion: whether the camera motion that point tracks show is the one the video's name asks for.

As the official code: CoTracker tracks a 10 x 10 grid over all frames; the tracks are cast to integers (`.long()`,
truncating toward zero); the displacement last - first of the edge midpoints (grid [0,5] top, [9,5] bottom, [5,0]
left, [5,9] right) is classed right/left when x exceeds +-0.005 * min(H, W), down/up likewise in y, else static;
top with bottom and left with right map to pan / tilt / zoom / static; a video scores 1 when the type its file
name names ("camera pans left", ...) is among the predicted ones. The aggregate is the mean over videos, and the
results hold the mean per type (NaN for a type without videos) between the aggregate and the per-video list, as
the official file does. The tracker runs in the backend (`backend_python`, with `tracker_repo` a local clone of
facebookresearch/co-tracker) or its tracks come from a file (`model_outputs`).

The official `predict_type` is a list made from a set, in an order that changes from run to run; here it is
sorted.
"""

import math
import os
from typing import Dict, List, Tuple

import numpy as np

NAME = "camera_motion"
TASK = "cotracker"
CHECKPOINTS: Dict[str, tuple] = {}
GRID = 10
FACTOR = 0.005
TYPES = {
    "camera pans left": "pan_left",
    "camera pans right": "pan_right",
    "camera tilts up": "tilt_up",
    "camera tilts down": "tilt_down",
    "camera zooms in": "zoom_in",
    "camera zooms out": "zoom_out",
    "camera static": "static",
}
TOP_DOWN = {"left_left": "pan_right", "right_right": "pan_left", "down_down": "tilt_up", "up_up": "tilt_down",
            "up_down": "zoom_in", "down_up": "zoom_out", "static_static": "static"}
LEFT_RIGHT = {"left_left": "pan_right", "right_right": "pan_left", "down_down": "tilt_up", "up_up": "tilt_down",
              "left_right": "zoom_in", "right_left": "zoom_out", "static_static": "static"}


def target_type(path: str) -> str:
    """The motion type the file name asks for: the first of TYPES' phrases it contains."""
    name = os.path.basename(path)
    for phrase, kind in TYPES.items():
        if phrase in name:
            return kind
    raise ValueError(f"{NAME}: the file name {name!r} names no camera motion; it must contain one of {list(TYPES)}")


def direction(vector, min_side: int) -> List[str]:
    """right/left when x exceeds +-0.005 * min_side, down/up likewise for y; ['static'] when neither."""
    scale = min_side * FACTOR
    x, y = vector
    found = []
    if x > scale:
        found.append("right")
    elif x < -scale:
        found.append("left")
    if y > scale:
        found.append("down")
    elif y < -scale:
        found.append("up")
    return found or ["static"]


def predict(tracks, height: int, width: int) -> List[str]:
    """The predicted motion types (sorted) of point tracks [T, 100, 2] (pixels) of a `height` x `width` video."""
    tracks = np.trunc(np.asarray(tracks, dtype=np.float64)).astype(np.int64)
    first, last = tracks[0].reshape(GRID, GRID, 2), tracks[-1].reshape(GRID, GRID, 2)
    middle = GRID // 2
    points = [(0, middle), (GRID - 1, middle), (middle, 0), (middle, GRID - 1)]  # top, bottom, left, right
    top, bottom, left, right = (
        direction([float(np.mean([last[i, j, 0] - first[i, j, 0]])), float(np.mean([last[i, j, 1] - first[i, j, 1]]))],
                  min(height, width))
        for i, j in points
    )
    vertical = [TOP_DOWN[f"{a}_{b}"] for a in top for b in bottom if f"{a}_{b}" in TOP_DOWN] or ["None"]
    horizontal = [LEFT_RIGHT[f"{a}_{b}"] for a in left for b in right if f"{a}_{b}" in LEFT_RIGHT] or ["None"]
    results = set(vertical + horizontal)
    if "static" in results and len(results) > 1:
        results.remove("static")
    if "None" in results and len(results) > 1:
        results.remove("None")
    return sorted(results)


def check_options(video_paths, backend_python=None, model_outputs=None, save_model_outputs=None, tracker_repo=None,
                  **unknown) -> None:
    """Every file name names a motion type, and the backend options hold, before any video is decoded."""
    from ..backend import check_backend_options

    if unknown:
        raise ValueError(f"{NAME}: unknown options {sorted(unknown)}; allowed: backend_python, model_outputs, "
                         f"save_model_outputs, tracker_repo")
    for path in video_paths:
        target_type(path)
    if tracker_repo is not None and not os.path.isfile(os.path.join(os.fspath(tracker_repo), "hubconf.py")):
        raise FileNotFoundError(f"{NAME}: tracker_repo={tracker_repo!r} is not a clone of facebookresearch/co-tracker "
                                f"(no hubconf.py there)")
    check_backend_options(NAME, video_paths, TASK, None, backend_python, model_outputs, save_model_outputs)


def needs_checkpoints(**options) -> bool:
    return False


def compute(videos, *, checkpoints: Dict[str, str] = None, device="cpu", batch_size: int = 1, video_paths=None,
            backend_python=None, model_outputs=None, save_model_outputs=None, tracker_repo=None,
            **info) -> Tuple[float, Dict[str, float], List[Dict]]:
    """(mean over videos, {type: mean over its videos}, per-video entries {'video_results', 'prompt_type',
    'predict_type'})."""
    from ..backend import model_outputs_of
    from ._common import check_videos

    videos = check_videos(videos, NAME, min_frames=1)
    if video_paths is None or len(video_paths) != len(videos):
        raise ValueError(f"{NAME}: video_paths must name each video (the motion asked for is read from the name)")
    targets = [target_type(path) for path in video_paths]
    tracks = model_outputs_of(NAME, TASK, video_paths, lambda: videos, frames=None, checkpoint=tracker_repo,
                              device=device, backend_python=backend_python, model_outputs=model_outputs,
                              save_model_outputs=save_model_outputs)
    entries, by_type = [], {kind: [] for kind in TYPES.values()}
    for video, target, track in zip(videos, targets, tracks):
        predicted = predict(track, video.shape[1], video.shape[2])
        score = 1.0 if target in predicted else 0.0
        by_type[target].append(score)
        entries.append({"video_results": score, "prompt_type": target, "predict_type": predicted})
    means = {kind: float(np.mean(scores)) if scores else math.nan for kind, scores in by_type.items()}
    return float(np.mean([e["video_results"] for e in entries])), means, entries
