"""ComfyUI nodes of the pack: thin adapters over the pipelines, gathered from one module per feature.

Importing this package never imports ComfyUI; the nodes import ``comfy`` / ``folder_paths`` when they run.
"""

from . import (
    das_nodes, faster_cache_nodes, free_init_nodes, lgvi_i_nodes, lgvi_nodes, repvideo_nodes, vchitect_nodes,
)

_FEATURE_MODULES = (
    vchitect_nodes, free_init_nodes, faster_cache_nodes, das_nodes, lgvi_nodes, repvideo_nodes, lgvi_i_nodes,
)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in _FEATURE_MODULES:
    _clashes = set(NODE_CLASS_MAPPINGS) & set(_module.NODE_CLASS_MAPPINGS)
    if _clashes:
        raise ImportError(f"{_module.__name__} redefines nodes {sorted(_clashes)}")
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
del _module, _clashes

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
