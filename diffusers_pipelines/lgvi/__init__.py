"""Language-driven video inpainting (LGVI / LGVI-I, ROVI): an instruction and a video in, the edited video out."""

from ..._lazy import lazy_exports

# public name -> submodule defining it, imported on first access, so that `defaults` can be imported
# without torch or diffusers; importing `pipeline` registers the pipeline class in diffusers' namespace
_LAZY_EXPORTS = {
    "InpaintByInstructionPipeline": ".pipeline",
    "InpaintByInstructionPipelineOutput": ".pipeline",
    "RoviUNet3DConditionModel": "...models.rovi_unet",
}

__all__ = sorted(_LAZY_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)
