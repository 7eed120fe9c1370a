"""ComfyUI nodes for language-driven video inpainting (LGVI / LGVI-I): loaders and the inpainting node.

Videos enter and leave as core ``IMAGE`` batches [frames, height, width, 3]; the predicted edit mask (models with a
mask decoder) leaves as a core ``MASK``. The math lives in ``diffusers_pipelines/lgvi``.
"""

import torch

from ..diffusers_pipelines.lgvi.defaults import EMBEDDED, MAX_INFERENCE_STEPS, OFFICIAL
from . import _comfy, _model_cache, _sampler

CATEGORY = "video_diffusion_pack/lgvi"
WEIGHTS_KIND = "lgvi"
PIPELINE_CLASS = "InpaintByInstructionPipeline"
MAX_SIZE = 4096


def _check_size(width, height):
    """None when width and height are usable, else the error message."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < 8 or value % 8:
            return f"{name}={value!r} must be a positive multiple of 8"
    return None


class VDPLGVILoader(_comfy.PipelineFolderLoader):
    """Loads an LGVI / LGVI-I pipeline directory from ComfyUI/models/video_diffusion_pack/lgvi/."""

    WEIGHTS_KIND = WEIGHTS_KIND
    PIPELINE_CLASS = PIPELINE_CLASS
    EXAMPLE = "lgvi"
    DTYPE_TOOLTIP = "Weight dtype. The official inference runs in fp16."
    OUTPUT_TOOLTIPS = ("The LGVI inpainting pipeline on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads LGVI (jianzongwu/lgvi, language-driven video inpainting) as a diffusers pipeline."


class VDPTinyLGVILoader(_comfy.TinyPipelineLoader):
    """The embedded tiny LGVI (no download): trained on the shapes world, or seeded random weights."""

    BUILDER = "build_tiny_inpaint_pipeline"
    TRAINED = True
    OUTPUT_TOOLTIPS = ("A tiny LGVI pipeline on ComfyUI's device: the shapes-world model (32x32, 8 frames) or random "
                       "weights (any size that is a multiple of 8).",)
    CATEGORY = CATEGORY
    DESCRIPTION = ("A tiny LGVI pipeline, no download. weights 'trained' (default): the pack's model trained on its "
                   "shapes world, as the Embedded Loader (32x32, 8 frames; it removes the shape its instruction "
                   "names). 'random': seeded random weights, noise, a smoke test.")


class VDPEmbeddedLGVILoader(_comfy.EmbeddedPipelineLoader):
    """Loads the pack's embedded LGVI: a small model trained on the shapes world's removal pairs, shipped in the
    package."""

    LOADER = "load_embedded_lgvi_pipeline"
    OUTPUT_TOOLTIPS = (f"The embedded LGVI ({EMBEDDED.width}x{EMBEDDED.height}, {EMBEDDED.max_frames} frames) on "
                       "ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = (f"The pack's built-in LGVI, trained on its shapes world (no download): it removes the shape the "
                   f"instruction names ('remove the red circle') and keeps the others, at "
                   f"{EMBEDDED.width}x{EMBEDDED.height}, {EMBEDDED.num_inference_steps} steps, guidance off (text and "
                   f"video guidance {EMBEDDED.guidance_scale:g}); other videos come out blurred, not edited.")


class VDPInpaintByInstruction:
    """Removes (or changes) what an instruction names in a video, with an LGVI pipeline."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": _sampler.pipeline_input("an LGVI"),
            "video": ("IMAGE", {"tooltip": "The video as an IMAGE batch [frames, height, width, 3] (official: up to "
                                           f"{OFFICIAL.max_frames} frames); resized to width x height."}),
            "instruction": _sampler.prompt_input("A referring expression of what to remove (LGVI), or a chat request "
                                                 "(LGVI-I).", default="remove the bird on the left"),
            "seed": _sampler.seed_input(OFFICIAL.seed, "the VAE sample and the noise"),
            "steps": _sampler.steps_input(OFFICIAL.num_inference_steps, MAX_INFERENCE_STEPS),
            "guidance_scale": _sampler.guidance_input(OFFICIAL.guidance_scale, "Text guidance"),
            "image_guidance_scale": _sampler.guidance_input(
                OFFICIAL.image_guidance_scale,
                "Video guidance. Guidance is off when the text guidance is <= 1 or this is < 1"),
            "width": ("INT", {"default": OFFICIAL.width, "min": 8, "max": MAX_SIZE, "step": 8,
                              "tooltip": f"Frame width, a multiple of 8 (official: {OFFICIAL.width})."}),
            "height": ("INT", {"default": OFFICIAL.height, "min": 8, "max": MAX_SIZE, "step": 8,
                               "tooltip": f"Frame height, a multiple of 8 (official: {OFFICIAL.height})."}),
        }, "optional": {"lora": _sampler.lora_input()}}

    RETURN_TYPES = ("IMAGE", "MASK", "STRING")
    RETURN_NAMES = ("frames", "mask", "prompt")
    OUTPUT_TOOLTIPS = (
        "The edited video as an IMAGE batch [frames, height, width, 3] in 0..1.",
        "The edit mask the model predicts [frames, height, width]; all zeros when the model has no mask decoder.",
        "The prompt the video was edited with: the answer the MLLM wrote for the request (LGVI-I), or the "
        "instruction itself (LGVI). Also shown on the node.",
    )
    FUNCTION = "inpaint"
    CATEGORY = CATEGORY
    DESCRIPTION = "Language-driven video inpainting (LGVI): the instruction says what to remove; no mask is needed."

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None):
        if width is None or height is None:
            return True
        return _check_size(width, height) or True

    def inpaint(self, pipeline, video, instruction, seed, steps, guidance_scale, image_guidance_scale, width, height,
                lora=None):
        problem = _check_size(width, height)
        if problem:
            raise ValueError(problem)
        if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
            shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
            raise ValueError(f"video has shape {shape}; expected an IMAGE batch [frames, height, width, 3]")
        if not instruction.strip():
            raise ValueError("instruction is empty; say what to remove, e.g. 'remove the bird on the left'")
        pipeline = _model_cache.resolve_pipeline(pipeline)
        with _sampler.loras_for_run(pipeline, lora):
            output = pipeline(
                video=video.cpu(),
                prompt=instruction,
                height=height,
                width=width,
                num_inference_steps=steps,
                guidance_scale=guidance_scale,
                image_guidance_scale=image_guidance_scale,
                generator=torch.Generator(device="cpu").manual_seed(seed),
                output_type="pt",
                **_comfy.step_callback(steps, pipeline),
            )
        frames = _comfy.video_to_image_batch(output.frames)
        if output.mask is None:
            mask = torch.zeros(frames.shape[:3], dtype=torch.float32)
        else:
            mask = output.mask.flatten(0, 1).to(device="cpu", dtype=torch.float32)
        prompt = output.instructions[0] if output.instructions else instruction
        return {"ui": {"text": [prompt]}, "result": (frames, mask, prompt)}


NODE_CLASS_MAPPINGS = {
    "VDPLGVILoader": VDPLGVILoader,
    "VDPTinyLGVILoader": VDPTinyLGVILoader,
    "VDPEmbeddedLGVILoader": VDPEmbeddedLGVILoader,
    "VDPInpaintByInstruction": VDPInpaintByInstruction,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "VDPLGVILoader": "LGVI Loader (VDP)",
    "VDPTinyLGVILoader": "LGVI Tiny Loader (VDP)",
    "VDPEmbeddedLGVILoader": "LGVI Embedded Loader (VDP, shapes world)",
    "VDPInpaintByInstruction": "Inpaint by Instruction (VDP, LGVI)",
}
