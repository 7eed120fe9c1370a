"""Diffusion as Shader: image-to-video on CogVideoX-5B-I2V steered by a 3D tracking video, as a diffusers pipeline."""

import math
import os
from typing import Any, Callable, Dict, List, Optional, Union

import diffusers
import numpy as np
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXDPMScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import (
    CogVideoXImageToVideoPipeline,
    retrieve_latents,
    retrieve_timesteps,
)
from diffusers.pipelines.cogvideo.pipeline_output import CogVideoXPipelineOutput
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor
from transformers import T5EncoderModel, T5Tokenizer

from ...models.das_transformer import DaSTransformer3DModel

logger = logging.get_logger(__name__)

# the negative prompt of the official inference (`models/pipelines.py::_infer`)
OFFICIAL_NEGATIVE_PROMPT = (
    "The video is not of a high quality, it has a low resolution. Watermark present in each frame. The background is "
    "solid. Strange body and strange trajectory. Distortion."
)
COMPONENT_NAMES = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")
OUTPUT_TYPES = ("np", "pt", "pil", "latent")
LOAD_OPTIONS = ("torch_dtype", "revision", "token", "cache_dir", "local_files_only")


def official_dynamic_guidance(guidance_scale: float, timestep: float, num_inference_steps: int) -> float:
    """The guidance the official DaS (and diffusers CogVideoX) loop applies at a step with `use_dynamic_cfg`.

    The cosine ramp is evaluated at the scheduler timestep (0..1000 scale) over the number of steps, as written.
    """
    progress = (num_inference_steps - timestep) / num_inference_steps
    return 1 + guidance_scale * (1 - math.cos(math.pi * progress**5.0)) / 2


class DaSPipeline(CogVideoXImageToVideoPipeline):
    """Diffusion as Shader: an image, a prompt and a 3D tracking video in, a video out.

    The tracking video (frames coloured by their points' frame-0 screen position and depth; see
    `video_diffusion_pack.control`) and its first frame are encoded by the pipeline's VAE, concatenated on
    channels, and steer the transformer's tracking branch; they are duplicated under classifier-free guidance,
    so guidance acts on the text only (as the official code).

    Value range: the tracking video and its first frame enter the VAE in [-1, 1], the range the model was
    trained with. The official demo scripts pass the tracking video in [0, 1] (and only its first frame in
    [-1, 1]); this pipeline does not reproduce that inconsistency.

    Args:
        tokenizer (`T5Tokenizer`), text_encoder (`T5EncoderModel`): T5-XXL.
        vae (`AutoencoderKLCogVideoX`): the CogVideoX 3D VAE.
        transformer (`DaSTransformer3DModel`): CogVideoX-5B-I2V with the tracking branch.
        scheduler (`CogVideoXDPMScheduler` or `CogVideoXDDIMScheduler`): the official inference uses DPM with
            trailing timestep spacing, which `from_pretrained` sets up.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        tokenizer: T5Tokenizer,
        text_encoder: T5EncoderModel,
        vae: AutoencoderKLCogVideoX,
        transformer: DaSTransformer3DModel,
        scheduler: Union[CogVideoXDPMScheduler, CogVideoXDDIMScheduler],
    ):
        super().__init__(tokenizer, text_encoder, vae, transformer, scheduler)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads the released `EXCAI/Diffusion-As-Shader` folder (or Hub id), or one written by `save_pretrained`.

        A folder without `model_index.json` is looked up in the pack's layouts: ComfyUI's `models` folder or a models
        root holding `das/Diffusion-As-Shader/` (where `vdp download` puts it).

        Each component is loaded with its own class; the transformer as `DaSTransformer3DModel` with its keys
        checked first. A scheduler that is not `CogVideoXDPMScheduler` (the released folder has DDIM) is replaced
        by DPM with trailing spacing from the same config, the official inference setting. Components can be passed
        as keyword arguments instead; other options: torch_dtype, revision, token, cache_dir, local_files_only.
        """
        unknown = set(kwargs) - set(COMPONENT_NAMES) - set(LOAD_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected arguments {sorted(unknown)}; allowed: {list(COMPONENT_NAMES + LOAD_OPTIONS)}")
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            from huggingface_hub import snapshot_download

            download = {key: kwargs[key] for key in LOAD_OPTIONS[1:] if key in kwargs}
            patterns = ["model_index.json"] + [f"{name}/*" for name in COMPONENT_NAMES if name not in kwargs]
            path = snapshot_download(path, allow_patterns=patterns, **download)
        elif not os.path.isfile(os.path.join(path, "model_index.json")):
            from ...weights.manifest import find_local_folder, load_manifest

            # ComfyUI's models folder, or a models root holding das/Diffusion-As-Shader/
            path = str(find_local_folder(path, load_manifest().entry_for_class(cls.__name__)))
        check_pipeline_folder(path, skip=[name for name in COMPONENT_NAMES if name in kwargs])
        dtype = kwargs.get("torch_dtype")
        components = {name: kwargs[name] for name in COMPONENT_NAMES if name in kwargs}
        if "tokenizer" not in components:
            components["tokenizer"] = T5Tokenizer.from_pretrained(path, subfolder="tokenizer")
        if "text_encoder" not in components:
            components["text_encoder"] = T5EncoderModel.from_pretrained(path, subfolder="text_encoder", dtype=dtype)
        if "vae" not in components:
            components["vae"] = AutoencoderKLCogVideoX.from_pretrained(path, subfolder="vae", torch_dtype=dtype)
        if "transformer" not in components:
            components["transformer"] = DaSTransformer3DModel.from_pretrained(path, subfolder="transformer", torch_dtype=dtype)
        if "scheduler" not in components:
            config = CogVideoXDPMScheduler.load_config(path, subfolder="scheduler")
            components["scheduler"] = CogVideoXDPMScheduler.from_config(config)
            if config.get("_class_name") != CogVideoXDPMScheduler.__name__:
                logger.info(f"{path}/scheduler is {config.get('_class_name')}; using CogVideoXDPMScheduler with "
                            f"trailing timestep spacing, as the official inference does")
                components["scheduler"] = CogVideoXDPMScheduler.from_config(config, timestep_spacing="trailing")
        pipeline = cls(**components)
        pipeline.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
        return pipeline

    # ------------------------------------------------------------------ inputs
    def _size_multiple(self) -> int:
        return self.vae_scale_factor_spatial * self.transformer.config.patch_size

    def check_das_inputs(
        self, image, prompt, negative_prompt, tracking_video, height, width, num_frames,
        num_inference_steps, guidance_scale, num_videos_per_prompt, output_type, latents, prompt_embeds,
        negative_prompt_embeds, callback_on_step_end_tensor_inputs,
    ) -> int:
        """Validates every argument before any model runs; returns the number of prompts."""
        config = self.transformer.config
        multiple = self._size_multiple()
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < multiple or value % multiple:
                raise ValueError(f"{name}={value!r} must be a positive multiple of {multiple}")
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1 or (
            num_frames - 1
        ) % self.vae_scale_factor_temporal:
            raise ValueError(
                f"num_frames={num_frames!r} must be 1 + a multiple of {self.vae_scale_factor_temporal} (the VAE's "
                f"temporal compression), e.g. 49"
            )
        if config.use_learned_positional_embeddings:
            scale = self.vae_scale_factor_spatial
            expected = (config.sample_height * scale, config.sample_width * scale)
            if (height, width) != expected or num_frames != config.sample_frames:
                raise ValueError(
                    f"height={height}, width={width}, num_frames={num_frames}: this transformer has learned positional "
                    f"embeddings for {expected[0]}x{expected[1]} and {config.sample_frames} frames only"
                )
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps!r} must be an integer >= 1")
        if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt={num_videos_per_prompt!r} must be an integer >= 1")
        if not isinstance(guidance_scale, (int, float)) or not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale={guidance_scale!r} must be a finite number")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} must be one of {OUTPUT_TYPES}")
        bad_inputs = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad_inputs:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs={bad_inputs} not allowed; choose from {self._callback_tensor_inputs}"
            )
        if image is None:
            raise ValueError("image is required: the first frame of the video (PIL image, tensor or array)")
        if tracking_video is None:
            raise ValueError("tracking_video is required: frames [F, H, W, 3] in 0..1 (see video_diffusion_pack.control)")

        if prompt_embeds is not None:
            if prompt is not None:
                raise ValueError("pass either prompt or prompt_embeds, not both")
            num_prompts = prompt_embeds.shape[0]
        else:
            prompts = [prompt] if isinstance(prompt, str) else prompt
            if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError(f"prompt={prompt!r} must be a string or a non-empty list of strings")
            num_prompts = len(prompts)
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            if not isinstance(negative_prompt, list) or not all(isinstance(p, str) for p in negative_prompt):
                raise ValueError(f"negative_prompt={negative_prompt!r} must be a string or a list of strings")
            if len(negative_prompt) != num_prompts:
                raise ValueError(f"negative_prompt has {len(negative_prompt)} entries for {num_prompts} prompts")
        if latents is not None:
            expected = (
                num_prompts * num_videos_per_prompt,
                (num_frames - 1) // self.vae_scale_factor_temporal + 1,
                config.in_channels // 2,
                height // self.vae_scale_factor_spatial,
                width // self.vae_scale_factor_spatial,
            )
            if tuple(latents.shape) != expected:
                raise ValueError(f"latents has shape {tuple(latents.shape)}; expected {expected}")
        return num_prompts

    @staticmethod
    def tracking_video_tensor(
        tracking_video, num_frames: int, height: int, width: int, name: str = "tracking_video"
    ) -> torch.Tensor:
        """`tracking_video` (tensor/array [F, H, W, 3] in 0..1 or uint8, or a list of PIL images) as float [F, H, W, 3].

        Raises ValueError when its frame count or size differs from the request, or values lie outside 0..1.
        """
        if isinstance(tracking_video, (list, tuple)):
            tracking_video = np.stack([np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame)
                                       for frame in tracking_video])
        video = tracking_video if isinstance(tracking_video, torch.Tensor) else torch.as_tensor(np.asarray(tracking_video))
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"{name} has shape {tuple(video.shape)}; expected [frames, height, width, 3]")
        if video.dtype == torch.uint8:
            video = video.float() / 255
        video = video.float()
        if video.shape[0] != num_frames:
            raise ValueError(f"{name} has {video.shape[0]} frames; num_frames={num_frames} were requested")
        if tuple(video.shape[1:3]) != (height, width):
            raise ValueError(
                f"{name} is {video.shape[1]}x{video.shape[2]} (HxW); height={height}, width={width} were requested"
            )
        if not torch.isfinite(video).all() or video.min() < 0 or video.max() > 1:
            raise ValueError(
                f"{name} values span {video.min().item():.3g}..{video.max().item():.3g}; expected 0..1 "
                f"(render it with video_diffusion_pack.control.render_tracking_video)"
            )
        return video

    # ------------------------------------------------------------------ latents
    def _scale_latents(self, latents: torch.Tensor) -> torch.Tensor:
        if self.vae.config.invert_scale_latents:
            return latents / self.vae_scaling_factor_image
        return latents * self.vae_scaling_factor_image

    def encode_first_frame(self, frame: torch.Tensor, num_latent_frames: int, generator) -> torch.Tensor:
        """[1, 3, H, W] in [-1, 1] -> scaled latents [1, F', C, h, w], the first latent frame followed by zeros."""
        latent = retrieve_latents(self.vae.encode(frame[:, :, None].to(self.vae.dtype)), generator)
        latent = self._scale_latents(latent.permute(0, 2, 1, 3, 4))
        padding = latent.new_zeros((1, num_latent_frames - 1) + tuple(latent.shape[2:]))
        return torch.cat([latent, padding], dim=1)

    def encode_tracking_video(self, video: torch.Tensor, generator) -> torch.Tensor:
        """[F, H, W, 3] in 0..1 -> scaled latents [1, F', C, h, w] (the VAE sees [-1, 1], the training range)."""
        pixels = (video * 2 - 1).permute(3, 0, 1, 2)[None].to(device=self._execution_device, dtype=self.vae.dtype)
        latents = retrieve_latents(self.vae.encode(pixels), generator)
        return self._scale_latents(latents.permute(0, 2, 1, 3, 4))

    def guidance_schedule(self, timesteps: torch.Tensor, guidance_scale: float, use_dynamic_cfg: bool) -> List[float]:
        """Guidance scale per step, planned on the host before the loop."""
        if not use_dynamic_cfg:
            return [float(guidance_scale)] * len(timesteps)
        return [official_dynamic_guidance(guidance_scale, t, len(timesteps)) for t in timesteps.cpu().tolist()]

    @torch.no_grad()
    def __call__(
        self,
        image=None,
        prompt: Union[str, List[str], None] = None,
        negative_prompt: Union[str, List[str], None] = OFFICIAL_NEGATIVE_PROMPT,
        height: int = 480,
        width: int = 720,
        num_frames: int = 49,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        use_dynamic_cfg: bool = True,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        output_type: str = "np",
        return_dict: bool = True,
        attention_kwargs: Optional[Dict[str, Any]] = None,
        callback_on_step_end: Optional[
            Union[Callable[[Any, int, int, Dict], Dict], PipelineCallback, MultiPipelineCallbacks]
        ] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
        max_sequence_length: Optional[int] = None,
        tracking_video=None,
        tracking_image=None,
    ):
        """Generates a video from an image and a prompt, following a tracking video.

        Args:
            image (PIL image, tensor or array): the first frame.
            prompt (`str` or `List[str]`): what the video shows.
            negative_prompt (`str` or `List[str]`, defaults to the official negative prompt): None for "".
            height (`int`, defaults to 480), width (`int`, defaults to 720), num_frames (`int`, defaults to 49): the
                released model's learned positional embeddings allow only these.
            num_inference_steps (`int`, defaults to 50), guidance_scale (`float`, defaults to 6),
                use_dynamic_cfg (`bool`, defaults to True): the official settings.
            num_videos_per_prompt (`int`, defaults to 1), eta (`float`, defaults to 0), generator, latents,
                prompt_embeds, negative_prompt_embeds, attention_kwargs: as diffusers' CogVideoX I2V pipeline.
            output_type (`str`, defaults to "np"): "np" ([B, F, H, W, 3] in 0..1), "pt", "pil" or "latent".
            return_dict (`bool`, defaults to True): return a `CogVideoXPipelineOutput`.
            callback_on_step_end, callback_on_step_end_tensor_inputs: per-step callback and the tensors it sees.
            max_sequence_length (`int`, *optional*): T5 tokens; defaults to the transformer's `max_text_seq_length`
                (226), which learned positional embeddings require.
            tracking_video: [F, H, W, 3] in 0..1 (tensor, array, uint8, or a list of PIL images), e.g. from
                `control.render_tracking_video`.
            tracking_image (*optional*): the tracking video's first frame as a separate image; defaults to
                `tracking_video[0]`.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        num_prompts = self.check_das_inputs(
            image, prompt, negative_prompt, tracking_video, height, width, num_frames,
            num_inference_steps, guidance_scale, num_videos_per_prompt, output_type, latents, prompt_embeds,
            negative_prompt_embeds, callback_on_step_end_tensor_inputs,
        )
        tracking_video = self.tracking_video_tensor(tracking_video, num_frames, height, width)
        if tracking_image is None:
            tracking_image = tracking_video[0]
        elif not isinstance(tracking_image, torch.Tensor):
            tracking_image = torch.as_tensor(np.asarray(
                tracking_image.convert("RGB") if hasattr(tracking_image, "convert") else tracking_image
            ))
        tracking_image = self.tracking_video_tensor(tracking_image[None], 1, height, width, name="tracking_image")
        max_sequence_length = max_sequence_length or self.transformer.config.max_text_seq_length
        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False
        do_cfg = guidance_scale > 1.0
        device = self._execution_device
        batch_size = num_prompts * num_videos_per_prompt

        # 1. prompts
        if isinstance(negative_prompt, str) or negative_prompt is None:
            negative_prompt = [negative_prompt or ""] * num_prompts
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt=prompt,
            negative_prompt=negative_prompt,
            do_classifier_free_guidance=do_cfg,
            num_videos_per_prompt=num_videos_per_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            max_sequence_length=max_sequence_length,
            device=device,
        )
        dtype = prompt_embeds.dtype

        # 2. schedule, planned on the host
        timesteps, num_inference_steps = retrieve_timesteps(self.scheduler, num_inference_steps, device)
        self._num_timesteps = len(timesteps)
        guidance_per_step = self.guidance_schedule(timesteps, guidance_scale, use_dynamic_cfg)

        # 3. latents, drawing from `generator` in the official order: image, noise, tracking image, tracking video
        num_latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        first_frame = self.video_processor.preprocess(image, height=height, width=width).to(device)
        image_latents = self.encode_first_frame(first_frame[:1], num_latent_frames, generator)
        latent_channels = self.transformer.config.in_channels // 2
        shape = (batch_size, num_latent_frames, latent_channels, height // self.vae_scale_factor_spatial,
                 width // self.vae_scale_factor_spatial)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma
        tracking_first = (tracking_image * 2 - 1).permute(0, 3, 1, 2).to(device)
        tracking_image_latents = self.encode_first_frame(tracking_first, num_latent_frames, generator)
        tracking_latents = self.encode_tracking_video(tracking_video, generator)
        conditions = torch.cat([tracking_latents, tracking_image_latents], dim=2).to(dtype)
        image_latents = image_latents.to(dtype).expand(batch_size, -1, -1, -1, -1)
        conditions = conditions.expand(batch_size, -1, -1, -1, -1)
        if do_cfg:
            image_latents = torch.cat([image_latents, image_latents])
            conditions = torch.cat([conditions, conditions])
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])

        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        image_rotary_emb = (
            self._prepare_rotary_positional_embeddings(height, width, num_latent_frames, device)
            if self.transformer.config.use_rotary_positional_embeddings
            else None
        )

        # 4. denoising; both guidance branches in one batched transformer call
        old_pred_original_sample = None
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                self._guidance_scale = guidance_per_step[i]
                model_input = torch.cat([latents, latents]) if do_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                model_input = torch.cat([model_input, image_latents], dim=2)
                # named like diffusers' CogVideoX loop, so that caches (FasterCache, ...) know the branch layout
                with self.transformer.cache_context(
                    "cond_uncond" if do_cfg else "cond", step_index=i, num_inference_steps=len(timesteps)
                ):
                    noise_pred = self.transformer(
                        hidden_states=model_input,
                        encoder_hidden_states=prompt_embeds,
                        timestep=t.expand(model_input.shape[0]),
                        image_rotary_emb=image_rotary_emb,
                        attention_kwargs=attention_kwargs,
                        tracking_maps=conditions,
                        return_dict=False,
                    )[0].float()
                if do_cfg:
                    uncond, cond = noise_pred.chunk(2)
                    noise_pred = uncond + guidance_per_step[i] * (cond - uncond)
                if isinstance(self.scheduler, CogVideoXDPMScheduler):
                    latents, old_pred_original_sample = self.scheduler.step(
                        noise_pred, old_pred_original_sample, t, timesteps[i - 1] if i > 0 else None, latents,
                        **extra_step_kwargs, return_dict=False,
                    )
                else:
                    latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
                latents = latents.to(dtype)

                if callback_on_step_end is not None:
                    step_locals = locals()
                    callback_kwargs = {k: step_locals[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs) or {}
                    latents = callback_outputs.pop("latents", latents)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = callback_outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                progress_bar.update()
        self._current_timestep = None

        # 5. frames
        if output_type == "latent":
            video = latents
        else:
            video = self.video_processor.postprocess_video(video=self.decode_latents(latents).float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video,)
        return CogVideoXPipelineOutput(frames=video)


def check_pipeline_folder(path: str, skip=()) -> None:
    """Raises a clear error when a DaS pipeline folder lacks model_index.json or a component folder."""
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise FileNotFoundError(f"model folder {path!r} has no model_index.json: not a diffusers pipeline folder")
    missing = [name for name in COMPONENT_NAMES if name not in skip and not os.path.isdir(os.path.join(path, name))]
    if missing:
        raise FileNotFoundError(
            f"model folder {path!r} lacks the component folder(s) {missing}; a DaS pipeline needs {list(COMPONENT_NAMES)}"
        )


# model_index.json written by save_pretrained names this class; diffusers resolves pipeline class names in its own
# namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it registered there
if not hasattr(diffusers, DaSPipeline.__name__):
    setattr(diffusers, DaSPipeline.__name__, DaSPipeline)
