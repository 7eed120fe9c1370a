"""Language-driven video inpainting (LGVI / LGVI-I, ROVI): a video and an instruction in, the edited video out."""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from einops import rearrange
from transformers import CLIPTextModel, CLIPTokenizer

from ...models.rovi_unet import RoviUNet3DConditionModel
from .. import pipeline_utils
from ..loading import load_pipeline
from ..lora import CheckedLoraLoaderMixin
from ..pipeline_utils import (
    OUTPUT_TYPES,  # noqa: F401  (re-exported: the pipeline's output types)
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
    register_pipeline,
)
from .defaults import OFFICIAL

logger = logging.get_logger(__name__)

COMPONENT_NAMES = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
OPTIONAL_COMPONENT_NAMES = ("instruction_encoder",)


@dataclass
class InpaintByInstructionPipelineOutput(BaseOutput):
    """Output of `InpaintByInstructionPipeline`.

    Args:
        frames: the edited videos: np [B, F, H, W, 3] in 0..1 ("np"), tensor [B, F, 3, H, W] ("pt"), lists of PIL
            images ("pil"), or latents [B, 4, F, h, w] ("latent").
        mask (`torch.Tensor` [B, F, H, W] or None): the edit mask the UNet's mask decoder predicts at the last step
            (text-and-video branch), bilinearly resized from the latent grid to the frame size, in 0..1; None when
            the UNet has no mask decoder.
        instructions (`List[str]` or None): the prompts the instruction encoder wrote (LGVI-I); None otherwise.
    """

    frames: Any
    mask: Optional[torch.Tensor] = None
    instructions: Optional[List[str]] = None


class InpaintByInstructionPipeline(DiffusionPipeline, CheckedLoraLoaderMixin, StableDiffusionLoraLoaderMixin):
    """LGVI: remove or change what an instruction names in a video (official `RoviPipeline`).

    Each frame is encoded by the VAE (a posterior sample, as the official inference) and conditions the ROVI video
    UNet; no mask is given: the model finds the region from the text. InstructPix2Pix dual guidance with three
    branches (text + video, video with the empty prompt, neither):
    ``eps = eps_u + guidance_scale * (eps_tv - eps_v) + image_guidance_scale * (eps_v - eps_u)``.

    LoRAs load through diffusers' Stable Diffusion loader (`unet.` keys for the ROVI UNet, as `vdp train --model lgvi
    --type lora` writes them; `text_encoder.` keys for CLIP): `load_lora_weights(path, adapter_name=...)`,
    `set_adapters`, `fuse_lora`, `unload_lora_weights`.

    Args:
        vae (`AutoencoderKL`): the image VAE (the released one is MagicBrush's, Stable Diffusion 1.x geometry).
        text_encoder (`CLIPTextModel`), tokenizer (`CLIPTokenizer`): CLIP ViT-L/14's text tower.
        unet (`RoviUNet3DConditionModel`): the ROVI video UNet.
        scheduler (`SchedulerMixin`): as in the folder (`scheduler/scheduler_config.json`).
        instruction_encoder (*optional*): for LGVI-I, an object with
            ``encode_instruction(first_frames [B, 3, H, W] in 0..1, requests: List[str], generator=None)`` returning
            ``(prompt_embeds [B, N, cross_attention_dim], texts: List[str])``; used instead of the text encoder.
    """

    model_cpu_offload_seq = "text_encoder->instruction_encoder->unet->vae"
    _optional_components = ["instruction_encoder"]
    _callback_tensor_inputs = ["latents", "prompt_embeds"]

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: RoviUNet3DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        instruction_encoder: Any = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            instruction_encoder=instruction_encoder,
        )
        # a pipeline may be built without its VAE (e.g. only to encode prompts): Stable Diffusion's factor then
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if vae is not None else 8
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads the released `jianzongwu/lgvi` / `lgvi-i` folder (or Hub id), or one written by `save_pretrained`.

        The folder is loaded by diffusers' `DiffusionPipeline.from_pretrained`, which takes every keyword it documents
        (`variant`, `torch_dtype` or a dict of them, `device_map`, components as objects, ...). The released folder's
        model_index.json names Stable Diffusion's pipeline and the official UNet class: it is read as this pipeline's,
        the UNet as `RoviUNet3DConditionModel` with its keys checked first (see `diffusers_pipelines.loading`). As
        the official pipeline does, a scheduler config with `steps_offset` != 1 or `clip_sample` true is corrected
        (with a warning). The folder may also be one holding the pack's weights layout (ComfyUI's folder, its
        ``models`` folder, or a models root with ``lgvi/lgvi/``); of a Hub id only model_index.json and the
        component folders are fetched.
        """
        pipeline = load_pipeline(cls, pretrained_model_name_or_path, **kwargs)
        if "scheduler" not in kwargs:
            pipeline.register_modules(scheduler=_official_scheduler(pipeline.scheduler))
        return pipeline

    # ------------------------------------------------------------------ inputs
    def check_inputs(
        self,
        video,
        prompt,
        negative_prompt=None,
        height=OFFICIAL.height,
        width=OFFICIAL.width,
        num_inference_steps=OFFICIAL.num_inference_steps,
        guidance_scale=OFFICIAL.guidance_scale,
        image_guidance_scale=OFFICIAL.image_guidance_scale,
        num_videos_per_prompt=1,
        output_type="np",
        prompt_embeds=None,
        negative_prompt_embeds=None,
        callback_on_step_end_tensor_inputs=None,
        *,
        latents=None,
        generator=None,
        eta=0.0,
        cfg_batching=False,
    ) -> int:
        """Validates every argument of `__call__` before any model runs, the video included (its layout, values and
        count against the prompts); returns the number of videos edited (before `num_videos_per_prompt`).

        Raises ValueError naming the argument.
        """
        return self._checked_inputs(
            video, prompt, negative_prompt, height, width, num_inference_steps, guidance_scale, image_guidance_scale,
            num_videos_per_prompt, output_type, prompt_embeds, negative_prompt_embeds,
            callback_on_step_end_tensor_inputs, latents, generator, eta, cfg_batching,
        )[0]

    def _checked_inputs(
        self, video, prompt, negative_prompt, height, width, num_inference_steps, guidance_scale, image_guidance_scale,
        num_videos_per_prompt, output_type, prompt_embeds, negative_prompt_embeds, callback_on_step_end_tensor_inputs,
        latents, generator, eta, cfg_batching,
    ):
        """`check_inputs`, returning (number of videos edited, the video as float [B, F, 3, height, width] in 0..1)."""
        for name, value in (("height", height), ("width", width)):
            check_multiple(name, value, self.vae_scale_factor)
        check_inference_steps(self.scheduler, num_inference_steps)
        check_integer("num_videos_per_prompt", num_videos_per_prompt)
        check_real("guidance_scale", guidance_scale)
        check_real("image_guidance_scale", image_guidance_scale)
        check_real("eta", eta, minimum=0)
        check_bool("cfg_batching", cfg_batching)
        check_output_type(output_type)
        check_callback_tensor_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        if video is None:
            raise ValueError("video is required: frames [F, H, W, 3] or [B, F, H, W, 3] in 0..1, or a list of PIL images")
        if prompt is None and prompt_embeds is None:
            raise ValueError("prompt is required (or prompt_embeds): the instruction, e.g. 'remove the bird on the left'")
        num_prompts = check_prompt(prompt, prompt_embeds)
        check_prompt_text("prompt", prompt)
        width_expected = self.unet.config.cross_attention_dim
        for name, embeds in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if embeds is not None:
                if isinstance(embeds, torch.Tensor) and embeds.ndim == 3 and embeds.shape[-1] != width_expected:
                    raise ValueError(f"{name} has shape {tuple(embeds.shape)}; expected [batch, tokens, {width_expected}]")
                check_tensor(name, embeds, ndim=3)
        if (negative_prompt_embeds is not None and prompt_embeds is not None
                and negative_prompt_embeds.shape != prompt_embeds.shape):
            raise ValueError(
                f"negative_prompt_embeds has shape {tuple(negative_prompt_embeds.shape)}; prompt_embeds has "
                f"{tuple(prompt_embeds.shape)}"
            )
        video = self.video_tensor(video, height, width)
        num_videos = video.shape[0]
        if num_videos != num_prompts and 1 not in (num_videos, num_prompts):
            raise ValueError(f"{num_videos} videos and {num_prompts} prompts: give one prompt per video, or one of either")
        batch = max(num_videos, num_prompts)
        check_negative_prompt(negative_prompt, batch, unit="videos", allow_one=True)
        if negative_prompt_embeds is not None and negative_prompt_embeds.shape[0] not in (1, batch):
            raise ValueError(f"negative_prompt_embeds has {negative_prompt_embeds.shape[0]} entries for {batch} videos")
        total = batch * num_videos_per_prompt
        check_latents(
            latents,
            (total, 4, video.shape[1], height // self.vae_scale_factor, width // self.vae_scale_factor),
            layout="[B, 4, F, H/8, W/8]",
        )
        check_generator(generator, total)
        frames = video.shape[1]
        parts = pipeline_utils.unet_config_estimate(self.unet.config, self.vae_scale_factor, self.unet.dtype, total * 3,
                                                    frames, height, width)
        pipeline_utils.check_memory(f"num_frames={frames} at {height}x{width}", parts, self._execution_device)
        return batch, video

    @staticmethod
    def video_tensor(video, height: int, width: int) -> torch.Tensor:
        """`video` as float [B, F, 3, height, width] in 0..1, resized like the official inference (bilinear).

        Accepts a tensor or array [F, H, W, 3] / [B, F, H, W, 3] (float in 0..1, or uint8), a list of PIL images
        (one video; resized by PIL's bilinear filter exactly as the official `load_video`), or a list of such videos
        (one per prompt, as diffusers' video-to-video pipelines take them) with the same number of frames. Raises
        ValueError for an empty video, another layout, or values outside 0..1.
        """
        if isinstance(video, (list, tuple)):
            if not video:
                raise ValueError("video is an empty list; expected frames")
            if not all(isinstance(frame, PIL.Image.Image) for frame in video):
                if any(isinstance(item, PIL.Image.Image) for item in video):
                    raise ValueError("video as a list mixes PIL images and other values; give frames or videos")
                videos = [InpaintByInstructionPipeline.video_tensor(item, height, width) for item in video]
                frame_counts = [item.shape[1] for item in videos]
                if len(set(frame_counts)) > 1:
                    raise ValueError(f"video as a list holds videos of {frame_counts} frames; they must be equal")
                return torch.cat(videos)
            frames = [np.asarray(frame.convert("RGB").resize((width, height), resample=PIL.Image.BILINEAR))
                      for frame in video]
            return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)[None].float() / 255
        if isinstance(video, np.ndarray):
            video = torch.from_numpy(np.ascontiguousarray(video))
        if not isinstance(video, torch.Tensor):
            raise ValueError(f"video of type {type(video).__name__} must be a tensor, an array or a list of PIL images")
        if video.ndim == 4:
            video = video[None]
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(f"video has shape {tuple(video.shape)}; expected [F, H, W, 3] or [B, F, H, W, 3]")
        if video.shape[0] == 0 or video.shape[1] == 0 or video.shape[2] == 0 or video.shape[3] == 0:
            raise ValueError(f"video has shape {tuple(video.shape)}: it is empty")
        if video.dtype == torch.uint8:
            video = video.float() / 255
        elif not video.is_floating_point():
            raise ValueError(f"video has dtype {video.dtype}; expected float in 0..1 or uint8")
        video = video.float()
        if not torch.isfinite(video).all():
            raise ValueError("video has non-finite values (NaN or inf)")
        low, high = video.min().item(), video.max().item()
        if low < 0 or high > 1:
            raise ValueError(f"video values span {low:.3g}..{high:.3g}; expected 0..1")
        video = rearrange(video, "b f h w c -> b f c h w")
        if tuple(video.shape[-2:]) != (height, width):
            batch = video.shape[0]
            video = F.interpolate(video.flatten(0, 1), size=(height, width), mode="bilinear", antialias=True,
                                  align_corners=False).clamp(0, 1)
            video = rearrange(video, "(b f) c h w -> b f c h w", b=batch)
        return video

    # ------------------------------------------------------------------ conditioning
    def _clip_embeds(self, prompts: List[str], device) -> torch.Tensor:
        pipeline_utils.warn_truncated_prompts(self.tokenizer, prompts, self.tokenizer.model_max_length,
                                              "the CLIP text encoder")
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(device))[0]

    def _negative_embeds(self, negative_prompt, count: int, device) -> torch.Tensor:
        """CLIP embeddings of `negative_prompt` (None for "", one string, or one per prompt) for `count` prompts."""
        negatives = negative_prompt if isinstance(negative_prompt, list) else [negative_prompt or ""]
        return self._clip_embeds(negatives * (count // len(negatives)), device)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: Union[str, List[str]],
        negative_prompt: Union[str, List[str], None] = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        device: Optional[torch.device] = None,
    ):
        """LGVI's CLIP text embeddings of `prompt` and (with guidance) of `negative_prompt` (None for ""), each
        repeated `num_videos_per_prompt` times; pass them to `__call__` as `prompt_embeds` / `negative_prompt_embeds`.
        LGVI-I's instructions need the video (the MLLM reads its first frame): `__call__` encodes them.

        Returns:
            (prompt_embeds, negative_prompt_embeds), the latter None without guidance.
        """
        if self.instruction_encoder is not None:
            raise ValueError("encode_prompt encodes LGVI's CLIP prompts; with an instruction_encoder (LGVI-I) the "
                             "instruction is encoded with the video by __call__")
        device = device or self._execution_device
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        prompt_embeds = self._clip_embeds(prompts, device).repeat_interleave(num_videos_per_prompt, dim=0)
        negative_prompt_embeds = None
        if do_classifier_free_guidance:
            negative_prompt_embeds = self._negative_embeds(negative_prompt, len(prompts), device)
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_videos_per_prompt, dim=0)
        return prompt_embeds, negative_prompt_embeds

    def encode_video(self, video: torch.Tensor, generator) -> torch.Tensor:
        """[B, F, 3, H, W] in 0..1 -> scaled latents [B, 4, F, h, w] (a posterior sample, as the official)."""
        batch = video.shape[0]
        pixels = (video.flatten(0, 1) * 2 - 1).to(device=self._execution_device, dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.sample(generator) * self.vae.config.scaling_factor
        return rearrange(latents, "(b f) c h w -> b c f h w", b=batch)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [B, 4, F, h, w] -> video [B, 3, F, H, W] in [-1, 1] (all frames in one VAE call)."""
        batch = latents.shape[0]
        frames = rearrange(latents, "b c f h w -> (b f) c h w") / self.vae.config.scaling_factor
        video = self.vae.decode(frames.to(self.vae.dtype)).sample
        return rearrange(video, "(b f) c h w -> b c f h w", b=batch)

    @property
    def guidance_scale(self) -> float:
        """The text guidance scale of the current call; a step-end callback may change `_guidance_scale`, and the
        steps after it use the new value."""
        return self._guidance_scale

    @property
    def image_guidance_scale(self) -> float:
        """The video guidance scale of the current call (`_image_guidance_scale`, which a callback may change)."""
        return self._image_guidance_scale

    @property
    def num_timesteps(self) -> int:
        """The number of denoising steps of the current call."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """True once a callback has set `_interrupt`: the remaining steps are skipped."""
        return self._interrupt

    @torch.no_grad()
    def __call__(
        self,
        video=None,
        prompt: Union[str, List[str], None] = None,
        negative_prompt: Union[str, List[str], None] = None,
        height: int = OFFICIAL.height,
        width: int = OFFICIAL.width,
        num_inference_steps: int = OFFICIAL.num_inference_steps,
        guidance_scale: float = OFFICIAL.guidance_scale,
        image_guidance_scale: float = OFFICIAL.image_guidance_scale,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Optional[
            Union[Callable[[Any, int, int, Dict], Dict], PipelineCallback, MultiPipelineCallbacks]
        ] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
        cfg_batching: bool = False,
    ):
        """Edits a video as an instruction says.

        Args:
            video: the frames, [F, H, W, 3] or [B, F, H, W, 3] (tensor or array, float in 0..1 or uint8), or a list of
                PIL images; resized (bilinear) to width x height.
            prompt (`str` or `List[str]`): the instruction ("remove the bird on the left"); one per video, or one
                for all. With an instruction encoder (LGVI-I) it is the request the encoder rewrites.
            negative_prompt (`str` or `List[str]`, *optional*): the prompt of the video-only branch (official: "").
            height (`int`, defaults to 320), width (`int`, defaults to 512): frame size, multiples of 8 (official
                512x320).
            num_inference_steps (`int`, defaults to 50), guidance_scale (`float`, defaults to 3.0),
                image_guidance_scale (`float`, defaults to 1.5): the official settings. Guidance runs when
                guidance_scale > 1 and image_guidance_scale >= 1 (as the official).
            num_videos_per_prompt (`int`, defaults to 1), eta (`float`, defaults to 0): as diffusers' pipelines.
            generator (`torch.Generator` or a list of them, *optional*): draws the VAE posterior sample of the video
                first, then the initial noise (the official order). A list holds one generator per output video
                (videos x num_videos_per_prompt); video i then draws its own VAE sample and noise from generator i.
            latents (`torch.Tensor` [B, 4, F, h, w], *optional*): initial noise.
            prompt_embeds, negative_prompt_embeds (`torch.Tensor` [B, N, cross_attention_dim], *optional*).
            output_type (`str`, defaults to "np"): "np", "pt", "pil" or "latent".
            return_dict (`bool`, defaults to True): return an `InpaintByInstructionPipelineOutput`.
            callback_on_step_end, callback_on_step_end_tensor_inputs: per-step callback and the tensors it sees.
            cfg_batching (`bool`, defaults to False): run the three guidance branches in one UNet call of batch 3;
                False runs them one after the other, as the official (a third of the activation memory, and on a CPU
                also faster: `benchmarks/lgvi_unet.py --guidance-step`).
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        batch, video = self._checked_inputs(
            video, prompt, negative_prompt, height, width, num_inference_steps, guidance_scale, image_guidance_scale,
            num_videos_per_prompt, output_type, prompt_embeds, negative_prompt_embeds,
            callback_on_step_end_tensor_inputs, latents, generator, eta, cfg_batching,
        )
        num_videos, num_frames = video.shape[:2]
        total = batch * num_videos_per_prompt
        latent_shape = (total, 4, num_frames, height // self.vae_scale_factor, width // self.vae_scale_factor)
        self._guidance_scale = guidance_scale
        self._image_guidance_scale = image_guidance_scale
        self._interrupt = False
        device = self._execution_device
        do_guidance = guidance_scale > 1.0 and image_guidance_scale >= 1.0

        # 1. the video, expanded to one per prompt, encoded by the VAE (first draw of the generator); with a list of
        # generators, once per output video, each from its own generator
        video = video.expand(batch, -1, -1, -1, -1) if num_videos == 1 else video
        per_video_generators = isinstance(generator, list)
        if per_video_generators:
            image_latents = torch.cat([
                self.encode_video(video[i // num_videos_per_prompt][None], generator[i]) for i in range(total)
            ])
        else:
            image_latents = self.encode_video(video, generator)

        # 2. instructions
        instructions = None
        if prompt_embeds is None:
            prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt) * (batch // len(prompt))
            if self.instruction_encoder is not None:
                first_frames = video[:, 0].to(device)
                prompt_embeds, instructions = self.instruction_encoder.encode_instruction(
                    first_frames, prompts,
                    # one generator per request: that of the request's first video
                    generator=generator[::num_videos_per_prompt] if per_video_generators else generator,
                )
                negative_prompt_embeds = torch.zeros_like(prompt_embeds)
            else:
                prompt_embeds = self.encode_prompt(prompts, do_classifier_free_guidance=False, device=device)[0]
        elif prompt_embeds.shape[0] == 1 and batch > 1:
            prompt_embeds = prompt_embeds.expand(batch, -1, -1)
        if negative_prompt_embeds is None and do_guidance:
            negative_prompt_embeds = self._negative_embeds(negative_prompt, batch, device)
        elif negative_prompt_embeds is not None and negative_prompt_embeds.shape[0] == 1 and batch > 1:
            negative_prompt_embeds = negative_prompt_embeds.expand(batch, -1, -1)
        dtype = self.unet.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype).repeat_interleave(num_videos_per_prompt, dim=0)
        image_latents = image_latents.to(dtype)
        if not per_video_generators:
            image_latents = image_latents.repeat_interleave(num_videos_per_prompt, dim=0)
        if do_guidance:
            negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=dtype)
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_videos_per_prompt, dim=0)

        # 3. schedule and initial noise (second draw of the generator)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        if latents is None:
            latents = randn_tensor(latent_shape, generator=generator, device=device, dtype=dtype)
        latents = latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 4. denoising: branches [text + video, video only, neither] as the official order, built once before the loop
        # (and again only when a callback replaces prompt_embeds)
        def guidance_branches(text):
            if not do_guidance:
                return text, image_latents
            return (torch.cat([text, negative_prompt_embeds, negative_prompt_embeds]),
                    torch.cat([image_latents, image_latents, torch.zeros_like(image_latents)]))

        branch_text, branch_video = guidance_branches(prompt_embeds)
        mask = None
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                model_input = self.scheduler.scale_model_input(latents, t)
                noise_pred, mask = self._predict(model_input, t, branch_text, branch_video, cfg_batching)
                if do_guidance:
                    eps_text, eps_video, eps_uncond = noise_pred.chunk(3)
                    noise_pred = (
                        eps_uncond
                        + self._guidance_scale * (eps_text - eps_video)
                        + self._image_guidance_scale * (eps_video - eps_uncond)
                    )
                    mask = mask.chunk(3)[0] if mask is not None else None
                # the update is computed in float32 (the noise prediction is float32); the state stays in `dtype`
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
                latents = latents.to(dtype)

                if callback_on_step_end is not None:
                    step_locals = locals()
                    callback_kwargs = {k: step_locals[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = pipeline_utils.check_callback_outputs(
                        callback_on_step_end(self, i, t, callback_kwargs), latents)
                    latents = callback_outputs.pop("latents", latents).to(dtype)
                    if "prompt_embeds" in callback_outputs:
                        prompt_embeds = callback_outputs.pop("prompt_embeds")
                        branch_text, branch_video = guidance_branches(prompt_embeds)
                progress_bar.update()

        # 5. frames
        if output_type == "latent":
            frames = latents
        else:
            video_out = self.decode_latents(latents).float()
            frames = self.video_processor.postprocess_video(video=video_out, output_type=output_type)
        if mask is not None:
            mask = F.interpolate(mask.float().flatten(1, 2), size=(height, width), mode="bilinear", align_corners=False)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames, mask, instructions)
        return InpaintByInstructionPipelineOutput(frames=frames, mask=mask, instructions=instructions)

    def _predict(self, model_input, t, text, condition, batched: bool):
        """The UNet's noise (float32) and mask for every branch (text and condition hold the branches one after
        another, each over the batch of `model_input`), in one call or one batch-1 call per branch and video."""
        batch = model_input.shape[0]
        if batched:
            copies = torch.cat([model_input] * (text.shape[0] // batch))
            output = self.unet(copies, t, encoder_hidden_states=text, img_condition=condition)
            return output.sample.float(), output.mask
        outputs = [
            self.unet(model_input[j % batch : j % batch + 1], t, encoder_hidden_states=text[j : j + 1],
                      img_condition=condition[j : j + 1])
            for j in range(text.shape[0])
        ]
        mask = torch.cat([o.mask for o in outputs]) if outputs[0].mask is not None else None
        return torch.cat([o.sample for o in outputs]).float(), mask

    def prepare_extra_step_kwargs(self, generator, eta):
        """`eta` and `generator` for schedulers whose `step` takes them (as diffusers' pipelines)."""
        import inspect

        parameters = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in parameters:
            kwargs["eta"] = eta
        if "generator" in parameters:
            kwargs["generator"] = generator
        return kwargs


def _official_scheduler(scheduler: SchedulerMixin) -> SchedulerMixin:
    """`scheduler`, or a copy with the official pipeline's config corrections (`steps_offset` 1, `clip_sample` off)."""
    fixes = {}
    if scheduler.config.get("steps_offset", 1) != 1:
        fixes["steps_offset"] = 1
    if scheduler.config.get("clip_sample") is True:
        fixes["clip_sample"] = False
    if not fixes:
        return scheduler
    logger.warning(f"scheduler config: using {fixes} as the official LGVI pipeline does")
    return type(scheduler).from_config(scheduler.config, **fixes)


def check_pipeline_folder(path: str, skip=()) -> dict:
    """`pipeline_utils.check_pipeline_folder` for an LGVI folder: FileNotFoundError naming a missing model_index.json
    or component folder (those in `skip` need none), ValueError for an invalid model_index.json; returns the index."""
    return pipeline_utils.check_pipeline_folder(path, COMPONENT_NAMES, InpaintByInstructionPipeline.__name__, skip=skip)


# model_index.json written by save_pretrained names this class: `DiffusionPipeline.from_pretrained(folder)` finds it
# as diffusers.InpaintByInstructionPipeline (it is diffusers.pipelines.InpaintByInstructionPipeline as well)
register_pipeline(InpaintByInstructionPipeline)
