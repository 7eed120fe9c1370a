"""Vchitect-2.0 / RepVideo text-to-video pipeline."""

from ..._lazy import lazy_exports

# public name -> submodule defining it, imported on first access, so that `defaults` can be imported
# without torch or diffusers; importing `pipeline` registers the pipeline class in diffusers' namespace
_LAZY_EXPORTS = {
    "VchitectRepVideoPipeline": ".pipeline",
    "VchitectRepVideoPipelineOutput": ".pipeline",
    "VchitectXLTransformer3DModel": "...models.vchitect_transformer",
}

__all__ = sorted(_LAZY_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)
