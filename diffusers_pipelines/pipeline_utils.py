"""What the pack's pipelines share: output types, argument checks, the official dynamic-guidance ramp, the pipeline
folder check and the registration with diffusers.

Every check raises ValueError naming the argument, in the form ``f"{name}={value!r} must be ..."`` (tensors, whose
repr would be long, as ``f"{name} has shape ..."`` / ``f"{name} has non-finite values ..."``). Each pipeline's own
`check_inputs` calls them before any model runs.
"""

import json
import math
import numbers
import os
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "OUTPUT_TYPES",
    "check_bool",
    "check_callback_tensor_inputs",
    "check_finite",
    "check_generator",
    "check_inference_steps",
    "check_integer",
    "check_memory",
    "check_latents",
    "check_multiple",
    "check_negative_prompt",
    "check_output_type",
    "check_pipeline_folder",
    "check_prompt",
    "check_prompt_text",
    "check_real",
    "check_tensor",
    "GuidancePlan",
    "PlannedGuidanceMixin",
    "check_text_length",
    "cogvideox_estimate",
    "folder_memory_estimate",
    "guidance_schedule",
    "is_integer",
    "is_real",
    "max_inference_steps",
    "official_dynamic_guidance",
    "register_pipeline",
]

# `output_type` values every pipeline of the pack takes
OUTPUT_TYPES = ("np", "pt", "pil", "latent")


# ---------------------------------------------------------------------------------------------------- numbers
def is_integer(value) -> bool:
    """True for an integer (Python or NumPy), False for a bool, a float such as 2.0, or anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """True for a finite real number (int, float, NumPy scalar); False for a bool, NaN, +-inf or anything else."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(value)
    )


def check_integer(name: str, value, minimum: int = 1) -> int:
    """`value` as an int; ValueError ``"{name}={value!r} must be an integer >= {minimum}"`` otherwise."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def check_multiple(name: str, value, multiple: int) -> int:
    """`value` as an int; ValueError ``"{name}={value!r} must be a positive multiple of {multiple}"`` otherwise."""
    if not is_integer(value) or value < multiple or value % multiple:
        raise ValueError(f"{name}={value!r} must be a positive multiple of {multiple}")
    return int(value)


def check_real(name: str, value, minimum: Optional[float] = None) -> float:
    """`value` as a float; ValueError for a bool, a non-number, NaN or +-inf (``"must be a finite number"``) and,
    with `minimum`, for a smaller value (``"must be a finite number >= {minimum}"``)."""
    if not is_real(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value!r} must be a finite number >= {minimum}")
    return float(value)


def check_bool(name: str, value) -> bool:
    """ValueError ``"{name}={value!r} must be True or False"`` unless `value` is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be True or False")
    return value


def max_inference_steps(scheduler) -> int:
    """The most denoising steps `scheduler` can plan: its ``num_train_timesteps``, less its ``steps_offset`` (a
    DDIM-style schedule shifted by the offset would index past the last trained timestep)."""
    config = scheduler.config
    trained = int(config.get("num_train_timesteps", 1000))
    return trained - int(config.get("steps_offset", 0) or 0)


def check_inference_steps(scheduler, num_inference_steps) -> int:
    """`num_inference_steps` as an int in 1..`max_inference_steps(scheduler)`; ValueError naming the limit."""
    steps = check_integer("num_inference_steps", num_inference_steps)
    limit = max_inference_steps(scheduler)
    if steps > limit:
        raise ValueError(
            f"num_inference_steps={steps} must be at most {limit}: the {type(scheduler).__name__} was trained on "
            f"{scheduler.config.get('num_train_timesteps', 1000)} timesteps"
            + (f" and shifts its schedule by steps_offset={scheduler.config.get('steps_offset')}"
               if scheduler.config.get("steps_offset") else "")
        )
    return steps


# ---------------------------------------------------------------------------------------------------- options
def check_output_type(output_type, allowed: Sequence[str] = OUTPUT_TYPES) -> str:
    """ValueError ``"output_type={output_type!r} must be one of (...)"`` unless it is one of `allowed`."""
    if not isinstance(output_type, str) or output_type not in allowed:
        raise ValueError(f"output_type={output_type!r} must be one of {tuple(allowed)}")
    return output_type


def check_callback_tensor_inputs(names, allowed: Sequence[str]) -> None:
    """ValueError naming the entries of `callback_on_step_end_tensor_inputs` that are not in `allowed`."""
    if names is None:
        return
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise ValueError(f"callback_on_step_end_tensor_inputs={names!r} must be a list of names from {list(allowed)}")
    bad_inputs = [name for name in names if name not in allowed]
    if bad_inputs:
        raise ValueError(f"callback_on_step_end_tensor_inputs={bad_inputs} not allowed; choose from {list(allowed)}")


def check_callback_outputs(outputs, latents: torch.Tensor) -> dict:
    """What `callback_on_step_end` returned: None or a dict (of the callback_kwargs it was given); ValueError for
    anything else, or for latents of another shape than the loop's."""
    if outputs is None:
        return {}
    if not isinstance(outputs, dict):
        raise ValueError(f"callback_on_step_end returned a {type(outputs).__name__}; it must return a dict (the "
                         f"callback_kwargs it was given, changed or not) or None")
    new = outputs.get("latents")
    if new is not None and (not isinstance(new, torch.Tensor) or tuple(new.shape) != tuple(latents.shape)):
        shape = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
        raise ValueError(f"callback_on_step_end returned latents of shape {shape}; expected {tuple(latents.shape)} "
                         f"(the latents it was given)")
    return dict(outputs)


# ---------------------------------------------------------------------------------------------------- prompts
def check_prompt(prompt, prompt_embeds=None) -> int:
    """The number of prompts: `prompt` (a string or a non-empty list of strings) or `prompt_embeds`' batch, not both."""
    if prompt_embeds is not None:
        if prompt is not None:
            raise ValueError("pass either prompt or prompt_embeds, not both")
        check_tensor("prompt_embeds", prompt_embeds, ndim=3)
        return prompt_embeds.shape[0]
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt={prompt!r} must be a string or a non-empty list of strings")
    return len(prompts)


def check_prompt_text(name: str, prompt) -> None:
    """The pack's one empty-prompt rule: a prompt (or instruction) must hold a non-space character; ValueError
    ``"{name}='' is empty; ..."``. Negative prompts may be empty. `prompt` is a string or a list of strings."""
    for text in [prompt] if isinstance(prompt, str) else (prompt or []):
        if isinstance(text, str) and not text.strip():
            raise ValueError(f"{name}={text!r} is empty; say what the video should show (the empty prompt is only "
                             f"for negative_prompt)")


def warn_truncated_prompts(tokenizer, prompts, max_length: int, encoder: str) -> None:
    """Logs a warning for each prompt longer than the `max_length` tokens `encoder` reads (the rest is cut off)."""
    import logging

    for prompt in prompts:
        count = len(tokenizer(prompt, truncation=False, add_special_tokens=True, verbose=False).input_ids)
        if count > max_length:
            logging.getLogger("video_diffusion_pack").warning(
                "prompt truncated: it has %d tokens but %s reads only the first %d; the rest (%d tokens) is "
                "ignored", count, encoder, max_length, count - max_length)


def check_negative_prompt(negative_prompt, count: int, unit: str = "prompts", allow_one: bool = False) -> None:
    """`negative_prompt`: None, a string, or a list of strings with one entry per prompt (`count`; or one entry,
    with `allow_one`). `unit` names what is counted in the message ("prompts", "videos")."""
    if negative_prompt is None or isinstance(negative_prompt, str):
        return
    if not isinstance(negative_prompt, list) or not all(isinstance(p, str) for p in negative_prompt):
        raise ValueError(f"negative_prompt={negative_prompt!r} must be a string or a list of strings")
    if len(negative_prompt) != count and not (allow_one and len(negative_prompt) == 1):
        raise ValueError(
            f"negative_prompt has {len(negative_prompt)} entries for {count} {unit}; give one negative prompt per "
            f"{unit[:-1] if unit.endswith('s') else unit} (or a single string)"
        )


# ---------------------------------------------------------------------------------------------------- tensors
def check_finite(name: str, value) -> None:
    """ValueError ``"{name} has non-finite values (NaN or inf)"`` when `value` (a tensor, an array, or a list or
    tuple of them) holds NaN or +-inf. Integer data, PIL images and other values pass."""
    if isinstance(value, (list, tuple)):
        for item in value:
            check_finite(name, item)
        return
    if isinstance(value, torch.Tensor):
        finite = not (value.is_floating_point() or value.is_complex()) or bool(torch.isfinite(value).all())
    elif isinstance(value, np.ndarray):
        finite = not np.issubdtype(value.dtype, np.inexact) or bool(np.isfinite(value).all())
    else:
        return
    if not finite:
        raise ValueError(f"{name} has non-finite values (NaN or inf)")


def check_tensor(name: str, value, ndim: Optional[int] = None) -> torch.Tensor:
    """`value` must be a floating-point torch.Tensor (with `ndim` dimensions, when given) holding finite values."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} of type {type(value).__name__} must be a torch.Tensor")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} has shape {tuple(value.shape)}; expected {ndim} dimensions")
    if not value.is_floating_point():
        raise ValueError(f"{name} has dtype {value.dtype}; expected a floating-point tensor")
    check_finite(name, value)
    return value


def check_latents(latents, expected_shape: Iterable[int], layout: Optional[str] = None) -> None:
    """`latents` (None, or a floating-point tensor of `expected_shape` holding finite values); `layout` (e.g.
    "[B, F, C, H, W]") is appended to the shape message."""
    if latents is None:
        return
    if not isinstance(latents, torch.Tensor):
        raise ValueError(f"latents of type {type(latents).__name__} must be a torch.Tensor")
    expected = tuple(int(size) for size in expected_shape)
    if tuple(latents.shape) != expected:
        raise ValueError(
            f"latents has shape {tuple(latents.shape)}; expected {expected}" + (f" {layout}" if layout else "")
        )
    check_tensor("latents", latents)


def check_generator(generator, batch_size: int) -> None:
    """`generator`: None, one `torch.Generator`, or a list of exactly `batch_size` of them (one per video, in the
    order of the output: each prompt's `num_videos_per_prompt` videos in a row)."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not isinstance(generator, list) or not all(isinstance(g, torch.Generator) for g in generator):
        raise ValueError(f"generator={generator!r} must be a torch.Generator or a list of them, one per video")
    if len(generator) != batch_size:
        raise ValueError(
            f"generator has {len(generator)} entries for {batch_size} videos (prompts x num_videos_per_prompt); "
            f"give one torch.Generator per video (or a single one)"
        )


# ---------------------------------------------------------------------------------------------------- guidance
def official_dynamic_guidance(guidance_scale: float, timestep: float, num_inference_steps: int) -> float:
    """The guidance scale the official Vchitect-2.0, DaS and RepVideo loops (and diffusers' CogVideoX) apply at a
    step with dynamic guidance: their cosine ramp, reproduced as written.

    The ramp is evaluated at the scheduler timestep (0..1000 scale) over the number of steps, not at the step index,
    so with a 0..1000 schedule the value jumps between 1 and 1 + guidance_scale from step to step.
    """
    progress = (num_inference_steps - timestep) / num_inference_steps
    return 1 + guidance_scale * (1 - math.cos(math.pi * progress**5.0)) / 2


def guidance_schedule(timesteps, guidance_scale: float, use_dynamic_cfg: bool) -> List[float]:
    """Guidance scale per step, planned on the host before the loop: constant, or the official ramp."""
    if not use_dynamic_cfg:
        return [float(guidance_scale)] * len(timesteps)
    values = timesteps.cpu().tolist() if isinstance(timesteps, torch.Tensor) else list(timesteps)
    return [official_dynamic_guidance(guidance_scale, t, len(values)) for t in values]


class GuidancePlan:
    """The guidance scale of each step, planned on the host before the loop from a base scale; planned again for the
    steps left when the base changes (a step-end callback that sets the pipeline's `_guidance_scale`, as diffusers'
    CFG-cutoff callbacks do).

    Args:
        timesteps: the scheduler's timesteps (tensor or list).
        guidance_scale (`float`): the base scale.
        use_dynamic_cfg (`bool`): the official cosine ramp over the base (else the base at every step).
    """

    def __init__(self, timesteps, guidance_scale: float, use_dynamic_cfg: bool):
        self.timesteps = timesteps.cpu().tolist() if isinstance(timesteps, torch.Tensor) else list(timesteps)
        self.use_dynamic_cfg = use_dynamic_cfg
        self._plan(guidance_scale)

    def _plan(self, guidance_scale: float) -> None:
        self.base = guidance_scale
        self.per_step = guidance_schedule(self.timesteps, guidance_scale, self.use_dynamic_cfg)

    def scale_at(self, step: int, base: float) -> float:
        """The scale to apply at `step`, for the base scale `base` (re-planning when it differs from the last)."""
        if base != self.base:
            self._plan(base)
        return self.per_step[step]

    @property
    def guides(self) -> bool:
        """Whether the base still asks for guidance (> 1; > 0 under the ramp, which starts from 1)."""
        return self.base > 0 if self.use_dynamic_cfg else self.base > 1


class PlannedGuidanceMixin:
    """`guidance_scale` for pipelines whose loop applies a `GuidancePlan`: while the loop runs, the scale applied at
    the current step (`_applied_guidance_scale`, the ramp's value under dynamic guidance); otherwise the base scale
    `_guidance_scale`, which the caller passed and a step-end callback may change (the steps after it follow it)."""

    _applied_guidance_scale = None

    @property
    def guidance_scale(self) -> float:
        applied = self._applied_guidance_scale
        return self._guidance_scale if applied is None else applied


def check_text_length(name: str, embeds, transformer_config) -> None:
    """CogVideoX-derived transformers with positional embeddings (sin-cos or learned) take exactly their
    `max_text_seq_length` text tokens: ValueError naming `name`'s length and the transformer's otherwise."""
    if embeds is None or not isinstance(embeds, torch.Tensor) or embeds.ndim != 3:
        return
    uses_positions = not transformer_config.get("use_rotary_positional_embeddings", False) or transformer_config.get(
        "use_learned_positional_embeddings", False
    )
    expected = transformer_config.get("max_text_seq_length")
    if uses_positions and expected is not None and embeds.shape[1] != expected:
        raise ValueError(
            f"{name} has {embeds.shape[1]} tokens; the transformer takes max_text_seq_length={expected} (encode the "
            f"prompt with max_sequence_length={expected})"
        )


# ---------------------------------------------------------------------------------------------------- memory
# Live tensors of the token width per denoiser block while it runs, counted for the estimate: the residual stream
# and its normalised copy, q, k, v (and rotated copies), the attention output, the MLP's 4x hidden layer (as four),
# the projections and the copies the fused kernels and the guidance batch keep.
ACTIVATION_TENSORS = 24
GIB = 2**30


def available_memory(device) -> tuple:
    """(bytes, what limits them) that a run may still allocate on `device`: the free memory of a CUDA device, or on
    the CPU the smaller of the system's MemAvailable and what is left of the process's address-space limit."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free memory of {device}"
    candidates = []
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        candidates.append((int(fields["MemAvailable"].split()[0]) * 1024, "MemAvailable of the system"))
    except (OSError, KeyError, ValueError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as statm:
                used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            candidates.append((max(soft - used, 0), "the process's address-space limit (ulimit -v)"))
    except (OSError, ValueError, ImportError):
        pass
    if not candidates:
        return None, "unknown"
    return min(candidates)


def check_memory(setting: str, parts: dict, device, beyond: str = " beyond the loaded weights") -> None:
    """ValueError before any model runs when the estimated memory of a run (`parts`: what -> bytes) exceeds what
    `device` has free. `setting` opens the message, e.g. ``"num_frames=10000 at 64x64"``."""
    needed = sum(parts.values())
    available, limit = available_memory(device)
    if available is None or needed <= available:
        return
    detail = ", ".join(f"{what} {size / GIB:.2f} GiB" for what, size in parts.items())
    raise ValueError(
        f"{setting} needs about {needed / GIB:.1f} GiB{beyond} (estimate: {detail}), more than the "
        f"{available / GIB:.1f} GiB available ({limit}); lower num_frames, height or width"
    )


def denoiser_estimate(batch: int, sequences: Iterable, hidden: int, dtype, video_values: int) -> dict:
    """Estimated bytes of one denoising pass and of the decoded video: `sequences` are (count, length) of the
    token sequences the denoiser holds at once (text positions included), each token `hidden` wide in `dtype`;
    `video_values` the number of float32 values of the decoded frames (kept twice: decoder output and result)."""
    element = torch.empty((), dtype=dtype).element_size()
    tokens = sum(int(count) * int(length) for count, length in sequences)
    return {
        "denoiser activations": batch * tokens * int(hidden) * element * ACTIVATION_TENSORS,
        "decoded video": 2 * int(video_values) * 4,
    }


def cogvideox_estimate(pipe, batch: int, num_frames: int, height: int, width: int, branches: int = 1) -> dict:
    """`denoiser_estimate` of a CogVideoX-style pipeline (full 3-D attention over the latent frames' patches and
    the text positions; `branches` transformers run side by side, e.g. DaS's tracking branch)."""
    return cogvideox_config_estimate(pipe.transformer.config, pipe.vae_scale_factor_spatial,
                                     pipe.vae_scale_factor_temporal, pipe.transformer.dtype, batch * branches,
                                     num_frames, height, width)


def cogvideox_config_estimate(config, spatial: int, temporal: int, dtype, batch: int, num_frames: int, height: int,
                              width: int) -> dict:
    """`cogvideox_estimate` from the transformer's config (a mapping) and the VAE's scale factors."""
    patch = config["patch_size"]
    tokens = ((num_frames - 1) // temporal + 1) * (height // spatial // patch) * (width // spatial // patch)
    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    return denoiser_estimate(batch, [(1, tokens + config["max_text_seq_length"])], hidden, dtype,
                             num_frames * height * width * 3)


def vchitect_config_estimate(config, scale: int, text_tokens: int, dtype, batch: int, num_frames: int, height: int,
                             width: int) -> dict:
    """`denoiser_estimate` of Vchitect-2.0 from its transformer's config (a mapping): the temporal attention holds
    every frame of every token position (video and `text_tokens`) at once."""
    patch = config["patch_size"]
    positions = (height // scale // patch) * (width // scale // patch)
    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    return denoiser_estimate(batch, [(positions + text_tokens, num_frames)], hidden, dtype,
                             num_frames * height * width * 3)


def unet_config_estimate(config, scale: int, dtype, batch: int, num_frames: int, height: int, width: int) -> dict:
    """`denoiser_estimate` of the LGVI video UNet from its config (a mapping): its first level's channels over every
    latent pixel of every frame."""
    return denoiser_estimate(batch, [(1, num_frames * (height // scale) * (width // scale))],
                             config["block_out_channels"][0], dtype, num_frames * height * width * 3)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")


def folder_memory_estimate(folder, dtype, batch: int, num_frames: int, height: int, width: int) -> dict:
    """The memory of running the pipeline folder `folder`, estimated from its files alone, before anything loads:
    its weights (the bytes of its weight files, as stored) and `denoiser_estimate` of one guided denoising pass at
    `num_frames` x `height` x `width` for its denoiser (Vchitect-2.0, a CogVideoX-derived transformer, or LGVI's
    UNet, told apart by their configs). An empty dict when the folder's configs do not say."""
    import json
    from pathlib import Path

    folder = Path(folder)

    def config(name):
        try:
            value = json.loads((folder / name / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def tokenizer_length(name):
        try:
            value = json.loads((folder / name / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value.get("model_max_length") if isinstance(value, dict) else None

    transformer, unet, vae = config("transformer"), config("unet"), config("vae") or {}
    scale = 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1)
    try:
        if transformer is not None and "max_text_seq_length" in transformer:  # RepVideo on CogVideoX, DaS
            branches = 2 if transformer.get("num_tracking_blocks") else 1
            parts = cogvideox_config_estimate(transformer, scale, int(vae.get("temporal_compression_ratio", 4)), dtype,
                                              2 * batch * branches, num_frames, height, width)
        elif transformer is not None:  # Vchitect-2.0: CLIP's text positions (77) and T5's (at most 256)
            clip = int(tokenizer_length("tokenizer") or 77)
            t5 = min(256, int(tokenizer_length("tokenizer_3") or 256))
            parts = vchitect_config_estimate(transformer, scale, clip + t5, dtype, 2 * batch, num_frames, height, width)
        elif unet is not None:  # LGVI: three guidance branches
            parts = unet_config_estimate(unet, scale, dtype, 3 * batch, num_frames, height, width)
        else:
            return {}
    except (KeyError, TypeError, ValueError):
        return {}
    weights = sum(path.stat().st_size for path in folder.rglob("*") if path.suffix in WEIGHT_SUFFIXES and path.is_file())
    return {"weights": weights, **parts}


# ---------------------------------------------------------------------------------------------------- folders
def check_pipeline_folder(
    path: Union[str, os.PathLike], component_names: Sequence[str], pipeline_name: str, skip: Iterable[str] = ()
) -> dict:
    """The parsed model_index.json of a pipeline folder; FileNotFoundError when the folder has no model_index.json
    or lacks a component folder (those in `skip`, passed as objects, need none), ValueError when model_index.json is
    not valid JSON."""
    path = str(path)
    index_file = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_file):
        raise FileNotFoundError(f"model folder {path!r} has no model_index.json: not a diffusers pipeline folder")
    try:
        with open(index_file, encoding="utf-8") as f:
            index = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"model folder {path!r}: model_index.json is not valid JSON ({error})") from None
    if not isinstance(index, dict):
        raise ValueError(f"model folder {path!r}: model_index.json holds {type(index).__name__}, not an object")
    skip = set(skip)
    missing = [name for name in component_names if name not in skip and not os.path.isdir(os.path.join(path, name))]
    if missing:
        raise FileNotFoundError(
            f"model folder {path!r} lacks the component folder(s) {missing}; {pipeline_name} needs "
            f"{list(component_names)}"
        )
    return index


# ---------------------------------------------------------------------------------------------------- diffusers
def register_pipeline(pipeline_class: type) -> type:
    """Makes `pipeline_class` reachable as ``diffusers.<Name>`` and ``diffusers.pipelines.<Name>``.

    A model_index.json written by `save_pretrained` names the class; diffusers resolves pipeline class names in its
    own namespace, so `DiffusionPipeline.from_pretrained(folder)` needs it there. A name already taken (by diffusers
    itself, or by an earlier import of the pack) is left as it is.
    """
    import diffusers
    import diffusers.pipelines

    name = pipeline_class.__name__
    for module in (diffusers, diffusers.pipelines):
        if getattr(module, name, None) is None:
            setattr(module, name, pipeline_class)
    return pipeline_class
