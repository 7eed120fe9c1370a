"""VBench temporal_style: cosine similarity of ViCLIP's (`ViClip-InternVid-10M-FLT.pth`) video feature and the
feature of the video's full prompt (e.g. 'A beautiful coastal beach in spring, waves lapping on sand, in slow
motion').

As the official code: 8 frames by `get_frame_indices(8, frames, 'middle')` (padded with the last one for shorter
videos), `clip_transform(224)` on the uint8 frames (bicubic without antialias, rounded and clamped back to uint8,
centre crop, CLIP mean/std), the prompt tokenised by CLIP's BPE (the official `bpe_simple_vocab_16e6.txt.gz` shipped with the pack, context 32, cut
with the end token kept); per video the cosine, the aggregate their mean. fp32. Works in custom-input mode (the
prompt read from the file name) as the official does.
"""

from typing import Dict, List, Tuple

from ._common import check_batch_size, check_videos

NAME = "temporal_style"
CHECKPOINTS = {"viclip": ("ViClip-InternVid-10M-FLT.pth", "vbench-viclip")}


def check_prompts(name: str, prompts, count: int) -> List[str]:
    """The prompt of each video; ValueError naming the video whose prompt is missing."""
    if prompts is None or len(prompts) != count:
        raise ValueError(f"{name}: needs the prompt of each of the {count} videos (prompts=...)")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{name}: videos[{index}] has prompt {prompt!r}; a non-empty text is needed")
    return list(prompts)


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 32, prompts=None,
            clip_bpe=None, **info) -> Tuple[float, List[float]]:
    """(mean over videos, per-video cosine similarities of video and prompt); `clip_bpe`: another CLIP BPE merges
    file than the official one."""
    return prompt_similarity(NAME, videos, checkpoints, device, batch_size, prompts, clip_bpe)


def prompt_similarity(name: str, videos, checkpoints, device, batch_size, prompts, clip_bpe):
    """ViCLIP's video-prompt cosine of each video and their mean, the arguments checked: temporal_style's and
    overall_consistency's computation (only the suite's prompts differ)."""
    videos = check_videos(videos, name)
    check_batch_size(batch_size, name)
    texts = check_prompts(name, prompts, len(videos))
    from ._viclip import video_text_similarity

    return video_text_similarity(videos, texts, checkpoints=checkpoints, entry=CHECKPOINTS["viclip"][1], name=name,
                                 device=device, batch_size=batch_size, clip_bpe=clip_bpe)
