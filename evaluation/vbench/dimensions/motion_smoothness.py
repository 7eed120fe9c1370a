"""VBench motion_smoothness: how well AMT-S (`amt-s.pth`) predicts each odd frame from its even neighbours.

As the official code: the even frames (/255) padded by replication to multiples of 16 (centred), AMT-S at t=0.5
with scale 1 (the official CLI never downscales), the prediction unpadded and cast to uint8 by truncation, the mean
absolute difference to the real odd frame; per video (255 - mean) / 255, the aggregate the mean over videos.
Frame pairs run `batch_size` at a time, across videos of one padded size.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

from ._common import check_batch_size, check_videos, checkpoint_file, row_batches

NAME = "motion_smoothness"
CHECKPOINTS = {"amt_s": ("amt-s.pth", "vbench-amt-s")}
MIN_PADDED_SIZE = 128


def load_amt_s(path: str, device="cpu"):
    """The pack's AMT-S holding the official checkpoint `path` (`{'state_dict': ...}`, loaded strictly)."""
    import torch

    from ._amt import AMTS
    from ._common import check_keys, load_torch_checkpoint

    checkpoint = load_torch_checkpoint(path, NAME)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{NAME}: {path!r} is not an AMT checkpoint (a dict with a 'state_dict' entry)")
    model = AMTS()
    check_keys(model.state_dict(), checkpoint["state_dict"], path, NAME)
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model.to(device=device, dtype=torch.float32).eval()


def _padding(height: int, width: int, divisor: int = 16):
    pad_h = (((height // divisor) + 1) * divisor - height) % divisor
    pad_w = (((width // divisor) + 1) * divisor - width) % divisor
    return [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]


def _pair_groups(videos):
    """Each video's (frame 2i, frame 2i+2) pairs [P, 2, 3, H', W'] in 0..1, replicate-padded to multiples of 16."""
    import torch
    import torch.nn.functional as F

    for video in videos:
        even = torch.from_numpy(video[0::2]).permute(0, 3, 1, 2).float() / 255.0
        even = F.pad(even, _padding(*even.shape[-2:]), mode="replicate")
        yield torch.stack([even[:-1], even[1:]], dim=1)


def video_scores(model, videos: Sequence[np.ndarray], device="cpu", batch_size: int = 8) -> List[float]:
    """(255 - mean |interpolated - real odd frame|) / 255 of each uint8 video [F,H,W,3]; the frame pairs of all
    videos run `batch_size` at a time (across videos of one padded size), each prediction cut back to its video's
    size."""
    import torch

    embt = torch.full((1, 1, 1, 1), 0.5, device=device)
    pads = [_padding(*video.shape[1:3]) for video in videos]
    predictions = [[] for _ in videos]
    with torch.no_grad():
        for pairs, owners in row_batches(_pair_groups(videos), batch_size):
            pred = model(pairs[:, 0].to(device), pairs[:, 1].to(device), embt).float().cpu()
            h, w = pred.shape[-2:]
            for row, owner in zip(pred, owners):
                left, right, top, bottom = pads[owner]
                predictions[owner].append(row[..., top : h - bottom, left : w - right])
    scores = []
    for video, rows in zip(videos, predictions):
        predicted = (torch.stack(rows) * 255.0).permute(0, 2, 3, 1).numpy().clip(0, 255).astype(np.uint8)
        odd = video[1::2][: len(predicted)]
        differences = [np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))) for a, b in zip(odd, predicted)]
        scores.append(float((255.0 - np.mean(np.array(differences))) / 255.0))
    return scores


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 8, **info) -> Tuple[float, List]:
    """(mean over videos, per-video scores) of motion smoothness; each video needs at least 3 frames of at
    least 128 px a side (after padding)."""
    videos = check_videos(videos, NAME, min_frames=3)
    for index, video in enumerate(videos):
        padded = [size + sum(_padding(size, size)[:2]) for size in video.shape[1:3]]
        if min(padded) < MIN_PADDED_SIZE:
            raise ValueError(
                f"{NAME}: videos[{index}] frames are {video.shape[1]}x{video.shape[2]}; AMT-S needs both sides at "
                f"least {MIN_PADDED_SIZE} after padding to multiples of 16 (its coarsest correlation level is "
                "otherwise one pixel and the official lookup divides by zero)"
            )
    check_batch_size(batch_size, NAME)
    model = load_amt_s(checkpoint_file(checkpoints, "amt_s", NAME, CHECKPOINTS["amt_s"][1]), device)
    per_video = video_scores(model, videos, device, batch_size)
    return float(np.mean(per_video)), per_video
