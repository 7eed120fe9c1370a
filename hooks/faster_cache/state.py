"""FasterCache's state for one pipeline: the plan, the step being run and the cached tensors."""

import weakref
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from .batches import _map_tensors, _tensors_of, _zip_tensors
from .cfg_cache import cfg_cache_residuals
from .config import FasterCacheConfig, FasterCachePlan

__all__ = ["FasterCache"]


class FasterCache:
    """FasterCache state of one pipeline: the plan, the step being run, and the cached tensors.

    Returned by `apply_faster_cache`. Where the trajectory stands comes from the pipeline:

    - A pipeline that passes `step_index` (and `num_inference_steps`) to `transformer.cache_context(...)`, as the
      pack's pipelines and diffusers' Wan do, gives the step of every call. A call at an earlier step than the last
      one, or again at the same step for a branch already run there, starts a new trajectory.
    - Otherwise the step advances when a branch already run in the current step comes back, the step count is the
      pipeline's `_num_timesteps` (or its scheduler's timesteps), and a new trajectory starts when the scheduler's
      `timesteps` is a new tensor (every `set_timesteps` call makes one), so that a run that stopped midway does not
      leak into the next.

    diffusers' `maybe_free_model_hooks` (at the end of every pipeline call), FreeInit between its passes and
    `reset_faster_cache(pipe)` reset it too.

    Memory: at most `s * sum_m A_m + 2 * R` elements of `cache_dtype` are held, where `A_m` is the number of
    elements of attention module m's output for the conditional branch (batch B), `s` is 1 when
    `attention_weight == 0` and 2 otherwise, and `R` is the number of elements of the denoiser's output for one
    branch (while a module records, its previous output lives until the new clone is made). Nothing is held before
    the step preceding the first reuse or after the last one. With two guidance calls per step, the conditional
    call's own output is also kept (not copied) until the unconditional call of the same step.
    """

    def __init__(self, config: FasterCacheConfig, pipeline: Any):
        self.config = config
        self._pipeline = weakref.ref(pipeline)
        self.plan: Optional[FasterCachePlan] = None
        self.step = -1
        # branches of the denoiser call being run, None between calls
        self.branches: Optional[Tuple[str, ...]] = None
        self.peak_cache_bytes = 0
        self._hooked: Tuple[nn.Module, List[nn.Module]] = (None, [])
        # the scheduler's timesteps tensor the plan was made for (positions counted from the calls)
        self._timesteps: Optional[torch.Tensor] = None
        self._branches_done: set = set()
        self._step_cond_output: Optional[torch.Tensor] = None
        self._residuals: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        # attention module id -> (F_prev or None, F_last, output dtype); each F a tensor or a tuple of tensors / None
        self._attention: Dict[int, Tuple[Any, Any, torch.dtype]] = {}

    # -------------------------------------------------------------- bookkeeping
    def reset(self) -> None:
        """Forgets the plan, the step and every cached tensor (the next denoiser call starts a new trajectory)."""
        self.plan = None
        self.step = -1
        self.branches = None
        self._branches_done = set()
        self._step_cond_output = None
        self._residuals = None
        self._attention.clear()
        self._timesteps = None

    def cache_bytes(self) -> int:
        """Bytes of the tensors the cache holds now (attention clones and CFG residuals)."""
        tensors = [t for entry in self._attention.values() for slot in entry[:2] for t in _tensors_of(slot)]
        tensors += list(self._residuals or ())
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
        return sum(storages.values())

    def _begin_call(self, branches: Tuple[str, ...], step_index: Optional[int], num_steps: Optional[int]) -> None:
        """Moves to the step of this call, planning the trajectory at its first call.

        Args:
            branches (`tuple` of `str`): the guidance branches the call runs.
            step_index (`int`, *optional*): the 0-based step the pipeline passed to `cache_context`; None counts it.
            num_steps (`int`, *optional*): the trajectory's step count the pipeline passed; None reads it from the
                pipeline.
        """
        if step_index is None:
            self._count_step(branches)
        else:
            self._go_to_step(branches, step_index, num_steps)
        if self.step >= self.plan.num_steps:
            raise RuntimeError(
                f"FasterCache planned {self.plan.num_steps} steps but the denoiser is called for step {self.step + 1}:"
                " call reset_faster_cache(pipe) before running the transformer outside the pipeline's own loop"
            )
        self.branches = branches

    def _start_trajectory(self, num_steps: int) -> None:
        self.reset()
        self.plan = self.config.plan(num_steps)
        self.peak_cache_bytes = 0

    def _go_to_step(self, branches: Tuple[str, ...], step_index: int, num_steps: Optional[int]) -> None:
        num_steps = _num_steps_of(self._pipeline()) if num_steps is None else num_steps
        if isinstance(step_index, bool) or not isinstance(step_index, int) or step_index < 0:
            raise ValueError(f"FasterCache: cache_context step_index={step_index!r} must be an integer >= 0")
        repeated = step_index == self.step and self._branches_done.intersection(branches)
        if self.plan is None or self.plan.num_steps != num_steps or step_index < self.step or repeated:
            self._start_trajectory(num_steps)
        if step_index != self.step:
            self.step, self._branches_done = step_index, set()

    def _count_step(self, branches: Tuple[str, ...]) -> None:
        pipeline = self._pipeline()
        timesteps = getattr(getattr(pipeline, "scheduler", None), "timesteps", None)
        if self.plan is None or timesteps is not self._timesteps:
            self._start_trajectory(_num_steps_of(pipeline))
            self._timesteps = timesteps
        if self.step < 0 or self._branches_done.intersection(branches):
            self.step += 1
            self._branches_done = set()

    def _end_call(self, branches: Tuple[str, ...]) -> None:
        self._branches_done.update(branches)
        self.branches = None
        self.peak_cache_bytes = max(self.peak_cache_bytes, self.cache_bytes())
        if "cond" in self._branches_done and self.step >= self.plan.last_attention_reuse:
            self._attention.clear()
        if "uncond" in self._branches_done:
            self._step_cond_output = None
            if self.step >= self.plan.last_uncond_skip:
                self._residuals = None

    def _clone(self, tensor: torch.Tensor) -> torch.Tensor:
        dtype = self.config.cache_dtype or tensor.dtype
        return torch.empty_like(tensor, dtype=dtype, memory_format=torch.contiguous_format).copy_(tensor)

    # -------------------------------------------------------------- CFG-Cache
    def _record_residuals(self, uncond: torch.Tensor, cond: torch.Tensor) -> None:
        low, high = cfg_cache_residuals(uncond.float() - cond.float(), self.config.radius_divisor)
        self._residuals = (self._clone(low), self._clone(high))

    def _rebuild_uncond(self, cond: torch.Tensor) -> torch.Tensor:
        if self._residuals is None:
            raise RuntimeError(f"FasterCache: no CFG residuals recorded before step {self.step}")
        low, high = self._residuals
        uncond = torch.add(cond.float(), low, alpha=self.plan.low_frequency_scale[self.step])
        return uncond.add_(high, alpha=self.plan.high_frequency_scale[self.step]).to(cond.dtype)

    # -------------------------------------------------------------- attention reuse
    def _attention_action(self, branch: str) -> str:
        if branch == "uncond":
            return "compute"
        if self.plan.attention_reuse[self.step]:
            return "reuse"
        return "record" if self.plan.attention_record[self.step] else "compute"

    def _record_attention(self, key: int, output: Any) -> None:
        clone = _map_tensors(output, self._clone)
        previous = self._attention[key][1] if key in self._attention and self.config.attention_weight > 0 else None
        self._attention[key] = (previous, clone, _tensors_of(output)[0].dtype)

    def _extrapolate_attention(self, key: int, name: str) -> Any:
        """`F_last + w * (F_last - F_prev)` in the module's output dtype (F_last alone after a single record)."""
        if key not in self._attention:
            raise RuntimeError(f"FasterCache: attention module {name!r} has no cached output at step {self.step}")
        previous, last, dtype = self._attention[key]
        weight = self.config.attention_weight
        if previous is None or weight == 0:
            return _map_tensors(last, lambda t: t.to(dtype=dtype, copy=True))
        return _zip_tensors(lambda p, q: torch.lerp(p.to(dtype), q.to(dtype), 1.0 + weight), previous, last)


def _num_steps_of(pipeline: Any) -> int:
    """Steps of the run the pipeline is in: its `_num_timesteps` (set before the loop), else its scheduler's."""
    if pipeline is None:
        raise RuntimeError("FasterCache: the pipeline it was applied to no longer exists")
    steps = getattr(pipeline, "_num_timesteps", None)
    if steps is None and getattr(getattr(pipeline, "scheduler", None), "timesteps", None) is not None:
        steps = len(pipeline.scheduler.timesteps)
    if not isinstance(steps, int) or steps < 1:
        raise RuntimeError(
            f"FasterCache cannot tell how many steps {type(pipeline).__name__} runs (no _num_timesteps and no"
            " scheduler timesteps set): the denoiser must be called from the pipeline's loop"
        )
    return steps
