"""VBench overall_consistency: cosine similarity of ViCLIP's (`ViClip-InternVid-10M-FLT.pth`) video feature and the
feature of the video's full prompt, over the suite's overall-consistency prompts.

The computation is temporal_style's (see `temporal_style`): 8 'middle' frames padded with the last one,
`clip_transform(224)` rounded to uint8, CLIP BPE with context 32, the cosine per video and their mean. fp32. Works
in custom-input mode (the prompt read from the file name) as the official does.
"""

from typing import Dict, List, Tuple

from .temporal_style import CHECKPOINTS, prompt_similarity

NAME = "overall_consistency"
CHECKPOINTS = dict(CHECKPOINTS)


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 32, prompts=None,
            clip_bpe=None, **info) -> Tuple[float, List[float]]:
    """(mean over videos, per-video cosine similarities of video and prompt); `clip_bpe`: another CLIP BPE merges
    file than the official one."""
    return prompt_similarity(NAME, videos, checkpoints, device, batch_size, prompts, clip_bpe)
