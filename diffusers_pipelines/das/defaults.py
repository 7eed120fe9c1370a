"""Inference settings of the Diffusion-as-Shader pipeline, torch-free: the official ones and the smoke test's.

The pipeline's `__call__` defaults, the `vdp das` / `vdp track-video` commands and the ComfyUI nodes read them from
here. The field names are the pipeline's argument names; `fps` is the frame rate videos are written at and `seed`
the seed of the noise.
"""

import dataclasses

__all__ = ["EMBEDDED", "EMBEDDED_DESCRIPTION", "OFFICIAL", "OFFICIAL_NEGATIVE_PROMPT", "SMOKE_TEST", "DaSSettings"]

# the negative prompt of the official inference (`models/pipelines.py::_infer`)
OFFICIAL_NEGATIVE_PROMPT = (
    "The video is not of a high quality, it has a low resolution. Watermark present in each frame. The background is "
    "solid. Strange body and strange trajectory. Distortion."
)


@dataclasses.dataclass(frozen=True)
class DaSSettings:
    """One set of Diffusion-as-Shader inference settings."""

    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    use_dynamic_cfg: bool
    negative_prompt: str
    fps: float
    seed: int


# the released model's geometry (learned positional embeddings: 480x720, 49 frames) and the official inference
# settings (50 steps, guidance 6 with the dynamic ramp, seed 42)
OFFICIAL = DaSSettings(
    height=480, width=720, num_frames=49, num_inference_steps=50, guidance_scale=6.0, use_dynamic_cfg=True,
    negative_prompt=OFFICIAL_NEGATIVE_PROMPT, fps=8.0, seed=42,
)
# the random-weight smoke-test model's geometry (`build_tiny_das_pipeline(weights="random")`: 32x32, 9 frames) and few
# steps: it runs in seconds on a CPU
SMOKE_TEST = dataclasses.replace(OFFICIAL, height=32, width=32, num_frames=9, num_inference_steps=4)
# the embedded model (`embedded_models/das`, trained on the shapes world at 32x32, 5 frames): the default of `vdp das`
# without --model, of `load_embedded_das_pipeline` / `build_tiny_das_pipeline()` and of the Embedded and Tiny ComfyUI
# loaders; it was trained without text
# dropout, so it samples without classifier-free guidance
EMBEDDED = dataclasses.replace(OFFICIAL, height=32, width=32, num_frames=5, num_inference_steps=20, guidance_scale=1.0,
                               use_dynamic_cfg=False)
EMBEDDED_DESCRIPTION = (
    "a small Diffusion as Shader (32x32, 5 frames) trained on a CPU on the pack's shapes world: from a first frame of "
    "one flat circle, square, triangle or star on a plain or two-tone background and a tracking video, it moves that "
    "shape along the tracking video (left, right, up, down or diagonally). It draws nothing outside that world "
    "(scores in embedded_models/das/MODEL_CARD.md)."
)
