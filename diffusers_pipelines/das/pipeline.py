"""Diffusion as Shader: image-to-video on CogVideoX-5B-I2V steered by a 3D tracking video, as a diffusers pipeline."""

from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import PIL.Image
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
    check_text_length,
    guidance_schedule,
    official_dynamic_guidance,  # noqa: F401  (re-exported: the ramp the pipeline applies)
    register_pipeline,
)
from .defaults import OFFICIAL, OFFICIAL_NEGATIVE_PROMPT  # noqa: F401  (re-exported)

logger = logging.get_logger(__name__)

COMPONENT_NAMES = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")


def first_frame_image(image):
    """The first frame as a PIL RGB image or a float tensor [1, 3, H, W] in 0..1, from a PIL image of any mode (RGBA
    loses its alpha, greyscale is repeated), or a tensor / array [H, W, C] (ComfyUI's layout), [C, H, W], [1, ...]
    or [H, W] with C in 1, 3, 4, float in 0..1 or uint8. ValueError naming what is wrong otherwise."""
    if isinstance(image, PIL.Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(image))
    elif isinstance(image, torch.Tensor):
        tensor = image.detach()
    else:
        raise ValueError(f"image of type {type(image).__name__} must be a PIL image, a tensor or an array (open a "
                         f"file with PIL.Image.open)")
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim == 3 and tensor.shape[-1] in (1, 3, 4) and tensor.shape[0] not in (1, 3, 4):
        tensor = tensor.permute(2, 0, 1)  # channels-last [H, W, C]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise ValueError(f"image has shape {tuple(image.shape)}; expected [H, W, 3], [3, H, W] (also 1 or 4 "
                         f"channels) or [H, W]")
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255
    elif not tensor.is_floating_point():
        raise ValueError(f"image has dtype {tensor.dtype}; expected float values in 0..1 or uint8")
    tensor = tensor.float()
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("image has non-finite values (NaN or inf)")
    if tensor.min() < 0 or tensor.max() > 1:
        raise ValueError(f"image values span {tensor.min().item():g}..{tensor.max().item():g}; expected 0..1 for float "
                         f"images (or uint8 0..255)")
    if tensor.shape[0] == 4:
        tensor = tensor[:3]
    elif tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    return tensor[None].contiguous()


class DaSPipeline(PlannedGuidanceMixin, CheckedLoraLoaderMixin, CogVideoXImageToVideoPipeline):
    """Diffusion as Shader: an image, a prompt and a 3D tracking video in, a video out.

    The tracking video (frames coloured by their points' frame-0 screen position and depth; see
    `video_diffusion_pack.control`) and its first frame are encoded by the pipeline's VAE, concatenated on
    channels, and steer the transformer's tracking branch; they are duplicated under classifier-free guidance,
    so guidance acts on the text only (as the official code).

    LoRAs load through diffusers' CogVideoX loader (`transformer.` keys, as `vdp train --model das --type lora`
    writes them): `load_lora_weights(path, adapter_name=...)`, `set_adapters`, `fuse_lora`, `unload_lora_weights`.

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
        root holding `das/Diffusion-As-Shader/` (where `vdp download` puts it). The folder is loaded by diffusers'
        `DiffusionPipeline.from_pretrained`, which takes every keyword it documents (`variant`, `torch_dtype` or a
        dict of them, `device_map`, components as objects, ...); the released index's transformer entry is read as
        `DaSTransformer3DModel` (see `diffusers_pipelines.loading`), whose keys are checked first. A scheduler that
        is not `CogVideoXDPMScheduler` (the released folder has DDIM) is replaced by DPM with trailing spacing from
        the same config, the official inference setting.
        """
        pipeline = load_pipeline(cls, pretrained_model_name_or_path, **kwargs)
        if "scheduler" not in kwargs and not isinstance(pipeline.scheduler, CogVideoXDPMScheduler):
            logger.info(f"the scheduler is {type(pipeline.scheduler).__name__}; using CogVideoXDPMScheduler with "
                        f"trailing timestep spacing, as the official inference does")
            scheduler = CogVideoXDPMScheduler.from_config(pipeline.scheduler.config, timestep_spacing="trailing")
            pipeline.register_modules(scheduler=scheduler)
        return pipeline

    def encode_prompt(
        self,
        prompt: Union[str, List[str], None] = None,
        negative_prompt: Union[str, List[str], None] = OFFICIAL_NEGATIVE_PROMPT,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        max_sequence_length: Optional[int] = None,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        """diffusers' CogVideoX `encode_prompt` with this pipeline's defaults: the official negative prompt (None for
        "") and the transformer's text length (226 without a transformer). Returns (prompt_embeds,
        negative_prompt_embeds)."""
        if max_sequence_length is None:
            max_sequence_length = self.transformer.config.max_text_seq_length if self.transformer is not None else 226
        prompt_embeds, negative_prompt_embeds = super().encode_prompt(
            prompt, negative_prompt, do_classifier_free_guidance, num_videos_per_prompt, prompt_embeds,
            negative_prompt_embeds, max_sequence_length, device, dtype,
        )
        return prompt_embeds, negative_prompt_embeds

    # ------------------------------------------------------------------ inputs
    def _size_multiple(self) -> int:
        return self.vae_scale_factor_spatial * self.transformer.config.patch_size

    def check_inputs(
        self,
        image,
        prompt,
        height,
        width,
        negative_prompt,
        callback_on_step_end_tensor_inputs,
        latents=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        *,
        tracking_video=None,
        tracking_image=None,
        num_frames=OFFICIAL.num_frames,
        num_inference_steps=OFFICIAL.num_inference_steps,
        guidance_scale=OFFICIAL.guidance_scale,
        use_dynamic_cfg=OFFICIAL.use_dynamic_cfg,
        num_videos_per_prompt=1,
        eta=0.0,
        output_type="np",
        generator=None,
        max_sequence_length=None,
    ) -> int:
        """Validates every argument of `__call__` before any model runs; returns the number of prompts.

        The leading arguments are those of diffusers' `CogVideoXImageToVideoPipeline.check_inputs`; the tracking
        video (and `tracking_image`, when given) is checked here too: its frame count, size and value range.
        Raises ValueError naming the argument.
        """
        return self._checked_inputs(
            image, prompt, height, width, negative_prompt, callback_on_step_end_tensor_inputs, latents,
            prompt_embeds, negative_prompt_embeds, tracking_video, tracking_image, num_frames, num_inference_steps,
            guidance_scale, use_dynamic_cfg, num_videos_per_prompt, eta, output_type, generator,
            max_sequence_length,
        )[0]

    def _checked_inputs(
        self, image, prompt, height, width, negative_prompt, callback_on_step_end_tensor_inputs, latents,
        prompt_embeds, negative_prompt_embeds, tracking_video, tracking_image, num_frames, num_inference_steps,
        guidance_scale, use_dynamic_cfg, num_videos_per_prompt, eta, output_type, generator, max_sequence_length,
    ):
        """`check_inputs`, returning (number of prompts, tracking video [F, H, W, 3], tracking image [1, H, W, 3])."""
        config = self.transformer.config
        multiple = self._size_multiple()
        for name, value in (("height", height), ("width", width)):
            check_multiple(name, value, multiple)
        temporal = self.vae_scale_factor_temporal
        check_integer("num_frames", num_frames)
        if (num_frames - 1) % temporal:
            raise ValueError(
                f"num_frames={num_frames!r} must be 1 + a multiple of {temporal} (the VAE's temporal compression), "
                f"e.g. 49"
            )
        if config.use_learned_positional_embeddings:
            scale = self.vae_scale_factor_spatial
            expected = (config.sample_height * scale, config.sample_width * scale)
            if (height, width) != expected or num_frames != config.sample_frames:
                raise ValueError(
                    f"height={height}, width={width}, num_frames={num_frames}: this transformer has learned positional "
                    f"embeddings for {expected[0]}x{expected[1]} and {config.sample_frames} frames only"
                )
        check_inference_steps(self.scheduler, num_inference_steps)
        check_integer("num_videos_per_prompt", num_videos_per_prompt)
        check_real("guidance_scale", guidance_scale)
        check_bool("use_dynamic_cfg", use_dynamic_cfg)
        check_real("eta", eta, minimum=0)
        check_output_type(output_type)
        if max_sequence_length is not None:
            check_integer("max_sequence_length", max_sequence_length)
            if config.use_learned_positional_embeddings and max_sequence_length != config.max_text_seq_length:
                raise ValueError(
                    f"max_sequence_length={max_sequence_length!r} must equal the transformer's max_text_seq_length="
                    f"{config.max_text_seq_length} (its learned position table has that many text positions)"
                )
        check_callback_tensor_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        if image is None:
            raise ValueError("image is required: the first frame of the video (PIL image, tensor or array)")
        first_frame_image(image)
        if tracking_video is None:
            raise ValueError("tracking_video is required: frames [F, H, W, 3] in 0..1 (see video_diffusion_pack.control)")

        num_prompts = check_prompt(prompt, prompt_embeds)
        check_prompt_text("prompt", prompt)
        check_negative_prompt(negative_prompt, num_prompts)
        check_text_length("prompt_embeds", prompt_embeds, config)
        check_text_length("negative_prompt_embeds", negative_prompt_embeds, config)
        if negative_prompt_embeds is not None:
            check_tensor("negative_prompt_embeds", negative_prompt_embeds, ndim=3)
            if prompt_embeds is not None and negative_prompt_embeds.shape != prompt_embeds.shape:
                raise ValueError(
                    f"negative_prompt_embeds has shape {tuple(negative_prompt_embeds.shape)}; it must equal "
                    f"prompt_embeds' {tuple(prompt_embeds.shape)}"
                )
        batch_size = num_prompts * num_videos_per_prompt
        check_latents(
            latents,
            (
                batch_size,
                (num_frames - 1) // temporal + 1,
                config.in_channels // 2,
                height // self.vae_scale_factor_spatial,
                width // self.vae_scale_factor_spatial,
            ),
            layout="[B, F, C, H, W]",
        )
        check_generator(generator, batch_size)
        pipeline_utils.check_memory(
            f"num_frames={num_frames} at {height}x{width}",
            pipeline_utils.cogvideox_estimate(self, batch_size * (2 if guidance_scale > 1 else 1), num_frames, height, width,
                                              branches=2),
            self._execution_device,
        )

        tracking_video = self.tracking_video_tensor(tracking_video, num_frames, height, width)
        if tracking_image is None:
            tracking_image = tracking_video[0]
        elif not isinstance(tracking_image, torch.Tensor):
            tracking_image = torch.as_tensor(np.asarray(
                tracking_image.convert("RGB") if hasattr(tracking_image, "convert") else tracking_image
            ))
        if tracking_image.ndim != 3:
            raise ValueError(f"tracking_image has shape {tuple(tracking_image.shape)}; expected [height, width, 3]")
        tracking_image = self.tracking_video_tensor(tracking_image[None], 1, height, width, name="tracking_image")
        return num_prompts, tracking_video, tracking_image

    @staticmethod
    def tracking_video_tensor(
        tracking_video, num_frames: int, height: int, width: int, name: str = "tracking_video"
    ) -> torch.Tensor:
        """`tracking_video` (tensor/array [F, H, W, 3] in 0..1 or uint8, or a list of PIL images) as float [F, H, W, 3].

        Raises ValueError when its frame count or size differs from the request, or values lie outside 0..1.
        """
        if isinstance(tracking_video, (list, tuple)):
            frames = [np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame) for frame in tracking_video]
            for index, frame in enumerate(frames):
                if frame.shape != frames[0].shape:
                    raise ValueError(f"{name}[{index}] has shape {frame.shape}; {name}[0] has {frames[0].shape} (every "
                                     f"frame of a list must have the same size)")
            tracking_video = np.stack(frames) if frames else np.zeros((0, height, width, 3), np.float32)
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
        if not torch.isfinite(video).all():
            raise ValueError(f"{name} has non-finite values (NaN or inf)")
        if video.min() < 0 or video.max() > 1:
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
        """Guidance scale per step, planned on the host before the loop (see `pipeline_utils.guidance_schedule`)."""
        return guidance_schedule(timesteps, guidance_scale, use_dynamic_cfg)

    @torch.no_grad()
    def __call__(
        self,
        image=None,
        prompt: Union[str, List[str], None] = None,
        negative_prompt: Union[str, List[str], None] = OFFICIAL.negative_prompt,
        height: int = OFFICIAL.height,
        width: int = OFFICIAL.width,
        num_frames: int = OFFICIAL.num_frames,
        num_inference_steps: int = OFFICIAL.num_inference_steps,
        guidance_scale: float = OFFICIAL.guidance_scale,
        use_dynamic_cfg: bool = OFFICIAL.use_dynamic_cfg,
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
        num_prompts, tracking_video, tracking_image = self._checked_inputs(
            image, prompt, height, width, negative_prompt, callback_on_step_end_tensor_inputs, latents,
            prompt_embeds, negative_prompt_embeds, tracking_video, tracking_image, num_frames, num_inference_steps,
            guidance_scale, use_dynamic_cfg, num_videos_per_prompt, eta, output_type, generator,
            max_sequence_length,
        )
        max_sequence_length = max_sequence_length or self.transformer.config.max_text_seq_length
        self._guidance_scale = guidance_scale
        self._applied_guidance_scale = None
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False
        do_cfg = guidance_scale > 1.0
        device = self._execution_device
        batch_size = num_prompts * num_videos_per_prompt

        # 1. prompts (diffusers' encode_prompt repeats the embeddings it computes per video, not those given)
        given_embeds = (prompt_embeds is not None, negative_prompt_embeds is not None)
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
        # the denoiser's dtype: the latents stay in it across steps (each step's update is computed in float32)
        dtype = self.transformer.dtype
        per_video = lambda embeds, given: (  # noqa: E731
            embeds.to(device=device, dtype=dtype).repeat_interleave(num_videos_per_prompt if given else 1, dim=0)
        )
        prompt_embeds = per_video(prompt_embeds, given_embeds[0])
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = per_video(negative_prompt_embeds, given_embeds[1])

        # 2. schedule, planned on the host
        timesteps, num_inference_steps = retrieve_timesteps(self.scheduler, num_inference_steps, device)
        self._num_timesteps = len(timesteps)
        guidance = GuidancePlan(timesteps, guidance_scale, use_dynamic_cfg)

        # 3. latents, drawing from `generator` in the official order: image, noise, tracking image, tracking video
        num_latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        first_frame = self.video_processor.preprocess(first_frame_image(image), height=height, width=width).to(device)
        image_latents = self.encode_first_frame(first_frame[:1], num_latent_frames, generator)
        latent_channels = self.transformer.config.in_channels // 2
        shape = (batch_size, num_latent_frames, latent_channels, height // self.vae_scale_factor_spatial,
                 width // self.vae_scale_factor_spatial)
        if latents is None:
            # a list of generators draws video i's noise from generator i (the image and tracking video, shared by
            # all videos, from the first)
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
                # a callback may have changed the base scale `_guidance_scale`: the plan follows it
                self._applied_guidance_scale = guidance.scale_at(i, self._guidance_scale)
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
                    noise_pred = uncond + self._applied_guidance_scale * (cond - uncond)
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
                    callback_outputs = pipeline_utils.check_callback_outputs(
                        callback_on_step_end(self, i, t, callback_kwargs), latents)
                    latents = callback_outputs.pop("latents", latents).to(dtype)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = callback_outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                progress_bar.update()
        self._current_timestep = self._applied_guidance_scale = None

        # 5. frames
        if output_type == "latent":
            video = latents
        else:
            video = self.video_processor.postprocess_video(video=self.decode_latents(latents).float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video,)
        return CogVideoXPipelineOutput(frames=video)


def check_pipeline_folder(path: str, skip=()) -> dict:
    """`pipeline_utils.check_pipeline_folder` for a DaS folder: FileNotFoundError naming a missing model_index.json
    or component folder (those in `skip` need none), ValueError for an invalid model_index.json; returns the index."""
    return pipeline_utils.check_pipeline_folder(path, COMPONENT_NAMES, DaSPipeline.__name__, skip=skip)


# model_index.json written by save_pretrained names this class: `DiffusionPipeline.from_pretrained(folder)` finds it
# as diffusers.DaSPipeline (it is diffusers.pipelines.DaSPipeline as well)
register_pipeline(DaSPipeline)
