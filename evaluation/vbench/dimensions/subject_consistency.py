"""VBench subject_consistency: how alike DINO ViT-B/16 (`dino_vitbase16_pretrain.pth`) sees each frame to the one
before it and to the first.

As the official code: every frame as float 0..255, shorter side resized to 224 (bilinear, no antialias, not
re-quantised, no crop, so frames stay non-square and DINO interpolates its position table), /255, ImageNet
mean/std; the L2-normalised CLS feature f_t; for t >= 1, s_t = (max(0, cos(f_t-1, f_t)) + max(0, cos(f_0, f_t))) / 2.
Per video the mean of its s_t, the aggregate sum of all s_t over the number of them (frames, not videos, weigh
equally). Frames run `batch_size` at a time, across videos of one size (the official code runs one).
"""

from typing import Dict, List, Tuple

from ._common import (
    check_batch_size,
    check_videos,
    checkpoint_file,
    consistency_sums,
    row_batches,
    rows_by_owner,
    scores_from_sums,
)

NAME = "subject_consistency"
CHECKPOINTS = {"dino_vitb16": ("dino_vitbase16_pretrain.pth", "vbench-dino-vitb16")}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dino_transform(frames, n_px: int = 224):
    """VBench's `dino_transform`: float frames 0..255 [T,3,H,W] -> shorter side n_px (bilinear, no antialias) ->
    /255 -> ImageNet mean/std."""
    from torchvision.transforms import functional as TF

    frames = TF.resize(frames, n_px, antialias=False)
    return TF.normalize(frames.float().div(255.0), IMAGENET_MEAN, IMAGENET_STD)


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 16, **info) -> Tuple[float, List]:
    """(frame-weighted aggregate, per-video scores) of subject consistency; each video needs at least 2 frames."""
    videos = check_videos(videos, NAME, min_frames=2)
    check_batch_size(batch_size, NAME)
    path = checkpoint_file(checkpoints, "dino_vitb16", NAME, CHECKPOINTS["dino_vitb16"][1])

    import torch
    import torch.nn.functional as F

    from ._dino import load_dino_vit

    model = load_dino_vit(path, NAME, device)
    frames = (dino_transform(torch.from_numpy(video).permute(0, 3, 1, 2).float()) for video in videos)
    features, owners = [], []
    with torch.no_grad():
        for batch, batch_owners in row_batches(frames, batch_size):
            output = model(pixel_values=batch.to(device), interpolate_pos_encoding=True)
            features.append(output.last_hidden_state[:, 0].float().cpu())
            owners += batch_owners
    per_video = rows_by_owner(torch.cat(features), owners, len(videos))
    return scores_from_sums([consistency_sums(F.normalize(video, dim=-1, p=2)) for video in per_video])
