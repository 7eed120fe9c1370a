"""Diffusion as Shader image-to-video pipeline (tracking-video control on CogVideoX-5B-I2V)."""

from ..._lazy import lazy_exports

# public name -> submodule defining it, imported on first access, so that `defaults` can be imported
# without torch or diffusers; importing `pipeline` registers the pipeline class in diffusers' namespace
_LAZY_EXPORTS = {
    "OFFICIAL_NEGATIVE_PROMPT": ".pipeline",
    "DaSPipeline": ".pipeline",
    "DaSTransformer3DModel": "...models.das_transformer",
}

__all__ = sorted(_LAZY_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)
