"""Language-driven video inpainting (LGVI / LGVI-I, ROVI): a video and an instruction in, the edited video out."""

import importlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

import diffusers
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from einops import rearrange
from transformers import CLIPTextModel, CLIPTokenizer

from ...models.rovi_unet import RoviUNet3DConditionModel

logger = logging.get_logger(__name__)

COMPONENT_NAMES = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
OPTIONAL_COMPONENT_NAMES = ("instruction_encoder",)
OUTPUT_TYPES = ("np", "pt", "pil", "latent")
LOAD_OPTIONS = ("torch_dtype", "revision", "token", "cache_dir", "local_files_only")


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


class InpaintByInstructionPipeline(DiffusionPipeline):
    """LGVI: remove or change what an instruction names in a video (official `RoviPipeline`).

    Each frame is encoded by the VAE (a posterior sample, as the official inference) and conditions the ROVI video
    UNet; no mask is given: the model finds the region from the text. InstructPix2Pix dual guidance with three
    branches (text + video, video with the empty prompt, neither):
    ``eps = eps_u + guidance_scale * (eps_tv - eps_v) + image_guidance_scale * (eps_v - eps_u)``.

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
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads the released `jianzongwu/lgvi` / `lgvi-i` folder (or Hub id), or one written by `save_pretrained`.

        The released folder's model_index.json names Stable Diffusion's pipeline and the official UNet class; each
        component is loaded here with its own class instead: the UNet as `RoviUNet3DConditionModel` with its keys
        checked first, the scheduler as the class its config names. As the official pipeline does, a scheduler
        config with `steps_offset` != 1 or `clip_sample` true is corrected (with a warning). The folder may also be
        one holding the pack's weights layout (ComfyUI's folder, its ``models`` folder, or a models root with
        ``lgvi/lgvi/``). Components can be passed as keyword arguments instead; other options: torch_dtype, and for
        a Hub id revision, token, cache_dir, local_files_only (only model_index.json and the component folders are
        fetched).
        """
        unknown = set(kwargs) - set(COMPONENT_NAMES) - set(OPTIONAL_COMPONENT_NAMES) - set(LOAD_OPTIONS)
        if unknown:
            allowed = list(COMPONENT_NAMES + OPTIONAL_COMPONENT_NAMES + LOAD_OPTIONS)
            raise TypeError(f"unexpected arguments {sorted(unknown)}; allowed: {allowed}")
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            from huggingface_hub import snapshot_download

            download = {key: kwargs[key] for key in LOAD_OPTIONS[1:] if key in kwargs}
            wanted = [name for name in COMPONENT_NAMES + OPTIONAL_COMPONENT_NAMES if name not in kwargs]
            path = snapshot_download(path, allow_patterns=["model_index.json"] + [f"{name}/*" for name in wanted],
                                     **download)
        elif not os.path.isfile(os.path.join(path, "model_index.json")):
            from ...weights.manifest import find_local_folder, load_manifest

            path = str(find_local_folder(path, load_manifest().entry_for_class(cls.__name__)))
        index = check_pipeline_folder(path, skip=[name for name in COMPONENT_NAMES if name in kwargs])
        dtype = kwargs.get("torch_dtype")
        components = {name: kwargs[name] for name in COMPONENT_NAMES + OPTIONAL_COMPONENT_NAMES if name in kwargs}
        if "tokenizer" not in components:
            components["tokenizer"] = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
        if "text_encoder" not in components:
            components["text_encoder"] = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", dtype=dtype)
        if "vae" not in components:
            components["vae"] = AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
        if "unet" not in components:
            components["unet"] = RoviUNet3DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype)
        if "scheduler" not in components:
            components["scheduler"] = _load_scheduler(os.path.join(path, "scheduler"))
        if "instruction_encoder" not in components:
            components["instruction_encoder"] = _load_optional_component(path, index, "instruction_encoder", dtype)
        pipeline = cls(**components)
        pipeline.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
        return pipeline

    # ------------------------------------------------------------------ inputs
    def check_inputs(
        self, video, prompt, negative_prompt, height, width, num_inference_steps, guidance_scale,
        image_guidance_scale, num_videos_per_prompt, output_type, prompt_embeds, negative_prompt_embeds,
        callback_on_step_end_tensor_inputs,
    ) -> None:
        """Validates the arguments that do not need the video decoded; raises ValueError naming the argument."""
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 8 or value % 8:
                raise ValueError(f"{name}={value!r} must be a positive multiple of 8")
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps!r} must be an integer >= 1")
        if (isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int)
                or num_videos_per_prompt < 1):
            raise ValueError(f"num_videos_per_prompt={num_videos_per_prompt!r} must be an integer >= 1")
        for name, value in (("guidance_scale", guidance_scale), ("image_guidance_scale", image_guidance_scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}={value!r} must be a finite number")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} must be one of {OUTPUT_TYPES}")
        bad_inputs = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad_inputs:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs={bad_inputs} not allowed; choose from {self._callback_tensor_inputs}"
            )
        if video is None:
            raise ValueError("video is required: frames [F, H, W, 3] or [B, F, H, W, 3] in 0..1, or a list of PIL images")
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("pass either prompt or prompt_embeds, not both")
        if prompt is None and prompt_embeds is None:
            raise ValueError("prompt is required (or prompt_embeds): the instruction, e.g. 'remove the bird on the left'")
        if prompt is not None:
            prompts = [prompt] if isinstance(prompt, str) else prompt
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError(f"prompt={prompt!r} must be a string or a non-empty list of strings")
        width_expected = self.unet.config.cross_attention_dim
        for name, embeds in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if embeds is not None and (
                not isinstance(embeds, torch.Tensor) or embeds.ndim != 3 or embeds.shape[-1] != width_expected
            ):
                shape = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
                raise ValueError(f"{name} has shape {shape}; expected [batch, tokens, {width_expected}]")
        if (negative_prompt_embeds is not None and prompt_embeds is not None
                and negative_prompt_embeds.shape != prompt_embeds.shape):
            raise ValueError(
                f"negative_prompt_embeds has shape {tuple(negative_prompt_embeds.shape)}; prompt_embeds has "
                f"{tuple(prompt_embeds.shape)}"
            )
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            if not isinstance(negative_prompt, list) or not all(isinstance(p, str) for p in negative_prompt):
                raise ValueError(f"negative_prompt={negative_prompt!r} must be a string or a list of strings")

    @staticmethod
    def video_tensor(video, height: int, width: int) -> torch.Tensor:
        """`video` as float [B, F, 3, height, width] in 0..1, resized like the official inference (bilinear).

        Accepts a tensor or array [F, H, W, 3] / [B, F, H, W, 3] (float in 0..1, or uint8), or a list of PIL images
        (one video; resized by PIL's bilinear filter exactly as the official `load_video`). Raises ValueError for an
        empty video, another layout, or values outside 0..1.
        """
        if isinstance(video, (list, tuple)):
            if not video:
                raise ValueError("video is an empty list; expected frames")
            if not all(isinstance(frame, PIL.Image.Image) for frame in video):
                raise ValueError("video as a list must hold PIL images; pass a tensor or array [F, H, W, 3] otherwise")
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
        low, high = video.min().item(), video.max().item()
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high > 1:
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
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(device))[0]

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
    def interrupt(self) -> bool:
        return self._interrupt

    @torch.no_grad()
    def __call__(
        self,
        video=None,
        prompt: Union[str, List[str], None] = None,
        negative_prompt: Union[str, List[str], None] = None,
        height: int = 320,
        width: int = 512,
        num_inference_steps: int = 50,
        guidance_scale: float = 3.0,
        image_guidance_scale: float = 1.5,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: Optional[torch.Generator] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Optional[
            Union[Callable[[Any, int, int, Dict], Dict], PipelineCallback, MultiPipelineCallbacks]
        ] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
        batch_guidance: bool = False,
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
            generator (`torch.Generator`, *optional*): draws the VAE posterior sample of the video first, then the
                initial noise (the official order).
            latents (`torch.Tensor` [B, 4, F, h, w], *optional*): initial noise.
            prompt_embeds, negative_prompt_embeds (`torch.Tensor` [B, N, cross_attention_dim], *optional*).
            output_type (`str`, defaults to "np"): "np", "pt", "pil" or "latent".
            return_dict (`bool`, defaults to True): return an `InpaintByInstructionPipelineOutput`.
            callback_on_step_end, callback_on_step_end_tensor_inputs: per-step callback and the tensors it sees.
            batch_guidance (`bool`, defaults to False): run the three guidance branches in one UNet call of batch 3;
                False runs them one after the other, as the official (a third of the activation memory, and on a CPU
                also faster: `benchmarks/lgvi_unet.py --guidance-step`).
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self.check_inputs(
            video, prompt, negative_prompt, height, width, num_inference_steps, guidance_scale, image_guidance_scale,
            num_videos_per_prompt, output_type, prompt_embeds, negative_prompt_embeds,
            callback_on_step_end_tensor_inputs,
        )
        video = self.video_tensor(video, height, width)
        num_prompts = (1 if isinstance(prompt, str) else len(prompt)) if prompt is not None else prompt_embeds.shape[0]
        num_videos = video.shape[0]
        if num_videos != num_prompts and 1 not in (num_videos, num_prompts):
            raise ValueError(f"{num_videos} videos and {num_prompts} prompts: give one prompt per video, or one of either")
        batch = max(num_videos, num_prompts)
        if isinstance(negative_prompt, list) and len(negative_prompt) not in (1, batch):
            raise ValueError(f"negative_prompt has {len(negative_prompt)} entries for {batch} videos")
        num_frames = video.shape[1]
        total = batch * num_videos_per_prompt
        latent_shape = (total, 4, num_frames, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is not None and tuple(latents.shape) != latent_shape:
            raise ValueError(f"latents has shape {tuple(latents.shape)}; expected {latent_shape}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(
                f"generator={generator!r} must be one torch.Generator (it draws the VAE sample, then the noise)"
            )
        self._guidance_scale = guidance_scale
        self._interrupt = False
        device = self._execution_device
        do_guidance = guidance_scale > 1.0 and image_guidance_scale >= 1.0

        # 1. the video, expanded to one per prompt, encoded by the VAE (first draw of the generator)
        video = video.expand(batch, -1, -1, -1, -1) if num_videos == 1 else video
        image_latents = self.encode_video(video, generator)

        # 2. instructions
        instructions = None
        if prompt_embeds is None:
            prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt) * (batch // len(prompt))
            if self.instruction_encoder is not None:
                first_frames = video[:, 0].to(device)
                prompt_embeds, instructions = self.instruction_encoder.encode_instruction(
                    first_frames, prompts, generator=generator
                )
                negative_prompt_embeds = torch.zeros_like(prompt_embeds)
            else:
                prompt_embeds = self._clip_embeds(prompts, device)
        elif prompt_embeds.shape[0] == 1 and batch > 1:
            prompt_embeds = prompt_embeds.expand(batch, -1, -1)
        if negative_prompt_embeds is None and do_guidance:
            negatives = negative_prompt if isinstance(negative_prompt, list) else [negative_prompt or ""]
            negative_prompt_embeds = self._clip_embeds(negatives * (batch // len(negatives)), device)
        elif negative_prompt_embeds is not None and negative_prompt_embeds.shape[0] == 1 and batch > 1:
            negative_prompt_embeds = negative_prompt_embeds.expand(batch, -1, -1)
        dtype = self.unet.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype).repeat_interleave(num_videos_per_prompt, dim=0)
        image_latents = image_latents.to(dtype).repeat_interleave(num_videos_per_prompt, dim=0)
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
                noise_pred, mask = self._predict(model_input, t, branch_text, branch_video, batch_guidance)
                if do_guidance:
                    eps_text, eps_video, eps_uncond = noise_pred.chunk(3)
                    noise_pred = (
                        eps_uncond
                        + guidance_scale * (eps_text - eps_video)
                        + image_guidance_scale * (eps_video - eps_uncond)
                    )
                    mask = mask.chunk(3)[0] if mask is not None else None
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]

                if callback_on_step_end is not None:
                    step_locals = locals()
                    callback_kwargs = {k: step_locals[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs) or {}
                    latents = callback_outputs.pop("latents", latents)
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


def _load_scheduler(folder: str) -> SchedulerMixin:
    """The scheduler class the config names, from diffusers, with the official pipeline's config corrections."""
    import diffusers

    config_path = os.path.join(folder, "scheduler_config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    name = config.get("_class_name")
    scheduler_class = getattr(diffusers, str(name), None)
    if scheduler_class is None or not issubclass(scheduler_class, SchedulerMixin):
        raise ValueError(f"{config_path}: _class_name={name!r} is not a diffusers scheduler")
    fixes = {}
    if config.get("steps_offset", 1) != 1:
        fixes["steps_offset"] = 1
    if config.get("clip_sample") is True:
        fixes["clip_sample"] = False
    if fixes:
        logger.warning(f"{config_path}: using {fixes} as the official LGVI pipeline does")
    return scheduler_class.from_config(config, **fixes)


def _load_optional_component(path: str, index: dict, name: str, dtype):
    """An optional component the folder's model_index.json names (None when it names none)."""
    library, class_name = (index.get(name) or [None, None])[:2]
    if library is None or class_name is None:
        return None
    component_class = getattr(importlib.import_module(library), class_name)
    folder = os.path.join(path, name)
    return component_class.from_pretrained(folder, **({"torch_dtype": dtype} if dtype is not None else {}))


def check_pipeline_folder(path: str, skip=()) -> dict:
    """Raises a clear error when a pipeline folder lacks model_index.json or a component folder; returns the index."""
    index_path = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_path):
        raise FileNotFoundError(f"model folder {path!r} has no model_index.json: not a diffusers pipeline folder")
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"model folder {path!r}: model_index.json is not valid JSON ({error})") from None
    missing = [name for name in COMPONENT_NAMES if name not in skip and not os.path.isdir(os.path.join(path, name))]
    if missing:
        raise FileNotFoundError(
            f"model folder {path!r} lacks the component folder(s) {missing}; an LGVI pipeline needs {list(COMPONENT_NAMES)}"
        )
    return index


# model_index.json written by save_pretrained names this class; diffusers resolves pipeline class names in its own
# namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it registered there
if not hasattr(diffusers, InpaintByInstructionPipeline.__name__):
    setattr(diffusers, InpaintByInstructionPipeline.__name__, InpaintByInstructionPipeline)
