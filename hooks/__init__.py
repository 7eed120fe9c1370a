"""Training-free sampling add-ons that work on the pack's pipelines and on diffusers' video pipelines.

One package a method (``faster_cache``, ``free_init``); each is a config dataclass plus functions that apply
it to a pipeline and remove it.
Nothing here imports ComfyUI.
"""

from .faster_cache import (
    FasterCacheConfig,
    apply_faster_cache,
    faster_cache_of,
    remove_faster_cache,
    reset_faster_cache,
)
from .free_init import FreeInitConfig, apply_free_init, free_init_applied, remove_free_init

__all__ = [
    "FasterCacheConfig",
    "FreeInitConfig",
    "apply_faster_cache",
    "apply_free_init",
    "faster_cache_of",
    "free_init_applied",
    "remove_faster_cache",
    "remove_free_init",
    "reset_faster_cache",
]
