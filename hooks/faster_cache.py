"""FasterCache (arXiv 2410.19355) for the pack's pipelines and diffusers' video pipelines: attention reuse and CFG-Cache.

Two training-free savings, applied from outside the model as diffusers hooks:

1. Dynamic feature reuse. On a planned step the self-attention modules of the conditional branch are not run;
   their output is extrapolated from the last two steps where they ran: ``F_last + w * (F_last - F_prev)``.
2. CFG-Cache. On a planned step the unconditional branch is not run; its output is rebuilt from the conditional one
   and the (uncond - cond) difference ``D`` of the last step where both ran, split into a low- and a high-frequency
   part by a centred circular mask of radius ``min(H, W) // radius_divisor`` on the spatial 2D spectrum. The paper
   scales each part by its factor on every skipped step inside its window (so by ``a**k`` after ``k`` such skips):

       eps_u = IFFT(LF(eps_c) + a**k * LF(D) + HF(eps_c) + b**k * HF(D)).real

   The FFT is linear and the mask is symmetric about the zero frequency, so this equals
   ``eps_c + a**k * r_low + b**k * r_high`` with the real residuals ``r_low = IFFT(M * FFT(D))`` and
   ``r_high = D - r_low``. Those are computed once per full step; skipped steps need no FFT.

Differences from the official scripts and from diffusers' ``FasterCacheConfig`` hook:

- Schedules are fractions of the trajectory (a preset means the same at 20, 50 or 100 steps). The per-step plan is
  built on the host before the first step, so nothing inside the loop reads a device value.
- Conditional and unconditional state are kept apart, whether the pipeline batches the two branches in one call
  (diffusers' ``cache_context("cond_uncond")``, uncond first) or calls the transformer twice (``"cond"`` then
  ``"uncond"``, as diffusers' Wan pipelines and ``VchitectRepVideoPipeline(cfg_batching=False)`` do). Attention
  reuse applies to the conditional branch; the unconditional branch, which runs only every few steps, always
  computes its attention when it runs, so it never reads features of the other branch or of a stale step (the
  official Vchitect script and ComfyUI ports keep one cache per block for both branches).
- By default, on a full step whose (uncond - cond) residual feeds later skipped steps, the conditional branch
  computes its attention too: an extrapolation error there would enter the residual, which guidance then
  multiplies by (1 - scale) on every skipped step. The official CogVideoX script does the same (its cache then
  holds a single branch, so it cannot reuse); the official Vchitect script reuses on those steps, and so does
  the ``vchitect-2.0`` preset (``recompute_attention_on_residual_steps=False``).
- The cache holds compact clones of the conditional branch only (not views that keep the doubled batch alive),
  optionally in a lower precision, and only from the step before its first use to its last use.
- Attention modules are found by type through a registry (``register_faster_cache_attention``).
"""

import contextlib
import copy
import dataclasses
import functools
import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import StateManager
from diffusers.models.attention import AttentionModuleMixin
from diffusers.models.attention_processor import Attention
from torch import nn

from ..models.vchitect_transformer import VchitectAttention

__all__ = [
    "FASTER_CACHE_PRESETS",
    "FasterCache",
    "FasterCacheConfig",
    "FasterCachePlan",
    "apply_faster_cache",
    "cfg_cache_residuals",
    "faster_cache_applied",
    "faster_cache_of",
    "register_faster_cache_attention",
    "remove_faster_cache",
    "reset_faster_cache",
]

_DENOISER_HOOK = "vdp_faster_cache_denoiser"
_ATTENTION_HOOK = "vdp_faster_cache_attention"
# where apply_faster_cache keeps its handle on the pipeline
_PIPELINE_ATTRIBUTE = "_vdp_faster_cache"

CACHE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# branch layout of one denoiser call, by diffusers' cache-context names (batched CFG puts the negative prompt first)
_CONTEXT_BRANCHES = {"cond_uncond": ("uncond", "cond"), "cond": ("cond",), "uncond": ("uncond",)}

FASTER_CACHE_PRESETS: Dict[str, Dict[str, Any]] = {
    # fastercache/models/vchitect/pipeline.py::acc_call (100 steps): from step 31 of 100 attention is reused on
    # every other step with plain reuse (full steps included), the unconditional branch runs only on steps
    # divisible by 5, LF x1.05 before step 80, HF x1.1 after step 60, LF radius min(H, W) // 200.
    "vchitect-2.0": dict(
        start_fraction=0.30,
        attention_interval=2,
        attention_weight=0.0,
        uncond_interval=5,
        low_frequency_factor=1.05,
        low_frequency_end_fraction=0.80,
        high_frequency_factor=1.1,
        high_frequency_start_fraction=0.60,
        radius_divisor=200,
        recompute_attention_on_residual_steps=False,
    ),
    # scripts/cogvideox/fastercache_sample_cogvideox.py (SAT, 50 steps): from step 18 of 50 attention runs on
    # every third step with w = 0.3 and on full steps (its cache then holds one branch), the unconditional branch
    # on steps divisible by 5, LF x1.1 up to step 40, HF x1.1 from step 30, LF radius min(H, W) // 5.
    "cogvideox": dict(
        start_fraction=0.34,
        attention_interval=3,
        attention_weight=0.3,
        uncond_interval=5,
        low_frequency_factor=1.1,
        low_frequency_end_fraction=0.80,
        high_frequency_factor=1.1,
        high_frequency_start_fraction=0.58,
        radius_divisor=5,
    ),
    # For models without a tuned preset: the middle of the official per-model settings (start at about a third of
    # the trajectory, attention every other step with w = 0.3, unconditional branch every fifth step, both
    # frequency factors 1.1, radius min(H, W) // 5).
    "default": dict(
        start_fraction=0.30,
        attention_interval=2,
        attention_weight=0.3,
        uncond_interval=5,
        low_frequency_factor=1.1,
        low_frequency_end_fraction=0.80,
        high_frequency_factor=1.1,
        high_frequency_start_fraction=0.60,
        radius_divisor=5,
    ),
}


@dataclass
class FasterCacheConfig:
    """What FasterCache skips and when; every schedule is a fraction of the denoising trajectory.

    Step ``i`` of ``N`` (0-based) sits at fraction ``i / N``. The defaults are the ``"default"`` preset; see
    ``FASTER_CACHE_PRESETS`` and ``FasterCacheConfig.preset``.

    Args:
        start_fraction (`float`, defaults to 0.3): unconditional skipping, and attention reuse unless
            `attention_start_fraction` is set, start at the first step at or after this fraction; in [0, 1).
        attention_start_fraction (`float`, *optional*): a separate start for attention reuse; in [0, 1).
        attention_interval (`int`, defaults to 2): from its start step on, the conditional branch's attention runs on
            every `attention_interval`-th step (the start step included) and is extrapolated on the others (see also
            `recompute_attention_on_residual_steps`); 1 never reuses.
        attention_weight (`float`, defaults to 0.3): `w` in `F_last + w * (F_last - F_prev)`; 0 is plain reuse of
            the last computed output; >= 0.
        uncond_interval (`int`, defaults to 5): from the start step on, the unconditional branch runs only on steps
            whose 1-based number is divisible by this (as the official scripts count) and is rebuilt by CFG-Cache on
            the others; 1 never skips it.
        low_frequency_factor (`float`, defaults to 1.1): per-skip factor of the low-frequency residual; > 0.
        low_frequency_end_fraction (`float`, defaults to 0.8): the low-frequency factor applies on skipped steps
            before this fraction; in [0, 1].
        high_frequency_factor (`float`, defaults to 1.1): per-skip factor of the high-frequency residual; > 0.
        high_frequency_start_fraction (`float`, defaults to 0.6): the high-frequency factor applies on skipped steps
            at or after this fraction; in [0, 1].
        radius_divisor (`int`, defaults to 5): the low-frequency disc has radius `min(H, W) // radius_divisor` in
            frequency bins (the official rule: 5, and 200 for Vchitect-2.0); >= 1.
        recompute_attention_on_residual_steps (`bool`, defaults to True): on a full step whose (uncond - cond)
            residual feeds later skipped steps, the conditional branch computes its attention whatever
            `attention_interval` says, so that no extrapolation error enters the residual (guidance multiplies it
            by 1 - scale on every skipped step). The official CogVideoX script does this; Vchitect-2.0's does not.
        cache_dtype (`torch.dtype` or `str`, *optional*): precision of everything the cache holds ("fp32", "bf16",
            "fp16" or a torch dtype); None keeps the model's output dtype.
    """

    start_fraction: float = 0.30
    attention_start_fraction: Optional[float] = None
    attention_interval: int = 2
    attention_weight: float = 0.3
    uncond_interval: int = 5
    low_frequency_factor: float = 1.1
    low_frequency_end_fraction: float = 0.80
    high_frequency_factor: float = 1.1
    high_frequency_start_fraction: float = 0.60
    radius_divisor: int = 5
    recompute_attention_on_residual_steps: bool = True
    cache_dtype: Optional[Union[torch.dtype, str]] = None

    def __post_init__(self):
        _check_number("start_fraction", self.start_fraction, "in [0, 1)", lambda v: 0 <= v < 1)
        if self.attention_start_fraction is not None:
            _check_number("attention_start_fraction", self.attention_start_fraction, "in [0, 1) or None",
                          lambda v: 0 <= v < 1)
        for name in ("attention_interval", "uncond_interval", "radius_divisor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        _check_number("attention_weight", self.attention_weight, ">= 0", lambda v: v >= 0)
        for name in ("low_frequency_factor", "high_frequency_factor"):
            _check_number(name, getattr(self, name), "> 0", lambda v: v > 0)
        for name in ("low_frequency_end_fraction", "high_frequency_start_fraction"):
            _check_number(name, getattr(self, name), "in [0, 1]", lambda v: 0 <= v <= 1)
        if not isinstance(self.recompute_attention_on_residual_steps, bool):
            raise ValueError(
                f"recompute_attention_on_residual_steps={self.recompute_attention_on_residual_steps!r} must be a bool"
            )
        if isinstance(self.cache_dtype, str):
            if self.cache_dtype not in CACHE_DTYPES:
                raise ValueError(f"cache_dtype={self.cache_dtype!r} must be one of {list(CACHE_DTYPES)} or None")
            self.cache_dtype = CACHE_DTYPES[self.cache_dtype]
        elif self.cache_dtype is not None and self.cache_dtype not in CACHE_DTYPES.values():
            raise ValueError(f"cache_dtype={self.cache_dtype!r} must be one of {list(CACHE_DTYPES)} or None")

    @classmethod
    def preset(cls, name: str, **overrides) -> "FasterCacheConfig":
        """The config of a named preset (`FASTER_CACHE_PRESETS`), with any field overridden by keyword."""
        if name not in FASTER_CACHE_PRESETS:
            raise ValueError(f"preset={name!r} is not a FasterCache preset; choose from {sorted(FASTER_CACHE_PRESETS)}")
        unknown = set(overrides) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not FasterCacheConfig fields")
        return cls(**{**FASTER_CACHE_PRESETS[name], **overrides})

    def plan(self, num_steps: int) -> "FasterCachePlan":
        """The per-step decisions for a trajectory of `num_steps` steps, computed on the host."""
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps={num_steps!r} must be an integer >= 1")
        steps = range(num_steps)
        start = _first_step_at(self.start_fraction, num_steps)
        attention_start = start if self.attention_start_fraction is None else _first_step_at(
            self.attention_start_fraction, num_steps)
        low_end = _first_step_at(self.low_frequency_end_fraction, num_steps)
        high_start = _first_step_at(self.high_frequency_start_fraction, num_steps)
        # step 0 always runs everything: there is nothing to reuse yet
        skip = [0 < i and start <= i and (i + 1) % self.uncond_interval != 0 for i in steps]
        residual = [False] * num_steps
        low_scale = [1.0] * num_steps
        high_scale = [1.0] * num_steps
        last_full, low_skips, high_skips = 0, 0, 0
        for i in steps:
            if not skip[i]:
                last_full, low_skips, high_skips = i, 0, 0
                continue
            residual[last_full] = True
            low_skips += i < low_end
            high_skips += i >= high_start
            low_scale[i] = self.low_frequency_factor**low_skips
            high_scale[i] = self.high_frequency_factor**high_skips

        exact_residual = residual if self.recompute_attention_on_residual_steps else [False] * num_steps
        reuse = [
            0 < i and attention_start <= i and (i - attention_start) % self.attention_interval != 0
            and not exact_residual[i]
            for i in steps
        ]
        record = [False] * num_steps
        computed: List[int] = []
        for i in steps:
            if not reuse[i]:
                computed.append(i)
            else:
                # the extrapolation reads the last (and, for w > 0, the second last) computed step
                for j in computed[-2:] if self.attention_weight > 0 else computed[-1:]:
                    record[j] = True

        return FasterCachePlan(
            num_steps=num_steps,
            attention_reuse=tuple(reuse),
            attention_record=tuple(record),
            uncond_skip=tuple(skip),
            residual_record=tuple(residual),
            low_frequency_scale=tuple(low_scale),
            high_frequency_scale=tuple(high_scale),
        )


@dataclass(frozen=True)
class FasterCachePlan:
    """Per-step decisions of one trajectory (index = 0-based step), planned on the host before the loop.

    Args:
        num_steps (`int`): steps in the trajectory.
        attention_reuse (`tuple` of `bool`): the conditional branch's attention is extrapolated, not run.
        attention_record (`tuple` of `bool`): the conditional branch's attention output is cloned for later reuse.
        uncond_skip (`tuple` of `bool`): the unconditional branch is rebuilt by CFG-Cache, not run.
        residual_record (`tuple` of `bool`): the (uncond - cond) residuals are split and kept at this full step.
        low_frequency_scale, high_frequency_scale (`tuple` of `float`): compounded residual factors on skipped steps.
    """

    num_steps: int
    attention_reuse: Tuple[bool, ...]
    attention_record: Tuple[bool, ...]
    uncond_skip: Tuple[bool, ...]
    residual_record: Tuple[bool, ...]
    low_frequency_scale: Tuple[float, ...]
    high_frequency_scale: Tuple[float, ...]

    @property
    def last_attention_reuse(self) -> int:
        """Index of the last step that reuses attention (-1 if none): the attention cache is freed after it."""
        return max((i for i, flag in enumerate(self.attention_reuse) if flag), default=-1)

    @property
    def last_uncond_skip(self) -> int:
        """Index of the last step that skips the unconditional branch (-1 if none): the residuals are freed after it."""
        return max((i for i, flag in enumerate(self.uncond_skip) if flag), default=-1)


def _check_number(name: str, value, allowed: str, is_allowed: Callable[[float], bool]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not is_allowed(value):
        raise ValueError(f"{name}={value!r} must be a finite number {allowed}")


def _first_step_at(fraction: float, num_steps: int) -> int:
    """The first 0-based step i with i / num_steps >= fraction (rounded so that 0.34 * 50 lands on step 17)."""
    return math.ceil(round(fraction * num_steps, 9))


# ---------------------------------------------------------------------------------------------------- CFG-Cache


@functools.lru_cache(maxsize=32)
def _low_frequency_mask(height: int, width: int, radius: int, device: torch.device) -> torch.Tensor:
    """The official centred disc `dy^2 + dx^2 <= radius^2` (in fftshift coordinates), in `rfft2` layout [H, W//2+1]."""
    dy = torch.fft.fftfreq(height, d=1.0 / height, device=device)
    dx = torch.fft.rfftfreq(width, d=1.0 / width, device=device)
    return (dy[:, None] ** 2 + dx[None, :] ** 2 <= radius**2).to(torch.float32)


def cfg_cache_residuals(difference: torch.Tensor, radius_divisor: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Splits an (uncond - cond) difference [..., H, W] into its real low- and high-frequency parts.

    `low = IFFT2(M * FFT2(difference))` with the official disc M of radius `min(H, W) // radius_divisor` about the
    zero frequency, `high = difference - low`; both float32. M is symmetric about the zero frequency, so `low` is
    real and `rfft2` suffices.

    Args:
        difference (`torch.Tensor`): the residual at a full step, spatial dims last.
        radius_divisor (`int`): see `FasterCacheConfig.radius_divisor`.
    """
    height, width = difference.shape[-2:]
    radius = min(height, width) // radius_divisor
    difference = difference.float()
    mask = _low_frequency_mask(height, width, radius, difference.device)
    low = torch.fft.irfft2(torch.fft.rfft2(difference) * mask, s=(height, width))
    return low, difference - low


# ---------------------------------------------------------------------------------------------------- registry

# (module type, predicate): modules of these types whose predicate holds get the attention hook
_CACHEABLE_ATTENTION: List[Tuple[type, Callable[[nn.Module], bool]]] = []


def register_faster_cache_attention(module_type: type, is_cacheable: Optional[Callable[[nn.Module], bool]] = None) -> None:
    """Registers an attention module type whose output FasterCache may reuse.

    The module's forward must take batched tensors (batch first) and return a tensor or a tuple of tensors / None,
    each batch first, and its samples must not interact (each sample's output depends on its own inputs only).

    Args:
        module_type (`type`): the `nn.Module` subclass.
        is_cacheable (`Callable[[nn.Module], bool]`, *optional*): per-instance filter (e.g. excludes cross attention).
    """
    _CACHEABLE_ATTENTION.append((module_type, is_cacheable or (lambda module: True)))


def _is_self_attention(module: nn.Module) -> bool:
    # cross attention to the prompt is not part of FasterCache's feature reuse
    return not getattr(module, "is_cross_attention", False)


register_faster_cache_attention(VchitectAttention)
register_faster_cache_attention(Attention, _is_self_attention)
register_faster_cache_attention(AttentionModuleMixin, _is_self_attention)


def _cacheable_attention_modules(denoiser: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Registered attention modules under `denoiser`, outermost only, in module order."""
    found: List[Tuple[str, nn.Module]] = []
    for name, module in denoiser.named_modules():
        if any(name.startswith(outer + ".") for outer, _ in found):
            continue
        if any(isinstance(module, kind) and accepts(module) for kind, accepts in _CACHEABLE_ATTENTION):
            found.append((name, module))
    return found


# ---------------------------------------------------------------------------------------------------- state


class FasterCache:
    """FasterCache state of one pipeline: the plan, the step being run, and the cached tensors.

    Returned by `apply_faster_cache`. Reset at every pipeline call (the scheduler's `set_timesteps` and
    diffusers' `maybe_free_model_hooks`) and by `reset_faster_cache(pipe)`.

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
        self._removed = False
        self._hooked: Tuple[nn.Module, List[nn.Module]] = (None, [])
        self._scheduler: Any = None
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

    def cache_bytes(self) -> int:
        """Bytes of the tensors the cache holds now (attention clones and CFG residuals)."""
        tensors = [t for entry in self._attention.values() for slot in entry[:2] for t in _tensors_of(slot)]
        tensors += list(self._residuals or ())
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
        return sum(storages.values())

    def _begin_call(self, branches: Tuple[str, ...]) -> None:
        """Advances to the next step when a branch comes back; plans the trajectory at its first call."""
        if self.plan is None:
            self.plan = self.config.plan(_num_steps_of(self._pipeline()))
            self.step = -1
            self.peak_cache_bytes = 0
        if self.step < 0 or self._branches_done.intersection(branches):
            self.step += 1
            self._branches_done = set()
        if self.step >= self.plan.num_steps:
            raise RuntimeError(
                f"FasterCache planned {self.plan.num_steps} steps but the denoiser is called for step {self.step + 1}:"
                " call reset_faster_cache(pipe) before running the transformer outside the pipeline's own loop"
            )
        self.branches = branches

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


# ---------------------------------------------------------------------------------------------------- structures


def _tensors_of(value: Any) -> List[torch.Tensor]:
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors_of(item)]
    return []


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if torch.is_tensor(value):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(item, fn) for item in value)
    return value


def _zip_tensors(fn: Callable, first: Any, second: Any) -> Any:
    if torch.is_tensor(first):
        return fn(first, second)
    if isinstance(first, (tuple, list)):
        return type(first)(_zip_tensors(fn, a, b) for a, b in zip(first, second))
    return first


def _split_batch(value: Any, parts: int) -> List[Any]:
    """Splits every tensor of a (possibly nested) output into `parts` equal batch chunks: one structure per part."""
    if torch.is_tensor(value):
        return list(value.chunk(parts, dim=0))
    if isinstance(value, (tuple, list)):
        columns = [_split_batch(item, parts) for item in value]
        return [type(value)(column[k] for column in columns) for k in range(parts)]
    return [value] * parts


def _concat_batch(parts: Sequence[Any]) -> Any:
    first = parts[0]
    if torch.is_tensor(first):
        return torch.cat(list(parts), dim=0) if len(parts) > 1 else first
    if isinstance(first, (tuple, list)):
        return type(first)(_concat_batch([part[k] for part in parts]) for k in range(len(first)))
    return first


def _take_branches(args: tuple, kwargs: dict, parts: int, keep: Sequence[int]) -> Tuple[tuple, dict]:
    """Keeps the batch chunks `keep` of every tensor argument batched like the first one (dim 0)."""
    batch = next(t for t in (*args, *kwargs.values()) if torch.is_tensor(t)).shape[0]
    if batch % parts:
        raise ValueError(f"FasterCache: a batch of {batch} cannot hold {parts} guidance branches")

    def take(value):
        if torch.is_tensor(value) and value.ndim > 0 and value.shape[0] == batch:
            chunks = value.chunk(parts, dim=0)
            return torch.cat([chunks[k] for k in keep], dim=0) if len(keep) > 1 else chunks[keep[0]]
        return value

    return tuple(take(a) for a in args), {k: take(v) for k, v in kwargs.items()}


def _sample_of(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output.sample if hasattr(output, "sample") else output


def _with_sample(output: Any, sample: torch.Tensor) -> Any:
    if isinstance(output, tuple):
        return (sample, *output[1:])
    if torch.is_tensor(output):
        return sample
    output = copy.copy(output)  # never alter an output object the pipeline still holds
    output.sample = sample
    return output


# ---------------------------------------------------------------------------------------------------- hooks


class _ContextOnly:
    """State slot for diffusers' `StateManager`: FasterCache uses the manager only to receive cache contexts."""

    def reset(self, *args, **kwargs):
        pass


class _DenoiserHook(ModelHook):
    """On the transformer: tells the branches of each call, advances the step and runs CFG-Cache."""

    _is_stateful = True

    def __init__(self, cache: FasterCache):
        super().__init__()
        self.cache = cache
        # diffusers' cache_context(name) reaches stateful hooks through their StateManager attributes
        self.context = StateManager(_ContextOnly)

    def reset_state(self, module):
        self.cache.reset()
        return module

    def _branches(self) -> Tuple[str, ...]:
        context = self.context._context
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
        branches = self._branches()
        cache._begin_call(branches)
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


# ---------------------------------------------------------------------------------------------------- public API


def apply_faster_cache(pipe: Any, config: Optional[FasterCacheConfig] = None) -> FasterCache:
    """Turns FasterCache on for a pipeline's `transformer`; returns its state (`FasterCache`).

    Works on any pipeline whose loop calls `pipe.transformer` once per step with both guidance branches batched
    (negative first) or twice per step (conditional first), named with `transformer.cache_context(...)` or, without
    names, batched when `pipe.do_classifier_free_guidance` is true: the pack's pipelines and diffusers'
    CogVideoX family among them.

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
    cache._scheduler = _reset_on_set_timesteps(getattr(pipe, "scheduler", None), cache)
    setattr(pipe, _PIPELINE_ATTRIBUTE, cache)
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
    if cache._scheduler is not None:
        _restore_set_timesteps(cache._scheduler, cache)
    cache._removed = True
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


def _reset_on_set_timesteps(scheduler: Any, cache: FasterCache) -> Any:
    """Makes `scheduler.set_timesteps` (called at the start of every pipeline run) reset the cache first."""
    if scheduler is None or not callable(getattr(scheduler, "set_timesteps", None)):
        return None
    original = scheduler.set_timesteps
    cache_ref = weakref.ref(cache)

    @functools.wraps(original)
    def set_timesteps(*args, **kwargs):
        current = cache_ref()
        if current is not None and not current._removed:
            current.reset()
        return original(*args, **kwargs)

    # what to put back on removal: another tool's wrapper stored on the instance, or nothing (the class method)
    set_timesteps._faster_cache_previous = vars(scheduler).get("set_timesteps")
    scheduler.set_timesteps = set_timesteps
    return scheduler


def _restore_set_timesteps(scheduler: Any, cache: FasterCache) -> None:
    """Undoes `_reset_on_set_timesteps`; a wrapper another tool put on top stays and ours inside it goes inert."""
    wrapper = vars(scheduler).get("set_timesteps")
    if wrapper is None or not hasattr(wrapper, "_faster_cache_previous"):
        return
    if wrapper._faster_cache_previous is None:
        del scheduler.set_timesteps
    else:
        scheduler.set_timesteps = wrapper._faster_cache_previous
