"""The contract between the generic trainer and one model of the pack (finetrainers' split).

A *specification* knows one model family: how to load its components, how to turn a batch of data
into the denoiser's inputs, what the denoiser should predict, which parameters train and how the
result is saved. The trainer (``training/trainer.py``) knows none of that: it owns data loading,
the optimiser and learning-rate schedule, mixed precision, gradient accumulation and clipping,
checkpoints, logging and validation, and calls the specification for everything model-specific.

Local-learning modes (``training/local_learning/``) use :meth:`ModelSpecification.denoiser_stages`
to run the denoiser group by group instead of calling :meth:`ModelSpecification.forward`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn


@dataclasses.dataclass
class ForwardOutput:
    """What one training forward pass returns.

    ``prediction`` and ``target`` have the same shape; ``weights`` broadcasts against them (per-sample
    loss weights such as SD3's ``compute_loss_weighting_for_sd3`` or CogVideoX's v-prediction
    weighting) or is ``None`` for plain MSE. ``extra_losses`` are added to the main loss as given
    (LGVI's mask-decoder loss, for example), already weighted.
    """

    prediction: torch.Tensor
    target: torch.Tensor
    weights: Optional[torch.Tensor] = None
    extra_losses: Dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DenoiserStages:
    """The denoiser cut into the pieces a local-learning mode runs one at a time.

    ``prelude()`` returns the state entering the first block (hidden states plus whatever the blocks
    need, e.g. the timestep embedding and text states); ``blocks[i](state)`` returns the state after
    block ``i``; ``head(state)`` returns the prediction (same shape as ``target``). ``state`` is a
    dict of tensors so that a mode can detach every tensor in it between groups.
    """

    prelude: Callable[[], Dict[str, torch.Tensor]]
    blocks: Sequence[Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]]
    head: Callable[[Dict[str, torch.Tensor]], torch.Tensor]
    block_modules: Sequence[nn.Module]
    head_modules: Sequence[nn.Module]
    target: torch.Tensor
    weights: Optional[torch.Tensor] = None


class ModelSpecification(abc.ABC):
    """One model family of the pack, as the trainer sees it.

    Subclasses set ``name`` (the slug: ``vchitect``, ``repvideo``, ``das``, ``lgvi``) and implement the
    abstract methods. ``components`` is always the dict returned by :meth:`load_components`.
    """

    name: str = ""
    #: frames a training clip may have: ``num_frames % frame_multiple == frame_remainder``
    frame_multiple: int = 1
    frame_remainder: int = 0
    #: height and width must be multiples of this
    size_multiple: int = 8
    #: the component that trains (the denoiser): a key of ``components``
    denoiser_key: str = "transformer"
    #: default LoRA target modules of the denoiser (peft ``target_modules``)
    default_lora_targets: Tuple[str, ...] = ()

    @staticmethod
    def _ddpm_noised(scheduler, clean: torch.Tensor, generator: Optional[torch.Generator] = None,
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(timesteps, noise, noisy latents): a uniform training timestep per sample, then Gaussian noise, drawn from
        `generator` in that order on the CPU, mixed by the scheduler's `add_noise` (DDPM-family schedules)."""
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (clean.shape[0],), generator=generator)
        noise = torch.randn(clean.shape, generator=generator).to(clean)
        timesteps = timesteps.to(clean.device)
        return timesteps, noise, scheduler.add_noise(clean, noise, timesteps)

    # -- loading ---------------------------------------------------------------------------------
    def _load_pipeline(self, pipeline_class, build_tiny, pretrained: Optional[str], dtype: torch.dtype,
                       skipped: Sequence[str] = ()):
        """The pipeline of the folder `pretrained` (None: `build_tiny(weights="random")`, the tiny random-weight
        model) in `dtype`, without the components in `skipped`; `pretrained` is kept for `save` (which takes what
        was skipped from it)."""
        self._pretrained = pretrained
        if pretrained is None:
            pipeline = build_tiny(weights="random")
            return pipeline if dtype == torch.float32 else pipeline.to(dtype=dtype)
        return pipeline_class.from_pretrained(pretrained, dtype=dtype, **{name: None for name in skipped})

    def _with_loaded_parts(self, components: Mapping[str, Any], names: Sequence[str], pipeline_class, build_tiny,
                           ) -> Dict[str, Any]:
        """`components` with the parts in `names` that were not loaded (training from precomputed latents) taken
        from the folder the run started from, with the trained denoiser passed in (or from
        `build_tiny(weights="random")`)."""
        parts = {name: components.get(name) for name in names}
        if any(value is None for value in parts.values()):
            denoiser = {self.denoiser_key: components[self.denoiser_key]}
            source = (pipeline_class.from_pretrained(self._pretrained, **denoiser) if self._pretrained
                      else build_tiny(weights="random"))
            parts = {name: value if value is not None else getattr(source, name) for name, value in parts.items()}
        return {**components, **parts}

    @abc.abstractmethod
    def load_components(self, pretrained: Optional[str], *, dtype: torch.dtype = torch.float32,
                        load_encoders: bool = True) -> Dict[str, Any]:
        """Load the components from a pipeline folder (``None``: the family's tiny random-weight model).

        With ``load_encoders=False`` (training from precomputed latents and embeddings) the VAE and the
        text encoders are not loaded.
        """

    # -- data ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def prepare_conditions(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """Text embeddings and other conditions (image, tracking-video or mask latents) of a raw batch."""

    @abc.abstractmethod
    def prepare_latents(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """The clean latents of a raw batch (videos in ``batch["video"]``: ``[B, F, C, H, W]`` in [-1, 1])."""

    # -- training step ---------------------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                conditions: Mapping[str, torch.Tensor], *, generator: Optional[torch.Generator] = None,
                training: bool = True) -> ForwardOutput:
        """Noise the latents, run the denoiser, return prediction / target / weights.

        ``training`` turns on the specification's condition dropout (classifier-free guidance).
        """

    def loss(self, output: ForwardOutput) -> torch.Tensor:
        """Weighted mean squared error per sample, averaged over the batch, plus the extra losses."""
        err = (output.prediction.float() - output.target.float()) ** 2
        if output.weights is not None:
            err = err * output.weights.float()
        loss = err.reshape(err.shape[0], -1).mean(dim=1).mean()
        for extra in output.extra_losses.values():
            loss = loss + extra
        return loss

    @abc.abstractmethod
    def validation_video(self, components: Mapping[str, Any], batch: Mapping[str, Any], *,
                         num_inference_steps: int, generator: Optional[torch.Generator] = None):
        """Frames ``[F, H, W, 3]`` in 0..1 (numpy) the pipeline makes for the first sample of a raw ``batch``, for the
        trainer's validation videos."""

    # -- what trains, how it is saved ------------------------------------------------------------
    def add_lora(self, components: Mapping[str, Any], *, rank: int, alpha: Optional[float] = None,
                 dropout: float = 0.0, targets: Optional[Sequence[str]] = None,
                 adapter_name: str = "default") -> None:
        """Add peft LoRA adapters (rank, alpha defaulting to the rank, dropout) to the denoiser's linear layers named
        by ``targets`` (default ``default_lora_targets``); ValueError when they name none. Denoisers that are not
        peft adapter models, or that train a part only, override it."""
        from .specifications._lora import check_lora_rank, check_lora_targets, lora_config

        check_lora_rank(rank)
        denoiser = components[self.denoiser_key]
        targets = check_lora_targets(denoiser, targets or self.default_lora_targets, f"{self.name} {self.denoiser_key}")
        denoiser.add_adapter(lora_config(rank, alpha, dropout, targets), adapter_name=adapter_name)

    def trainable_parameters(self, components: Mapping[str, Any], training_type: str) -> List[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs that train; everything else is frozen by the trainer.

        The default is every parameter of the denoiser but LoRA adapters for ``full`` and the adapters for ``lora``;
        specifications that train a part only (DaS: the control branch) override it.
        """
        from .specifications._lora import split_trainable

        return split_trainable(components[self.denoiser_key], training_type)

    @abc.abstractmethod
    def save(self, components: Mapping[str, Any], output_dir: str, *, training_type: str) -> None:
        """Write the result: a complete pipeline folder (full) or a diffusers-format LoRA file (lora)."""


class LocalLearningSpecification(abc.ABC):
    """What a specification adds to train by local learning (``training/local_learning``): its denoiser's step cut
    into a prelude, per-block and head callables, and the modules the auxiliary networks are built from."""

    @abc.abstractmethod
    def denoiser_stages(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                        conditions: Mapping[str, torch.Tensor], *,
                        generator: Optional[torch.Generator] = None, training: bool = True) -> DenoiserStages:
        """The same step as :meth:`ModelSpecification.forward`, cut for local learning."""

    @abc.abstractmethod
    def denoiser_modules(self, components: Mapping[str, Any]) -> Tuple[List[nn.Module], List[nn.Module]]:
        """``(blocks, head modules)`` of the denoiser, as :meth:`denoiser_stages` gives them, without a batch (the
        trainer builds local learning's auxiliary networks from them before the first step)."""
