"""Local learning as the trainer's per-micro-batch step: the denoiser run group by group through its specification's
stages, one ``accelerator.backward`` per group, one optimiser step per batch (the trainer's).

What the generic step gets from accelerate by calling the prepared model, this step does itself, because the groups
run the plain denoiser's blocks outside the wrapper:

- mixed precision: the forwards run under ``accelerator.autocast()``, the backwards outside it; ``accelerator.backward``
  scales fp16 losses and divides by the accumulation steps, as for one backward;
- DDP: the wrapper's reducer never sees these backwards, so the gradients of the denoiser and of the auxiliary
  networks are averaged over the processes on the micro-batch that synchronises (``all_reduce_gradients``);
- checkpoints: the auxiliary networks (MAN's EMA copies included) are registered with ``accelerator`` so that
  ``save_state`` / ``load_state`` carry them and a resumed run goes on exactly; the export (``spec.save``) holds only
  the main network.

The auxiliary networks are built from the denoiser's blocks and head after they were loaded and cast for training,
under the run's seed, so every process builds the same ones.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from ..specification import ForwardOutput
from ..trainer import StepResult, TrainingStep
from .config import LocalLearningConfig
from .runner import LocalLearner, all_reduce_gradients


class LocalLearningStep(TrainingStep):
    """The trainer's step for a ``LocalLearningConfig``; ``learner`` holds the auxiliary networks once built.

    Args:
        config (`LocalLearningConfig`): the mode, its groups and options.
    """

    def __init__(self, config: LocalLearningConfig):
        self.config = config
        self.learner: LocalLearner = None

    def extra_parameters(self, trainer) -> List[nn.Parameter]:
        from ..specification import LocalLearningSpecification

        if not isinstance(trainer.spec, LocalLearningSpecification):
            raise ValueError(f"local_learning={self.config.mode!r}: model {trainer.spec.name!r} cannot be trained by "
                             f"local learning (its specification does not cut its denoiser into stages)")
        blocks, head = trainer.spec.denoiser_modules(trainer.components)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(trainer.settings.seed)
            self.learner = LocalLearner(self.config, blocks, head)
        self.learner.to(trainer.accelerator.device)
        trainer.accelerator.register_for_checkpointing(self.learner)
        return self.learner.trainable_parameters()

    def __call__(self, trainer, latents, conditions, generator) -> StepResult:
        accelerator, spec = trainer.accelerator, trainer.spec
        device_type = accelerator.device.type

        def loss_fn(prediction, target, weights):
            return spec.loss(ForwardOutput(prediction=prediction, target=target, weights=weights))

        def backward(loss, retain_graph=False):
            with torch.autocast(device_type=device_type, enabled=False):
                accelerator.backward(loss, retain_graph=retain_graph)

        with accelerator.autocast():
            stages = spec.denoiser_stages(trainer.components, latents, conditions, generator=generator,
                                          training=True)
            result = self.learner.step(stages, loss_fn, backward)
        if accelerator.sync_gradients:
            all_reduce_gradients(trainer.clipped)
        logs = {f"loss_group_{index}": loss for index, loss in enumerate(result.group_losses[:-1])
                if loss is not None}
        return StepResult(loss=result.loss, logs=logs)
