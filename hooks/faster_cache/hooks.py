"""FasterCache's diffusers hooks: one on the denoiser (branches, step, CFG-Cache), one on each attention module."""

from typing import Optional, Tuple

import torch
from diffusers.hooks import ModelHook
from diffusers.hooks.hooks import CacheContext, StateManager

from .batches import _concat_batch, _sample_of, _split_batch, _take_branches, _with_sample
from .state import FasterCache

_DENOISER_HOOK = "vdp_faster_cache_denoiser"
_ATTENTION_HOOK = "vdp_faster_cache_attention"

# branch layout of one denoiser call, by diffusers' cache-context names (batched CFG puts the negative prompt first)
_CONTEXT_BRANCHES = {"cond_uncond": ("uncond", "cond"), "cond": ("cond",), "uncond": ("uncond",)}


class _NoState:
    """State slot for diffusers' `StateManager`: FasterCache uses the manager only to receive cache contexts."""

    def reset(self, *args, **kwargs):
        pass


class _ContextReceiver(StateManager):
    """Holds the cache context a pipeline opened around the current denoiser call (`cache_context(name, ...)`).

    diffusers hands the context to every `StateManager` attribute of a stateful hook through `set_context`.
    """

    def __init__(self):
        super().__init__(_NoState)
        self.current: Optional[CacheContext] = None

    def set_context(self, context: Optional[CacheContext]) -> None:
        super().set_context(context)
        self.current = context


class _DenoiserHook(ModelHook):
    """On the transformer: tells the branches and the step of each call, and runs CFG-Cache."""

    _is_stateful = True

    def __init__(self, cache: FasterCache):
        super().__init__()
        self.cache = cache
        self.context = _ContextReceiver()

    def reset_state(self, module):
        self.cache.reset()
        return module

    def _branches(self, context: Optional[CacheContext]) -> Tuple[str, ...]:
        if context is not None:
            if context.name not in _CONTEXT_BRANCHES:
                raise ValueError(
                    f"FasterCache: unknown cache context {context.name!r}; expected one of {sorted(_CONTEXT_BRANCHES)}"
                )
            return _CONTEXT_BRANCHES[context.name]
        pipeline = self.cache._pipeline()
        guided = getattr(pipeline, "do_classifier_free_guidance", None)
        if guided is None:
            raise RuntimeError(
                f"FasterCache: {type(pipeline).__name__} neither names its denoiser calls with"
                " transformer.cache_context('cond_uncond' | 'cond' | 'uncond') nor has do_classifier_free_guidance"
            )
        return _CONTEXT_BRANCHES["cond_uncond" if guided else "cond"]

    def new_forward(self, module, *args, **kwargs):
        cache = self.cache
        context = self.context.current
        branches = self._branches(context)
        step_index, num_steps = getattr(context, "step_index", None), getattr(context, "num_inference_steps", None)
        cache._begin_call(branches, step_index, num_steps)
        step, plan = cache.step, cache.plan
        forward = self.fn_ref.original_forward
        try:
            if branches == ("uncond", "cond") and plan.uncond_skip[step]:
                args, kwargs = _take_branches(args, kwargs, parts=2, keep=[1])
                cache.branches = ("cond",)
                output = forward(*args, **kwargs)
                cond = _sample_of(output)
                output = _with_sample(output, torch.cat([cache._rebuild_uncond(cond), cond]))
            elif branches == ("uncond",) and plan.uncond_skip[step]:
                if cache._step_cond_output is None:
                    raise RuntimeError(
                        "FasterCache: with separate guidance calls the conditional call must come first in each step"
                        " (transformer.cache_context('cond') before 'uncond'), as in diffusers' pipelines"
                    )
                cond_output = cache._step_cond_output
                output = _with_sample(cond_output, cache._rebuild_uncond(_sample_of(cond_output)))
            else:
                output = forward(*args, **kwargs)
                sample = _sample_of(output)
                if branches == ("uncond", "cond") and plan.residual_record[step]:
                    cache._record_residuals(*sample.chunk(2))
                elif branches == ("cond",) and (plan.uncond_skip[step] or plan.residual_record[step]):
                    cache._step_cond_output = output
                elif branches == ("uncond",) and plan.residual_record[step]:
                    if cache._step_cond_output is None:
                        raise RuntimeError(
                            "FasterCache: with separate guidance calls the conditional call must come first in each"
                            " step (transformer.cache_context('cond') before 'uncond'), as in diffusers' pipelines"
                        )
                    cache._record_residuals(sample, _sample_of(cache._step_cond_output))
        finally:
            cache._end_call(branches)
        return output


class _AttentionHook(ModelHook):
    """On each cacheable attention module: runs it for the branches that need it, extrapolates the others."""

    def __init__(self, cache: FasterCache, name: str):
        super().__init__()
        self.cache = cache
        self.name = name

    def new_forward(self, module, *args, **kwargs):
        cache = self.cache
        forward = self.fn_ref.original_forward
        if cache.branches is None:  # called outside a planned denoiser call
            return forward(*args, **kwargs)
        branches = cache.branches
        actions = [cache._attention_action(branch) for branch in branches]
        if "reuse" not in actions and "record" not in actions:
            return forward(*args, **kwargs)

        key = id(module)
        run = [k for k, action in enumerate(actions) if action != "reuse"]
        if run:
            if len(run) < len(branches):
                args, kwargs = _take_branches(args, kwargs, parts=len(branches), keep=run)
            computed = _split_batch(forward(*args, **kwargs), len(run))
        parts = []
        for k, action in enumerate(actions):
            if action == "reuse":
                parts.append(cache._extrapolate_attention(key, self.name))
                continue
            part = computed[run.index(k)]
            if action == "record":
                cache._record_attention(key, part)
            parts.append(part)
        return _concat_batch(parts)
