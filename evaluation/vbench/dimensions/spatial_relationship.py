"""VBench spatial_relationship: whether GRiT finds the prompt's two objects apart along the prompt's axis, over each
video's middle 16 frames.

As the official code: every pair of boxes described as object_a or object_b (two boxes of one object count) scores
1 when their centres lie further apart along the relationship's axis (x for left/right, y for top/bottom) than
across it and IoU < 0.1, 0.1 / IoU when they overlap more, else 0; which side is never checked. A frame scores its
best pair (0 without one); per video the mean of its frames, the aggregate the mean over all frames. The detector
runs in the backend (`backend_python`) or its outputs come from a file (`model_outputs`).
"""

from typing import Dict, List, Tuple

import numpy as np

from . import _grit

NAME = "spatial_relationship"
TASK = "grit_objectdet"
CHECKPOINTS = _grit.CHECKPOINTS
needs_checkpoints = _grit.needs_checkpoints
needs_frames = _grit.needs_frames


def check_options(video_paths, **options) -> None:
    _grit.check_options(video_paths, TASK, NAME, **options)


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 16, video_paths=None,
            auxiliary_info=None, backend_python=None, model_outputs=None, save_model_outputs=None,
            **info) -> Tuple[float, List[Dict]]:
    """(mean over all frames, per-video entries {'video_results', 'frame_results'})."""
    relations = [_grit.auxiliary(auxiliary_info, index, "spatial_relationship", NAME) for index in range(len(videos))]
    outputs = _grit.detections(NAME, TASK, videos, checkpoints=checkpoints, device=device, video_paths=video_paths,
                               backend_python=backend_python, model_outputs=model_outputs,
                               save_model_outputs=save_model_outputs)
    all_frames, entries = [], []
    for index, (records, relation) in enumerate(zip(outputs, relations)):
        scores = _grit.spatial_frame_scores(records, relation, NAME, f"videos[{index}]")
        all_frames.extend(scores)
        entries.append({"video_results": float(np.mean(scores)), "frame_results": scores})
    return float(np.mean(all_frames)), entries
