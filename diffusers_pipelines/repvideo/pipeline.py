"""RepVideo text-to-video (CogVideoX-2B with cross-layer aggregation) as a diffusers pipeline.

`CogVideoXRepVideoPipeline` is diffusers' `CogVideoXPipeline` with the released RepVideo inference settings as
defaults, every argument checked before a model runs, `num_videos_per_prompt` honoured (diffusers' CogVideoX
pipeline sets it to 1), and the aggregation switchable (`enable_repvideo` / `disable_repvideo`). The denoising
loop, prompt encoding, dynamic guidance and decoding are diffusers' own.
"""

import math
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXDPMScheduler, CogVideoXPipeline
from diffusers.pipelines.cogvideo.pipeline_output import CogVideoXPipelineOutput
from transformers import T5EncoderModel, T5Tokenizer

from ...models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel
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

# the official inference settings (see `defaults.OFFICIAL`), as `__call__`'s keyword arguments, and the frame rate
# the official code saves at
OFFICIAL_DEFAULTS = dict(
    height=OFFICIAL.height, width=OFFICIAL.width, num_frames=OFFICIAL.num_frames,
    num_inference_steps=OFFICIAL.num_inference_steps, guidance_scale=OFFICIAL.guidance_scale,
    use_dynamic_cfg=OFFICIAL.use_dynamic_cfg,
)
OFFICIAL_FPS = int(OFFICIAL.fps)
# `check_inputs` arguments diffusers' CogVideoXPipeline does not pass (its `__call__` calls `check_inputs` with its
# own seven, after ours has checked them all): not checked when not given
_NOT_GIVEN = object()


class CogVideoXRepVideoPipeline(CheckedLoraLoaderMixin, CogVideoXPipeline):
    """RepVideo text-to-video: T5 prompt -> CogVideoX-2B transformer with gated cross-layer aggregation -> 3D VAE.

    LoRAs load through diffusers' CogVideoX loader (`transformer.` keys, as `vdp train --model repvideo --type lora`
    and diffusers' `train_cogvideox_lora.py` write them): `load_lora_weights(path, adapter_name=...)`,
    `set_adapters`, `fuse_lora`, `unload_lora_weights`.

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
        if transformer is not None and not isinstance(transformer, CogVideoXRepVideoTransformer3DModel):
            raise TypeError(
                f"transformer={type(transformer).__name__} must be a CogVideoXRepVideoTransformer3DModel; convert the "
                f"released SAT checkpoint with convert_repvideo_sat_checkpoint, or wrap a stock CogVideoX transformer "
                f"with CogVideoXRepVideoTransformer3DModel.from_cogvideox"
            )
        super().__init__(tokenizer, text_encoder, vae, transformer, scheduler)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads a folder written by `vdp convert repvideo` or `save_pretrained` (or one holding the pack's weights
        layout, or a Hub id) with diffusers' `DiffusionPipeline.from_pretrained` and every keyword it documents;
        the transformer entry is read as `CogVideoXRepVideoTransformer3DModel` (see `diffusers_pipelines.loading`)."""
        return load_pipeline(cls, pretrained_model_name_or_path, **kwargs)

    def enable_repvideo(self) -> None:
        """Switches the cross-layer aggregation on (the transformer's trained gates are kept)."""
        self.transformer.enable_repvideo()

    def disable_repvideo(self) -> None:
        """Switches the aggregation off and drops the gates: the transformer computes stock CogVideoX."""
        self.transformer.disable_repvideo()

    @property
    def guidance_scale(self) -> float:
        """The guidance scale: while the loop runs under dynamic guidance, the ramp's value at the current step
        (diffusers' CogVideoX expression, to the bit); otherwise the base scale `_guidance_scale`, which the caller
        passed and a step-end callback may change (the steps after it follow it: diffusers' own dynamic loop would
        overwrite the change with the ramp over the scale first passed)."""
        t = self._current_timestep
        if not getattr(self, "_dynamic_cfg", False) or t is None:
            return self._guidance_scale
        steps = self._num_timesteps
        return 1 + self._guidance_scale * ((1 - math.cos(math.pi * ((steps - float(t)) / steps) ** 5.0)) / 2)

    def _size_multiple(self) -> int:
        return self.vae_scale_factor_spatial * self.transformer.config.patch_size

    def check_inputs(
        self,
        prompt,
        height,
        width,
        negative_prompt,
        callback_on_step_end_tensor_inputs,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        *,
        num_frames=_NOT_GIVEN,
        num_inference_steps=_NOT_GIVEN,
        guidance_scale=_NOT_GIVEN,
        use_dynamic_cfg=_NOT_GIVEN,
        num_videos_per_prompt=1,
        eta=_NOT_GIVEN,
        latents=None,
        output_type=_NOT_GIVEN,
        max_sequence_length=_NOT_GIVEN,
        generator=None,
    ) -> int:
        """Validates the arguments of `__call__` before any model runs; returns the number of prompts.

        The leading arguments are those of diffusers' `CogVideoXPipeline.check_inputs` (whose `__call__` calls it
        with only those); the keyword-only ones are checked when given. Raises ValueError naming the argument.
        """
        config = self.transformer.config
        multiple = self._size_multiple()
        for name, value in (("height", height), ("width", width)):
            check_multiple(name, value, multiple)
        temporal = self.vae_scale_factor_temporal
        if num_frames is not _NOT_GIVEN:
            check_integer("num_frames", num_frames)
            if (num_frames - 1) % temporal:
                raise ValueError(
                    f"num_frames={num_frames!r} must be 1 + a multiple of {temporal} (the VAE's temporal "
                    f"compression), e.g. 49"
                )
        if num_inference_steps is not _NOT_GIVEN:
            check_inference_steps(self.scheduler, num_inference_steps)
        check_integer("num_videos_per_prompt", num_videos_per_prompt)
        if guidance_scale is not _NOT_GIVEN:
            check_real("guidance_scale", guidance_scale)
        if use_dynamic_cfg is not _NOT_GIVEN:
            check_bool("use_dynamic_cfg", use_dynamic_cfg)
        if eta is not _NOT_GIVEN:
            check_real("eta", eta, minimum=0)
        if output_type is not _NOT_GIVEN:
            check_output_type(output_type)
        if max_sequence_length is not _NOT_GIVEN and max_sequence_length != config.max_text_seq_length:
            raise ValueError(
                f"max_sequence_length={max_sequence_length!r} must equal the transformer's max_text_seq_length="
                f"{config.max_text_seq_length} (its position table has that many text positions)"
            )
        check_callback_tensor_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        num_prompts = check_prompt(prompt, prompt_embeds)
        check_prompt_text("prompt", prompt)
        text_shape = (config.max_text_seq_length, config.text_embed_dim)
        if prompt_embeds is not None and tuple(prompt_embeds.shape[1:]) != text_shape:
            raise ValueError(
                f"prompt_embeds has shape {tuple(prompt_embeds.shape)}; expected [B, {text_shape[0]}, {text_shape[1]}]"
            )
        if negative_prompt_embeds is not None:
            check_tensor("negative_prompt_embeds", negative_prompt_embeds, ndim=3)
            expected = tuple(prompt_embeds.shape) if prompt_embeds is not None else (num_prompts,) + text_shape
            if tuple(negative_prompt_embeds.shape) != expected:
                raise ValueError(
                    f"negative_prompt_embeds has shape {tuple(negative_prompt_embeds.shape)}; it must equal "
                    f"prompt_embeds' {expected}"
                )
        check_negative_prompt(negative_prompt, num_prompts)
        batch_size = num_prompts * num_videos_per_prompt
        if latents is not None:
            frames = num_frames if num_frames is not _NOT_GIVEN else (latents.shape[1] - 1) * temporal + 1
            check_latents(
                latents,
                (
                    batch_size,
                    (frames - 1) // temporal + 1,
                    config.in_channels,
                    height // self.vae_scale_factor_spatial,
                    width // self.vae_scale_factor_spatial,
                ),
                layout="[B, F, C, H, W]",
            )
        check_generator(generator, batch_size)
        if _NOT_GIVEN not in (num_frames, height, width):
            cfg = 2 if guidance_scale is not _NOT_GIVEN and guidance_scale > 1 else 1
            pipeline_utils.check_memory(
                f"num_frames={num_frames} at {height}x{width}",
                pipeline_utils.cogvideox_estimate(self, batch_size * cfg, num_frames, height, width),
                self._execution_device,
            )
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
        height: int = OFFICIAL.height,
        width: int = OFFICIAL.width,
        num_frames: int = OFFICIAL.num_frames,
        num_inference_steps: int = OFFICIAL.num_inference_steps,
        timesteps: Optional[List[int]] = None,
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
        callback_on_step_end: Optional[Callable] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
        max_sequence_length: Optional[int] = None,
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
            max_sequence_length (`int`, *optional*): T5 tokens; must equal the transformer's text length, the
                default (226 for the released model).

        Returns:
            `CogVideoXPipelineOutput` with `frames` (or a tuple when `return_dict=False`). Save at `OFFICIAL_FPS`.
        """
        if max_sequence_length is None:
            max_sequence_length = self.transformer.config.max_text_seq_length
        self.check_inputs(
            prompt, height, width, negative_prompt, callback_on_step_end_tensor_inputs, prompt_embeds,
            negative_prompt_embeds, num_frames=num_frames, num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, use_dynamic_cfg=use_dynamic_cfg,
            num_videos_per_prompt=num_videos_per_prompt, eta=eta, latents=latents, output_type=output_type,
            max_sequence_length=max_sequence_length, generator=generator,
        )
        # diffusers' loop keeps the latents in the prompt embeddings' dtype: make that the denoiser's, whatever the
        # text encoder's (each step's update is computed in float32)
        dtype = self.transformer.dtype
        device = self._execution_device
        if prompt_embeds is None and getattr(self.text_encoder, "dtype", dtype) != dtype:
            prompt_embeds, encoded_negative = self.encode_prompt(
                prompt=prompt,
                negative_prompt=negative_prompt,
                do_classifier_free_guidance=guidance_scale > 1 and negative_prompt_embeds is None,
                num_videos_per_prompt=1,
                max_sequence_length=max_sequence_length,
                device=device,
                dtype=dtype,
            )
            prompt, negative_prompt = None, None
            negative_prompt_embeds = negative_prompt_embeds if negative_prompt_embeds is not None else encoded_negative
        self._dynamic_cfg = use_dynamic_cfg
        cast = lambda tensor: tensor if tensor is None else tensor.to(device=device, dtype=dtype)  # noqa: E731
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
            # the ramp is applied by `guidance_scale` over the base a callback may change (diffusers' dynamic loop
            # would rebuild it from the scale passed here at every step)
            use_dynamic_cfg=False,
            eta=eta,
            generator=generator,
            latents=cast(latents),
            prompt_embeds=cast(self._per_video(prompt_embeds, num_videos_per_prompt)),
            negative_prompt_embeds=cast(self._per_video(negative_prompt_embeds, num_videos_per_prompt)),
            output_type=output_type,
            return_dict=return_dict,
            attention_kwargs=attention_kwargs,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            max_sequence_length=max_sequence_length,
        )


# model_index.json written by save_pretrained names this class: `DiffusionPipeline.from_pretrained(folder)` finds it
# as diffusers.CogVideoXRepVideoPipeline (it is diffusers.pipelines.CogVideoXRepVideoPipeline as well)
register_pipeline(CogVideoXRepVideoPipeline)
