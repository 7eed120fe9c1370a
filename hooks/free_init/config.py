"""FreeInit's settings: the config dataclass and the names it accepts."""

import math
from dataclasses import dataclass
from typing import List, Optional

# The most sampling passes FreeInit may run: each pass is a whole sampling run (the ComfyUI node allows 16).
MAX_NUM_ITERS = 16

__all__ = ["LATENT_LAYOUTS", "METHODS", "FreeInitConfig"]

METHODS = ("butterworth", "gaussian", "ideal", "box")
# Where the frame axis sits in a pipeline's 5-D latents: [B, C, F, H, W] (AnimateDiff, Wan, HunyuanVideo,
# Mochi, Latte) or [B, F, C, H, W] (CogVideoX and the pipelines built on it, Vchitect-2.0).
LATENT_LAYOUTS = ("BCFHW", "BFCHW")


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
        if (isinstance(self.num_iters, bool) or not isinstance(self.num_iters, int)
                or not 1 <= self.num_iters <= MAX_NUM_ITERS):
            raise ValueError(f"num_iters={self.num_iters!r} must be an integer in 1..{MAX_NUM_ITERS} (sampling passes; "
                             f"the FreeInit paper uses up to 5)")
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
