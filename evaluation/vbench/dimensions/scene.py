"""VBench scene: whether Tag2Text's caption of each of a video's middle 16 frames names the prompt's scene.

As the official code: the frames decoded at 384 x 384 (an mp4 scaled by FFmpeg's bilinear scaler as it is
decoded, as decord's `VideoReader(width=384, height=384)` does; other files at their size, resized by the
transform), the middle 16 (padded with the last one); a frame hits when every word of the scene label (split on
single spaces) is a substring of its caption. Per video hits / 16, the aggregate all hits over all frames.
Tag2Text (`tag2text_swin_14m.pth`) runs in the backend (`../backend.py`: `backend_python`) or its captions come
from a file (`model_outputs`).
"""

from typing import Dict, List, Tuple

import numpy as np

from . import _grit

NAME = "scene"
TASK = "tag2text"
CHECKPOINTS = {"tag2text": ("tag2text_swin_14m.pth", "vbench-tag2text")}
SIDE = 384
needs_checkpoints = _grit.needs_checkpoints
needs_frames = _grit.needs_frames


def check_options(video_paths, backend_python=None, model_outputs=None, save_model_outputs=None, **unknown) -> None:
    from ..backend import check_backend_options

    if unknown:
        raise ValueError(
            f"{NAME}: unknown options {sorted(unknown)}; allowed: backend_python, model_outputs, save_model_outputs"
        )
    check_backend_options(NAME, video_paths, TASK, _grit.FRAMES, backend_python, model_outputs, save_model_outputs)


def scaled_frames(path: str, width: int = SIDE, height: int = SIDE) -> np.ndarray:
    """Every frame of an mp4 as uint8 [F,height,width,3], scaled by FFmpeg (`scale=W:H:flags=bilinear`, then
    rgb24) from the decoded picture, as decord's `VideoReader(path, width=W, height=H)` returns them."""
    import av

    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        nodes = [graph.add_buffer(template=stream), graph.add("scale", f"{width}:{height}:flags=bilinear"),
                 graph.add("format", "rgb24"), graph.add("buffersink")]
        for first, second in zip(nodes, nodes[1:]):
            first.link_to(second)
        graph.configure()

        def drain():
            while True:
                try:
                    frames.append(graph.vpull().to_ndarray())
                except (BlockingIOError, av.error.EOFError):
                    return

        for frame in container.decode(stream):
            graph.vpush(frame)
            drain()
        graph.vpush(None)
        drain()
    return np.stack(frames)


def captioner_frames(video: np.ndarray, path: str) -> np.ndarray:
    """The middle 16 frames the official scene code captions: an mp4 decoded again at 384 x 384, another file's
    decoded frames as they are."""
    frames = scaled_frames(path) if path.endswith(".mp4") else video
    return frames[_grit.middle_frame_indices(_grit.FRAMES, len(frames))]


def scene_hits(captions, scene: str) -> int:
    """Frames whose caption holds every word of `scene` as a substring."""
    words = scene.split(" ")
    return sum(all(word in caption for word in words) for caption in captions)


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 16, video_paths=None,
            auxiliary_info=None, backend_python=None, model_outputs=None, save_model_outputs=None,
            **info) -> Tuple[float, List[Dict]]:
    """(all hits / all frames, per-video entries {'video_results', 'success_frame_count', 'frame_count'})."""
    from ..backend import model_outputs_of
    from ._common import check_videos, checkpoint_file

    scenes = [_grit.auxiliary(auxiliary_info, index, "scene", NAME) for index in range(len(videos))]
    bad = [index for index, scene in enumerate(scenes) if not isinstance(scene, dict) or "scene" not in scene]
    if bad:
        raise ValueError(f"{NAME}: videos[{bad[0]}] auxiliary info must be {{'scene': label}}, got {scenes[bad[0]]!r}")
    if video_paths is None or len(video_paths) != len(videos):
        raise ValueError(f"{NAME}: video_paths must name each video (the model outputs are keyed by file name)")
    if model_outputs is None:
        videos = check_videos(videos, NAME)
    checkpoint = None if model_outputs is not None else checkpoint_file(checkpoints, "tag2text", NAME,
                                                                         CHECKPOINTS["tag2text"][1])
    outputs = model_outputs_of(
        NAME, TASK, video_paths, lambda: (captioner_frames(v, p) for v, p in zip(videos, video_paths)),
        frames=_grit.FRAMES, checkpoint=checkpoint, device=device, backend_python=backend_python,
        model_outputs=model_outputs, save_model_outputs=save_model_outputs,
    )
    entries = []
    for captions, scene in zip(outputs, scenes):
        hits = scene_hits(captions, scene["scene"])
        entries.append({"video_results": hits / len(captions), "success_frame_count": hits,
                        "frame_count": len(captions)})
    return sum(e["success_frame_count"] for e in entries) / sum(e["frame_count"] for e in entries), entries
