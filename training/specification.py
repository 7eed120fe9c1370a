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

    # -- loading ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def load_components(self, pretrained: Optional[str], *, dtype: torch.dtype = torch.float32,
                        load_encoders: bool = True) -> Dict[str, Any]:
        """Load the components from a pipeline folder (``None``: the pack's embedded model of the family).

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

    def denoiser_stages(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                        conditions: Mapping[str, torch.Tensor], *,
                        generator: Optional[torch.Generator] = None, training: bool = True) -> DenoiserStages:
        """The same step as :meth:`forward`, cut for local learning. Families without it say so."""
        raise NotImplementedError(f"model {self.name!r} does not support local-learning modes yet")

    def denoiser_modules(self, components: Mapping[str, Any]) -> Tuple[List[nn.Module], List[nn.Module]]:
        """``(blocks, head modules)`` of the denoiser, as :meth:`denoiser_stages` gives them, without a batch (the
        trainer builds local learning's auxiliary networks from them before the first step)."""
        raise NotImplementedError(f"model {self.name!r} does not support local-learning modes yet")

    def validation_video(self, components: Mapping[str, Any], batch: Mapping[str, Any], *,
                         num_inference_steps: int, generator: Optional[torch.Generator] = None):
        """Frames ``[F, H, W, 3]`` in 0..1 (numpy) the pipeline makes for the first sample of a raw ``batch``, for the
        trainer's validation videos. Families without it say so."""
        raise NotImplementedError(f"model {self.name!r} has no validation video yet")

    # -- what trains, how it is saved ------------------------------------------------------------
    def trainable_parameters(self, components: Mapping[str, Any], training_type: str) -> List[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs that train; everything else is frozen by the trainer.

        The default is every parameter of the denoiser for ``full`` and the parameters peft marked
        trainable for ``lora``; specifications that train a part only (DaS: the control branch)
        override it.
        """
        denoiser = components[self.denoiser_key]
        if training_type == "lora":
            return [(n, p) for n, p in denoiser.named_parameters() if "lora_" in n]
        return list(denoiser.named_parameters())

    @abc.abstractmethod
    def save(self, components: Mapping[str, Any], output_dir: str, *, training_type: str) -> None:
        """Write the result: a complete pipeline folder (full) or a diffusers-format LoRA file (lora)."""
