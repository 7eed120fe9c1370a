"""What the pack's sampler nodes share: their input specs (seed, steps, cfg, frames, size, the FreeInit / FasterCache /
LoRA inputs, with their tooltips) and the one function that runs a pipeline with FreeInit, FasterCache, RepVideo and
LoRAs applied.

Each sampler node keeps only what is its own: its defaults (the official settings of its pipeline, from the torch-free
``diffusers_pipelines/<system>/defaults.py``), its size and frame rules, and the pipeline arguments only it has.
"""

import contextlib
from typing import Optional

import torch

from . import _comfy, _model_cache

PIPELINE_TYPE = "VDP_PIPELINE"
MAX_SEED = 0xFFFFFFFFFFFFFFFF
MAX_STEPS = 1000
MAX_CFG = 30.0


def pipeline_input(loader: str):
    """The ``pipeline`` socket, from the loaders named ``loader`` (``"a Vchitect"``)."""
    return (PIPELINE_TYPE, {"tooltip": f"From {loader} loader."})


def prompt_input(tooltip: str = "What the video shows.", default: str = ""):
    return ("STRING", {"multiline": True, "dynamicPrompts": True, "default": default, "tooltip": tooltip})


def negative_prompt_input(default: str = "",
                          tooltip: str = "What to steer away from (the official runs use an empty one)."):
    return prompt_input(tooltip, default)


def seed_input(official: int, what: str = "the initial noise"):
    return ("INT", {"default": official, "min": 0, "max": MAX_SEED,
                    "tooltip": f"Seed of {what}, drawn on the CPU, so it is the same on every device "
                               f"(official: {official})."})


def steps_input(official: int, maximum: int = MAX_STEPS):
    """A steps INT up to ``maximum`` (what the pipeline's scheduler can plan)."""
    return ("INT", {"default": official, "min": 1, "max": maximum,
                    "tooltip": f"Denoising steps (official: {official})."})


def guidance_input(official: float, tooltip: str):
    """A guidance-scale FLOAT; ``tooltip`` says what it guides, the official value is appended."""
    return ("FLOAT", {"default": official, "min": 0.0, "max": MAX_CFG, "step": 0.1, "round": 0.01,
                      "tooltip": f"{tooltip} (official: {official:g})."})


def cfg_input(official: float):
    return guidance_input(official,
                          "Classifier-free guidance scale. Without dynamic_cfg, 1 or less turns guidance off")


def dynamic_cfg_input(official: bool, tooltip: str):
    return ("BOOLEAN", {"default": official, "tooltip": tooltip})


def frames_input(official: int, maximum: int, step: int = 1, rule: str = ""):
    """The ``frames`` INT; ``rule`` (``"1 + a multiple of 4"``) is said in the tooltip."""
    described = f"Number of frames{', ' + rule if rule else ''} (official: {official})."
    return ("INT", {"default": official, "min": 1, "max": maximum, "step": step, "tooltip": described})


def size_inputs(width: int, height: int, multiple: int, maximum: int):
    """The ``width`` and ``height`` INTs, in steps of ``multiple``, their official values as defaults."""
    size = {"min": multiple, "max": maximum, "step": multiple}
    return {
        "width": ("INT", {"default": width, **size,
                          "tooltip": f"Width in pixels, a multiple of {multiple} (official: {width})."}),
        "height": ("INT", {"default": height, **size,
                           "tooltip": f"Height in pixels, a multiple of {multiple} (official: {height})."}),
    }


def size_problem(width: Optional[int], height: Optional[int], multiple: int, maximum: int,
                 reason: str) -> Optional[str]:
    """Why ``width`` x ``height`` cannot be generated, or None when it can.

    A value of None (an input fed by a link, not known at validation time) is not checked. The range is checked here
    too because newer ComfyUI skips its own min/max check for inputs VALIDATE_INPUTS takes.
    """
    for name, value in (("width", width), ("height", height)):
        if value is None:
            continue
        if value % multiple != 0 or not multiple <= value <= maximum:
            return f"{name}={value} must be divisible by {multiple} and between {multiple} and {maximum} ({reason})"
    return None


def training_free_inputs():
    """The optional ``freeinit`` and ``fastercache`` sockets every sampler node has."""
    return {
        "freeinit": ("VDP_FREEINIT", {"tooltip": "FreeInit settings (from the FreeInit node) for this run: several "
                                                 "sampling passes, each from noise re-initialised from the previous "
                                                 "video's low frequencies."}),
        "fastercache": ("VDP_FASTERCACHE", {"tooltip": "FasterCache settings (from the FasterCache node) for this "
                                                       "run: attention outputs reused between steps and the "
                                                       "negative-prompt branch rebuilt from the positive one."}),
    }


def lora_input():
    """The optional ``lora`` socket (from the LoRA node) of the nodes that run a pipeline."""
    return ("VDP_LORA", {"tooltip": "LoRAs (from LoRA nodes) loaded into the pipeline for this run and unloaded "
                                    "after it; the loader's cached pipeline is left as it was."})


def optional_inputs():
    """The optional sockets every sampler node has: ``freeinit``, ``fastercache`` and ``lora``."""
    return {**training_free_inputs(), "lora": lora_input()}


def loras_for_run(pipeline, lora):
    """A context that loads the LoRAs of a ``VDP_LORA`` (or None) into ``pipeline`` and unloads them on leaving."""
    from ..diffusers_pipelines.lora import loras_applied

    return loras_applied(pipeline, [(selection.path, selection.strength) for selection in lora or ()])


def run_sampler(pipeline, *, seed: int, steps: int, freeinit=None, fastercache=None, repvideo: Optional[bool] = None,
                lora=None, **arguments):
    """Runs ``pipeline`` for one sampler node with FreeInit, FasterCache and RepVideo applied; returns ``(IMAGE,)``.

    The noise is seeded on the CPU; the ComfyUI progress bar spans every step of every FreeInit pass and honours
    interrupts; FreeInit and FasterCache are applied for this run only, and RepVideo (``repvideo`` not None, for
    pipelines whose transformer has the switch) is switched for this run only, and the LoRAs of ``lora`` are loaded
    for this run only: the pipeline is left as it was, also after a failed or interrupted run.

    Args:
        pipeline: the loader's ``VDP_PIPELINE`` (loaded again if ComfyUI released it) or a pack pipeline.
        seed (`int`), steps (`int`): the node's seed and denoising steps.
        freeinit (`FreeInitConfig`, *optional*), fastercache (`FasterCacheConfig`, *optional*): from the nodes.
        repvideo (`bool`, *optional*): RepVideo aggregation on or off for this run; None leaves the model alone.
        lora (`Tuple[LoraSelection]`, *optional*): from the LoRA node.
        **arguments: the other arguments of the pipeline call (prompt, size, guidance, ...).
    """
    from ..hooks.faster_cache import faster_cache_applied
    from ..hooks.free_init import free_init_applied

    pipeline = _model_cache.resolve_pipeline(pipeline)
    total_steps = sum(freeinit.planned_steps(steps)) if freeinit is not None else steps
    switched = (pipeline.transformer.repvideo_switched(repvideo) if repvideo is not None
                else contextlib.nullcontext())
    with loras_for_run(pipeline, lora), switched, free_init_applied(pipeline, freeinit), \
            faster_cache_applied(pipeline, fastercache):
        output = pipeline(
            **arguments,
            num_inference_steps=steps,
            generator=torch.Generator(device="cpu").manual_seed(seed),
            output_type="pt",
            **_comfy.step_callback(total_steps, pipeline),
        )
    return (_comfy.video_to_image_batch(output.frames),)
