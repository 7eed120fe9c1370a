"""What the four GRiT dimensions (object_class, multiple_objects, color, spatial_relationship) share: the frames the
official code gives the detector, and each dimension's scoring of the per-frame detections, every quirk kept.

The detector itself runs in the backend (`../backend.py`); a frame's detections arrive as
`{"captions": [[description, [x0, y0, x1, y1]], ...], "objects": [names]}` (`objects` = the official `det_obj`,
the frame's object-detection names that every detection tuple carries) or `{"error": message}`.
"""

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

FRAMES = 16
# frames whose shorter side is above this are resized so that it becomes RESIZED_SIDE before detection
LARGEST_SIDE_KEPT = 768
RESIZED_SIDE = 720.0
COLOR_WORDS = ("white", "red", "pink", "blue", "silver", "purple", "orange", "green", "gray", "yellow", "black", "grey")
IOU_THRESHOLD = 0.1


def middle_frame_indices(count: int, length: int) -> List[int]:
    """The official `get_frame_indices(count, length, 'middle')`: the middle frame of each of `count` equal parts
    (`linspace(0, length, count + 1)` truncated), padded with the last index when the video is shorter."""
    if length < 1:
        raise ValueError(f"a video of {length} frames has no frame to sample")
    parts = min(count, length)
    edges = np.linspace(0, length, parts + 1).astype(int)
    indices = [int((start + end - 1) // 2) for start, end in zip(edges[:-1], edges[1:])]
    return indices + [indices[-1]] * (count - len(indices))


def detector_size(height: int, width: int) -> Optional[Tuple[int, int]]:
    """(H, W) the official code resizes a frame of `height` x `width` to before detection, None when it keeps it:
    the shorter side above 768 becomes 720 (sides truncated)."""
    if min(height, width) <= LARGEST_SIDE_KEPT:
        return None
    scale = RESIZED_SIDE / min(height, width)
    return int(scale * height), int(scale * width)


def detector_frames(video: np.ndarray) -> np.ndarray:
    """The middle 16 frames of a uint8 [F,H,W,3] video (padded with the last one), as the detector sees them before
    the resize of `detector_size`."""
    return video[middle_frame_indices(FRAMES, len(video))]


def _failed(record: Mapping, name: str, where: str):
    raise ValueError(
        f"{name}: the detector failed on {where}: {record['error']} (the official code stops there; only "
        f"object_class counts a failing frame as detecting nothing)"
    )


def object_class_frame_names(record: Mapping) -> set:
    """The names object_class sees in a frame: the first detection's `det_obj` set; no detection or a detector
    error is the empty set (the official code catches every exception there)."""
    if "error" in record or not record["captions"]:
        return set()
    return set(record["objects"])


def object_class_video(records: Sequence[Mapping], target: str) -> Dict:
    """One video's object_class entry: frames whose names hold `target` exactly."""
    hits = sum(target in object_class_frame_names(record) for record in records)
    return {"video_results": hits / len(records), "success_frame_count": hits, "frame_count": len(records)}


def multiple_objects_video(records: Sequence[Mapping], objects: str, name: str, where: str) -> Dict:
    """One video's multiple_objects entry: frames whose names hold both parts of `objects` ("a and b")."""
    first, second = objects.split(" and ")
    first, second = first.strip(), second.strip()
    hits = 0
    for index, record in enumerate(records):
        if "error" in record:
            _failed(record, name, f"{where} frame {index}")
        names = set(record["objects"]) if record["captions"] else set()
        hits += first in names and second in names
    return {"video_results": hits / len(records), "success_frame_count": hits, "frame_count": len(records)}


def color_object(prompt: str, color: str) -> str:
    """The object color looks for: the prompt without 'a ', 'an ' (anywhere, as substrings) and the colour."""
    return prompt.replace("a ", "").replace("an ", "").replace(color, "").strip()


def color_counts(records: Sequence[Mapping], color: str, target_object: str, name: str, where: str) -> Tuple[int, int]:
    """(object frames, colour frames) of one video. Each caption is paired with the frame's first object name; an
    object frame has a caption paired with `target_object` that holds one of the 12 colour words, a colour frame a
    caption paired with it that holds `color` (substring matches: 'bored' holds 'red'). A frame without detections
    is one empty caption paired with an empty name."""
    object_frames = color_frames = 0
    for index, record in enumerate(records):
        if "error" in record:
            _failed(record, name, f"{where} frame {index}")
        if not record["captions"]:
            pairs = [("", "")]
        elif not record["objects"]:
            raise ValueError(
                f"{name}: {where} frame {index} has captions but no object names; the official code stops there "
                f"(IndexError on det_obj[0])"
            )
        else:
            pairs = [(caption, record["objects"][0]) for caption, _ in record["captions"]]
        object_flag = color_flag = False
        for caption, first_name in pairs:
            if first_name == target_object:
                object_flag = object_flag or any(word in caption for word in COLOR_WORDS)
                color_flag = color_flag or color in caption
        object_frames += object_flag
        color_frames += color_flag
    return object_frames, color_frames


def position_score(relationship: str, box1: Sequence, box2: Sequence) -> float:
    """The official `get_position_score`: left/right relationships (matched as substrings of 'on the right of' or
    'on the left of') score 1 when the centres lie further apart in x than in y and IoU < 0.1, 0.1 / IoU when they
    overlap more, else 0; top/bottom the same in y. The direction itself is never checked."""
    x_distance = (box2[0] + box2[2]) / 2 - (box1[0] + box1[2]) / 2
    y_distance = (box2[1] + box2[3]) / 2 - (box1[1] + box1[3]) / 2
    x_overlap = max(0, min(box1[2], box2[2]) - max(box1[0], box2[0]))
    y_overlap = max(0, min(box1[3], box2[3]) - max(box1[1], box2[1]))
    intersection = x_overlap * y_overlap
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - intersection
    iou = intersection / union
    if relationship in "on the right of" or relationship in "on the left of":
        apart = abs(x_distance) > abs(y_distance)
    elif relationship in "on the bottom of" or relationship in "on the top of":
        apart = abs(y_distance) > abs(x_distance)
    else:
        return 0
    if not apart:
        return 0
    return 1 if iou < IOU_THRESHOLD else IOU_THRESHOLD / iou


def spatial_frame_scores(records: Sequence[Mapping], info: Mapping, name: str, where: str) -> List:
    """Each frame's spatial_relationship score: the best `position_score` over every pair of boxes whose
    description is object_a or object_b (so two boxes of one object count), 0 without a pair. The pairs are scored
    in the official order (all pairs again after each box joins), so that a tie between 1 and 1.0 keeps the
    official type in the results file."""
    scores = []
    for index, record in enumerate(records):
        if "error" in record:
            _failed(record, name, f"{where} frame {index}")
        boxes, frame_scores = [], [0]
        for description, box in record["captions"]:
            if description in (info["object_a"], info["object_b"]):
                boxes.append(box)
            try:
                frame_scores += [
                    position_score(info["relationship"], boxes[i], boxes[j])
                    for i in range(len(boxes) - 1)
                    for j in range(i + 1, len(boxes))
                ]
            except ZeroDivisionError:
                raise ValueError(
                    f"{name}: {where} frame {index} has two boxes of no area ({boxes}), whose IoU is 0 / 0; the "
                    f"official code stops there (ZeroDivisionError)"
                ) from None
        scores.append(max(frame_scores))
    return scores


CHECKPOINTS = {"grit": ("grit_b_densecap_objectdet.pth", "vbench-grit")}


def needs_checkpoints(model_outputs=None, **options) -> bool:
    """The GRiT checkpoint is read (by the backend) only when no model-outputs file is given."""
    return model_outputs is None


def needs_frames(model_outputs=None, **options) -> bool:
    """The frames are read only for the backend: with a model-outputs file `evaluate` decodes no video."""
    return model_outputs is None


def auxiliary(auxiliary_info, index: int, key: str, name: str):
    """`auxiliary_info[index][key]`; ValueError naming the video when the suite gave none (custom input)."""
    info = None if auxiliary_info is None else auxiliary_info[index]
    if not isinstance(info, Mapping) or key not in info:
        raise ValueError(
            f"{name}: videos[{index}] has no auxiliary info {key!r} (got {info!r:.80}); this dimension scores the "
            f"suite's videos in standard mode only"
        )
    return info[key]


def detections(name: str, task: str, videos, *, checkpoints: Mapping[str, str], device, video_paths, backend_python=None,
               model_outputs=None, save_model_outputs=None) -> List[List[Mapping]]:
    """Each video's 16 frame records of GRiT `task`: from `model_outputs` (a model-outputs file, keyed by file name)
    or from the backend `backend_python` run on the middle 16 frames (resized there as the official code does)."""
    from ..backend import model_outputs_of
    from ._common import check_videos, checkpoint_file

    if video_paths is None:
        raise ValueError(f"{name}: video_paths must name each video (the model outputs are keyed by file name)")
    if model_outputs is None:
        videos = check_videos(videos, name)
    if len(video_paths) != len(videos):
        raise ValueError(f"{name}: {len(video_paths)} video_paths for {len(videos)} videos")
    checkpoint = None
    if model_outputs is None:
        checkpoint = checkpoint_file(checkpoints, "grit", name, CHECKPOINTS["grit"][1])
    return model_outputs_of(
        name, task, video_paths, lambda: (detector_frames(video) for video in videos), frames=FRAMES,
        checkpoint=checkpoint, device=device, backend_python=backend_python, model_outputs=model_outputs,
        save_model_outputs=save_model_outputs,
        resize_to=None if model_outputs is not None else [detector_size(*video.shape[1:3]) for video in videos],
    )


def check_options(video_paths, task: str, name: str, backend_python=None, model_outputs=None, save_model_outputs=None,
                  **unknown) -> None:
    """The backend options of a GRiT dimension checked before any video is decoded."""
    from ..backend import check_backend_options

    if unknown:
        raise ValueError(
            f"{name}: unknown options {sorted(unknown)}; allowed: backend_python, model_outputs, save_model_outputs"
        )
    check_backend_options(name, video_paths, task, FRAMES, backend_python, model_outputs, save_model_outputs)
