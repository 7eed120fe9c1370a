"""FreeInit for any video diffusion pipeline: re-sample from noise whose low frequencies come from the previous result.

FreeInit (Wu et al., arXiv 2312.07537) narrows the gap between training noise, which still carries the
low-frequency layout of a video, and the pure noise sampling starts from. Iteration 0 samples as usual and
keeps its initial noise. Each later iteration re-noises the previous clean result with that same initial
noise, keeps the low frequencies (3-D FFT over frames, height and width), takes the high frequencies from
fresh noise, and samples again.

``apply_free_init(pipe, config)`` turns it on for a pipeline object, ``remove_free_init(pipe)`` turns it off
(outputs are then bit-identical to a pipeline that never had it). It works on any diffusers-style pipeline
whose ``__call__`` takes ``latents``, ``num_inference_steps``, ``generator`` and ``output_type="latent"``:
each iteration is one call of the pipeline's own ``__call__``, so its checks, guidance, callbacks and
offloading stay as they are. Differences from the official code and from diffusers' ``FreeInitMixin``:

- Filters are built vectorised and cached by (shape, parameters, device); the official code loops over every
  voxel in Python, every iteration. Values are equal to the official formulas for gaussian, butterworth and
  box.
- The ``ideal`` filter keeps ``d^2 <= d_s^2`` (radius ``d_s``, as the paper defines it). The official code and
  diffusers test ``d^2 <= d_s * 2``, a radius of ``sqrt(2 d_s)`` (0.71 for ``d_s=0.25``); their ideal filter
  with ``d_s'`` equals ours with ``d_s = sqrt(2 d_s')`` and ``d_t = d_s * d_t' / d_s'``.
- The official ``box`` filter slices from ``centre - half_width``; where that is negative (width below
  ``H * d_s``) Python wraps the slice around. Here the box starts at 0 instead.
- The fresh noise comes from the user's ``generator`` (the official code draws it unseeded), in the order
  diffusers draws it, so AnimateDiff gives diffusers' result for the same settings and seed.
- On flow-matching and zero-terminal-SNR schedules (Vchitect-2.0, CogVideoX, Wan, ...) re-noising to
  t=999 leaves no signal, and FreeInit would only re-sample the initial noise's low frequencies. There the
  default re-noise level keeps the signal-to-noise ratio that t=999 has on the schedule FreeInit was made
  for (Stable Diffusion 1.5's scaled-linear betas): see ``default_renoise_level``. DDPM-style schedules
  that keep signal at their last timestep use the official t=999.
- The FFT runs in float32 whatever the pipeline dtype (half-precision FFTs are unsupported on CPUs and
  limited to powers of two on GPUs).

Caches (FasterCache, diffusers' cache hooks) are reset before every iteration after the first one by
``reset_caches_between_iterations``; a cache takes part with ``register_iteration_reset``.
"""

from .config import LATENT_LAYOUTS, METHODS, FreeInitConfig
from .driver import (
    FRAMES_BEFORE_CHANNELS_PIPELINES,
    apply_free_init,
    free_init_applied,
    free_init_config_of,
    remove_free_init,
)
from .filters import build_frequency_filter, frequency_filter, mix_frequencies
from .renoise import REFERENCE_SIGNAL_TO_NOISE, ZERO_TERMINAL_SNR_BELOW, default_renoise_level, renoise, schedule_kind
from .resets import (
    ITERATION_RESET_CALLBACKS_ATTRIBUTE,
    register_iteration_reset,
    reset_caches_between_iterations,
    unregister_iteration_reset,
)

__all__ = [
    "FRAMES_BEFORE_CHANNELS_PIPELINES",
    "ITERATION_RESET_CALLBACKS_ATTRIBUTE",
    "LATENT_LAYOUTS",
    "METHODS",
    "REFERENCE_SIGNAL_TO_NOISE",
    "ZERO_TERMINAL_SNR_BELOW",
    "FreeInitConfig",
    "apply_free_init",
    "build_frequency_filter",
    "default_renoise_level",
    "free_init_applied",
    "free_init_config_of",
    "frequency_filter",
    "mix_frequencies",
    "register_iteration_reset",
    "renoise",
    "reset_caches_between_iterations",
    "remove_free_init",
    "schedule_kind",
    "unregister_iteration_reset",
]
