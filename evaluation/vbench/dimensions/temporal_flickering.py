"""VBench temporal_flickering: no model. As the official code, each pair of consecutive frames gives the mean
absolute difference of the float32 frames (taken in OpenCV's BGR order, so the float32 sums round as the official
ones do), a video scores (255 - mean of those) / 255, and the aggregate is the mean over videos. The official suite
runs it on the videos the static filter keeps (`static_filter.py`)."""

from typing import Dict, List, Tuple

import numpy as np

from ._common import check_videos

NAME = "temporal_flickering"
CHECKPOINTS: Dict[str, tuple] = {}


def video_score(video: np.ndarray) -> float:
    """(255 - mean over consecutive pairs of the mean |frame_t+1 - frame_t|) / 255 of one uint8 [F,H,W,3] video."""
    frames = np.ascontiguousarray(video[..., ::-1]).astype(np.float32)
    maes = np.array([np.mean(np.abs(frames[t] - frames[t + 1])) for t in range(len(frames) - 1)])
    return (255.0 - np.mean(maes).item()) / 255.0


def compute(videos, *, checkpoints: Dict[str, str] = None, device="cpu", batch_size: int = 1,
            **info) -> Tuple[float, List[float]]:
    """(mean over videos, per-video scores); every video needs at least 2 frames."""
    videos = check_videos(videos, NAME, min_frames=2)
    per_video = [video_score(video) for video in videos]
    return float(np.mean(per_video)), per_video
