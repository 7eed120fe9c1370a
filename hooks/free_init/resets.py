"""Callbacks FreeInit runs between its sampling passes, so that caches start each pass afresh."""

from typing import Callable

__all__ = ["ITERATION_RESET_CALLBACKS_ATTRIBUTE", "register_iteration_reset", "reset_caches_between_iterations",
           "unregister_iteration_reset"]

# Attribute of a pipeline holding callables run before every FreeInit iteration after the first.
ITERATION_RESET_CALLBACKS_ATTRIBUTE = "_vdp_free_init_reset_callbacks"


def register_iteration_reset(pipe, callback: Callable) -> None:
    """Have ``callback(pipe)`` run before every FreeInit iteration after the first (e.g. to clear a cache)."""
    callbacks = getattr(pipe, ITERATION_RESET_CALLBACKS_ATTRIBUTE, None)
    if callbacks is None:
        callbacks = []
        setattr(pipe, ITERATION_RESET_CALLBACKS_ATTRIBUTE, callbacks)
    if callback not in callbacks:
        callbacks.append(callback)


def unregister_iteration_reset(pipe, callback: Callable) -> None:
    """Undo ``register_iteration_reset`` (nothing happens when ``callback`` is not registered)."""
    callbacks = getattr(pipe, ITERATION_RESET_CALLBACKS_ATTRIBUTE, None) or []
    if callback in callbacks:
        callbacks.remove(callback)


def reset_caches_between_iterations(pipe) -> None:
    """Clear every cache that carries state from one sampling pass to the next; FreeInit runs it between iterations.

    In order: diffusers' stateful hooks on each component (``_reset_stateful_cache``: First Block Cache, diffusers'
    FasterCache, ... enabled with ``transformer.enable_cache``), then the callbacks added with
    ``register_iteration_reset`` (the pack's FasterCache adds its reset there when it is applied).
    """
    for component in getattr(pipe, "components", {}).values():
        if hasattr(component, "_reset_stateful_cache"):
            component._reset_stateful_cache()
    for callback in list(getattr(pipe, ITERATION_RESET_CALLBACKS_ATTRIBUTE, None) or []):
        callback(pipe)
