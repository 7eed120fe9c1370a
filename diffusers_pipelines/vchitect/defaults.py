"""Inference settings of the Vchitect-2.0 (+ RepVideo) pipeline, torch-free: the official ones and the smoke test's.

The pipeline's `__call__` defaults, the `vdp generate --pipeline vchitect` command and the ComfyUI nodes read them
from here. The field names are the pipeline's argument names; `fps` is the frame rate videos are written at and
`seed` the seed of the initial noise.
"""

import dataclasses

__all__ = ["OFFICIAL", "SMOKE_TEST", "VchitectSettings"]


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
# the embedded smoke-test model (`build_tiny_vchitect_pipeline`): small enough to finish in well under a minute on a
# 2-core CPU
SMOKE_TEST = dataclasses.replace(OFFICIAL, height=64, width=64, num_frames=8, num_inference_steps=8)
