"""VBench aesthetic_quality: the LAION aesthetic head (`sa_0_4_vit_l_14_linear.pth`, Linear(768, 1)) on CLIP
ViT-L/14 image features of every frame.

As the official code: `clip_transform(224)` on float frames, L2-normalised fp32 features, score / 10, mean over the
frames of a video, then mean over videos. Frames of all videos are batched together (`batch_size` frames at a time).
"""

from typing import Dict, List, Tuple

from ._common import check_batch_size, check_videos, checkpoint_file, clip_transform

NAME = "aesthetic_quality"
# checkpoint key -> (official file name, weights manifest entry)
CHECKPOINTS = {
    "clip_vit_l_14": ("ViT-L-14.pt", "vbench-clip-vit-l-14"),
    "aesthetic_head": ("sa_0_4_vit_l_14_linear.pth", "vbench-laion-aesthetic-head"),
}


def load_aesthetic_head(path: str):
    """The LAION linear head as torch.nn.Linear(768, 1) from its official state dict file (`weight`, `bias`)."""
    import torch

    from ._common import check_keys, load_torch_checkpoint

    state_dict = load_torch_checkpoint(path, NAME)
    head = torch.nn.Linear(768, 1)
    check_keys(head.state_dict(), state_dict, path, NAME)
    head.load_state_dict(state_dict, strict=True)
    return head.eval()


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 32, **info) -> Tuple[float, List]:
    """(mean over videos, per-video scores) of the aesthetic score / 10, each video's the mean over its frames."""
    videos = check_videos(videos, NAME)
    check_batch_size(batch_size, NAME)
    clip_path = checkpoint_file(checkpoints, "clip_vit_l_14", NAME, CHECKPOINTS["clip_vit_l_14"][1])
    head_path = checkpoint_file(checkpoints, "aesthetic_head", NAME, CHECKPOINTS["aesthetic_head"][1])

    import torch
    import torch.nn.functional as F

    from ._openai_clip import load_openai_clip_vision

    head = load_aesthetic_head(head_path).to(device)
    clip = load_openai_clip_vision(clip_path, NAME, device)
    if clip.config.projection_dim != head.in_features:
        raise ValueError(
            f"{NAME}: CLIP {clip_path!r} gives {clip.config.projection_dim}-d features; the aesthetic head needs 768"
        )
    counts = [len(video) for video in videos]
    # each video resized on its own (sizes may differ), then 224x224 frames of all videos batched together
    frames = torch.cat([clip_transform(torch.from_numpy(video).permute(0, 3, 1, 2).float()) for video in videos])
    scores = []
    with torch.no_grad():
        for batch in frames.split(batch_size):
            features = F.normalize(clip(pixel_values=batch.to(device)).image_embeds.float(), dim=-1, p=2)
            scores.append(head(features).squeeze(-1).cpu())
    per_frame = torch.cat(scores) / 10
    per_video = [chunk.mean().item() for chunk in per_frame.split(counts)]
    return sum(per_video) / len(per_video), per_video
