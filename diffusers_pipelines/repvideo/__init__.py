"""RepVideo text-to-video on the CogVideoX-2B backbone (the released RepVideo model)."""

from ..._lazy import lazy_exports

# public name -> submodule defining it, imported on first access, so that `defaults` can be imported
# without torch or diffusers; importing `pipeline` registers the pipeline class in diffusers' namespace
_LAZY_EXPORTS = {
    "OFFICIAL_DEFAULTS": ".pipeline",
    "OFFICIAL_FPS": ".pipeline",
    "CogVideoXRepVideoPipeline": ".pipeline",
    "CogVideoXRepVideoTransformer3DModel": "...models.cogvideox_repvideo",
}

__all__ = sorted(_LAZY_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)
