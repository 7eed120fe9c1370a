"""RepVideo text-to-video on the CogVideoX-2B backbone (the released RepVideo model)."""

import diffusers

from .pipeline import OFFICIAL_DEFAULTS, OFFICIAL_FPS, CogVideoXRepVideoPipeline
from ...models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

# model_index.json written by save_pretrained names this class; diffusers resolves pipeline class names in its
# own namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it registered there.
if not hasattr(diffusers, CogVideoXRepVideoPipeline.__name__):
    setattr(diffusers, CogVideoXRepVideoPipeline.__name__, CogVideoXRepVideoPipeline)

__all__ = ["OFFICIAL_DEFAULTS", "OFFICIAL_FPS", "CogVideoXRepVideoPipeline", "CogVideoXRepVideoTransformer3DModel"]
