"""RepVideo on CogVideoX-2B: v-prediction on CogVideoX's DPM scheduler, as the official SAT training.

The official training (``sat/`` of Vchitect/RepVideo, CogVideoX's SAT configs) fine-tunes the whole DiT, the
``learnable_gating`` gates included (``not_trainable_prefixes`` names only the VAE and the text conditioner):

- timesteps uniform over the 1000 training steps of the zero-terminal-SNR schedule with ``snr_shift_scale`` 3
  (``ZeroSNRDDPMDiscretization``; in diffusers the config of ``CogVideoXDPMScheduler``), noised with ``add_noise``;
- the transformer predicts v; ``scheduler.get_velocity(output, noisy, t)`` turns it into an x0 prediction, the
  target is x0 and the weight ``1 / (1 - alphas_cumprod[t])`` (SAT's ``VWeighting``, also diffusers'
  ``train_cogvideox_lora.py``);
- text dropout ``ucg_rate`` 0.1 of the T5 conditioner: a dropped sample's prompt embeddings are zeroed
  (:data:`REPVIDEO_RECIPE`).

Latents are the CogVideoX VAE's (a posterior sample times ``scaling_factor``), [B, F', C, h, w]. The export is a
complete ``CogVideoXRepVideoPipeline`` folder or diffusers' ``pytorch_lora_weights.safetensors`` (loaded by the
pipeline's ``load_lora_weights``, diffusers' CogVideoX loader).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from ..specification import DenoiserStages, ForwardOutput, LocalLearningSpecification, ModelSpecification
from ._folders import write_folder
from ._lora import write_transformer_lora

__all__ = ["REPVIDEO_RECIPE", "RepVideoSpecification", "RepVideoTrainingRecipe"]

_ENCODERS = ("tokenizer", "text_encoder", "vae")


@dataclasses.dataclass(frozen=True)
class RepVideoTrainingRecipe:
    """Training settings of the RepVideo specification (CogVideoX's SAT fine-tuning defaults)."""

    learning_rate: float = 1e-5
    adam_betas: Tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    #: the T5 conditioner's ucg_rate: probability that a sample's prompt embeddings are zeroed
    text_dropout: float = 0.1

    def __post_init__(self):
        if not 0.0 <= self.text_dropout <= 1.0:
            raise ValueError(f"text_dropout={self.text_dropout!r} must be between 0 and 1")


REPVIDEO_RECIPE = RepVideoTrainingRecipe()


class RepVideoSpecification(ModelSpecification, LocalLearningSpecification):
    """The RepVideo family (``CogVideoXRepVideoPipeline``): the DiT and its gates train, fully or through LoRA."""

    name = "repvideo"
    # CogVideoX: 4k + 1 frames (the VAE compresses time by 4), sizes a multiple of 8 (VAE) x 2 (patch)
    frame_multiple = 4
    frame_remainder = 1
    size_multiple = 16
    denoiser_key = "transformer"
    #: diffusers' train_cogvideox_lora.py targets
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")
    data_columns = ("caption",)
    recipe = REPVIDEO_RECIPE

    def __init__(self, recipe: RepVideoTrainingRecipe = REPVIDEO_RECIPE):
        self.recipe = recipe
        self._pretrained: Optional[str] = None

    # -- loading ---------------------------------------------------------------------------------
    def load_components(self, pretrained: Optional[str], *, dtype: torch.dtype = torch.float32,
                        load_encoders: bool = True) -> Dict[str, Any]:
        from diffusers import CogVideoXDPMScheduler

        from ...diffusers_pipelines.repvideo import CogVideoXRepVideoPipeline
        from ...diffusers_pipelines.repvideo.tiny import build_tiny_cogvideox_repvideo_pipeline

        pipeline = self._load_pipeline(CogVideoXRepVideoPipeline, build_tiny_cogvideox_repvideo_pipeline,
                                       pretrained, dtype, () if load_encoders else _ENCODERS)
        components = dict(pipeline.components)
        # the official schedule (zero terminal SNR, shift 3) on the folder's scheduler config
        components["scheduler"] = CogVideoXDPMScheduler.from_config(components["scheduler"].config)
        return components

    def _pipeline(self, components: Mapping[str, Any]):
        from ...diffusers_pipelines.repvideo import CogVideoXRepVideoPipeline

        return CogVideoXRepVideoPipeline(**{k: components.get(k) for k in _ENCODERS + ("transformer", "scheduler")})

    # -- data ------------------------------------------------------------------------------------
    def _check_video(self, video) -> torch.Tensor:
        if not isinstance(video, torch.Tensor) or video.ndim != 5 or video.shape[2] != 3:
            shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
            raise ValueError(f"video has shape {shape}; expected [batch, frames, 3, height, width] in [-1, 1]")
        frames, height, width = video.shape[1], video.shape[3], video.shape[4]
        if frames % self.frame_multiple != self.frame_remainder:
            raise ValueError(f"video has {frames} frames; RepVideo (CogVideoX) needs 4k+1 frames (5, 9, ..., 49)")
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"video is {height}x{width} (HxW); both must be multiples of {self.size_multiple}")
        return video

    def prepare_latents(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """Scaled VAE latents [B, F', 16, H/8, W/8] of ``batch["video"]`` (a posterior sample)."""
        from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_latents

        video = self._check_video(batch["video"])
        vae = components["vae"]
        if vae is None:
            raise ValueError("the VAE was not loaded (load_encoders=False): train from precomputed latents")
        with torch.no_grad():
            pixels = video.permute(0, 2, 1, 3, 4).to(device=vae.device, dtype=vae.dtype)
            latents = retrieve_latents(vae.encode(pixels)) * vae.config.scaling_factor
        return {"latents": latents.permute(0, 2, 1, 3, 4).contiguous()}

    def prepare_conditions(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """T5 embeddings of ``caption`` at the transformer's text length, as the pipeline encodes prompts."""
        if "caption" not in batch:
            raise ValueError(f"the RepVideo batch has no 'caption' column; it has {sorted(batch)}")
        if components.get("text_encoder") is None:
            raise ValueError("the text encoder was not loaded (load_encoders=False): train from precomputed "
                             "embeddings")
        with torch.no_grad():
            prompt_embeds, _ = self._pipeline(components).encode_prompt(
                list(batch["caption"]), do_classifier_free_guidance=False,
                max_sequence_length=components["transformer"].config.max_text_seq_length,
                device=components["text_encoder"].device,
            )
        return {"prompt_embeds": prompt_embeds}

    # -- training step ---------------------------------------------------------------------------
    def text_dropout_mask(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """True where a sample's prompt embeddings are zeroed (probability ``text_dropout``)."""
        return torch.rand(batch_size, generator=generator) < self.recipe.text_dropout

    def _inputs(self, components, latents, conditions, generator, training):
        """The transformer's keyword arguments, and what turns its output into the loss: (kwargs, noisy latents,
        timesteps, target, weights)."""
        clean = latents["latents"]
        transformer, scheduler = components["transformer"], components["scheduler"]
        device, dtype, batch = clean.device, transformer.dtype, clean.shape[0]
        timesteps, noise, noisy = self._ddpm_noised(scheduler, clean, generator)
        text = conditions["prompt_embeds"].to(device=device, dtype=dtype)
        if training:
            keep = (~self.text_dropout_mask(batch, generator)).to(device=device, dtype=dtype)
            text = text * keep[:, None, None]
        rotary = None
        if transformer.config.use_rotary_positional_embeddings:
            import types

            from diffusers import CogVideoXPipeline

            holder = types.SimpleNamespace(transformer=transformer, vae_scale_factor_spatial=1)
            rotary = CogVideoXPipeline._prepare_rotary_positional_embeddings(
                holder, clean.shape[3], clean.shape[4], clean.shape[1], device)
        alphas = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)[timesteps]
        weights = (1 / (1 - alphas))[:, None, None, None, None]
        kwargs = dict(hidden_states=noisy.to(dtype), encoder_hidden_states=text, timestep=timesteps,
                      image_rotary_emb=rotary)
        return kwargs, noisy, timesteps, clean.float(), weights

    def forward(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                conditions: Mapping[str, torch.Tensor], *, generator: Optional[torch.Generator] = None,
                training: bool = True) -> ForwardOutput:
        kwargs, noisy, timesteps, target, weights = self._inputs(components, latents, conditions, generator, training)
        output = components["transformer"](**kwargs, return_dict=False)[0]
        prediction = components["scheduler"].get_velocity(output.float(), noisy.float(), timesteps)
        return ForwardOutput(prediction=prediction, target=target, weights=weights)

    def denoiser_stages(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                        conditions: Mapping[str, torch.Tensor], *,
                        generator: Optional[torch.Generator] = None, training: bool = True) -> DenoiserStages:
        """The same step as :meth:`forward` through the transformer's ``forward_stages``; the head ends in
        ``get_velocity`` (x0 from v), so every auxiliary network predicts x0 too."""
        kwargs, noisy, timesteps, target, weights = self._inputs(components, latents, conditions, generator, training)
        prelude, blocks, head = components["transformer"].forward_stages(**kwargs)
        scheduler = components["scheduler"]

        def x0_head(state):
            return scheduler.get_velocity(head(state).float(), noisy.float(), timesteps)

        block_modules, head_modules = self.denoiser_modules(components)
        return DenoiserStages(prelude=prelude, blocks=blocks, head=x0_head, block_modules=block_modules,
                              head_modules=head_modules, target=target, weights=weights)

    def denoiser_modules(self, components: Mapping[str, Any]) -> Tuple[List[nn.Module], List[nn.Module]]:
        """The DiT's blocks and its output head (``norm_final``, ``norm_out``, ``proj_out``)."""
        transformer = components["transformer"]
        return list(transformer.transformer_blocks), [transformer.norm_final, transformer.norm_out,
                                                      transformer.proj_out]

    def validation_video(self, components: Mapping[str, Any], batch: Mapping[str, Any], *,
                         num_inference_steps: int, generator: Optional[torch.Generator] = None):
        """The ``CogVideoXRepVideoPipeline`` on the first sample's caption, at the batch's clip size."""
        video = batch["video"]
        return self._pipeline(components)(
            prompt=batch["caption"][0], height=video.shape[3], width=video.shape[4], num_frames=video.shape[1],
            num_inference_steps=num_inference_steps, generator=generator, output_type="np").frames[0]

    # -- what trains, how it is saved ------------------------------------------------------------
    def save(self, components: Mapping[str, Any], output_dir: str, *, training_type: str) -> None:
        """``full``: a complete ``CogVideoXRepVideoPipeline`` folder; ``lora``: ``pytorch_lora_weights.safetensors``."""
        from ...diffusers_pipelines.repvideo import CogVideoXRepVideoPipeline

        if training_type == "lora":
            write_transformer_lora(CogVideoXRepVideoPipeline, components["transformer"], output_dir)
            return
        from ...diffusers_pipelines.repvideo.tiny import build_tiny_cogvideox_repvideo_pipeline

        components = self._with_loaded_parts(components, _ENCODERS, CogVideoXRepVideoPipeline,
                                             build_tiny_cogvideox_repvideo_pipeline)
        write_folder(output_dir, self._pipeline(components).save_pretrained)
