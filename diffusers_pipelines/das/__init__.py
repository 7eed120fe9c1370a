"""Diffusion as Shader image-to-video pipeline (tracking-video control on CogVideoX-5B-I2V)."""

import diffusers

from .pipeline import OFFICIAL_NEGATIVE_PROMPT, DaSPipeline
from ...models.das_transformer import DaSTransformer3DModel

# model_index.json written by save_pretrained names this class; diffusers resolves pipeline class names in its
# own namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it registered there.
if not hasattr(diffusers, DaSPipeline.__name__):
    setattr(diffusers, DaSPipeline.__name__, DaSPipeline)

__all__ = ["OFFICIAL_NEGATIVE_PROMPT", "DaSPipeline", "DaSTransformer3DModel"]
