"""VBench multiple_objects: in how many of each video's middle 16 frames GRiT's object detection finds both objects
of the prompt ("a and b"), by exact name.

As the official code: a frame's names are the `det_obj` set of its first detection, empty without detections; a
frame on which the detector raised stops the dimension (the official code has no guard there). Per video hits / 16,
the aggregate all hits over all frames. The detector runs in the backend (`backend_python`) or its outputs come
from a file (`model_outputs`).
"""

from typing import Dict, List, Tuple

from . import _grit

NAME = "multiple_objects"
TASK = "grit_objectdet"
CHECKPOINTS = _grit.CHECKPOINTS
needs_checkpoints = _grit.needs_checkpoints
needs_frames = _grit.needs_frames


def check_options(video_paths, **options) -> None:
    _grit.check_options(video_paths, TASK, NAME, **options)


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 16, video_paths=None,
            auxiliary_info=None, backend_python=None, model_outputs=None, save_model_outputs=None,
            **info) -> Tuple[float, List[Dict]]:
    """(all hits / all frames, per-video entries {'video_results', 'success_frame_count', 'frame_count'})."""
    targets = [_grit.auxiliary(auxiliary_info, index, "object", NAME) for index in range(len(videos))]
    outputs = _grit.detections(NAME, TASK, videos, checkpoints=checkpoints, device=device, video_paths=video_paths,
                               backend_python=backend_python, model_outputs=model_outputs,
                               save_model_outputs=save_model_outputs)
    entries = [
        _grit.multiple_objects_video(records, target, NAME, f"videos[{index}]")
        for index, (records, target) in enumerate(zip(outputs, targets))
    ]
    return sum(e["success_frame_count"] for e in entries) / sum(e["frame_count"] for e in entries), entries
