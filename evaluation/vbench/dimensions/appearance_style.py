"""VBench appearance_style: how strongly CLIP ViT-B/32 (`ViT-B-32.pt`) matches every frame with the suite's style
name of the prompt (auxiliary info `{'appearance_style': 'Van Gogh style'}`).

As the official code: every frame as a PIL image through `clip_transform_Image(224)` (shorter side 224 by PIL's
bicubic, which always antialiases, sizes truncated; centre crop; /255; CLIP mean/std); the style name tokenised by
CLIP's BPE (the official `bpe_simple_vocab_16e6.txt.gz` shipped with the pack, context 77); per frame `logits_per_text / 100` =
exp(`logit_scale` of the checkpoint) * cos(image, text) / 100. Per video the mean over its frames (with the frame
scores and the last one, `frame_results` and `cur_sim`, as the official results file has them), the aggregate the
sum over all frames of all videos over their count. fp32 (the official CLI runs CLIP in fp16 on CUDA). Frames of all
videos are preprocessed and batched together, `batch_size` at a time; each style is encoded once.
"""

from typing import Dict, List, Tuple

from ._common import CLIP_MEAN, CLIP_STD, check_batch_size, check_videos, checkpoint_file, row_batches

NAME = "appearance_style"
CHECKPOINTS = {"clip_vit_b_32": ("ViT-B-32.pt", "vbench-clip-vit-b-32")}
CONTEXT_LENGTH = 77


def clip_transform_image(frames, n_px: int = 224):
    """VBench's `clip_transform_Image` on uint8 frames [T,H,W,3]: each frame as a PIL image, shorter side n_px by
    PIL bicubic (antialiased), centre crop, /255, CLIP mean/std -> float [T,3,n_px,n_px]."""
    import torch
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    out = []
    for frame in frames:
        image = TF.resize(Image.fromarray(frame), n_px, interpolation=InterpolationMode.BICUBIC)
        out.append(TF.normalize(TF.to_tensor(TF.center_crop(image, n_px)), CLIP_MEAN, CLIP_STD))
    return torch.stack(out)


def frame_batches(videos, owners, batch_size: int):
    """(pixels [<= batch_size, 3, 224, 224], owner of each frame) over all frames of all videos in order, each
    frame through `clip_transform_image` once, `batch_size` frames of a video at a time (so only about one batch
    of pixels is held at a time)."""
    import torch

    chunk_owners = []

    def chunks():
        for video, owner in zip(videos, owners):
            for start in range(0, len(video), batch_size):
                chunk_owners.append(owner)
                yield clip_transform_image(video[start:start + batch_size])

    for pixels, chunk_indices in row_batches(chunks(), batch_size):
        yield pixels, torch.tensor([chunk_owners[index] for index in chunk_indices])


def styles_of(auxiliary_info, count: int) -> List[str]:
    """The style name of each video from its auxiliary info; ValueError naming the video without one."""
    if auxiliary_info is None or len(auxiliary_info) != count:
        raise ValueError(
            f"{NAME}: needs the suite's auxiliary info {{'appearance_style': <style>}} for each of the {count} videos "
            "(standard mode; custom input cannot be scored on this dimension)"
        )
    styles = []
    for index, info in enumerate(auxiliary_info):
        style = info.get("appearance_style") if isinstance(info, dict) else None
        if not isinstance(style, str) or not style.strip():
            raise ValueError(
                f"{NAME}: videos[{index}] has auxiliary info {info!r}; it needs {{'appearance_style': <style name>}}"
            )
        styles.append(style)
    return styles


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 32, auxiliary_info=None,
            clip_bpe=None, **info) -> Tuple[float, List]:
    """(sum of frame scores / number of frames, per-video {'video_results', 'frame_results', 'cur_sim'}).

    `clip_bpe`: another CLIP BPE merges file than the official one."""
    videos = check_videos(videos, NAME)
    check_batch_size(batch_size, NAME)
    styles = styles_of(auxiliary_info, len(videos))
    clip_path = checkpoint_file(checkpoints, "clip_vit_b_32", NAME, CHECKPOINTS["clip_vit_b_32"][1])

    import numpy as np
    import torch

    from ._clip_tokenizer import load_bpe, tokenize
    from ._openai_clip_text import image_features, load_openai_clip, text_features

    tokenizer = load_bpe(clip_bpe, NAME)
    unique = list(dict.fromkeys(styles))
    ids = tokenize(tokenizer, unique, CONTEXT_LENGTH, NAME)
    try:
        model = load_openai_clip(clip_path, NAME, device)
    except ValueError as error:
        raise ValueError(f"{error}; `vdp download {CHECKPOINTS['clip_vit_b_32'][1]}` fetches the official file") from None
    if int(ids.max()) >= model.config.text_config.vocab_size:
        raise ValueError(
            f"{NAME}: the BPE vocabulary {clip_bpe or 'of CLIP'} gives token id {int(ids.max())}, beyond the "
            f"{model.config.text_config.vocab_size} token embeddings of {clip_path!r}"
        )
    counts = [len(video) for video in videos]
    owners = [unique.index(style) for style in styles]
    logits = []
    with torch.no_grad():
        texts = text_features(model, ids.to(device))
        scale = model.logit_scale.exp()
        # frames preprocessed batch by batch (across videos), so only one batch of pixels is held at a time
        for pixels, text_rows in frame_batches(videos, owners, batch_size):
            features = image_features(model, pixels.to(device))
            logits.append((scale * (features * texts[text_rows.to(device)]).sum(-1)).cpu())
    logits = torch.cat(logits)
    total, number, per_video = 0.0, 0, []
    for scores in logits.split(counts):
        frame_results = [float(score) / 100 for score in scores]
        for score in frame_results:
            total += score
            number += 1
        per_video.append({
            "video_results": float(np.mean(frame_results)),
            "frame_results": frame_results,
            "cur_sim": frame_results[-1],
        })
    return total / number, per_video
