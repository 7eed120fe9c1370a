"""Text-to-video with Vchitect-2.0 (and RepVideo's cross-layer aggregation as a transformer switch), as a diffusers pipeline."""

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

import diffusers
import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from ...models.vchitect_transformer import VchitectXLTransformer3DModel

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
OUTPUT_TYPES = ("np", "pt", "pil", "latent")
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


def official_dynamic_guidance(guidance_scale: float, timestep: float, num_inference_steps: int) -> float:
    """The guidance scale the official Vchitect-2.0 loop uses at a step (its cosine ramp, reproduced as written).

    The official code evaluates the CogVideoX cosine ramp at the scheduler timestep on the 0..1000 scale instead
    of the step index, so the value jumps between 1 and 1 + guidance_scale from step to step.
    """
    progress = (num_inference_steps - timestep) / num_inference_steps
    return 1 + guidance_scale * (1 - math.cos(math.pi * progress**5.0)) / 2


class VchitectRepVideoPipeline(DiffusionPipeline):
    """Vchitect-2.0 text-to-video; RepVideo's cross-layer aggregation via `transformer.enable_repvideo()`.

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
        self.max_sequence_length_t5 = 256

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads a pipeline folder (ours, or the official Vchitect-2.0 layout whose model_index names SD3 classes).

        The folder may also be one holding the pack's weights layout, as `vdp download` writes it: ComfyUI's
        folder, its ``models`` folder, or a models root with ``vchitect/Vchitect-2.0-2B/``.
        The transformer is always loaded as `VchitectXLTransformer3DModel` with its keys checked against the
        checkpoint; a missing component folder, missing or unexpected keys and corrupt weight files are reported.
        """
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            download_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
            path = cls.download(path, **download_kwargs)
        elif not os.path.isfile(os.path.join(path, "model_index.json")):
            path = str(_official_weights_folder(path))
        check_pipeline_folder(path)
        if "transformer" not in kwargs:
            kwargs["transformer"] = VchitectXLTransformer3DModel.from_pretrained(
                path, subfolder="transformer", torch_dtype=kwargs.get("torch_dtype")
            )
        with _loadable_view(path) as loadable_path:
            pipe = super().from_pretrained(loadable_path, **kwargs)
        pipe.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
        return pipe

    # ------------------------------------------------------------------ prompts
    def _clip_embeds(self, prompts: List[str], index: int, device: torch.device):
        tokenizer, encoder = (self.tokenizer, self.text_encoder) if index == 0 else (self.tokenizer_2, self.text_encoder_2)
        ids = tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        output = encoder(ids.to(device), output_hidden_states=True)
        return output.hidden_states[-2], output.text_embeds

    def _t5_embeds(self, prompts: List[str], device: torch.device) -> torch.Tensor:
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
    def encode_prompt(self, prompts: List[str], device: Optional[torch.device] = None):
        """Prompt embeddings as the official code builds them.

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
        negative_prompt,
        height,
        width,
        num_frames,
        num_inference_steps,
        guidance_scale,
        use_dynamic_cfg,
        num_videos_per_prompt,
        output_type,
        latents,
        prompt_embeds,
        pooled_prompt_embeds,
        negative_prompt_embeds,
        negative_pooled_prompt_embeds,
        callback_on_step_end_tensor_inputs,
    ) -> int:
        """Validates every argument before any model runs; returns the number of prompts."""
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
                raise ValueError(f"{name}={value} must be a positive multiple of {SIZE_MULTIPLE}")
        max_pixels = self.transformer.config.pos_embed_max_size * self.transformer.config.patch_size * self.vae_scale_factor
        for name, value in (("height", height), ("width", width)):
            if value > max_pixels:
                raise ValueError(f"{name}={value} exceeds the transformer's position table ({max_pixels} pixels)")
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames={num_frames} must be an integer >= 1")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps} must be an integer >= 1")
        if not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt={num_videos_per_prompt} must be an integer >= 1")
        if use_dynamic_cfg and guidance_scale < 0:
            raise ValueError(f"guidance_scale={guidance_scale} must be >= 0 with use_dynamic_cfg=True")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} must be one of {OUTPUT_TYPES}")
        bad_inputs = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad_inputs:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs={bad_inputs} not allowed; choose from {self._callback_tensor_inputs}"
            )

        if prompt_embeds is not None:
            if prompt is not None:
                raise ValueError("pass either prompt or prompt_embeds, not both")
            if pooled_prompt_embeds is None:
                raise ValueError("prompt_embeds needs pooled_prompt_embeds as well")
            num_prompts = prompt_embeds.shape[0]
        else:
            if isinstance(prompt, str):
                prompt = [prompt]
            if not isinstance(prompt, list) or not prompt or not all(isinstance(p, str) for p in prompt):
                raise ValueError(f"prompt={prompt!r} must be a string or a non-empty list of strings")
            num_prompts = len(prompt)
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            if not isinstance(negative_prompt, list) or not all(isinstance(p, str) for p in negative_prompt):
                raise ValueError(f"negative_prompt={negative_prompt!r} must be a string or a list of strings")
            if len(negative_prompt) != num_prompts:
                raise ValueError(
                    f"negative_prompt has {len(negative_prompt)} entries but there are {num_prompts} prompts;"
                    " give one negative prompt per prompt (or a single string)"
                )
        if (negative_prompt_embeds is None) != (negative_pooled_prompt_embeds is None):
            raise ValueError("negative_prompt_embeds and negative_pooled_prompt_embeds go together")

        if latents is not None:
            expected = (
                num_prompts * num_videos_per_prompt,
                num_frames,
                self.transformer.config.in_channels,
                height // self.vae_scale_factor,
                width // self.vae_scale_factor,
            )
            if tuple(latents.shape) != expected:
                raise ValueError(f"latents has shape {tuple(latents.shape)}; expected {expected}")
        return num_prompts

    # ------------------------------------------------------------------ sampling
    def prepare_latents(self, batch_size, num_frames, height, width, device, generator, latents=None):
        """Initial noise [B, F, C, H/8, W/8] in float32 (the sampler state stays float32 whatever the model dtype)."""
        if latents is not None:
            return latents.to(device=device, dtype=torch.float32)
        shape = (
            batch_size,
            num_frames,
            self.transformer.config.in_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)

    def guidance_schedule(self, timesteps: torch.Tensor, guidance_scale: float, use_dynamic_cfg: bool) -> List[float]:
        """Guidance scale per step, planned on the host before the loop."""
        if not use_dynamic_cfg:
            return [float(guidance_scale)] * len(timesteps)
        steps = len(timesteps)
        return [official_dynamic_guidance(guidance_scale, t, steps) for t in timesteps.cpu().tolist()]

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
    def guidance_scale(self):
        return self._guidance_scale

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
        height: int = 432,
        width: int = 768,
        num_frames: int = 40,
        num_inference_steps: int = 100,
        guidance_scale: float = 7.5,
        use_dynamic_cfg: bool = False,
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
            generator (`torch.Generator`, *optional*): seeds the initial noise.
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
            negative_prompt,
            height,
            width,
            num_frames,
            num_inference_steps,
            guidance_scale,
            use_dynamic_cfg,
            num_videos_per_prompt,
            output_type,
            latents,
            prompt_embeds,
            pooled_prompt_embeds,
            negative_prompt_embeds,
            negative_pooled_prompt_embeds,
            callback_on_step_end_tensor_inputs,
        )
        if not isinstance(decode_chunk_size, int) or decode_chunk_size < 1:
            raise ValueError(f"decode_chunk_size={decode_chunk_size} must be an integer >= 1")
        if not isinstance(cfg_batching, bool):
            raise ValueError(f"cfg_batching={cfg_batching!r} must be True or False")
        self._guidance_scale = guidance_scale
        self._interrupt = False
        do_cfg = guidance_scale > 0 if use_dynamic_cfg else guidance_scale > 1
        device = self._execution_device
        dtype = self.transformer.dtype

        # 1. prompts
        if prompt_embeds is None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds, pooled_prompt_embeds = self.encode_prompt(prompts, device)
        if do_cfg and negative_prompt_embeds is None:
            negatives = negative_prompt if isinstance(negative_prompt, list) else [negative_prompt or ""] * num_prompts
            negative_prompt_embeds, negative_pooled_prompt_embeds = self.encode_prompt(negatives, device)
        repeat = lambda t: t.to(device=device, dtype=dtype).repeat_interleave(num_videos_per_prompt, dim=0)  # noqa: E731
        prompt_embeds, pooled_prompt_embeds = repeat(prompt_embeds), repeat(pooled_prompt_embeds)
        if do_cfg:
            negative_prompt_embeds = repeat(negative_prompt_embeds)
            negative_pooled_prompt_embeds = repeat(negative_pooled_prompt_embeds)

        # 2. schedule, planned on the host
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        guidance_per_step = self.guidance_schedule(timesteps, guidance_scale, use_dynamic_cfg)

        # 3. noise
        batch_size = num_prompts * num_videos_per_prompt
        latents = self.prepare_latents(batch_size, num_frames, height, width, device, generator, latents)

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
                self._guidance_scale = guidance_per_step[i]
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
                    velocity = uncond + guidance_per_step[i] * (cond - uncond)
                latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]

                if callback_on_step_end is not None:
                    step_locals = locals()
                    callback_kwargs = {k: step_locals[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs) or {}
                    latents = callback_outputs.pop("latents", latents)
                    if callback_outputs:
                        prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                        negative_prompt_embeds = callback_outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                        pooled_prompt_embeds = callback_outputs.pop("pooled_prompt_embeds", pooled_prompt_embeds)
                        negative_pooled_prompt_embeds = callback_outputs.pop(
                            "negative_pooled_prompt_embeds", negative_pooled_prompt_embeds
                        )
                        branch_text, branch_pooled = batched_branches()
                progress_bar.update()

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


@contextlib.contextmanager
def _loadable_view(path: str):
    """The folder itself, or, when its model_index.json names the transformer from a module diffusers will not
    import (the official code's own `models.VchitectXL`, say), a temporary folder of links to its components with
    that entry pointing at our class. The transformer is always loaded by `from_pretrained` above."""
    with open(os.path.join(path, "model_index.json"), encoding="utf-8") as f:
        index = json.load(f)
    library = (index.get("transformer") or [None])[0]
    if library in (None, "diffusers", "transformers") or library.split(".")[0] == __name__.split(".")[0]:
        yield path
        return
    logger.info(f"model_index.json names the transformer from {library!r}; loading it as VchitectXLTransformer3DModel")
    index["transformer"] = [VchitectXLTransformer3DModel.__module__, VchitectXLTransformer3DModel.__name__]
    with tempfile.TemporaryDirectory(prefix="vdp-pipeline-view-") as view:
        for name in os.listdir(path):
            if name != "model_index.json":
                os.symlink(os.path.abspath(os.path.join(path, name)), os.path.join(view, name))
        with open(os.path.join(view, "model_index.json"), "w", encoding="utf-8") as f:
            json.dump(index, f)
        yield view


def _official_weights_folder(path: str):
    """The Vchitect-2.0 folder inside a folder holding the pack's weights layout; FileNotFoundError naming the places
    looked at and the `vdp download` command when there is none."""
    from ...weights.manifest import find_local_folder, load_manifest

    return find_local_folder(path, load_manifest().entry_for_class(VchitectRepVideoPipeline.__name__))


def check_pipeline_folder(path: str) -> None:
    """Raises a clear error when a pipeline folder lacks model_index.json or a component folder."""
    index_file = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_file):
        raise FileNotFoundError(f"model directory {path!r} has no model_index.json: not a diffusers pipeline folder")
    try:
        with open(index_file, encoding="utf-8") as f:
            json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"model directory {path!r}: model_index.json is not valid JSON ({error})") from None
    missing = [name for name in COMPONENT_NAMES if not os.path.isdir(os.path.join(path, name))]
    if missing:
        raise FileNotFoundError(
            f"model directory {path!r} is missing component folder(s) {missing}; a Vchitect-2.0 pipeline needs"
            f" {list(COMPONENT_NAMES)}"
        )


# model_index.json written by save_pretrained names this class; diffusers resolves pipeline class names in its own
# namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it registered there
if not hasattr(diffusers, VchitectRepVideoPipeline.__name__):
    setattr(diffusers, VchitectRepVideoPipeline.__name__, VchitectRepVideoPipeline)
