"""Inference settings of the LGVI / LGVI-I inpainting pipeline, torch-free: the official ones and the smoke test's.

The pipeline's `__call__` defaults, the `vdp inpaint` command and the ComfyUI nodes read them from here. The field
names are the pipeline's argument names; `seed` seeds the VAE sample and the noise, `max_frames` is how many of the
input video's first frames are edited, `max_new_tokens` how many tokens LLaVA may write (LGVI-I), and `fps` the frame
rate of a written video whose input has none.
"""

import dataclasses

__all__ = ["EMBEDDED", "EMBEDDED_DESCRIPTION", "MAX_INFERENCE_STEPS", "OFFICIAL", "SMOKE_TEST", "LGVISettings"]


@dataclasses.dataclass(frozen=True)
class LGVISettings:
    """One set of LGVI / LGVI-I inference settings."""

    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    image_guidance_scale: float
    seed: int
    max_frames: int
    max_new_tokens: int
    fps: float


# the official inference settings (inference_referring.py: the first 24 frames at 512x320, 50 steps, text guidance 3,
# video guidance 1.5, seed 0; inference_interactive.py: the same, and LLaVA writes up to 1024 tokens)
OFFICIAL = LGVISettings(
    height=320, width=512, num_inference_steps=50, guidance_scale=3.0, image_guidance_scale=1.5, seed=0,
    max_frames=24, max_new_tokens=1024, fps=8.0,
)
# the random-weight smoke-test model (`build_tiny_inpaint_pipeline(weights="random")`) at a small size and few steps:
# it runs in seconds on a CPU
SMOKE_TEST = dataclasses.replace(OFFICIAL, height=32, width=48, num_inference_steps=3, max_new_tokens=8)
# the embedded model (`embedded_models/lgvi`, trained on the shapes world's removal pairs at 32x32, 8 frames): the
# default of `vdp inpaint` without --model, of `build_tiny_inpaint_pipeline()` and of the Embedded and Tiny ComfyUI
# loaders
# (guidance off: on the bed's removal set it scores higher than the official scales, in a third of the time)
EMBEDDED = dataclasses.replace(OFFICIAL, height=32, width=32, num_inference_steps=20, guidance_scale=1.0,
                               image_guidance_scale=1.0, max_frames=8, max_new_tokens=8)
EMBEDDED_DESCRIPTION = (
    "a small LGVI (32x32, 8 frames) trained on a CPU on the pack's shapes world: it removes the flat circle, square, "
    "triangle or star the instruction names (e.g. 'remove the red circle') from a shapes-world video, keeps the other "
    "shapes and paints the background over the removed one. Other videos are resized to 32x32 and come out blurred, "
    "not edited (scores in embedded_models/lgvi/MODEL_CARD.md)."
)
# the most steps the released DDIM scheduler plans: 1000 trained timesteps less its steps_offset of 1 (the pipeline's
# check_inference_steps gives the same limit from the loaded scheduler)
MAX_INFERENCE_STEPS = 999
