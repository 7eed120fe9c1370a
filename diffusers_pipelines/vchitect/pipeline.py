"""Text-to-video with Vchitect-2.0 (and RepVideo's cross-layer aggregation as a transformer switch), as a diffusers pipeline."""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.loaders import SD3LoraLoaderMixin
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from ...models.vchitect_transformer import VchitectXLTransformer3DModel
from .. import pipeline_utils
from ..loading import load_pipeline
from ..lora import CheckedLoraLoaderMixin
from ..pipeline_utils import (
    OUTPUT_TYPES,  # noqa: F401  (re-exported: the pipeline's output types)
    GuidancePlan,
    PlannedGuidanceMixin,
    check_bool,
    check_callback_tensor_inputs,
    check_generator,
    check_inference_steps,
    check_integer,
    check_latents,
    check_multiple,
    check_negative_prompt,
    check_output_type,
    check_prompt,
    check_prompt_text,
    check_real,
    check_tensor,
    guidance_schedule,
    official_dynamic_guidance,  # noqa: F401  (re-exported: the ramp the pipeline applies)
    register_pipeline,
)
from .defaults import OFFICIAL

logger = logging.get_logger(__name__)

# every component the released Vchitect/Vchitect-2.0-2B folder holds, in the order the pipeline takes them
COMPONENT_NAMES = (
    "tokenizer",
    "text_encoder",
    "tokenizer_2",
    "text_encoder_2",
    "tokenizer_3",
    "text_encoder_3",
    "vae",
    "transformer",
    "scheduler",
)
# VAE downsampling (8) times the transformer patch size (2)
SIZE_MULTIPLE = 16


@dataclass
class VchitectRepVideoPipelineOutput(BaseOutput):
    """Output of `VchitectRepVideoPipeline`.

    Args:
        frames: `np.ndarray` [B, F, H, W, 3] in 0..1 (`output_type="np"`), `torch.Tensor` [B, F, 3, H, W]
            (`"pt"`), a list of lists of PIL images (`"pil"`) or latents [B, F, 16, H/8, W/8] (`"latent"`).
    """

    frames: Union[np.ndarray, torch.Tensor, List[List[Any]]]


class VchitectRepVideoPipeline(PlannedGuidanceMixin, DiffusionPipeline, CheckedLoraLoaderMixin, SD3LoraLoaderMixin):
    """Vchitect-2.0 text-to-video; RepVideo's cross-layer aggregation via `transformer.enable_repvideo()`.

    LoRAs load through diffusers' SD3 loader (the same component names): `load_lora_weights(path, adapter_name=...)`,
    `set_adapters`, `fuse_lora`, `unload_lora_weights`, with files in diffusers' format (`transformer.` keys).

    Args:
        tokenizer (`CLIPTokenizer`), text_encoder (`CLIPTextModelWithProjection`): CLIP-L.
        tokenizer_2 (`CLIPTokenizer`), text_encoder_2 (`CLIPTextModelWithProjection`): CLIP-G.
        tokenizer_3 (`T5TokenizerFast`), text_encoder_3 (`T5EncoderModel`): T5-XXL.
        vae (`AutoencoderKL`): SD3's 16-channel image VAE, applied frame by frame.
        transformer (`VchitectXLTransformer3DModel`): the video transformer.
        scheduler (`FlowMatchEulerDiscreteScheduler`): flow-matching Euler sampler.
    """

    model_cpu_offload_seq = "text_encoder->text_encoder_2->text_encoder_3->transformer->vae"
    _callback_tensor_inputs = [
        "latents",
        "prompt_embeds",
        "negative_prompt_embeds",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    ]

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModelWithProjection,
        tokenizer_2: CLIPTokenizer,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer_3: T5TokenizerFast,
        text_encoder_3: T5EncoderModel,
        vae: AutoencoderKL,
        transformer: VchitectXLTransformer3DModel,
        scheduler: FlowMatchEulerDiscreteScheduler,
    ):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            tokenizer_2=tokenizer_2,
            text_encoder_2=text_encoder_2,
            tokenizer_3=tokenizer_3,
            text_encoder_3=text_encoder_3,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if vae is not None else 8
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor)
        self.tokenizer_max_length = tokenizer.model_max_length if tokenizer is not None else 77
        # the official 256 T5 tokens, fewer where the tokenizer is made for shorter prompts (the embedded model's)
        self.max_sequence_length_t5 = min(256, getattr(tokenizer_3, "model_max_length", 256) or 256)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads a pipeline folder (ours, or the official Vchitect-2.0 layout whose model_index names SD3 classes).

        The folder may also be one holding the pack's weights layout, as `vdp download` writes it: ComfyUI's
        folder, its ``models`` folder, or a models root with ``vchitect/Vchitect-2.0-2B/``; or a Hub id. It is
        loaded by diffusers' `DiffusionPipeline.from_pretrained`, which takes every keyword it documents (`variant`,
        `torch_dtype` or a dict of them, `device_map`, components as objects, ...). The transformer is always loaded
        as `VchitectXLTransformer3DModel` with its keys checked against the checkpoint (see
        `diffusers_pipelines.loading`); a missing component folder, missing or unexpected keys and corrupt weight
        files are reported.
        """
        return load_pipeline(cls, pretrained_model_name_or_path, **kwargs)

    # ------------------------------------------------------------------ prompts
    def _clip_embeds(self, prompts: List[str], index: int, device: torch.device):
        tokenizer, encoder = (self.tokenizer, self.text_encoder) if index == 0 else (self.tokenizer_2, self.text_encoder_2)
        pipeline_utils.warn_truncated_prompts(tokenizer, prompts, self.tokenizer_max_length, f"CLIP text encoder {index + 1}")
        ids = tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        output = encoder(ids.to(device), output_hidden_states=True)
        return output.hidden_states[-2], output.text_embeds

    def _t5_embeds(self, prompts: List[str], device: torch.device) -> torch.Tensor:
        pipeline_utils.warn_truncated_prompts(self.tokenizer_3, prompts, self.max_sequence_length_t5, "the T5 encoder")
        ids = self.tokenizer_3(
            prompts,
            padding="max_length",
            max_length=self.max_sequence_length_t5,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder_3(ids.to(device))[0]

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: Union[str, List[str], None] = None,
        negative_prompt: Union[str, List[str], None] = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        pooled_prompt_embeds: Optional[torch.Tensor] = None,
        negative_pooled_prompt_embeds: Optional[torch.Tensor] = None,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        """The embeddings `__call__` takes, under diffusers' argument names (as `StableDiffusion3Pipeline`'s).

        Returns (prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds), each
        repeated `num_videos_per_prompt` times per prompt, in `dtype` (the transformer's by default); the negative
        ones are None without guidance. Embeddings passed in are kept; the negative prompt defaults to "".
        """
        device = device or self._execution_device
        if prompt_embeds is None:
            prompt_embeds, pooled_prompt_embeds = self.official_prompt_embeds(
                [prompt] if isinstance(prompt, str) else list(prompt), device
            )
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            count = prompt_embeds.shape[0]
            negatives = negative_prompt if isinstance(negative_prompt, list) else [negative_prompt or ""] * count
            negative_prompt_embeds, negative_pooled_prompt_embeds = self.official_prompt_embeds(negatives, device)
        if dtype is None:
            dtype = self.transformer.dtype if self.transformer is not None else prompt_embeds.dtype

        if not do_classifier_free_guidance:
            negative_prompt_embeds = negative_pooled_prompt_embeds = None
        prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds = [
            None if tensor is None
            else tensor.to(device=device, dtype=dtype).repeat_interleave(num_videos_per_prompt, dim=0)
            for tensor in (prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds)
        ]
        return prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds

    @torch.no_grad()
    def official_prompt_embeds(self, prompts: List[str], device: Optional[torch.device] = None):
        """Prompt embeddings of `prompts` as the official code builds them.

        [CLIP-L h[-2] ++ CLIP-G h[-2], zero-padded to the T5 width ; T5 (256 tokens)] -> [B, 77 + 256, 4096],
        pooled = [CLIP-L text_embeds ++ CLIP-G text_embeds] -> [B, 2048].
        """
        device = device or self._execution_device
        clip_l, pooled_l = self._clip_embeds(prompts, 0, device)
        clip_g, pooled_g = self._clip_embeds(prompts, 1, device)
        t5 = self._t5_embeds(prompts, device)
        clip = torch.cat([clip_l, clip_g], dim=-1)
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        prompt_embeds = torch.cat([clip.to(t5.dtype), t5], dim=-2)
        pooled = torch.cat([pooled_l, pooled_g], dim=-1)
        return prompt_embeds, pooled

    # ------------------------------------------------------------------ checks
    def check_inputs(
        self,
        prompt,
        negative_prompt=None,
        height=OFFICIAL.height,
        width=OFFICIAL.width,
        num_frames=OFFICIAL.num_frames,
        num_inference_steps=OFFICIAL.num_inference_steps,
        guidance_scale=OFFICIAL.guidance_scale,
        use_dynamic_cfg=OFFICIAL.use_dynamic_cfg,
        num_videos_per_prompt=1,
        output_type="np",
        latents=None,
        prompt_embeds=None,
        pooled_prompt_embeds=None,
        negative_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        callback_on_step_end_tensor_inputs=None,
        generator=None,
        decode_chunk_size=8,
        cfg_batching=True,
    ) -> int:
        """Validates every argument of `__call__` before any model runs; returns the number of prompts.

        Raises ValueError naming the argument (``"height=500 must be a positive multiple of 16"``).
        """
        for name, value in (("height", height), ("width", width)):
            check_multiple(name, value, SIZE_MULTIPLE)
        max_pixels = self.transformer.config.pos_embed_max_size * self.transformer.config.patch_size * self.vae_scale_factor
        for name, value in (("height", height), ("width", width)):
            if value > max_pixels:
                raise ValueError(f"{name}={value!r} exceeds the transformer's position table ({max_pixels} pixels)")
        check_integer("num_frames", num_frames)
        frame_positions = getattr(self.transformer.config, "frame_positions", 0)
        if frame_positions and num_frames > frame_positions:
            raise ValueError(f"num_frames={num_frames} exceeds the transformer's frame index table: it embeds at most "
                             f"frame_positions={frame_positions} frames")
        check_inference_steps(self.scheduler, num_inference_steps)
        check_integer("num_videos_per_prompt", num_videos_per_prompt)
        check_integer("decode_chunk_size", decode_chunk_size)
        check_real("guidance_scale", guidance_scale)
        check_bool("use_dynamic_cfg", use_dynamic_cfg)
        check_bool("cfg_batching", cfg_batching)
        if use_dynamic_cfg and guidance_scale < 0:
            raise ValueError(f"guidance_scale={guidance_scale!r} must be >= 0 with use_dynamic_cfg=True")
        check_output_type(output_type)
        check_callback_tensor_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)

        num_prompts = check_prompt(prompt, prompt_embeds)
        check_prompt_text("prompt", prompt)
        if prompt_embeds is not None and pooled_prompt_embeds is None:
            raise ValueError("prompt_embeds needs pooled_prompt_embeds as well")
        check_negative_prompt(negative_prompt, num_prompts)
        if (negative_prompt_embeds is None) != (negative_pooled_prompt_embeds is None):
            raise ValueError("negative_prompt_embeds and negative_pooled_prompt_embeds go together")
        config = self.transformer.config
        text_shape = (self.tokenizer_max_length + self.max_sequence_length_t5, config.joint_attention_dim)
        for name, embeds in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if isinstance(embeds, torch.Tensor) and embeds.ndim == 3 and tuple(embeds.shape[1:]) != text_shape:
                raise ValueError(f"{name} has shape {tuple(embeds.shape)}; expected [batch, {text_shape[0]}, "
                                 f"{text_shape[1]}] (CLIP and T5 tokens, joint_attention_dim)")
        for name, embeds in (("pooled_prompt_embeds", pooled_prompt_embeds),
                             ("negative_pooled_prompt_embeds", negative_pooled_prompt_embeds)):
            if isinstance(embeds, torch.Tensor) and embeds.ndim == 2 and embeds.shape[1] != config.pooled_projection_dim:
                raise ValueError(f"{name} has shape {tuple(embeds.shape)}; expected [batch, "
                                 f"{config.pooled_projection_dim}]")
        for name, embeds, ndim in (
            ("pooled_prompt_embeds", pooled_prompt_embeds, 2),
            ("negative_prompt_embeds", negative_prompt_embeds, 3),
            ("negative_pooled_prompt_embeds", negative_pooled_prompt_embeds, 2),
        ):
            if embeds is not None:
                check_tensor(name, embeds, ndim=ndim)
                if embeds.shape[0] != num_prompts:
                    raise ValueError(f"{name} has {embeds.shape[0]} entries for {num_prompts} prompts")

        batch_size = num_prompts * num_videos_per_prompt
        check_latents(
            latents,
            (
                batch_size,
                num_frames,
                self.transformer.config.in_channels,
                height // self.vae_scale_factor,
                width // self.vae_scale_factor,
            ),
            layout="[B, F, C, H/8, W/8]",
        )
        check_generator(generator, batch_size)
        pipeline_utils.check_memory(f"num_frames={num_frames} at {height}x{width}",
                                    self._memory_estimate(batch_size * (2 if guidance_scale > 1 else 1), num_frames,
                                                          height, width),
                                    self._execution_device)
        return num_prompts

    def _memory_estimate(self, batch_size: int, num_frames: int, height: int, width: int) -> dict:
        """Estimated bytes of sampling and decoding (`pipeline_utils.vchitect_config_estimate`)."""
        return pipeline_utils.vchitect_config_estimate(
            self.transformer.config, self.vae_scale_factor, self.tokenizer_max_length + self.max_sequence_length_t5,
            self.transformer.dtype, batch_size, num_frames, height, width)

    # ------------------------------------------------------------------ sampling
    def prepare_latents(self, batch_size, num_frames, height, width, device, generator, latents=None, dtype=None):
        """Initial noise [B, F, C, H/8, W/8] in `dtype` (the transformer's by default: the sampler state stays in
        the denoiser's dtype across steps, as in the official code; each step's update is computed in float32).

        The noise is drawn in float32 and then cast, so that a seed gives the same noise in every dtype; with a
        list of generators, video i draws from generator i.
        """
        dtype = dtype or self.transformer.dtype
        if latents is not None:
            return latents.to(device=device, dtype=dtype)
        shape = (
            batch_size,
            num_frames,
            self.transformer.config.in_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32).to(dtype)

    def guidance_schedule(self, timesteps: torch.Tensor, guidance_scale: float, use_dynamic_cfg: bool) -> List[float]:
        """Guidance scale per step, planned on the host before the loop (see `pipeline_utils.guidance_schedule`)."""
        return guidance_schedule(timesteps, guidance_scale, use_dynamic_cfg)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int) -> torch.Tensor:
        """Decodes [B, F, C, h, w] latents frame-wise, `decode_chunk_size` frames per VAE call -> [B, 3, F, H, W]."""
        batch, num_frames = latents.shape[:2]
        flat = latents.flatten(0, 1).to(self.vae.dtype) / self.vae.config.scaling_factor + self.vae.config.shift_factor
        images = torch.cat(
            [self.vae.decode(chunk, return_dict=False)[0] for chunk in flat.split(decode_chunk_size)], dim=0
        )
        return images.unflatten(0, (batch, num_frames)).permute(0, 2, 1, 3, 4)

    def _predict_velocity(self, latents, text, pooled, timestep) -> torch.Tensor:
        """One transformer call on latents [b, F, C, h, w] (cast to the transformer dtype) -> float32 velocity."""
        latents = latents.to(self.transformer.dtype)
        return self.transformer(
            hidden_states=latents,
            encoder_hidden_states=text,
            pooled_projections=pooled,
            timestep=timestep.expand(latents.shape[0]),
            return_dict=False,
        )[0].float()

    @property
    def num_timesteps(self):
        return self._num_timesteps

    @property
    def interrupt(self):
        return self._interrupt

    @torch.no_grad()
    def __call__(
        self,
        prompt: Union[str, List[str], None] = None,
        negative_prompt: Union[str, List[str], None] = None,
        height: int = OFFICIAL.height,
        width: int = OFFICIAL.width,
        num_frames: int = OFFICIAL.num_frames,
        num_inference_steps: int = OFFICIAL.num_inference_steps,
        guidance_scale: float = OFFICIAL.guidance_scale,
        use_dynamic_cfg: bool = OFFICIAL.use_dynamic_cfg,
        num_videos_per_prompt: int = 1,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        pooled_prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        negative_pooled_prompt_embeds: Optional[torch.Tensor] = None,
        output_type: str = "np",
        return_dict: bool = True,
        decode_chunk_size: int = 8,
        cfg_batching: bool = True,
        callback_on_step_end: Optional[
            Union[Callable[[Any, int, int, Dict], Dict], PipelineCallback, MultiPipelineCallbacks]
        ] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
    ):
        """Generates videos from text.

        Args:
            prompt (`str` or `List[str]`): what to generate.
            negative_prompt (`str` or `List[str]`, *optional*): what to steer away from; "" (encoded) by default,
                as in the official code.
            height (`int`, defaults to 432), width (`int`, defaults to 768): multiples of 16.
            num_frames (`int`, defaults to 40): frames (the VAE has no temporal compression).
            num_inference_steps (`int`, defaults to 100): flow-matching Euler steps.
            guidance_scale (`float`, defaults to 7.5): classifier-free guidance; on when > 1, or when > 0 with
                `use_dynamic_cfg` (the effective scale is then 1 + guidance_scale * ramp).
            use_dynamic_cfg (`bool`, defaults to False): the official cosine ramp, reproduced exactly
                (see `official_dynamic_guidance`).
            num_videos_per_prompt (`int`, defaults to 1): videos per prompt.
            generator (`torch.Generator` or a list of them, *optional*): seeds the initial noise; a list holds one
                generator per video (prompts x num_videos_per_prompt).
            latents (`torch.Tensor`, *optional*): initial noise [B, F, 16, H/8, W/8].
            prompt_embeds, pooled_prompt_embeds, negative_prompt_embeds, negative_pooled_prompt_embeds
                (`torch.Tensor`, *optional*): precomputed embeddings instead of prompts.
            output_type (`str`, defaults to "np"): "np", "pt", "pil" or "latent".
            return_dict (`bool`, defaults to True): return a `VchitectRepVideoPipelineOutput`.
            decode_chunk_size (`int`, defaults to 8): frames per VAE decode call.
            cfg_batching (`bool`, defaults to True): run both guidance branches in one transformer call; False runs
                them as two calls per step (conditional first), as the official Vchitect-2.0 code does at batch 1.
            callback_on_step_end (`Callable`, *optional*): `fn(pipe, step, timestep, tensors) -> dict`.
            callback_on_step_end_tensor_inputs (`List[str]`): tensors passed to the callback.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        num_prompts = self.check_inputs(
            prompt,
            negative_prompt=negative_prompt,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            use_dynamic_cfg=use_dynamic_cfg,
            num_videos_per_prompt=num_videos_per_prompt,
            output_type=output_type,
            latents=latents,
            prompt_embeds=prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            generator=generator,
            decode_chunk_size=decode_chunk_size,
            cfg_batching=cfg_batching,
        )
        self._guidance_scale = guidance_scale
        self._applied_guidance_scale = None
        self._interrupt = False
        do_cfg = guidance_scale > 0 if use_dynamic_cfg else guidance_scale > 1
        device = self._execution_device
        dtype = self.transformer.dtype

        # 1. prompts
        prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds = self.encode_prompt(
            prompt, negative_prompt, do_cfg, num_videos_per_prompt, prompt_embeds, negative_prompt_embeds,
            pooled_prompt_embeds, negative_pooled_prompt_embeds, device=device, dtype=dtype,
        )

        # 2. schedule, planned on the host
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        guidance = GuidancePlan(timesteps, guidance_scale, use_dynamic_cfg)

        # 3. noise
        batch_size = num_prompts * num_videos_per_prompt
        latents = self.prepare_latents(batch_size, num_frames, height, width, device, generator, latents, dtype)

        # 4. denoising: both guidance branches in one batched transformer call, or in two (conditional first);
        # each call is named with diffusers' cache contexts so that caches keep the branches apart
        def batched_branches():
            # the [uncond ; cond] text of the batched call, built once (again only if a callback replaces it)
            if not (do_cfg and cfg_batching):
                return None, None
            return (
                torch.cat([negative_prompt_embeds, prompt_embeds]),
                torch.cat([negative_pooled_prompt_embeds, pooled_prompt_embeds]),
            )

        branch_text, branch_pooled = batched_branches()
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                # a callback may have changed the base scale `_guidance_scale` (diffusers' CFG cut-off callbacks set
                # 0): the plan follows it, and the unconditional branch is dropped once guidance is off
                self._applied_guidance_scale = guidance.scale_at(i, self._guidance_scale)
                do_cfg = do_cfg and guidance.guides
                if do_cfg and cfg_batching:
                    with self.transformer.cache_context(
                        "cond_uncond", step_index=i, num_inference_steps=len(timesteps)
                    ):
                        velocity = self._predict_velocity(
                            torch.cat([latents, latents]), branch_text, branch_pooled, t
                        )
                    uncond, cond = velocity.chunk(2)
                elif do_cfg:
                    with self.transformer.cache_context("cond", step_index=i, num_inference_steps=len(timesteps)):
                        cond = self._predict_velocity(latents, prompt_embeds, pooled_prompt_embeds, t)
                    with self.transformer.cache_context("uncond", step_index=i, num_inference_steps=len(timesteps)):
                        uncond = self._predict_velocity(
                            latents, negative_prompt_embeds, negative_pooled_prompt_embeds, t
                        )
                else:
                    with self.transformer.cache_context("cond", step_index=i, num_inference_steps=len(timesteps)):
                        velocity = self._predict_velocity(latents, prompt_embeds, pooled_prompt_embeds, t)
                if do_cfg:
                    velocity = uncond + self._applied_guidance_scale * (cond - uncond)
                # the scheduler computes the update in float32 (the velocity is float32); the state stays in `dtype`
                latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0].to(dtype)

                if callback_on_step_end is not None:
                    step_locals = locals()
                    callback_kwargs = {k: step_locals[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = pipeline_utils.check_callback_outputs(
                        callback_on_step_end(self, i, t, callback_kwargs), latents)
                    latents = callback_outputs.pop("latents", latents).to(dtype)
                    if callback_outputs:
                        prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                        negative_prompt_embeds = callback_outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                        pooled_prompt_embeds = callback_outputs.pop("pooled_prompt_embeds", pooled_prompt_embeds)
                        negative_pooled_prompt_embeds = callback_outputs.pop(
                            "negative_pooled_prompt_embeds", negative_pooled_prompt_embeds
                        )
                        branch_text, branch_pooled = batched_branches()
                progress_bar.update()
        self._applied_guidance_scale = None

        # 5. frames
        if output_type == "latent":
            frames = latents
        else:
            video = self.decode_latents(latents, decode_chunk_size)
            frames = self.video_processor.postprocess_video(video.float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return VchitectRepVideoPipelineOutput(frames=frames)


def check_pipeline_folder(path: str) -> dict:
    """`pipeline_utils.check_pipeline_folder` for a Vchitect-2.0 folder: FileNotFoundError naming a missing
    model_index.json or component folder, ValueError for an invalid model_index.json; returns the index."""
    return pipeline_utils.check_pipeline_folder(path, COMPONENT_NAMES, VchitectRepVideoPipeline.__name__)


# model_index.json written by save_pretrained names this class: `DiffusionPipeline.from_pretrained(folder)` finds it
# as diffusers.VchitectRepVideoPipeline (it is diffusers.pipelines.VchitectRepVideoPipeline as well)
register_pipeline(VchitectRepVideoPipeline)
