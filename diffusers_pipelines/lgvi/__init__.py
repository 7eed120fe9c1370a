"""Language-driven video inpainting (LGVI / LGVI-I, ROVI): an instruction and a video in, the edited video out."""

import diffusers

from .pipeline import InpaintByInstructionPipeline, InpaintByInstructionPipelineOutput
from ...models.rovi_unet import RoviUNet3DConditionModel

# model_index.json written by save_pretrained names this class; diffusers resolves pipeline class names in its
# own namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it registered there.
if not hasattr(diffusers, InpaintByInstructionPipeline.__name__):
    setattr(diffusers, InpaintByInstructionPipeline.__name__, InpaintByInstructionPipeline)

__all__ = ["InpaintByInstructionPipeline", "InpaintByInstructionPipelineOutput", "RoviUNet3DConditionModel"]
