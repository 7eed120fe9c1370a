"""Vchitect-2.0 (and RepVideo's gates when the aggregation is on): flow-matching training as diffusers trains SD3.

Vchitect-2.0 is an SD3-family model (flow matching, ``FlowMatchEulerDiscreteScheduler`` with shift 3); its official
repository releases no training code, so this follows diffusers' ``train_dreambooth_lora_sd3.py``:

- ``u = compute_density_for_timestep_sampling(weighting_scheme, ...)`` (logit-normal, mean 0, std 1 by default),
  ``t = scheduler.timesteps[(u * num_train_timesteps).long()]`` and ``sigma = scheduler.sigmas`` at that index, so
  the scheduler's shift applies to the sampled noise levels;
- ``noisy = (1 - sigma) * x0 + sigma * noise``; the transformer predicts the velocity and the target is
  ``noise - x0``; the loss weights are ``compute_loss_weighting_for_sd3(weighting_scheme, sigma)`` (ones for
  logit-normal);
- text dropout for classifier-free guidance (:data:`VCHITECT_RECIPE`, 10%): the sample's prompt and pooled
  embeddings are replaced by those of the empty prompt, which is what the pipeline's unconditional branch uses.

With ``repvideo_aggregation`` on, the gates (``repvideo.learnable_gating``) are parameters of the transformer and
train with it in ``full``. Latents are SD3's VAE latents frame by frame, ``(z - shift_factor) * scaling_factor``,
laid out [B, F, C, h, w] as the pipeline samples them. The export is a complete ``VchitectRepVideoPipeline`` folder
or diffusers' ``pytorch_lora_weights.safetensors`` (``transformer.``-prefixed keys, loaded by
``VchitectRepVideoPipeline.load_lora_weights``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from ..specification import DenoiserStages, ForwardOutput, LocalLearningSpecification, ModelSpecification
from ._folders import write_folder
from ._lora import write_transformer_lora

__all__ = ["VCHITECT_RECIPE", "VchitectSpecification", "VchitectTrainingRecipe"]

_WEIGHTING_SCHEMES = ("logit_normal", "mode", "sigma_sqrt", "cosmap", "none")
_TEXT_PARTS = ("tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2", "tokenizer_3", "text_encoder_3", "vae")


@dataclasses.dataclass(frozen=True)
class VchitectTrainingRecipe:
    """Training settings of the Vchitect-2.0 specification (diffusers' SD3 defaults)."""

    learning_rate: float = 1e-4
    adam_betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    #: timestep density of ``compute_density_for_timestep_sampling``: logit_normal, mode, sigma_sqrt, cosmap, none
    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    #: probability that a sample trains with the empty prompt's embeddings
    text_dropout: float = 0.1
    #: weight of the squared error of the prediction's frame-to-frame differences (0: the plain SD3 loss)
    temporal_difference_weight: float = 0.0

    def __post_init__(self):
        if self.weighting_scheme not in _WEIGHTING_SCHEMES:
            raise ValueError(f"weighting_scheme={self.weighting_scheme!r}; allowed: {', '.join(_WEIGHTING_SCHEMES)}")
        if not 0.0 <= self.text_dropout <= 1.0:
            raise ValueError(f"text_dropout={self.text_dropout!r} must be between 0 and 1")
        if not self.temporal_difference_weight >= 0.0:
            raise ValueError(f"temporal_difference_weight={self.temporal_difference_weight!r} must be >= 0")


VCHITECT_RECIPE = VchitectTrainingRecipe()


class VchitectSpecification(ModelSpecification, LocalLearningSpecification):
    """The Vchitect-2.0 family (``VchitectRepVideoPipeline``): the transformer trains, fully or through LoRA."""

    name = "vchitect"
    # SD3's image VAE frame by frame: any frame count; sizes a multiple of 8 (VAE) x 2 (patch)
    frame_multiple = 1
    frame_remainder = 0
    size_multiple = 16
    denoiser_key = "transformer"
    #: SD3's LoRA targets (joint attention) plus Vchitect's temporal and cross-attention query projections
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                            "to_add_out", "to_q_temp", "to_k_temp", "to_v_temp", "to_q_cross")
    data_columns = ("caption",)
    recipe = VCHITECT_RECIPE

    def __init__(self, recipe: VchitectTrainingRecipe = VCHITECT_RECIPE):
        self.recipe = recipe
        self._pretrained: Optional[str] = None

    # -- loading ---------------------------------------------------------------------------------
    def load_components(self, pretrained: Optional[str], *, dtype: torch.dtype = torch.float32,
                        load_encoders: bool = True) -> Dict[str, Any]:
        from ...diffusers_pipelines.vchitect import VchitectRepVideoPipeline
        from ...diffusers_pipelines.vchitect.tiny import build_tiny_vchitect_pipeline

        pipeline = self._load_pipeline(VchitectRepVideoPipeline, build_tiny_vchitect_pipeline, pretrained, dtype,
                                       () if load_encoders else _TEXT_PARTS)
        return dict(pipeline.components)

    def _pipeline(self, components: Mapping[str, Any]):
        from ...diffusers_pipelines.vchitect import VchitectRepVideoPipeline
        from ...diffusers_pipelines.vchitect.pipeline import COMPONENT_NAMES

        return VchitectRepVideoPipeline(**{k: components.get(k) for k in COMPONENT_NAMES})

    # -- data ------------------------------------------------------------------------------------
    def _check_video(self, video) -> torch.Tensor:
        if not isinstance(video, torch.Tensor) or video.ndim != 5 or video.shape[2] != 3:
            shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
            raise ValueError(f"video has shape {shape}; expected [batch, frames, 3, height, width] in [-1, 1]")
        height, width = video.shape[3], video.shape[4]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"video is {height}x{width} (HxW); both must be multiples of {self.size_multiple}")
        return video

    def prepare_latents(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """VAE latents [B, F, 16, H/8, W/8] of ``batch["video"]`` (a posterior sample, shifted and scaled)."""
        video = self._check_video(batch["video"])
        vae = components["vae"]
        if vae is None:
            raise ValueError("the VAE was not loaded (load_encoders=False): train from precomputed latents")
        with torch.no_grad():
            pixels = video.flatten(0, 1).to(device=vae.device, dtype=vae.dtype)
            latents = vae.encode(pixels).latent_dist.sample()
            latents = (latents - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor
        return {"latents": latents.unflatten(0, tuple(video.shape[:2]))}

    def prepare_conditions(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """Prompt and pooled embeddings of ``caption`` as the pipeline builds them, and those of the empty prompt."""
        if "caption" not in batch:
            raise ValueError(f"the Vchitect batch has no 'caption' column; it has {sorted(batch)}")
        if components.get("text_encoder_3") is None:
            raise ValueError("the text encoders were not loaded (load_encoders=False): train from precomputed "
                             "embeddings")
        pipeline = self._pipeline(components)
        device = components["text_encoder_3"].device
        with torch.no_grad():
            prompt_embeds, pooled = pipeline.official_prompt_embeds(list(batch["caption"]), device)
            null_embeds, null_pooled = pipeline.official_prompt_embeds([""], device)
        return {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled,
                "null_prompt_embeds": null_embeds, "null_pooled_prompt_embeds": null_pooled}

    # -- training step ---------------------------------------------------------------------------
    def text_dropout_mask(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """True where a sample trains with the empty prompt (probability ``text_dropout``)."""
        return torch.rand(batch_size, generator=generator) < self.recipe.text_dropout

    def sample_sigmas(self, scheduler, batch_size: int, generator: Optional[torch.Generator] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(timesteps, sigmas) per sample: SD3's density over the scheduler's training timesteps (shift applied)."""
        from diffusers.training_utils import compute_density_for_timestep_sampling

        recipe = self.recipe
        u = compute_density_for_timestep_sampling(recipe.weighting_scheme, batch_size, logit_mean=recipe.logit_mean,
                                                  logit_std=recipe.logit_std, mode_scale=recipe.mode_scale,
                                                  generator=generator)
        # a fresh copy holds the training schedule (every timestep, shifted); set_timesteps changes the pipeline's
        training_schedule = type(scheduler).from_config(scheduler.config)
        indices = (u * scheduler.config.num_train_timesteps).long()
        return training_schedule.timesteps[indices], training_schedule.sigmas[indices]

    def _inputs(self, components, latents, conditions, generator, training):
        from diffusers.training_utils import compute_loss_weighting_for_sd3

        clean = latents["latents"]
        transformer, scheduler = components["transformer"], components["scheduler"]
        device, dtype, batch = clean.device, transformer.dtype, clean.shape[0]
        timesteps, sigmas = self.sample_sigmas(scheduler, batch, generator)
        noise = torch.randn(clean.shape, generator=generator).to(clean)
        sigmas = sigmas.to(device=device, dtype=torch.float32)[:, None, None, None, None]
        noisy = (1.0 - sigmas) * clean.float() + sigmas * noise.float()
        text = conditions["prompt_embeds"].to(device=device, dtype=dtype)
        pooled = conditions["pooled_prompt_embeds"].to(device=device, dtype=dtype)
        if training:
            drop = self.text_dropout_mask(batch, generator).to(device)
            text = torch.where(drop[:, None, None], conditions["null_prompt_embeds"].to(text).expand_as(text), text)
            pooled = torch.where(drop[:, None], conditions["null_pooled_prompt_embeds"].to(pooled).expand_as(pooled),
                                 pooled)
        weights = compute_loss_weighting_for_sd3(self.recipe.weighting_scheme, sigmas)
        target = noise.float() - clean.float()
        return dict(hidden_states=noisy.to(dtype), encoder_hidden_states=text, pooled_projections=pooled,
                    timestep=timesteps.to(device)), target, weights

    def forward(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                conditions: Mapping[str, torch.Tensor], *, generator: Optional[torch.Generator] = None,
                training: bool = True) -> ForwardOutput:
        kwargs, target, weights = self._inputs(components, latents, conditions, generator, training)
        prediction = components["transformer"](**kwargs, return_dict=False)[0]
        return ForwardOutput(prediction=prediction.float(), target=target, weights=weights)

    def loss(self, output: ForwardOutput) -> torch.Tensor:
        """SD3's weighted squared error, plus ``temporal_difference_weight`` times the weighted squared error of
        the frame-to-frame differences ([B, F, C, h, w] latents: along F) when the recipe sets it."""
        loss = super().loss(output)
        weight = self.recipe.temporal_difference_weight
        if weight and output.prediction.shape[1] > 1:
            change = output.prediction.float().diff(dim=1) - output.target.float().diff(dim=1)
            err = change ** 2 if output.weights is None else change ** 2 * output.weights.float()
            loss = loss + weight * err.reshape(err.shape[0], -1).mean(dim=1).mean()
        return loss

    def denoiser_stages(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                        conditions: Mapping[str, torch.Tensor], *,
                        generator: Optional[torch.Generator] = None, training: bool = True) -> DenoiserStages:
        """The same step as :meth:`forward` through the transformer's ``forward_stages`` (prelude, blocks, head)."""
        kwargs, target, weights = self._inputs(components, latents, conditions, generator, training)
        prelude, blocks, head = components["transformer"].forward_stages(**kwargs)
        block_modules, head_modules = self.denoiser_modules(components)
        return DenoiserStages(prelude=prelude, blocks=blocks, head=lambda state: head(state).float(),
                              block_modules=block_modules, head_modules=head_modules, target=target, weights=weights)

    def denoiser_modules(self, components: Mapping[str, Any]) -> Tuple[List[nn.Module], List[nn.Module]]:
        """The transformer's blocks and its output head (``norm_out``, ``proj_out``)."""
        transformer = components["transformer"]
        return list(transformer.transformer_blocks), [transformer.norm_out, transformer.proj_out]

    def validation_video(self, components: Mapping[str, Any], batch: Mapping[str, Any], *,
                         num_inference_steps: int, generator: Optional[torch.Generator] = None):
        """The ``VchitectRepVideoPipeline`` on the first sample's caption, at the batch's clip size."""
        video = batch["video"]
        return self._pipeline(components)(
            prompt=batch["caption"][0], height=video.shape[3], width=video.shape[4], num_frames=video.shape[1],
            num_inference_steps=num_inference_steps, generator=generator, output_type="np").frames[0]

    # -- what trains, how it is saved ------------------------------------------------------------
    def save(self, components: Mapping[str, Any], output_dir: str, *, training_type: str) -> None:
        """``full``: a complete ``VchitectRepVideoPipeline`` folder; ``lora``: ``pytorch_lora_weights.safetensors``."""
        from ...diffusers_pipelines.vchitect import VchitectRepVideoPipeline

        if training_type == "lora":
            write_transformer_lora(VchitectRepVideoPipeline, components["transformer"], output_dir)
            return
        from ...diffusers_pipelines.vchitect.tiny import build_tiny_vchitect_pipeline

        pipeline = self._pipeline(self._with_loaded_parts(components, _TEXT_PARTS, VchitectRepVideoPipeline,
                                                          build_tiny_vchitect_pipeline))
        write_folder(output_dir, pipeline.save_pretrained)
