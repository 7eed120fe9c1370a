"""Training-free sampling add-ons that work on the pack's pipelines and on diffusers' video pipelines.

One module a method; each is a config dataclass plus functions that apply it to a pipeline and remove it.
Nothing here imports ComfyUI.
"""

from .free_init import FreeInitConfig, apply_free_init, free_init_applied, remove_free_init

__all__ = ["FreeInitConfig", "apply_free_init", "free_init_applied", "remove_free_init"]
