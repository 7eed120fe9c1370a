"""Local learning for the pack's denoisers: AugLocal, MAN, HPFF and the InfoPro baseline as modes of the trainer.

The denoiser's blocks are split into groups, each trained by its own local loss with a backward per group, so only
one group's activations are alive at a time. Importing this package is torch-free; the step and the auxiliary
networks are imported on first use.
"""

from ..._lazy import lazy_exports
from .config import MODE_OPTIONS, MODES, LocalLearningConfig, check_training_setup, parse_cut_points

__all__ = [
    "MODES",
    "MODE_OPTIONS",
    "LocalLearner",
    "LocalLearningConfig",
    "LocalStepResult",
    "SavedActivationMeter",
    "all_reduce_gradients",
    "check_training_setup",
    "parse_cut_points",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "LocalLearner": ".runner",
    "LocalStepResult": ".runner",
    "all_reduce_gradients": ".runner",
    "SavedActivationMeter": ".accounting",
})
