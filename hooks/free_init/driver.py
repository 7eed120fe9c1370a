"""FreeInit's driver: runs the sampling passes; the one module of hooks/ that alters objects it does not own.

``apply_free_init`` gives the pipeline object a generated subclass (same name, module and qualname, so saved configs
name the original class) whose ``__call__`` runs the iterations through the original ``__call__``; during the first
iteration ``scheduler.step`` is wrapped on the instance to capture the initial noise, and unwrapped after it.
"""

import contextlib
import functools
import inspect
from typing import Dict, List, Optional

import torch
from diffusers.utils.torch_utils import randn_tensor

from .config import LATENT_LAYOUTS, FreeInitConfig
from .filters import frequency_filter, mix_frequencies
from .renoise import default_renoise_level, renoise, schedule_kind
from .resets import reset_caches_between_iterations

__all__ = ["FRAMES_BEFORE_CHANNELS_PIPELINES", "apply_free_init", "free_init_applied", "free_init_config_of",
           "remove_free_init"]

# Pipeline classes (by name prefix, anywhere in the MRO) whose latents are [B, F, C, H, W].
FRAMES_BEFORE_CHANNELS_PIPELINES = ("CogVideoX", "ConsisID", "VchitectRepVideo")

_CONFIG_ATTRIBUTE = "_vdp_free_init_config"
_LAYOUT_ATTRIBUTE = "_vdp_free_init_latent_layout"
_RUN_ATTRIBUTE = "_vdp_free_init_run"
_REQUIRED_CALL_ARGUMENTS = ("latents", "num_inference_steps", "generator", "output_type")


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
