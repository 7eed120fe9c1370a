"""FasterCache's settings: the config dataclass, the per-model presets and the per-step plan built from them."""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

__all__ = ["CACHE_DTYPES", "FASTER_CACHE_PRESETS", "FasterCacheConfig", "FasterCachePlan"]

CACHE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

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
    # Short trajectories (about 20 steps, the embedded Vchitect-2.0's default), measured on the shapes world
    # (benchmarks/shapes_fastercache.py): from 40% of the trajectory the unconditional branch runs on every third
    # step (so each rebuilt step is at most two steps from its residual) and attention on every other step (w = 0.3),
    # and the residuals are not compounded (factors 1), which drifts too far over few, large steps.
    "few-steps": dict(
        start_fraction=0.40,
        attention_interval=2,
        attention_weight=0.3,
        uncond_interval=3,
        low_frequency_factor=1.0,
        low_frequency_end_fraction=0.80,
        high_frequency_factor=1.0,
        high_frequency_start_fraction=0.60,
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
