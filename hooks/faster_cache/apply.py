"""Turning FasterCache on and off for a pipeline."""

import contextlib
from typing import Any, Optional

from diffusers.hooks import HookRegistry
from torch import nn

from ..free_init.resets import register_iteration_reset, unregister_iteration_reset
from .config import FasterCacheConfig
from .hooks import _ATTENTION_HOOK, _DENOISER_HOOK, _AttentionHook, _DenoiserHook
from .registry import _CACHEABLE_ATTENTION, _cacheable_attention_modules
from .state import FasterCache

__all__ = [
    "apply_faster_cache", "faster_cache_applied", "faster_cache_of", "remove_faster_cache", "reset_faster_cache",
]

# where apply_faster_cache keeps its handle on the pipeline
_PIPELINE_ATTRIBUTE = "_vdp_faster_cache"


def apply_faster_cache(pipe: Any, config: Optional[FasterCacheConfig] = None) -> FasterCache:
    """Turns FasterCache on for a pipeline's `transformer`; returns its state (`FasterCache`).

    Works on any pipeline whose loop calls `pipe.transformer` once per step with both guidance branches batched
    (negative first) or twice per step (conditional first), named with `transformer.cache_context(...)` or, without
    names, batched when `pipe.do_classifier_free_guidance` is true: the pack's pipelines and diffusers'
    CogVideoX family among them. Pipelines that pass `step_index` and `num_inference_steps` to `cache_context` (the
    pack's, diffusers' Wan) give the step; for the others it is counted from the calls (see `FasterCache`).
    Nothing of the pipeline's scheduler is changed. The cache's reset is registered with FreeInit's
    `register_iteration_reset`, so that each FreeInit pass is a trajectory of its own.

    Args:
        pipe (`DiffusionPipeline`): the pipeline; its `transformer` gets the hooks.
        config (`FasterCacheConfig`, *optional*): defaults to `FasterCacheConfig()` (the "default" preset).

    Raises:
        TypeError: `config` is not this module's `FasterCacheConfig` (diffusers' own class has other fields).
        ValueError: the pipeline has no transformer, already has FasterCache or a diffusers cache, or its
            transformer has no attention module of a registered type.
    """
    config = FasterCacheConfig() if config is None else config
    if not isinstance(config, FasterCacheConfig):
        raise TypeError(
            f"config={type(config).__module__}.{type(config).__name__} must be video_diffusion_pack's FasterCacheConfig"
        )
    denoiser = getattr(pipe, "transformer", None)
    if not isinstance(denoiser, nn.Module):
        raise ValueError(f"{type(pipe).__name__} has no `transformer` module for FasterCache to hook")
    if faster_cache_of(pipe) is not None:
        raise ValueError("FasterCache is already applied to this pipeline; call remove_faster_cache(pipe) first")
    if getattr(denoiser, "_cache_config", None) is not None:
        raise ValueError(
            f"the transformer already has a diffusers cache ({type(denoiser._cache_config).__name__});"
            " call pipe.transformer.disable_cache() first"
        )
    modules = _cacheable_attention_modules(denoiser)
    if not modules:
        raise ValueError(
            f"{type(denoiser).__name__} has no attention module of a registered type"
            f" ({[kind.__name__ for kind, _ in _CACHEABLE_ATTENTION]}); see register_faster_cache_attention"
        )

    cache = FasterCache(config, pipe)
    registry = HookRegistry.check_if_exists_or_initialize(denoiser)
    registry.register_hook(_DenoiserHook(cache), _DENOISER_HOOK)
    for name, module in modules:
        HookRegistry.check_if_exists_or_initialize(module).register_hook(_AttentionHook(cache, name), _ATTENTION_HOOK)
    registry.invalidate_child_registries_cache()
    cache._hooked = (denoiser, [module for _, module in modules])
    setattr(pipe, _PIPELINE_ATTRIBUTE, cache)
    register_iteration_reset(pipe, reset_faster_cache)
    return cache


def remove_faster_cache(pipe: Any) -> None:
    """Removes FasterCache from a pipeline: its transformer computes exactly as if it never had it.

    Raises:
        ValueError: FasterCache is not applied to `pipe`.
    """
    cache = faster_cache_of(pipe)
    if cache is None:
        raise ValueError("FasterCache is not applied to this pipeline")
    denoiser, modules = cache._hooked
    for module in modules:
        module._diffusers_hook.remove_hook(_ATTENTION_HOOK, recurse=False)
    denoiser._diffusers_hook.remove_hook(_DENOISER_HOOK, recurse=False)
    denoiser._diffusers_hook.invalidate_child_registries_cache()
    unregister_iteration_reset(pipe, reset_faster_cache)
    cache.reset()
    delattr(pipe, _PIPELINE_ATTRIBUTE)


def reset_faster_cache(pipe: Any) -> bool:
    """Starts a new trajectory: forgets the plan, the step and every cached tensor. No-op without FasterCache.

    Pipelines reset it themselves at each call; loops that re-run the denoising inside one call (FreeInit's
    iterations) call this before each run. Returns whether `pipe` has FasterCache.
    """
    cache = faster_cache_of(pipe)
    if cache is None:
        return False
    cache.reset()
    return True


def faster_cache_of(pipe: Any) -> Optional[FasterCache]:
    """The `FasterCache` state applied to `pipe`, or None."""
    return getattr(pipe, _PIPELINE_ATTRIBUTE, None)


@contextlib.contextmanager
def faster_cache_applied(pipe: Any, config: Optional[FasterCacheConfig]):
    """`apply_faster_cache` for the duration of a `with` block (nothing when `config` is None); then the previous state.

    Yields the `FasterCache` state, or None when `config` is None.
    """
    if config is None:
        yield None
        return
    previous = faster_cache_of(pipe)
    if previous is not None:
        remove_faster_cache(pipe)
    try:
        yield apply_faster_cache(pipe, config)
    finally:
        if faster_cache_of(pipe) is not None:
            remove_faster_cache(pipe)
        if previous is not None:
            apply_faster_cache(pipe, previous.config)
