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
``reset_caches_between_iterations``; see there for how a cache takes part.
"""

import contextlib
import functools
import inspect
import math
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from diffusers.utils.torch_utils import randn_tensor

__all__ = [
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

METHODS = ("butterworth", "gaussian", "ideal", "box")
# Where the frame axis sits in a pipeline's 5-D latents: [B, C, F, H, W] (AnimateDiff, Wan, HunyuanVideo,
# Mochi, Latte) or [B, F, C, H, W] (CogVideoX and the pipelines built on it, Vchitect-2.0).
LATENT_LAYOUTS = ("BCFHW", "BFCHW")
# Pipeline classes (by name prefix, anywhere in the MRO) whose latents are [B, F, C, H, W].
FRAMES_BEFORE_CHANNELS_PIPELINES = ("CogVideoX", "ConsisID", "VchitectRepVideo")

# sqrt(alpha_bar / (1 - alpha_bar)) at t=999 of Stable Diffusion 1.5's schedule (scaled-linear betas from
# 0.00085 to 0.012 over 1000 steps): the signal-to-noise amplitude FreeInit's official t=999 re-noising keeps.
REFERENCE_SIGNAL_TO_NOISE = 0.0684
# A DDPM-style schedule whose last timestep keeps less than this counts as zero-terminal-SNR.
ZERO_TERMINAL_SNR_BELOW = REFERENCE_SIGNAL_TO_NOISE / 2

# Attribute of a pipeline holding callables run before every FreeInit iteration after the first.
ITERATION_RESET_CALLBACKS_ATTRIBUTE = "_vdp_free_init_reset_callbacks"
_CONFIG_ATTRIBUTE = "_vdp_free_init_config"
_LAYOUT_ATTRIBUTE = "_vdp_free_init_latent_layout"
_RUN_ATTRIBUTE = "_vdp_free_init_run"
_REQUIRED_CALL_ARGUMENTS = ("latents", "num_inference_steps", "generator", "output_type")


@dataclass
class FreeInitConfig:
    """Settings of FreeInit.

    Args:
        num_iters (`int`, defaults to 3): sampling passes, the first one included (1 = plain sampling).
            The official README recommends 3 to 5.
        method (`str`, defaults to ``"butterworth"``): low-pass filter, one of ``"butterworth"``,
            ``"gaussian"``, ``"ideal"``, ``"box"``. Gaussian suits base models with larger inconsistency.
        order (`int`, defaults to 4): order of the butterworth filter (large ~ ideal, small ~ gaussian).
        spatial_stop_frequency (`float`, defaults to 0.25): normalised stop frequency ``d_s`` over height and
            width, in (0, 1].
        temporal_stop_frequency (`float`, defaults to 0.25): normalised stop frequency ``d_t`` over frames,
            in (0, 1].
        use_fast_sampling (`bool`, defaults to False): coarse-to-fine sampling: iteration ``i`` (from 0) runs
            ``max(1, int(N / num_iters * (i + 1)))`` of the ``N`` steps, about ``N (num_iters + 1) / 2`` in all.
        renoise_level (`float`, *optional*): how far along the training noise schedule the previous result is
            re-noised, in (0, 1]: the timestep ``round(level * (num_train_timesteps - 1))`` on DDPM-style
            schedules (1.0 is the official t=999), the sigma ``level`` on flow-matching schedules. None picks
            ``default_renoise_level(pipe.scheduler)``.
        latent_layout (`str`, *optional*): ``"BCFHW"`` or ``"BFCHW"``, where the frame axis of the pipeline's
            latents is; None guesses it from the pipeline class (``FRAMES_BEFORE_CHANNELS_PIPELINES``).
    """

    num_iters: int = 3
    method: str = "butterworth"
    order: int = 4
    spatial_stop_frequency: float = 0.25
    temporal_stop_frequency: float = 0.25
    use_fast_sampling: bool = False
    renoise_level: Optional[float] = None
    latent_layout: Optional[str] = None

    def __post_init__(self):
        if isinstance(self.num_iters, bool) or not isinstance(self.num_iters, int) or self.num_iters < 1:
            raise ValueError(f"num_iters={self.num_iters!r} must be an integer >= 1")
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} must be one of {METHODS}")
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"order={self.order!r} must be an integer >= 1")
        for name in ("spatial_stop_frequency", "temporal_stop_frequency"):
            value = getattr(self, name)
            if not _is_real(value) or not 0 < value <= 1:
                raise ValueError(f"{name}={value!r} must be in (0, 1]")
        if not isinstance(self.use_fast_sampling, bool):
            raise ValueError(f"use_fast_sampling={self.use_fast_sampling!r} must be True or False")
        if self.renoise_level is not None and (not _is_real(self.renoise_level) or not 0 < self.renoise_level <= 1):
            raise ValueError(f"renoise_level={self.renoise_level!r} must be None (automatic) or in (0, 1]")
        if self.latent_layout is not None and self.latent_layout not in LATENT_LAYOUTS:
            raise ValueError(
                f"latent_layout={self.latent_layout!r} must be None (automatic) or one of {LATENT_LAYOUTS}"
            )

    def planned_steps(self, num_inference_steps: int) -> List[int]:
        """Denoising steps of each iteration for a run of ``num_inference_steps`` steps."""
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps!r} must be an integer >= 1")
        if not self.use_fast_sampling:
            return [num_inference_steps] * self.num_iters
        return [max(1, int(num_inference_steps / self.num_iters * (i + 1))) for i in range(self.num_iters)]


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------- filters
def build_frequency_filter(
    shape: Sequence[int],
    method: str,
    order: int = 4,
    spatial_stop_frequency: float = 0.25,
    temporal_stop_frequency: float = 0.25,
) -> torch.Tensor:
    """A centred (fftshift-ed) 3-D low-pass filter of shape ``(frames, height, width)``, float32, on the CPU.

    Vectorised in float64 with the official formulas' order of operations, then rounded to float32 as the
    official code stores them. With ``d^2 = ((d_s/d_t)(2t/T-1))^2 + (2h/H-1)^2 + (2w/W-1)^2``:
    gaussian ``exp(-d^2 / (2 d_s^2))``, butterworth ``1 / (1 + (d^2 / d_s^2)^order)``, ideal
    ``d^2 <= d_s^2`` (the official code's ``d_s * 2`` is a typo for ``d_s ** 2``), box: ones on
    ``±round(T//2 * d_t)`` frames and ``±round(H//2 * d_s)`` rows and columns around the centre.

    Args:
        shape (`Sequence[int]`): ``(frames, height, width)`` of the latent.
        method (`str`): ``"butterworth"``, ``"gaussian"``, ``"ideal"`` or ``"box"``.
        order (`int`, defaults to 4): butterworth order.
        spatial_stop_frequency (`float`, defaults to 0.25), temporal_stop_frequency (`float`, defaults to 0.25):
            ``d_s`` and ``d_t``, in (0, 1].
    """
    frames, height, width = _check_filter_arguments(
        shape, method, order, spatial_stop_frequency, temporal_stop_frequency
    )
    d_s, d_t = float(spatial_stop_frequency), float(temporal_stop_frequency)
    if method == "box":
        box = torch.zeros(frames, height, width)
        half_t, half_s = round(frames // 2 * d_t), round(int(height // 2) * d_s)
        centre_t, centre_h, centre_w = frames // 2, height // 2, width // 2
        box[
            max(centre_t - half_t, 0) : centre_t + half_t,
            max(centre_h - half_s, 0) : centre_h + half_s,
            max(centre_w - half_s, 0) : centre_w + half_s,
        ] = 1.0
        return box

    def axis(size: int) -> torch.Tensor:
        return 2 * torch.arange(size, dtype=torch.float64) / size - 1

    squared_distance = (
        ((d_s / d_t) * axis(frames))[:, None, None] ** 2
        + (axis(height) ** 2)[None, :, None]
        + (axis(width) ** 2)[None, None, :]
    )
    if method == "gaussian":
        values = torch.exp(-1 / (2 * d_s**2) * squared_distance)
    elif method == "butterworth":
        values = 1 / (1 + (squared_distance / d_s**2) ** order)
    else:
        values = (squared_distance <= d_s**2).to(torch.float64)
    return values.to(torch.float32)


def _check_filter_arguments(
    shape, method, order, spatial_stop_frequency, temporal_stop_frequency
) -> Tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3 or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in shape):
        raise ValueError(f"shape={shape!r} must be (frames, height, width), three integers >= 1")
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {METHODS}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order={order!r} must be an integer >= 1")
    for name, value in zip(("spatial_stop_frequency", "temporal_stop_frequency"),
                           (spatial_stop_frequency, temporal_stop_frequency)):
        if not _is_real(value) or not 0 < value <= 1:
            raise ValueError(f"{name}={value!r} must be in (0, 1]")
    return shape


def frequency_filter(
    shape: Sequence[int],
    method: str,
    order: int = 4,
    spatial_stop_frequency: float = 0.25,
    temporal_stop_frequency: float = 0.25,
    device="cpu",
) -> torch.Tensor:
    """``build_frequency_filter`` on ``device``, cached by (shape, parameters, device). Do not modify the result."""
    return _cached_filter(
        tuple(int(size) for size in shape), method, order, float(spatial_stop_frequency),
        float(temporal_stop_frequency), str(torch.device(device)),
    )


@functools.lru_cache(maxsize=32)
def _cached_filter(shape, method, order, spatial_stop_frequency, temporal_stop_frequency, device) -> torch.Tensor:
    return build_frequency_filter(shape, method, order, spatial_stop_frequency, temporal_stop_frequency).to(device)


def mix_frequencies(
    low_source: torch.Tensor, high_source: torch.Tensor, low_pass: torch.Tensor, dims: Sequence[int] = (-3, -2, -1)
) -> torch.Tensor:
    """``IFFT(FFT(low_source) * LPF + FFT(high_source) * (1 - LPF)).real`` over ``dims`` (the official ``freq_mix_3d``).

    The FFTs run in float32 whatever the inputs' dtype; the result has ``low_source``'s dtype. The centred
    filter is moved to FFT order once instead of shifting both spectra and their mix, which gives the same
    numbers (a shift only permutes elements).

    Args:
        low_source (`torch.Tensor`): tensor whose low frequencies are kept (the re-noised latent).
        high_source (`torch.Tensor`): tensor whose high frequencies are taken (fresh noise), same shape.
        low_pass (`torch.Tensor`): centred filter of shape ``[low_source.shape[d] for d in dims]``, values in 0..1.
        dims (`Sequence[int]`, defaults to (-3, -2, -1)): the frame, height and width axes.
    """
    if low_source.shape != high_source.shape:
        raise ValueError(
            f"low_source {tuple(low_source.shape)} and high_source {tuple(high_source.shape)} differ in shape"
        )
    dims = tuple(d % low_source.ndim for d in dims)
    expected = tuple(low_source.shape[d] for d in dims)
    if tuple(low_pass.shape) != expected:
        raise ValueError(f"low_pass has shape {tuple(low_pass.shape)}; expected {expected} (the sizes of dims {dims})")
    view = [1] * low_source.ndim
    for d, size in zip(dims, expected):
        view[d] = size
    filter_dims = tuple(range(-len(dims), 0))
    low_pass = torch.fft.ifftshift(low_pass.to(device=low_source.device, dtype=torch.float32), dim=filter_dims)
    high_pass = 1 - low_pass
    low_pass, high_pass = low_pass.reshape(view), high_pass.reshape(view)
    low_spectrum = torch.fft.fftn(low_source.to(torch.float32), dim=dims)
    high_spectrum = torch.fft.fftn(high_source.to(torch.float32), dim=dims)
    mixed = torch.fft.ifftn(low_spectrum * low_pass + high_spectrum * high_pass, dim=dims).real
    return mixed.to(low_source.dtype)


# ---------------------------------------------------------------------------------------------- re-noising
def schedule_kind(scheduler) -> str:
    """``"flow_matching"`` (x_s = (1-s) x_0 + s noise) or ``"ddpm"`` (x_t = sqrt(a_t) x_0 + sqrt(1-a_t) noise).

    Raises:
        ValueError: for a scheduler that is neither (no ``alphas_cumprod`` and no flow sigmas).
    """
    config = getattr(scheduler, "config", {})
    if (
        any(cls.__name__.startswith("FlowMatch") for cls in type(scheduler).__mro__)
        or config.get("use_flow_sigmas", False)
        or config.get("prediction_type") == "flow_prediction"
    ):
        return "flow_matching"
    if getattr(scheduler, "alphas_cumprod", None) is not None:
        return "ddpm"
    raise ValueError(
        f"FreeInit cannot re-noise with {type(scheduler).__name__}: it is neither a flow-matching scheduler nor one "
        "with alphas_cumprod (DDPM-style)"
    )


def _signal_to_noise(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    alphas_cumprod = alphas_cumprod.to(torch.float64)
    return (alphas_cumprod / (1 - alphas_cumprod).clamp_min(1e-30)).sqrt()


def default_renoise_level(scheduler) -> float:
    """The re-noise level FreeInit uses on ``scheduler`` when none is given.

    DDPM-style schedules that keep signal at their last timestep: 1.0 (t=999, the official setting).
    Zero-terminal-SNR schedules (signal-to-noise amplitude at the last timestep below
    ``ZERO_TERMINAL_SNR_BELOW``): the last timestep whose amplitude is at least ``REFERENCE_SIGNAL_TO_NOISE``.
    Flow matching: the sigma with ``(1 - sigma) / sigma = REFERENCE_SIGNAL_TO_NOISE`` (0.936).
    """
    if schedule_kind(scheduler) == "flow_matching":
        return 1 / (1 + REFERENCE_SIGNAL_TO_NOISE)
    snr = _signal_to_noise(scheduler.alphas_cumprod)
    last = len(snr) - 1
    if snr[last] >= ZERO_TERMINAL_SNR_BELOW:
        return 1.0
    keeps_signal = torch.nonzero(snr >= REFERENCE_SIGNAL_TO_NOISE).flatten()
    timestep = int(keeps_signal.max()) if len(keeps_signal) else 0
    return timestep / last


def renoise(scheduler, clean: torch.Tensor, noise: torch.Tensor, level: float) -> torch.Tensor:
    """``clean`` diffused with ``noise`` to ``level`` of ``scheduler``'s training noise schedule, in float32.

    Flow matching: ``level * noise + (1 - level) * clean``. DDPM-style: at ``t = round(level * (T - 1))``,
    ``sqrt(a_t) * clean + sqrt(1 - a_t) * noise`` (diffusers' ``add_noise`` in float32).
    """
    if not _is_real(level) or not 0 < level <= 1:
        raise ValueError(f"level={level!r} must be in (0, 1]")
    clean, noise = clean.to(torch.float32), noise.to(device=clean.device, dtype=torch.float32)
    if schedule_kind(scheduler) == "flow_matching":
        return level * noise + (1.0 - level) * clean
    alphas_cumprod = scheduler.alphas_cumprod.to(device=clean.device).to(dtype=torch.float32)
    timestep = round(level * (len(alphas_cumprod) - 1))
    alpha_bar = alphas_cumprod[torch.tensor([timestep], device=clean.device)]
    return alpha_bar**0.5 * clean + (1 - alpha_bar) ** 0.5 * noise


# ---------------------------------------------------------------------------------------------- caches
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

    In order: diffusers' stateful hooks on each component (``_reset_stateful_cache``: FasterCache, First Block
    Cache, ... enabled with ``transformer.enable_cache``); ``reset_faster_cache(pipe)`` of the pack's
    ``hooks.faster_cache`` module when that module is loaded (it must do nothing on a pipeline without
    FasterCache); the callbacks added with ``register_iteration_reset``.
    """
    for component in getattr(pipe, "components", {}).values():
        if hasattr(component, "_reset_stateful_cache"):
            component._reset_stateful_cache()
    faster_cache = sys.modules.get(__name__.rsplit(".", 1)[0] + ".faster_cache")
    reset_faster_cache = getattr(faster_cache, "reset_faster_cache", None)
    if reset_faster_cache is not None:
        reset_faster_cache(pipe)
    for callback in list(getattr(pipe, ITERATION_RESET_CALLBACKS_ATTRIBUTE, None) or []):
        callback(pipe)


# ---------------------------------------------------------------------------------------------- pipelines
def apply_free_init(pipe, config: Optional[FreeInitConfig] = None):
    """Turn FreeInit on for ``pipe``: ``pipe(...)`` then runs ``config.num_iters`` sampling passes.

    The pipeline keeps its class name, signature, components and ``save_pretrained`` output; its class becomes a
    subclass whose ``__call__`` drives the iterations. Applying again replaces the config.

    During a call, one progress bar spans all iterations, ``callback_on_step_end`` fires on every step of every
    iteration (``step_index`` restarts at 0 each iteration; ``pipe.free_init_iteration`` tells which), and an
    interrupt (``pipe._interrupt = True``) ends the run with the interrupted latents.

    Args:
        pipe (`DiffusionPipeline`): a video pipeline whose ``__call__`` takes ``latents``, ``num_inference_steps``,
            ``generator`` and ``output_type="latent"`` and returns 5-D latents for it.
        config (`FreeInitConfig`, *optional*): settings; defaults to ``FreeInitConfig()``.

    Returns:
        ``pipe``.
    """
    config = FreeInitConfig() if config is None else config
    if not isinstance(config, FreeInitConfig):
        raise TypeError(f"config must be a FreeInitConfig, got {type(config).__name__}")
    base = _base_class(pipe)
    call_parameters = inspect.signature(base.__call__).parameters
    missing = [name for name in _REQUIRED_CALL_ARGUMENTS if name not in call_parameters]
    if missing:
        raise ValueError(f"FreeInit cannot drive {base.__name__}: its __call__ has no {missing} argument(s)")
    if getattr(pipe, "scheduler", None) is None:
        raise ValueError(f"FreeInit cannot drive {base.__name__}: it has no scheduler")
    schedule_kind(pipe.scheduler)
    if getattr(pipe, "free_init_enabled", False):
        raise ValueError(
            f"{base.__name__} already has diffusers' own FreeInit enabled; call pipe.disable_free_init() first"
        )
    layout = config.latent_layout or _guess_latent_layout(base)
    object.__setattr__(pipe, _CONFIG_ATTRIBUTE, config)
    object.__setattr__(pipe, _LAYOUT_ATTRIBUTE, layout)
    object.__setattr__(pipe, _RUN_ATTRIBUTE, None)
    pipe.__class__ = _free_init_class(base)
    return pipe


def remove_free_init(pipe):
    """Turn FreeInit off: ``pipe`` gets its own class back and samples exactly as before. Returns ``pipe``."""
    if _CONFIG_ATTRIBUTE in vars(pipe):
        pipe.__class__ = _base_class(pipe)
        for name in (_CONFIG_ATTRIBUTE, _LAYOUT_ATTRIBUTE, _RUN_ATTRIBUTE):
            vars(pipe).pop(name, None)
    return pipe


def free_init_config_of(pipe) -> Optional[FreeInitConfig]:
    """The FreeInit settings applied to ``pipe``, or None."""
    return vars(pipe).get(_CONFIG_ATTRIBUTE)


@contextlib.contextmanager
def free_init_applied(pipe, config: Optional[FreeInitConfig]):
    """``apply_free_init`` for a ``with`` block (nothing when ``config`` is None), then the previous state again."""
    if config is None:
        yield pipe
        return
    previous = free_init_config_of(pipe)
    apply_free_init(pipe, config)
    try:
        yield pipe
    finally:
        remove_free_init(pipe)
        if previous is not None:
            apply_free_init(pipe, previous)


def _base_class(pipe) -> type:
    return getattr(type(pipe), "_vdp_free_init_base_class", type(pipe))


def _guess_latent_layout(pipeline_class: type) -> str:
    names = [cls.__name__ for cls in pipeline_class.__mro__]
    if any(name.startswith(FRAMES_BEFORE_CHANNELS_PIPELINES) for name in names):
        return "BFCHW"
    return "BCFHW"


_FREE_INIT_CLASSES: Dict[type, type] = {}


def _free_init_class(base: type) -> type:
    """The subclass of ``base`` that runs FreeInit (same name and module, so saved configs name ``base``)."""
    if base in _FREE_INIT_CLASSES:
        return _FREE_INIT_CLASSES[base]

    @functools.wraps(base.__call__)
    def __call__(self, *args, **kwargs):
        return _FreeInitRun(self, base).run(args, kwargs)

    def progress_bar(self, iterable=None, total=None):
        run = vars(self).get(_RUN_ATTRIBUTE)
        if run is None or iterable is not None:
            return base.progress_bar(self, iterable=iterable, total=total)
        return run.progress_bar(total)

    namespace = {
        "__call__": __call__,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
        "_vdp_free_init_base_class": base,
        "progress_bar": progress_bar,
        "free_init_iteration": property(
            lambda self: getattr(vars(self).get(_RUN_ATTRIBUTE), "iteration", None),
            doc="The FreeInit iteration being sampled (0-based), None outside a call.",
        ),
    }
    base_interrupt = inspect.getattr_static(base, "interrupt", None)
    if isinstance(base_interrupt, property):

        def interrupt(self):
            run = vars(self).get(_RUN_ATTRIBUTE)
            return bool(run is not None and run.interrupted) or base_interrupt.fget(self)

        namespace["interrupt"] = property(interrupt)
    subclass = type(base.__name__, (base,), namespace)
    _FREE_INIT_CLASSES[base] = subclass
    return subclass


class _SharedProgressBar:
    """One tqdm bar for all iterations: pipelines open and close "their" bar once per iteration."""

    def __init__(self, bar):
        self._bar = bar

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def close(self):
        pass

    def __getattr__(self, name):
        return getattr(self._bar, name)


class _FreeInitRun:
    """State of one FreeInit call: the plan, the current iteration, the initial noise, the shared progress bar."""

    def __init__(self, pipe, base: type):
        self.pipe = pipe
        self.base = base
        self.config: FreeInitConfig = vars(pipe)[_CONFIG_ATTRIBUTE]
        self.layout: str = vars(pipe)[_LAYOUT_ATTRIBUTE]
        self.iteration = 0
        self.interrupted = False
        self.plan: List[int] = []
        self._bar = None
        self._bar_counts: List[int] = []

    def progress_bar(self, total: Optional[int]):
        if self._bar is None:
            self._bar_counts = list(self.plan)
            self._bar = self.base.progress_bar(self.pipe, total=sum(self._bar_counts))
        if total is not None and total != self._bar_counts[self.iteration]:
            # pipelines of higher-order schedulers count their bar differently from the step count
            self._bar.total += total - self._bar_counts[self.iteration]
            self._bar_counts[self.iteration] = total
        if self.config.num_iters > 1:
            self._bar.set_description(f"FreeInit {self.iteration + 1}/{self.config.num_iters}")
        return _SharedProgressBar(self._bar)

    def run(self, args, kwargs):
        arguments = self._call_arguments(args, kwargs)
        num_inference_steps = arguments["num_inference_steps"]
        if self.config.use_fast_sampling and any(arguments.get(name) is not None for name in ("timesteps", "sigmas")):
            raise ValueError("FreeInit's use_fast_sampling needs num_inference_steps; do not pass timesteps or sigmas")
        self.plan = self.config.planned_steps(num_inference_steps)
        generator = arguments.get("generator")
        previous_run = vars(self.pipe).get(_RUN_ATTRIBUTE)
        object.__setattr__(self.pipe, _RUN_ATTRIBUTE, self)
        try:
            initial_noise = None
            latents = arguments.get("latents")
            for iteration, steps in enumerate(self.plan):
                self.iteration = iteration
                call_arguments = dict(arguments, num_inference_steps=steps, latents=latents)
                if iteration > 0:
                    reset_caches_between_iterations(self.pipe)
                if iteration == len(self.plan) - 1:
                    return self.base.__call__(self.pipe, **call_arguments)
                call_arguments.update(output_type="latent", return_dict=False)
                recorder = _first_sample_of(self.pipe.scheduler) if iteration == 0 else contextlib.nullcontext()
                with recorder as first_sample:
                    clean = self.base.__call__(self.pipe, **call_arguments)[0]
                if iteration == 0:
                    initial_noise = self._unit_noise(first_sample, clean)
                self.interrupted = self.interrupted or bool(getattr(self.pipe, "_interrupt", False))
                if self.interrupted:
                    # the remaining passes skip every step and only turn these latents into the requested output
                    latents = clean / self._init_noise_sigma()
                else:
                    latents = self._next_initial_latents(clean, initial_noise, generator)
        finally:
            object.__setattr__(self.pipe, _RUN_ATTRIBUTE, previous_run)
            if self._bar is not None:
                self._bar.close()

    def _call_arguments(self, args, kwargs) -> dict:
        signature = inspect.signature(self.base.__call__)
        bound = signature.bind(self.pipe, *args, **kwargs)
        bound.apply_defaults()
        arguments = {}
        for name, value in list(bound.arguments.items())[1:]:
            kind = signature.parameters[name].kind
            if kind == inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            elif kind == inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(
                        f"FreeInit passes arguments by name; {self.base.__name__} got extra positional {value}"
                    )
            else:
                arguments[name] = value
        return arguments

    def _init_noise_sigma(self):
        return getattr(self.pipe.scheduler, "init_noise_sigma", 1.0)

    def _unit_noise(self, first_sample: dict, clean: torch.Tensor) -> torch.Tensor:
        """The initial noise at unit scale (pipelines multiply given latents by the scheduler's init_noise_sigma)."""
        if "sample" not in first_sample:
            raise RuntimeError(
                f"{self.base.__name__} never called scheduler.step, so FreeInit found no initial noise to reuse"
            )
        noise = first_sample["sample"]
        if clean.ndim != 5 or noise.shape != clean.shape:
            raise ValueError(
                f"FreeInit needs 5-D video latents ({' or '.join(LATENT_LAYOUTS)}); {self.base.__name__} sampled "
                f"{tuple(noise.shape)} and returned {tuple(clean.shape)} for output_type='latent'"
            )
        init_noise_sigma = self._init_noise_sigma()
        return noise if float(init_noise_sigma) == 1.0 else noise / init_noise_sigma

    def _next_initial_latents(self, clean: torch.Tensor, initial_noise: torch.Tensor, generator) -> torch.Tensor:
        config = self.config
        level = config.renoise_level if config.renoise_level is not None else default_renoise_level(self.pipe.scheduler)
        renoised = renoise(self.pipe.scheduler, clean, initial_noise, level)
        fresh_noise = randn_tensor(clean.shape, generator=generator, device=clean.device, dtype=torch.float32)
        dims = (2, 3, 4) if self.layout == "BCFHW" else (1, 3, 4)
        low_pass = frequency_filter(
            [clean.shape[d] for d in dims], config.method, config.order, config.spatial_stop_frequency,
            config.temporal_stop_frequency, device=clean.device,
        )
        return mix_frequencies(renoised, fresh_noise, low_pass, dims).to(clean.dtype)


@contextlib.contextmanager
def _first_sample_of(scheduler):
    """Records the ``sample`` argument of the first ``scheduler.step`` call in the block (the initial latents)."""
    original_step = scheduler.step
    signature = inspect.signature(original_step)
    found = {}

    @functools.wraps(original_step)
    def step(*args, **kwargs):
        if "sample" not in found:
            found["sample"] = signature.bind(*args, **kwargs).arguments["sample"].detach().clone()
        return original_step(*args, **kwargs)

    shadowed = vars(scheduler).get("step")
    scheduler.step = step
    try:
        yield found
    finally:
        if shadowed is None:
            del scheduler.step
        else:
            scheduler.step = shadowed

