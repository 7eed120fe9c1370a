"""ComfyUI nodes for Vchitect-2.0 text-to-video with the RepVideo switch: two loaders and a sampler.

The loaders return a ``VchitectRepVideoPipeline`` as a ``VDP_PIPELINE``; the sampler calls it and
returns the video as a core ``IMAGE`` batch ``[F, H, W, 3]``. The model code lives in
``diffusers_pipelines/vchitect_repvideo`` and ``models/``.
"""

from typing import Optional

import torch

from . import _comfy

CATEGORY = "video_diffusion_pack/vchitect"
PIPELINE_TYPE = "VDP_PIPELINE"
WEIGHTS_KIND = "vchitect"
HUB_REPO = "Vchitect/Vchitect-2.0-2B"
FRAME_SIZE_MULTIPLE = 16
MAX_FRAME_SIZE = 4096



def frame_size_problem(width: Optional[int], height: Optional[int]) -> Optional[str]:
    """Why ``width`` x ``height`` cannot be generated, or None when it can.

    A value of None (an input fed by a link, not known at validation time) is not checked. The range is
    checked here too because newer ComfyUI skips its own min/max check for inputs VALIDATE_INPUTS takes.
    """
    for name, value in (("width", width), ("height", height)):
        if value is None:
            continue
        if value % FRAME_SIZE_MULTIPLE != 0 or not FRAME_SIZE_MULTIPLE <= value <= MAX_FRAME_SIZE:
            return (
                f"{name}={value} must be divisible by {FRAME_SIZE_MULTIPLE} and between {FRAME_SIZE_MULTIPLE} and "
                f"{MAX_FRAME_SIZE} (the VAE downsamples by 8 and the transformer patches 2x2)"
            )
    return None


class VDPVchitectLoader(_comfy.PipelineFolderLoader):
    """Loads a Vchitect-2.0 pipeline directory from ComfyUI/models/video_diffusion_pack/vchitect/."""

    WEIGHTS_KIND = WEIGHTS_KIND
    PIPELINE_CLASS = "VchitectRepVideoPipeline"
    EXAMPLE = f"the Hub repo {HUB_REPO}"
    DTYPE_TOOLTIP = "Weight dtype. The official inference runs the transformer in bf16."
    OUTPUT_TOOLTIPS = ("The Vchitect-2.0 pipeline on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = f"Loads Vchitect-2.0 ({HUB_REPO}) as a diffusers pipeline with the RepVideo switch."


class VDPTinyVchitectLoader(_comfy.TinyPipelineLoader):
    """Builds the embedded tiny random-weight Vchitect-2.0 pipeline (no download), for smoke tests."""

    BUILDER = "build_tiny_vchitect_pipeline"
    OUTPUT_TOOLTIPS = ("A tiny random-weight Vchitect-2.0 pipeline on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = "A tiny Vchitect-2.0 pipeline with seeded random weights, built in memory: a smoke test for graphs."


class VDPVchitectSampler:
    """Generates a video from a prompt with a Vchitect-2.0 pipeline, RepVideo on or off."""

    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": FRAME_SIZE_MULTIPLE, "max": MAX_FRAME_SIZE, "step": FRAME_SIZE_MULTIPLE}
        return {
            "required": {
                "pipeline": (PIPELINE_TYPE, {"tooltip": "From a Vchitect loader."}),
                "prompt": ("STRING", {"multiline": True, "dynamicPrompts": True, "default": "",
                                      "tooltip": "What the video shows."}),
                "negative_prompt": ("STRING", {"multiline": True, "dynamicPrompts": True, "default": "",
                                               "tooltip": "What to steer away from (the official runs use an empty one)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "Seed of the initial noise (drawn on the CPU, so it is the same on every device)."}),
                "steps": ("INT", {"default": 100, "min": 1, "max": 1000, "tooltip": "Denoising steps (official: 100)."}),
                "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance scale (official: 7.5). Without dynamic_cfg, "
                                             "1 or less turns guidance off."}),
                "frames": ("INT", {"default": 40, "min": 1, "max": 1024,
                                   "tooltip": "Number of frames (official: 40, i.e. 5 s at 8 fps)."}),
                "width": ("INT", {"default": 768, **size, "tooltip": "Width in pixels, a multiple of 16 (official: 768)."}),
                "height": ("INT", {"default": 432, **size, "tooltip": "Height in pixels, a multiple of 16 (official: 432)."}),
                "repvideo": ("BOOLEAN", {"default": False,
                                         "tooltip": "RepVideo cross-layer representation aggregation for this run; "
                                                    "off is exactly Vchitect-2.0. The pipeline's own setting is restored afterwards."}),
                "dynamic_cfg": ("BOOLEAN", {"default": False,
                                            "tooltip": "Reschedule the guidance every step with the cosine ramp of the "
                                                       "official Vchitect-2.0 loop: the scale becomes 1 + cfg * ramp."}),
            },
            "optional": {
                "freeinit": ("VDP_FREEINIT", {"tooltip": "FreeInit settings (from the FreeInit node) for this run: "
                                                         "several sampling passes, each from noise re-initialised "
                                                         "from the previous video's low frequencies."}),
                "fastercache": ("VDP_FASTERCACHE", {"tooltip": "FasterCache settings (from the FasterCache node) for this "
                                                               "run: attention outputs reused between steps and the "
                                                               "negative-prompt branch rebuilt from the positive one."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The video as an IMAGE batch [frames, height, width, 3] in 0..1.",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = "Text-to-video with Vchitect-2.0; RepVideo aggregation and dynamic CFG as switches."

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None):
        problem = frame_size_problem(width, height)
        return True if problem is None else problem

    def sample(self, pipeline, prompt, negative_prompt, seed, steps, cfg, frames, width, height, repvideo, dynamic_cfg,
               freeinit=None, fastercache=None):
        from ..hooks.faster_cache import faster_cache_applied
        from ..hooks.free_init import free_init_applied

        problem = frame_size_problem(width, height)
        if problem is not None:
            raise ValueError(problem)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        total_steps = sum(freeinit.planned_steps(steps)) if freeinit is not None else steps
        with pipeline.transformer.repvideo_switched(repvideo), free_init_applied(pipeline, freeinit), \
                faster_cache_applied(pipeline, fastercache):
            output = pipeline(
                prompt=prompt,
                negative_prompt=negative_prompt,
                height=height,
                width=width,
                num_frames=frames,
                num_inference_steps=steps,
                guidance_scale=cfg,
                use_dynamic_cfg=dynamic_cfg,
                generator=generator,
                output_type="pt",
                callback_on_step_end=_comfy.progress_callback(total_steps),
                callback_on_step_end_tensor_inputs=[],
            )
        return (_comfy.video_to_image_batch(output.frames),)


NODE_CLASS_MAPPINGS = {
    "VDPVchitectLoader": VDPVchitectLoader,
    "VDPTinyVchitectLoader": VDPTinyVchitectLoader,
    "VDPVchitectSampler": VDPVchitectSampler,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VDPVchitectLoader": "Vchitect-2.0 Loader (VDP)",
    "VDPTinyVchitectLoader": "Vchitect-2.0 Tiny Loader (VDP, smoke test)",
    "VDPVchitectSampler": "Vchitect-2.0 RepVideo Sampler (VDP)",
}
