"""VBench human_action: whether UMT ViT-L/16 fine-tuned on Kinetics-400 (`l16_ptk710_ftk710_ftk400_f16_res224.pth`)
recognises the action the file name asks for.

As the official code: 16 frames sampled in the middle of 16 equal segments (the last index repeated when the video
is shorter), each resized with OpenCV's INTER_LINEAR so that the shorter side is 256 (the longer
`int(256 * long / short)`), centre-cropped to 224 at offset `round((side - 224) / 2)`, /255, ImageNet mean/std;
sigmoid of the 400 logits; of the top 5, the classes whose probability rounded to 4 decimals is >= 0.85 are
recognised. The action is read from the file name, `name.lower().split('-')[0].split('person is ')[-1]
.split('_')[0]`, and must equal one of those Kinetics-400 class names exactly. Per video True/False (with
`cor_num_per_video`), the aggregate the fraction of videos recognised. Videos run `batch_size // 16` at a time (the
official code runs one).
"""

import functools
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ._common import check_batch_size, check_videos, checkpoint_file

NAME = "human_action"
CHECKPOINTS = {"umt_l16": ("l16_ptk710_ftk710_ftk400_f16_res224.pth", "vbench-umt-l16")}
NUM_FRAMES = 16
SHORT_SIDE = 256
CROP = 224
TOP_K = 5
THRESHOLD = 0.85
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CLASSES_FILE = Path(__file__).resolve().parent.parent / "data" / "kinetics_400_categories.txt"


@functools.lru_cache(maxsize=1)
def kinetics_400_classes() -> Tuple[str, ...]:
    """The 400 Kinetics class names, lower-cased, by class index (the official `build_dict`)."""
    names = {}
    for line in _CLASSES_FILE.read_text(encoding="utf-8").splitlines():
        name, index = line.strip().split("\t")
        names[int(index)] = name.lower()
    return tuple(names[index] for index in range(len(names)))


def middle_frame_indices(num_frames: int, length: int) -> List[int]:
    """VBench's `get_frame_indices(num_frames, length, 'middle')`: the middle frame of each of min(num_frames,
    length) equal segments, padded with the last index up to num_frames."""
    count = min(num_frames, length)
    edges = np.linspace(0, length, count + 1).astype(int)
    indices = [int((start + end - 1) // 2) for start, end in zip(edges[:-1], edges[1:])]
    return indices + [indices[-1]] * (num_frames - len(indices))


def action_from_filename(path: str) -> str:
    """The action the official code reads from a video's file name ('A person is riding a bike-0.mp4' ->
    'riding a bike')."""
    return Path(path).name.lower().split("-")[0].split("person is ")[-1].split("_")[0]


def recognised_classes(probabilities: Sequence[float], indices: Sequence[int]) -> List[str]:
    """The class names among the top-k (probability, index) pairs whose probability rounded to 4 decimals (Python's
    round, as the official code) is >= 0.85."""
    classes = kinetics_400_classes()
    return [classes[index] for value, index in zip(probabilities, indices) if round(value, 4) >= THRESHOLD]


def umt_transform(video: np.ndarray):
    """uint8 [F,H,W,3] frames -> the official UMT input [16, 3, 224, 224] (float32)."""
    import torch
    from torchvision.transforms import functional as TF

    from ._opencv_resize import resize_linear

    frames = video[middle_frame_indices(NUM_FRAMES, len(video))]
    height, width = frames.shape[1:3]
    if width < height:
        size = (SHORT_SIDE, int(SHORT_SIDE * height / width))
    else:
        size = (int(SHORT_SIDE * width / height), SHORT_SIDE)
    if min(height, width) != SHORT_SIDE:
        frames = np.stack([resize_linear(frame, *size) for frame in frames])
    height, width = frames.shape[1:3]
    top, left = int(round((height - CROP) / 2.0)), int(round((width - CROP) / 2.0))
    frames = frames[:, top : top + CROP, left : left + CROP]
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255.0)
    return TF.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD)


def compute(
    videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 16, video_paths=None, **info
) -> Tuple[float, List]:
    """(fraction of videos whose action is recognised, per-video {'video_results', 'cor_num_per_video'}).

    `video_paths` (one per video) give the actions to recognise."""
    videos = check_videos(videos, NAME)
    check_batch_size(batch_size, NAME)
    if video_paths is None or isinstance(video_paths, (str, bytes)) or len(video_paths) != len(videos):
        raise ValueError(
            f"{NAME}: video_paths must give one file name per video ({len(videos)}), the action is read from it; "
            f"got {video_paths!r:.200}"
        )
    path = checkpoint_file(checkpoints, "umt_l16", NAME, CHECKPOINTS["umt_l16"][1])

    import torch

    from ._umt import load_umt_classifier

    model = load_umt_classifier(path, NAME, device)
    if model.config.num_frames != NUM_FRAMES or model.config.num_labels != len(kinetics_400_classes()):
        raise ValueError(
            f"{NAME}: checkpoint {path!r} classifies {model.config.num_frames} frames into "
            f"{model.config.num_labels} classes; human_action needs {NUM_FRAMES} frames and the "
            f"{len(kinetics_400_classes())} Kinetics-400 classes"
        )
    videos_per_batch = max(1, batch_size // NUM_FRAMES)
    per_video = []
    with torch.no_grad():
        for start in range(0, len(videos), videos_per_batch):
            batch = torch.stack([umt_transform(video) for video in videos[start : start + videos_per_batch]])
            probabilities = torch.sigmoid(model(pixel_values=batch.to(device)).logits.float())
            values, indices = torch.topk(probabilities.cpu(), TOP_K, dim=1)
            for row_values, row_indices, video_path in zip(
                values.tolist(), indices.tolist(), video_paths[start : start + videos_per_batch]
            ):
                found = action_from_filename(video_path) in recognised_classes(row_values, row_indices)
                per_video.append({"video_results": found, "cor_num_per_video": int(found)})
    return sum(result["cor_num_per_video"] for result in per_video) / len(per_video), per_video
