"""VBench object_class: in how many of each video's middle 16 frames GRiT's object detection finds the prompt's
object, by exact name.

As the official code: a frame's names are the `det_obj` set of its first detection; a frame without detections, or
on which the detector raised, finds nothing. Per video hits / 16, the aggregate all hits over all frames. The
detector runs in the backend (`../backend.py`: `backend_python`) or its outputs come from a file (`model_outputs`).
"""

from typing import Dict, List, Tuple

from . import _grit

NAME = "object_class"
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
    entries = [_grit.object_class_video(records, target) for records, target in zip(outputs, targets)]
    return sum(e["success_frame_count"] for e in entries) / sum(e["frame_count"] for e in entries), entries
