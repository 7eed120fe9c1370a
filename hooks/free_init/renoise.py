"""Re-noising for FreeInit: the schedule kind, the default re-noise level and diffusing a clean result back."""

import torch

from .config import _is_real

__all__ = ["REFERENCE_SIGNAL_TO_NOISE", "ZERO_TERMINAL_SNR_BELOW", "default_renoise_level", "renoise", "schedule_kind"]

# sqrt(alpha_bar / (1 - alpha_bar)) at t=999 of Stable Diffusion 1.5's schedule (scaled-linear betas from
# 0.00085 to 0.012 over 1000 steps): the signal-to-noise amplitude FreeInit's official t=999 re-noising keeps.
REFERENCE_SIGNAL_TO_NOISE = 0.0684
# A DDPM-style schedule whose last timestep keeps less than this counts as zero-terminal-SNR.
ZERO_TERMINAL_SNR_BELOW = REFERENCE_SIGNAL_TO_NOISE / 2


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
