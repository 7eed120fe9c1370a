"""Inference settings of the Vchitect-2.0 (+ RepVideo) pipeline, torch-free: the official ones and the smoke test's.

The pipeline's `__call__` defaults, the `vdp generate --pipeline vchitect` command and the ComfyUI nodes read them
from here. The field names are the pipeline's argument names; `fps` is the frame rate videos are written at and
`seed` the seed of the initial noise.
"""

import dataclasses

__all__ = ["EMBEDDED", "EMBEDDED_DESCRIPTION", "OFFICIAL", "SMOKE_TEST", "VchitectSettings"]


@dataclasses.dataclass(frozen=True)
class VchitectSettings:
    """One set of Vchitect-2.0 inference settings."""

    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    use_dynamic_cfg: bool
    fps: float
    seed: int


# the official inference script (Vchitect-2.0 `inference.py`): 100 steps, guidance 7.5, 768x432, 40 frames, i.e. 5 s
# at 8 fps, constant guidance unless the per-step ramp is asked for
OFFICIAL = VchitectSettings(
    height=432, width=768, num_frames=40, num_inference_steps=100, guidance_scale=7.5, use_dynamic_cfg=False, fps=8.0,
    seed=0,
)
# the random-weight smoke-test model (`build_tiny_vchitect_pipeline(weights="random")`): small enough to finish in
# well under a minute on a 2-core CPU
SMOKE_TEST = dataclasses.replace(OFFICIAL, height=64, width=64, num_frames=8, num_inference_steps=8)
# the embedded model (`embedded_models/vchitect`, trained on the shapes world at 48x48, 8 frames): the default of
# `vdp generate` without --model, of `build_tiny_vchitect_pipeline()` and of the Embedded and Tiny ComfyUI loaders
EMBEDDED = dataclasses.replace(OFFICIAL, height=48, width=48, num_frames=8, num_inference_steps=20, guidance_scale=5.0)
EMBEDDED_DESCRIPTION = (
    "a small Vchitect-2.0 (48x48, 8 frames) trained for about three and a half hours on a CPU on the pack's shapes "
    "world (flat circles, squares, triangles and stars in red, yellow, green, blue, white or black moving left, right, "
    "up or down on a plain background). It draws one object in the prompt's colour on the prompt's background and "
    "moves it the prompt's way (colour 1.0, direction 1.0, background 1.0 on the quality bed's 24 prompts), or two "
    "objects placed as the prompt says ('a red circle moving left above a yellow square moving left on a green "
    "background': relation right in 0.67 of 48), but its outlines are rough blobs (shape 0.17); scores in "
    "embedded_models/vchitect/MODEL_CARD.md."
)
