"""VBench background_consistency: how alike CLIP ViT-B/32 (`ViT-B-32.pt`) sees each frame to the one before it and
to the first.

As the official code: every frame as float 0..255 through `clip_transform(224)` (shorter side 224 bicubic without
antialias, centre crop, CLIP mean/std), L2-normalised image features f_t; for t >= 1,
s_t = (max(0, cos(f_t-1, f_t)) + max(0, cos(f_0, f_t))) / 2. Per video the mean of its s_t, the aggregate the sum of
all s_t over the number of them. fp32 (the official CLI runs CLIP in fp16 on CUDA). Frames of all videos are
batched together, `batch_size` at a time.
"""

from typing import Dict, List, Tuple

from ._common import (
    check_batch_size,
    check_videos,
    checkpoint_file,
    clip_transform,
    consistency_sums,
    scores_from_sums,
)

NAME = "background_consistency"
CHECKPOINTS = {"clip_vit_b_32": ("ViT-B-32.pt", "vbench-clip-vit-b-32")}


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 32, **info) -> Tuple[float, List]:
    """(frame-weighted aggregate, per-video scores) of background consistency; each video needs at least 2
    frames."""
    videos = check_videos(videos, NAME, min_frames=2)
    check_batch_size(batch_size, NAME)
    path = checkpoint_file(checkpoints, "clip_vit_b_32", NAME, CHECKPOINTS["clip_vit_b_32"][1])

    import torch
    import torch.nn.functional as F

    from ._openai_clip import load_openai_clip_vision

    clip = load_openai_clip_vision(path, NAME, device)
    counts = [len(video) for video in videos]
    frames = torch.cat([clip_transform(torch.from_numpy(video).permute(0, 3, 1, 2).float()) for video in videos])
    features = []
    with torch.no_grad():
        for batch in frames.split(batch_size):
            features.append(F.normalize(clip(pixel_values=batch.to(device)).image_embeds.float(), dim=-1, p=2).cpu())
    features = torch.cat(features).split(counts)
    return scores_from_sums([consistency_sums(video_features) for video_features in features])
