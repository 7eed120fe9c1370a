"""Inference settings of the RepVideo (CogVideoX-2B) pipeline, torch-free: the official ones and the smoke test's.

The pipeline's `__call__` defaults, the `vdp generate --pipeline repvideo` command and the ComfyUI nodes read them
from here. The field names are the pipeline's argument names (`max_sequence_length` is the transformer's number of
text positions: T5's 226 for the released model); `fps` is the frame rate videos are written at and `seed` the seed
of the initial noise.
"""

import dataclasses

__all__ = ["OFFICIAL", "SMOKE_TEST", "RepVideoSettings"]


@dataclasses.dataclass(frozen=True)
class RepVideoSettings:
    """One set of RepVideo (CogVideoX-2B) inference settings."""

    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    use_dynamic_cfg: bool
    max_sequence_length: int
    fps: float
    seed: int


# the official inference (sat/configs/inference.yaml, sat/configs/cogvideox_2b.yaml, sat/sample_video.py):
# 480x720, 13 latent frames (49 frames), 50 DPM++ steps, DynamicCFG(scale=6, exp=5), seed 42, saved at 8 fps
OFFICIAL = RepVideoSettings(
    height=480, width=720, num_frames=49, num_inference_steps=50, guidance_scale=6.0, use_dynamic_cfg=True,
    max_sequence_length=226, fps=8.0, seed=42,
)
# the embedded smoke-test model (`build_tiny_cogvideox_repvideo_pipeline`) at the geometry it is built for (32x32,
# 9 frames, i.e. 3 latent frames, 16 text positions) and few steps: it runs in seconds on a CPU
SMOKE_TEST = dataclasses.replace(
    OFFICIAL, height=32, width=32, num_frames=9, num_inference_steps=4, max_sequence_length=16
)
