"""ComfyUI nodes of the pack: thin adapters over the pipelines, gathered from one module per feature.

Importing this package never imports ComfyUI; the nodes import ``comfy`` / ``folder_paths`` when they run.
When a Python dependency of the pack is missing it registers no node at all (rather than the part whose
modules happen to import) and logs one line naming the missing packages and the command that installs them.
"""

import logging

from ._dependencies import missing_requirements, missing_requirements_message

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

_missing = missing_requirements()
if _missing:
    logging.getLogger(__name__).error(missing_requirements_message(_missing))
else:
    from . import (
        das_nodes,
        faster_cache_nodes,
        free_init_nodes,
        lgvi_i_nodes,
        lgvi_nodes,
        lora_nodes,
        repvideo_nodes,
        vbench_nodes,
        vchitect_nodes,
    )

    for _module in (
        vchitect_nodes, free_init_nodes, faster_cache_nodes, das_nodes, lgvi_nodes, repvideo_nodes, lgvi_i_nodes,
        vbench_nodes, lora_nodes,
    ):
        _clashes = set(NODE_CLASS_MAPPINGS) & set(_module.NODE_CLASS_MAPPINGS)
        if _clashes:
            raise ImportError(f"{_module.__name__} redefines nodes {sorted(_clashes)}")
        NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
        NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
    del _module, _clashes
del _missing

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
