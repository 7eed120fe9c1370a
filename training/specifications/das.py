"""Diffusion as Shader: training the tracking (control) branch of ``DaSTransformer3DModel``, as the official recipe
(or, with ``train_base``, the whole transformer: a base trained from scratch, as the embedded DaS model).

The official script (``training/cogvideox_image_to_video_sft.py`` of the DaS repository, adapted from finetrainers)
trains only the tracking branch (copy blocks, combine linears, initial combine linear) of CogVideoX-5B-I2V with:

- v-prediction on CogVideoX's scheduler: the transformer output is turned into an x0 prediction with
  ``scheduler.get_velocity(output, noisy, t)``, the target is x0 and the weight ``1 / (1 - alphas_cumprod[t])``
  (the same loss as the plain v-MSE); timesteps drawn uniformly;
- the first frame noised before the VAE with ``sigma = exp(N(-3, 0.5))``; the tracking first frame is not noised;
- ``noised_image_dropout = 0.05``: the image latents and the tracking-image latents of a sample are zeroed together;
  no text dropout;
- the tracking video through the VAE in [-1, 1], like the video itself;
- AdamW lr 1e-4, betas (0.9, 0.95), weight decay 1e-3, cosine with restarts, 100 warm-up steps, clip 1.0
  (:data:`DAS_RECIPE`).

Data columns: ``tracking_video`` ([B, F, 3, H, W] in [-1, 1]), ``image`` (the first frame, [B, 3, H, W] in [-1, 1];
the video's first frame when absent) and ``caption``. The export is a complete ``DaSPipeline`` folder.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..specification import ForwardOutput, ModelSpecification
from ._folders import write_folder
from ._lora import check_lora_rank, lora_config, lora_layers_and_metadata

__all__ = ["DAS_RECIPE", "DaSSpecification", "DaSTrainingRecipe"]

# where the tracking branch's parameters live in the transformer (the official state-dict prefixes)
_BRANCH_PREFIXES = ("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear.")


@dataclasses.dataclass(frozen=True)
class DaSTrainingRecipe:
    """The official DaS training settings (``scripts/train_DaS.sh``); the trainer's defaults for ``--model das``."""

    learning_rate: float = 1e-4
    adam_betas: Tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-3
    lr_scheduler: str = "cosine_with_restarts"
    lr_warmup_steps: int = 100
    max_grad_norm: float = 1.0
    train_steps: int = 2000
    batch_size: int = 2
    gradient_accumulation_steps: int = 4
    #: probability that a sample's image latents and tracking-image latents are zeroed together
    noised_image_dropout: float = 0.05
    #: first-frame noise: sigma = exp(N(image_noise_log_mean, image_noise_log_std))
    image_noise_log_mean: float = -3.0
    image_noise_log_std: float = 0.5
    num_frames: int = 49
    height: int = 480
    width: int = 720


DAS_RECIPE = DaSTrainingRecipe()


class DaSSpecification(ModelSpecification):
    """The DaS family (``DaSPipeline``): only the tracking branch trains, fully or through LoRA adapters."""

    name = "das"
    # CogVideoX: 4k + 1 frames (the VAE compresses time by 4), sizes a multiple of 8 (VAE) x 2 (patch)
    frame_multiple = 4
    frame_remainder = 1
    size_multiple = 16
    denoiser_key = "transformer"
    #: attention projections of the tracking copy blocks (expanded to full names by :meth:`lora_target_modules`)
    default_lora_targets = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0")
    data_columns = ("tracking_video", "image", "caption")
    recipe = DAS_RECIPE

    def __init__(self, recipe: DaSTrainingRecipe = DAS_RECIPE, train_base: bool = False):
        self.recipe = recipe
        #: full training of the whole transformer (base + tracking branch) instead of the branch alone
        self.train_base = train_base
        self._pretrained: Optional[str] = None

    # -- loading ---------------------------------------------------------------------------------
    def load_components(self, pretrained: Optional[str], *, dtype: torch.dtype = torch.float32,
                        load_encoders: bool = True) -> Dict[str, Any]:
        from ...diffusers_pipelines.das import DaSPipeline
        from ...diffusers_pipelines.das.tiny import build_tiny_das_pipeline

        pipeline = self._load_pipeline(DaSPipeline, build_tiny_das_pipeline, pretrained, dtype,
                                       () if load_encoders else ("vae", "text_encoder", "tokenizer"))
        components = dict(pipeline.components)
        # v-prediction as DaS trains it, on the scheduler config of the folder (DDIM's add_noise / get_velocity)
        from diffusers import CogVideoXDDIMScheduler

        components["scheduler"] = CogVideoXDDIMScheduler.from_config(components["scheduler"].config)
        return components

    def _pipeline(self, components: Mapping[str, Any]):
        from ...diffusers_pipelines.das import DaSPipeline

        return DaSPipeline(**{k: components.get(k) for k in ("tokenizer", "text_encoder", "vae", "transformer",
                                                             "scheduler")})

    # -- data ------------------------------------------------------------------------------------
    def _encode(self, components: Mapping[str, Any], video: torch.Tensor) -> torch.Tensor:
        """[B, F, 3, H, W] in [-1, 1] -> scaled latents [B, F', C, h, w] (a posterior sample)."""
        from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_latents

        vae = components["vae"]
        if vae is None:
            raise ValueError("the VAE was not loaded (load_encoders=False): train from precomputed latents")
        pixels = video.permute(0, 2, 1, 3, 4).to(device=vae.device, dtype=vae.dtype)
        latents = retrieve_latents(vae.encode(pixels)).permute(0, 2, 1, 3, 4)
        return self._pipeline(components)._scale_latents(latents)

    def _check_frames(self, name: str, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"{name} has shape {tuple(video.shape)}; expected [batch, frames, 3, height, width]")
        frames, height, width = video.shape[1], video.shape[3], video.shape[4]
        if frames % self.frame_multiple != self.frame_remainder:
            raise ValueError(f"{name} has {frames} frames; DaS (CogVideoX) needs 4k+1 frames (5, 9, ..., 49)")
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"{name} is {height}x{width} (HxW); both must be multiples of {self.size_multiple}")

    def prepare_latents(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        self._check_frames("video", batch["video"])
        with torch.no_grad():
            return {"latents": self._encode(components, batch["video"])}

    def sample_image_noise_sigma(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The first frame's noise level per sample: ``exp(N(mean, std))`` of the recipe (official: exp(N(-3, 0.5)))."""
        log_sigma = torch.randn(batch_size, generator=generator) * self.recipe.image_noise_log_std
        return (log_sigma + self.recipe.image_noise_log_mean).exp()

    def prepare_conditions(self, components: Mapping[str, Any], batch: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
        """T5 embeddings of ``caption``, the noised first frame's latents and the tracking video's latents.

        The first-frame noise draws from torch's default generator (the trainer seeds it).
        """
        for column in ("tracking_video", "caption"):
            if column not in batch:
                raise ValueError(f"the DaS batch has no {column!r} column; it needs {', '.join(self.data_columns)}")
        tracking = batch["tracking_video"]
        self._check_frames("tracking_video", tracking)
        image = batch["image"] if batch.get("image") is not None else batch["video"][:, 0]
        if image.ndim != 4 or tuple(image.shape[1:]) != (3,) + tuple(tracking.shape[3:]):
            raise ValueError(f"image has shape {tuple(image.shape)}; expected [batch, 3, {tracking.shape[3]}, "
                             f"{tracking.shape[4]}] like the tracking video")
        pipeline = self._pipeline(components)
        with torch.no_grad():
            captions = list(batch["caption"])
            prompt_embeds, _ = pipeline.encode_prompt(
                captions, do_classifier_free_guidance=False,
                max_sequence_length=components["transformer"].config.max_text_seq_length,
                device=components["text_encoder"].device,
            )
            sigma = self.sample_image_noise_sigma(image.shape[0]).to(image)
            noised = image + torch.randn_like(image) * sigma[:, None, None, None]
            image_latents = self._encode(components, noised[:, None])
            tracking_latents = self._encode(components, tracking)
            tracking_image_latents = self._encode(components, tracking[:, :1])
        frames = tracking_latents.shape[1]
        pad = lambda first: torch.cat([first, first.new_zeros((first.shape[0], frames - 1) + first.shape[2:])], 1)  # noqa: E731
        return {"prompt_embeds": prompt_embeds, "image_latents": pad(image_latents),
                "tracking_latents": tracking_latents, "tracking_image_latents": pad(tracking_image_latents)}

    # -- training step ---------------------------------------------------------------------------
    def image_dropout_mask(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """True where a sample's image and tracking-image latents are zeroed (probability ``noised_image_dropout``)."""
        return torch.rand(batch_size, generator=generator) < self.recipe.noised_image_dropout

    def _inputs(self, components, latents, conditions, generator, training):
        clean = latents["latents"]
        transformer, scheduler = components["transformer"], components["scheduler"]
        device, dtype = clean.device, transformer.dtype
        batch = clean.shape[0]
        timesteps, noise, noisy = self._ddpm_noised(scheduler, clean, generator)
        image_latents = conditions["image_latents"].to(clean)
        tracking_image_latents = conditions["tracking_image_latents"].to(clean)
        if training:
            keep = (~self.image_dropout_mask(batch, generator)).to(clean)[:, None, None, None, None]
            image_latents, tracking_image_latents = image_latents * keep, tracking_image_latents * keep
        tracking_maps = torch.cat([conditions["tracking_latents"].to(clean), tracking_image_latents], dim=2)
        rotary = None
        if transformer.config.use_rotary_positional_embeddings:
            pipeline = types.SimpleNamespace(transformer=transformer, vae_scale_factor_spatial=1)
            from diffusers import CogVideoXImageToVideoPipeline

            rotary = CogVideoXImageToVideoPipeline._prepare_rotary_positional_embeddings(
                pipeline, clean.shape[3], clean.shape[4], clean.shape[1], device)
        alphas = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)[timesteps]
        weights = (1 / (1 - alphas))[:, None, None, None, None]
        kwargs = dict(hidden_states=torch.cat([noisy, image_latents], dim=2).to(dtype),
                      encoder_hidden_states=conditions["prompt_embeds"].to(device=device, dtype=dtype),
                      timestep=timesteps, image_rotary_emb=rotary, tracking_maps=tracking_maps.to(dtype))
        return kwargs, noisy, timesteps, clean, weights

    def forward(self, components: Mapping[str, Any], latents: Mapping[str, torch.Tensor],
                conditions: Mapping[str, torch.Tensor], *, generator: Optional[torch.Generator] = None,
                training: bool = True) -> ForwardOutput:
        kwargs, noisy, timesteps, clean, weights = self._inputs(components, latents, conditions, generator, training)
        output = components["transformer"](**kwargs, return_dict=False)[0]
        prediction = components["scheduler"].get_velocity(output.float(), noisy.float(), timesteps)
        return ForwardOutput(prediction=prediction, target=clean, weights=weights)

    def validation_video(self, components: Mapping[str, Any], batch: Mapping[str, Any], *,
                         num_inference_steps: int, generator: Optional[torch.Generator] = None):
        """The DaS pipeline on the first sample's first frame (or ``image``), caption and tracking video."""
        image = batch["image"][0] if batch.get("image") is not None else batch["video"][0, 0]
        tracking = batch["tracking_video"][0]
        return self._pipeline(components)(
            image=(image + 1) / 2, prompt=batch["caption"][0], tracking_video=((tracking + 1) / 2).permute(0, 2, 3, 1),
            height=tracking.shape[2], width=tracking.shape[3], num_frames=tracking.shape[0],
            num_inference_steps=num_inference_steps, generator=generator, output_type="np").frames[0]

    # -- what trains, how it is saved ------------------------------------------------------------
    def lora_target_modules(self, components: Mapping[str, Any],
                            targets: Optional[Sequence[str]] = None) -> List[str]:
        """Full module names of the tracking copy blocks matching ``targets`` (peft suffixes), for peft's
        ``target_modules``: LoRA adapters go on the control branch only."""
        targets = tuple(targets or self.default_lora_targets)
        names = [name for name, module in components["transformer"].named_modules()
                 if name.startswith("transformer_blocks_copy.") and isinstance(module, nn.Linear)
                 and any(name.endswith("." + t) for t in targets)]
        if not names:
            raise ValueError(f"lora targets {list(targets)} match no linear layer of the DaS tracking branch")
        return names

    def add_lora(self, components: Mapping[str, Any], *, rank: int, alpha: Optional[float] = None,
                 dropout: float = 0.0, targets: Optional[Sequence[str]] = None,
                 adapter_name: str = "default") -> None:
        """Add peft LoRA adapters (rank, alpha, dropout) to the tracking copy blocks only."""
        check_lora_rank(rank)
        config = lora_config(rank, alpha, dropout, self.lora_target_modules(components, targets))
        components["transformer"].add_adapter(config, adapter_name=adapter_name)

    def trainable_parameters(self, components: Mapping[str, Any], training_type: str) -> List[Tuple[str, nn.Parameter]]:
        """``full``: the tracking branch (``tracking_parameters()``), or with ``train_base`` every parameter of the
        transformer (``vdp train --train-base``); ``lora``: the LoRA adapters in that branch."""
        transformer = components["transformer"]
        if training_type == "lora":
            return [(n, p) for n, p in transformer.named_parameters()
                    if "lora_" in n and n.startswith("transformer_blocks_copy.")]
        if training_type != "full":
            raise ValueError(f"training_type={training_type!r}; allowed: full, lora")
        if self.train_base:
            return [(n, p) for n, p in transformer.named_parameters() if "lora_" not in n]
        branch = {id(p) for p in transformer.tracking_parameters()}
        return [(n, p) for n, p in transformer.named_parameters() if id(p) in branch and "lora_" not in n]

    def save(self, components: Mapping[str, Any], output_dir: str, *, training_type: str) -> None:
        """``full``: a complete ``DaSPipeline`` folder; ``lora``: ``pytorch_lora_weights.safetensors`` (diffusers)."""
        from ...diffusers_pipelines.das import DaSPipeline

        if training_type == "lora":
            layers, metadata = lora_layers_and_metadata(components["transformer"])
            write_folder(output_dir, lambda folder: DaSPipeline.save_lora_weights(
                folder, transformer_lora_layers=layers, transformer_lora_adapter_metadata=metadata))
            return
        from ...diffusers_pipelines.das.tiny import build_tiny_das_pipeline

        names = ("tokenizer", "text_encoder", "vae")
        parts = self._with_loaded_parts(components, names, DaSPipeline, build_tiny_das_pipeline)
        pipeline = DaSPipeline(transformer=components["transformer"], scheduler=components["scheduler"],
                               **{name: parts[name] for name in names})
        write_folder(output_dir, pipeline.save_pretrained)
