"""RepVideo text-to-video (CogVideoX-2B with cross-layer aggregation) as a diffusers pipeline.

`CogVideoXRepVideoPipeline` is diffusers' `CogVideoXPipeline` with the released RepVideo inference settings as
defaults, every argument checked before a model runs, `num_videos_per_prompt` honoured (diffusers' CogVideoX
pipeline sets it to 1), and the aggregation switchable (`enable_repvideo` / `disable_repvideo`). The denoising
loop, prompt encoding, dynamic guidance and decoding are diffusers' own.
"""

import math
from typing import Any, Callable, Dict, List, Optional, Union

import diffusers
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXDPMScheduler, CogVideoXPipeline
from diffusers.pipelines.cogvideo.pipeline_output import CogVideoXPipelineOutput
from transformers import T5EncoderModel, T5Tokenizer

from ...models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

# the official inference (sat/configs/inference.yaml, sat/configs/cogvideox_2b.yaml, sat/sample_video.py):
# 480x720, 13 latent frames (49 frames), 50 DPM++ steps, DynamicCFG(scale=6, exp=5), saved at 8 fps
OFFICIAL_DEFAULTS = dict(
    height=480, width=720, num_frames=49, num_inference_steps=50, guidance_scale=6.0, use_dynamic_cfg=True
)
OFFICIAL_FPS = 8
OUTPUT_TYPES = ("np", "pt", "pil", "latent")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class CogVideoXRepVideoPipeline(CogVideoXPipeline):
    """RepVideo text-to-video: T5 prompt -> CogVideoX-2B transformer with gated cross-layer aggregation -> 3D VAE.

    Args:
        tokenizer (`T5Tokenizer`), text_encoder (`T5EncoderModel`): T5-v1.1-XXL of `THUDM/CogVideoX-2b`.
        vae (`AutoencoderKLCogVideoX`): the CogVideoX 3D VAE.
        transformer (`CogVideoXRepVideoTransformer3DModel`): converted from the released SAT checkpoint with
            `convert_repvideo_sat_checkpoint`.
        scheduler (`CogVideoXDPMScheduler` or `CogVideoXDDIMScheduler`): the official sampler is DPM++ on the
            zero-terminal-SNR schedule with snr_shift_scale 3, i.e. `CogVideoXDPMScheduler`.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(
        self,
        tokenizer: T5Tokenizer,
        text_encoder: T5EncoderModel,
        vae: AutoencoderKLCogVideoX,
        transformer: CogVideoXRepVideoTransformer3DModel,
        scheduler: Union[CogVideoXDPMScheduler, CogVideoXDDIMScheduler],
    ):
        if not isinstance(transformer, CogVideoXRepVideoTransformer3DModel):
            raise TypeError(
                f"transformer={type(transformer).__name__} must be a CogVideoXRepVideoTransformer3DModel; convert the "
                f"released SAT checkpoint with convert_repvideo_sat_checkpoint, or wrap a stock CogVideoX transformer "
                f"with CogVideoXRepVideoTransformer3DModel.from_cogvideox"
            )
        super().__init__(tokenizer, text_encoder, vae, transformer, scheduler)

    def enable_repvideo(self) -> None:
        """Switches the cross-layer aggregation on (the transformer's trained gates are kept)."""
        self.transformer.enable_repvideo()

    def disable_repvideo(self) -> None:
        """Switches the aggregation off and drops the gates: the transformer computes stock CogVideoX."""
        self.transformer.disable_repvideo()

    def _size_multiple(self) -> int:
        return self.vae_scale_factor_spatial * self.transformer.config.patch_size

    def check_repvideo_inputs(
        self, prompt, negative_prompt, height, width, num_frames, num_inference_steps, guidance_scale,
        num_videos_per_prompt, latents, prompt_embeds, negative_prompt_embeds, output_type,
        callback_on_step_end_tensor_inputs, max_sequence_length,
    ) -> int:
        """Validates every argument before any model runs; returns the number of prompts."""
        config = self.transformer.config
        multiple = self._size_multiple()
        for name, value in (("height", height), ("width", width)):
            if not _is_int(value, minimum=multiple) or value % multiple:
                raise ValueError(f"{name}={value!r} must be a positive multiple of {multiple}")
        temporal = self.vae_scale_factor_temporal
        if not _is_int(num_frames, minimum=1) or (num_frames - 1) % temporal:
            raise ValueError(
                f"num_frames={num_frames!r} must be 1 + a multiple of {temporal} (the VAE's temporal compression), "
                f"e.g. 49"
            )
        if not _is_int(num_inference_steps, minimum=1):
            raise ValueError(f"num_inference_steps={num_inference_steps!r} must be an integer >= 1")
        if not _is_int(num_videos_per_prompt, minimum=1):
            raise ValueError(f"num_videos_per_prompt={num_videos_per_prompt!r} must be an integer >= 1")
        finite = isinstance(guidance_scale, (int, float)) and math.isfinite(guidance_scale)
        if isinstance(guidance_scale, bool) or not finite:
            raise ValueError(f"guidance_scale={guidance_scale!r} must be a finite number")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} must be one of {OUTPUT_TYPES}")
        if max_sequence_length != config.max_text_seq_length:
            raise ValueError(
                f"max_sequence_length={max_sequence_length!r} must equal the transformer's max_text_seq_length="
                f"{config.max_text_seq_length} (its position table has that many text positions)"
            )
        bad_inputs = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad_inputs:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs={bad_inputs} not allowed; choose from {self._callback_tensor_inputs}"
            )
        if prompt_embeds is not None:
            if prompt is not None:
                raise ValueError("pass either prompt or prompt_embeds, not both")
            expected = (max_sequence_length, config.text_embed_dim)
            if prompt_embeds.ndim != 3 or tuple(prompt_embeds.shape[1:]) != expected:
                raise ValueError(
                    f"prompt_embeds has shape {tuple(prompt_embeds.shape)}; expected [B, {expected[0]}, {expected[1]}]"
                )
            if negative_prompt_embeds is not None and negative_prompt_embeds.shape != prompt_embeds.shape:
                raise ValueError(
                    f"negative_prompt_embeds has shape {tuple(negative_prompt_embeds.shape)}; it must equal "
                    f"prompt_embeds' {tuple(prompt_embeds.shape)}"
                )
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
                (num_frames - 1) // temporal + 1,
                config.in_channels,
                height // self.vae_scale_factor_spatial,
                width // self.vae_scale_factor_spatial,
            )
            if tuple(latents.shape) != expected:
                raise ValueError(f"latents has shape {tuple(latents.shape)}; expected {expected} [B, F, C, H, W]")
        return num_prompts

    @staticmethod
    def _per_video(value, count: int):
        """A prompt, prompt list or embedding batch repeated so that each prompt appears `count` times in a row."""
        if value is None or count == 1:
            return value
        if isinstance(value, str):
            return [value] * count
        if isinstance(value, torch.Tensor):
            return value.repeat_interleave(count, dim=0)
        return [item for item in value for _ in range(count)]

    @torch.no_grad()
    def __call__(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        height: int = OFFICIAL_DEFAULTS["height"],
        width: int = OFFICIAL_DEFAULTS["width"],
        num_frames: int = OFFICIAL_DEFAULTS["num_frames"],
        num_inference_steps: int = OFFICIAL_DEFAULTS["num_inference_steps"],
        timesteps: Optional[List[int]] = None,
        guidance_scale: float = OFFICIAL_DEFAULTS["guidance_scale"],
        use_dynamic_cfg: bool = OFFICIAL_DEFAULTS["use_dynamic_cfg"],
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        output_type: str = "np",
        return_dict: bool = True,
        attention_kwargs: Optional[Dict[str, Any]] = None,
        callback_on_step_end: Optional[Callable] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
        max_sequence_length: int = 226,
    ) -> Union[CogVideoXPipelineOutput, tuple]:
        """Generates `num_videos_per_prompt` videos per prompt; defaults are the official RepVideo inference.

        Args:
            prompt (`str` or `List[str]`): text prompt(s); or pass `prompt_embeds`.
            negative_prompt (`str` or `List[str]`, *optional*): the official inference uses the empty prompt.
            height, width (`int`, defaults to 480, 720): frame size, multiples of 16.
            num_frames (`int`, defaults to 49): 1 + a multiple of 4 (13 latent frames at 49).
            num_inference_steps (`int`, defaults to 50), guidance_scale (`float`, defaults to 6.0),
            use_dynamic_cfg (`bool`, defaults to True): the official DynamicCFG(scale=6, exp=5) ramp.
            num_videos_per_prompt (`int`, defaults to 1), generator, latents, prompt_embeds,
            negative_prompt_embeds, eta, timesteps, attention_kwargs, callback_on_step_end,
            callback_on_step_end_tensor_inputs: as for diffusers' `CogVideoXPipeline`.
            output_type (`str`, defaults to "np"): "np", "pt", "pil" or "latent".
            max_sequence_length (`int`, defaults to 226): T5 tokens; must equal the transformer's text length.

        Returns:
            `CogVideoXPipelineOutput` with `frames` (or a tuple when `return_dict=False`). Save at `OFFICIAL_FPS`.
        """
        self.check_repvideo_inputs(
            prompt, negative_prompt, height, width, num_frames, num_inference_steps, guidance_scale,
            num_videos_per_prompt, latents, prompt_embeds, negative_prompt_embeds, output_type,
            callback_on_step_end_tensor_inputs, max_sequence_length,
        )
        return super().__call__(
            prompt=self._per_video(prompt, num_videos_per_prompt),
            # a single negative prompt is broadcast by diffusers to every video
            negative_prompt=negative_prompt if isinstance(negative_prompt, str) else self._per_video(
                negative_prompt, num_videos_per_prompt
            ),
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            timesteps=timesteps,
            guidance_scale=guidance_scale,
            use_dynamic_cfg=use_dynamic_cfg,
            eta=eta,
            generator=generator,
            latents=latents,
            prompt_embeds=self._per_video(prompt_embeds, num_videos_per_prompt),
            negative_prompt_embeds=self._per_video(negative_prompt_embeds, num_videos_per_prompt),
            output_type=output_type,
            return_dict=return_dict,
            attention_kwargs=attention_kwargs,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            max_sequence_length=max_sequence_length,
        )


# model_index.json written by save_pretrained names this class; diffusers resolves pipeline class names in its own
# namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it registered there
if not hasattr(diffusers, CogVideoXRepVideoPipeline.__name__):
    setattr(diffusers, CogVideoXRepVideoPipeline.__name__, CogVideoXRepVideoPipeline)
