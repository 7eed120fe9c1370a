"""FasterCache (arXiv 2410.19355), attention reuse and CFG-Cache, for the pack's and diffusers' video pipelines.

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
- The step of each denoiser call comes from the pipeline: the ``step_index`` and ``num_inference_steps`` it passes to
  ``cache_context`` (the pack's pipelines, diffusers' Wan), else a count of the calls. No scheduler method is
  patched; FreeInit resets the cache between its passes through ``register_iteration_reset``.

Modules: ``config`` (config, presets, plan), ``cfg_cache`` (the residual split), ``registry`` (attention types),
``state`` (the per-pipeline state), ``hooks`` (the diffusers hooks), ``batches`` (branch slicing of nested outputs),
``apply`` (apply and remove).
"""

from .apply import apply_faster_cache, faster_cache_applied, faster_cache_of, remove_faster_cache, reset_faster_cache
from .cfg_cache import cfg_cache_residuals
from .config import FASTER_CACHE_PRESETS, FasterCacheConfig, FasterCachePlan
from .registry import register_faster_cache_attention
from .state import FasterCache

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
