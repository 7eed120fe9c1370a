"""LGVI (language-driven video inpainting): InstructPix2Pix-style training of the ROVI video UNet.

The official repository has no training code; this follows diffusers' ``train_instruct_pix2pix.py`` on video:

- the target video's VAE latents are noised (DDPM ``add_noise``, timesteps drawn uniformly) and the UNet predicts
  the noise (or the velocity, for a ``v_prediction`` scheduler);
- the input video's latents (the mode of the posterior, as InstructPix2Pix) enter as ``img_condition``, which the
  UNet concatenates to the noisy latents (in_channels 8) exactly as the pipeline does at inference;
- conditioning dropout of 5% (:data:`LGVI_RECIPE`): with ``u ~ U(0, 1)`` per sample, ``u < p`` drops the text
  (the empty prompt's embeddings), ``p <= u < 2p`` drops text and video, ``2p <= u < 3p`` drops the video (zero
  latents); so text only, both and video only each at 5%;
- a model with a mask decoder also learns the edit mask: binary cross-entropy of its mask against the ``mask``
  column (resized to the mask's grid), weighted by ``mask_loss_weight``, returned in ``extra_losses``.

Data columns: ``input_video`` and ``video`` (the target), [B, F, 3, H, W] in [-1, 1]; ``instruction``; ``mask``
([B, F, 1, H, W] in 0..1, optional). The export is a complete ``InpaintByInstructionPipeline`` folder.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..specification import ForwardOutput, ModelSpecification
from ._folders import write_folder
from ._lora import lora_config, lora_layers_and_metadata

__all__ = ["LGVI_RECIPE", "LGVISpecification", "LGVITrainingRecipe"]


@dataclasses.dataclass(frozen=True)
class LGVITrainingRecipe:
    """Training settings of the LGVI specification (InstructPix2Pix's, from diffusers' example)."""

    learning_rate: float = 1e-4
    adam_betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    lr_warmup_steps: int = 0
    max_grad_norm: float = 1.0
    #: probability of each of: text dropped, video dropped, both dropped
    conditioning_dropout: float = 0.05
    mask_loss_weight: float = 1.0


LGVI_RECIPE = LGVITrainingRecipe()


class LGVISpecification(ModelSpecification):
    """The LGVI family (``InpaintByInstructionPipeline`` with ``RoviUNet3DConditionModel``)."""

    name = "lgvi"
    frame_multiple = 1
    frame_remainder = 0
    size_multiple = 8
    denoiser_key = "unet"
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")
    data_columns = ("input_video", "video", "instruction", "mask")
    recipe = LGVI_RECIPE

    def __init__(self, recipe: LGVITrainingRecipe = LGVI_RECIPE):
        self.recipe = recipe
        self._pretrained: Optional[str] = None

    # -- loading ---------------------------------------------------------------------------------
    def load_components(self, pretrained: Optional[str], *, dtype: torch.dtype = torch.float32,
                        load_encoders: bool = True) -> Dict[str, Any]:
        from diffusers import DDPMScheduler

        from ...diffusers_pipelines.lgvi import InpaintByInstructionPipeline
        from ...diffusers_pipelines.lgvi.tiny import build_tiny_inpaint_pipeline

        pipeline = self._load_pipeline(InpaintByInstructionPipeline, build_tiny_inpaint_pipeline, pretrained, dtype,
                                       () if load_encoders else ("vae", "text_encoder", "tokenizer"))
        components = dict(pipeline.components)
        # the inference scheduler is kept for the export; training noises with DDPM on the same schedule
        components["noise_scheduler"] = DDPMScheduler.from_config(pipeline.scheduler.config)
        return components

    def _pipeline(self, components: Mapping[str, Any]):
        from ...diffusers_pipelines.lgvi import InpaintByInstructionPipeline

        return InpaintByInstructionPipeline(**{k: components.get(k) for k in (
            "vae", "text_encoder", "tokenizer", "unet", "scheduler", "instruction_encoder")})

    # -- data ------------------------------------------------------------------------------------
    def _check_video(self, name: str, video) -> torch.Tensor:
        if not isinstance(video, torch.Tensor) or video.ndim != 5 or video.shape[2] != 3:
            shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
            raise ValueError(f"{name} has shape {shape}; expected [batch, frames, 3, height, width] in [-1, 1]")
        if video.shape[3] % self.size_multiple or video.shape[4] % self.size_multiple:
            raise ValueError(f"{name} is {video.shape[3]}x{video.shape[4]} (HxW); both must be multiples of "
                             f"{self.size_multiple}")
        return video

    def _encode(self, components, video: torch.Tensor, mode: bool) -> torch.Tensor:
        """[B, F, 3, H, W] in [-1, 1] -> scaled latents [B, 4, F, h, w]."""
        vae = components["vae"]
        if vae is None:
            raise ValueError("the VAE was not loaded (load_encoders=False): train from precomputed latents")
        batch = video.shape[0]
        posterior = vae.encode(video.flatten(0, 1).to(device=vae.device, dtype=vae.dtype)).latent_dist
        latents = (posterior.mode() if mode else posterior.sample()) * vae.config.scaling_factor
        return latents.unflatten(0, (batch, -1)).permute(0, 2, 1, 3, 4)

    def prepare_latents(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        video = self._check_video("video", batch["video"])
        with torch.no_grad():
            return {"latents": self._encode(components, video, mode=False)}

    def prepare_conditions(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """CLIP embeddings of the instruction (and of the empty prompt), the input video's latents, the mask."""
        text = batch.get("instruction", batch.get("caption"))
        if text is None or "input_video" not in batch:
            raise ValueError("the LGVI batch needs the columns 'input_video', 'video' and 'instruction' "
                             f"('mask' optional); it has {sorted(batch)}")
        video = self._check_video("input_video", batch["input_video"])
        target = batch.get("video")
        if isinstance(target, torch.Tensor) and target.shape != video.shape:
            raise ValueError(f"input_video has shape {tuple(video.shape)} and video {tuple(target.shape)}; "
                             "the input and target videos must match")
        pipeline = self._pipeline(components)
        device = components["text_encoder"].device
        with torch.no_grad():
            conditions = {
                "prompt_embeds": pipeline._clip_embeds(list(text), device),
                "null_prompt_embeds": pipeline._clip_embeds([""], device),
                "input_latents": self._encode(components, video, mode=True),
            }
        if batch.get("mask") is not None:
            mask = batch["mask"]
            if mask.ndim != 5 or mask.shape[2] != 1 or mask.shape[:2] != video.shape[:2]:
                raise ValueError(f"mask has shape {tuple(mask.shape)}; expected [batch, frames, 1, height, width] "
                                 f"with the frames of input_video {tuple(video.shape)}")
            conditions["mask"] = mask.float().permute(0, 2, 1, 3, 4)
        return conditions

    # -- training step ---------------------------------------------------------------------------
    def conditioning_dropout(self, batch_size: int, generator: Optional[torch.Generator] = None
                             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(drop_text, drop_video) booleans per sample, InstructPix2Pix's scheme (text, both, video at p each)."""
        p = self.recipe.conditioning_dropout
        u = torch.rand(batch_size, generator=generator)
        return u < 2 * p, (u >= p) & (u < 3 * p)

    def forward(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                conditions: Mapping[str, torch.Tensor], *, generator: Optional[torch.Generator] = None,
                training: bool = True) -> ForwardOutput:
        clean = latents["latents"]
        unet, scheduler = components["unet"], components["noise_scheduler"]
        device, dtype, batch = clean.device, unet.dtype, clean.shape[0]
        timesteps, noise, noisy = self._ddpm_noised(scheduler, clean, generator)
        text = conditions["prompt_embeds"].to(device=device, dtype=dtype)
        video = conditions["input_latents"].to(device=device, dtype=dtype)
        if training:
            drop_text, drop_video = (d.to(device)[:, None, None] for d in self.conditioning_dropout(batch, generator))
            text = torch.where(drop_text, conditions["null_prompt_embeds"].to(text).expand_as(text), text)
            video = video * (~drop_video).to(video)[..., None, None]
        output = unet(noisy.to(dtype), timesteps, encoder_hidden_states=text, img_condition=video)
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(clean, noise, timesteps)
        else:
            target = noise
        extra = {}
        if output.mask is not None and conditions.get("mask") is not None:
            mask = conditions["mask"].to(device)
            size = tuple(output.mask.shape[2:])
            mask = F.interpolate(mask, size=size, mode="trilinear", align_corners=False).clamp(0, 1)
            extra["mask"] = self.recipe.mask_loss_weight * F.binary_cross_entropy(output.mask.float(), mask)
        return ForwardOutput(prediction=output.sample.float(), target=target.float(), extra_losses=extra)

    def validation_video(self, components: Mapping[str, Any], batch: Mapping[str, Any], *,
                         num_inference_steps: int, generator: Optional[torch.Generator] = None):
        """The inpainting pipeline on the first sample's input video and instruction."""
        video = batch["input_video"][0]
        text = batch.get("instruction", batch.get("caption"))[0]
        return self._pipeline(components)(
            video=((video + 1) / 2).permute(0, 2, 3, 1), prompt=text, height=video.shape[2], width=video.shape[3],
            num_inference_steps=num_inference_steps, generator=generator, output_type="np").frames[0]

    # -- what trains, how it is saved ------------------------------------------------------------
    def add_lora(self, components: Mapping[str, Any], *, rank: int, alpha: Optional[float] = None,
                 dropout: float = 0.0, targets: Optional[Sequence[str]] = None,
                 adapter_name: str = "default") -> None:
        """Add peft LoRA adapters (rank, alpha, dropout) to the UNet's attention projections (``targets``)."""
        config = lora_config(rank, alpha, dropout, targets or self.default_lora_targets)
        components["unet"].add_adapter(config, adapter_name=adapter_name)

    def save(self, components: Mapping[str, Any], output_dir: str, *, training_type: str) -> None:
        """``full``: a complete ``InpaintByInstructionPipeline`` folder; ``lora``: diffusers'
        ``pytorch_lora_weights.safetensors`` with ``unet.``-prefixed keys."""
        if training_type == "lora":
            from ...diffusers_pipelines.lgvi import InpaintByInstructionPipeline

            layers, metadata = lora_layers_and_metadata(components["unet"])
            write_folder(output_dir, lambda folder: InpaintByInstructionPipeline.save_lora_weights(
                folder, unet_lora_layers=layers, unet_lora_adapter_metadata=metadata))
            return
        from ...diffusers_pipelines.lgvi import InpaintByInstructionPipeline
        from ...diffusers_pipelines.lgvi.tiny import build_tiny_inpaint_pipeline

        pipeline = self._pipeline(self._with_loaded_parts(components, ("vae", "text_encoder", "tokenizer"),
                                                          InpaintByInstructionPipeline, build_tiny_inpaint_pipeline))
        write_folder(output_dir, pipeline.save_pretrained)
