"""RepVideo text-to-video on the CogVideoX-2B backbone (the released RepVideo model)."""

import importlib

# public name -> submodule defining it, imported on first access, so that `defaults` can be imported
# without torch or diffusers; importing `pipeline` registers the pipeline class in diffusers' namespace
_LAZY_EXPORTS = {
    "OFFICIAL_DEFAULTS": ".pipeline",
    "OFFICIAL_FPS": ".pipeline",
    "CogVideoXRepVideoPipeline": ".pipeline",
    "CogVideoXRepVideoTransformer3DModel": "...models.cogvideox_repvideo",
}

__all__ = sorted(_LAZY_EXPORTS)


def __getattr__(name):
    if name in _LAZY_EXPORTS:
        value = getattr(importlib.import_module(_LAZY_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
