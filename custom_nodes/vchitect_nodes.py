"""ComfyUI nodes for Vchitect-2.0 text-to-video with the RepVideo switch: three loaders and a sampler.

The loaders return a ``VchitectRepVideoPipeline`` as a ``VDP_PIPELINE``; the sampler calls it and
returns the video as a core ``IMAGE`` batch ``[F, H, W, 3]``. The model code lives in
``diffusers_pipelines/vchitect`` and ``models/``.
"""

from typing import Optional

from ..diffusers_pipelines.vchitect.defaults import OFFICIAL
from . import _comfy, _sampler

CATEGORY = "video_diffusion_pack/vchitect"
WEIGHTS_KIND = "vchitect"
HUB_REPO = "Vchitect/Vchitect-2.0-2B"
FRAME_SIZE_MULTIPLE = 16
MAX_FRAME_SIZE = 4096
MAX_FRAMES = 1024
OFFICIAL_DURATION = f"{OFFICIAL.num_frames / OFFICIAL.fps:g} s at {OFFICIAL.fps:g} fps"


def frame_size_problem(width: Optional[int], height: Optional[int]) -> Optional[str]:
    """Why ``width`` x ``height`` cannot be generated, or None when it can (None values, from links, pass)."""
    return _sampler.size_problem(width, height, FRAME_SIZE_MULTIPLE, MAX_FRAME_SIZE,
                                 "the VAE downsamples by 8 and the transformer patches 2x2")


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
    """The embedded tiny Vchitect-2.0 (no download): trained on the shapes world, or seeded random weights."""

    BUILDER = "build_tiny_vchitect_pipeline"
    TRAINED = True
    OUTPUT_TOOLTIPS = ("A tiny Vchitect-2.0 pipeline on ComfyUI's device: the shapes-world model or random weights.",)
    CATEGORY = CATEGORY
    DESCRIPTION = ("A tiny Vchitect-2.0 pipeline, no download. weights 'trained' (default): the pack's model trained on "
                   "its shapes world, as the Embedded Loader (48x48, 8 frames, 20 steps, cfg 5; one object in the "
                   "prompt's colour, background and motion). 'random': seeded random weights, noise, a smoke test.")


class VDPEmbeddedVchitectLoader(_comfy.EmbeddedPipelineLoader):
    """Loads the pack's embedded Vchitect-2.0: a small model trained on the shapes world, shipped in the package."""

    LOADER = "load_embedded_vchitect_pipeline"
    OUTPUT_TOOLTIPS = ("The embedded Vchitect-2.0 (48x48, 8 frames, RepVideo on) on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = ("The pack's built-in Vchitect-2.0, trained on a CPU on its shapes world (no download); prompts like "
                   "'a red circle moving left on a blue background', sampled at 48x48, 8 frames, 20 steps, cfg 5. "
                   "It draws one object in the prompt's colour on the prompt's background and moves it the prompt's "
                   "way, or two placed as the prompt says ('a red circle moving left above a yellow square moving "
                   "left on a green background'); its outlines are rough blobs, not yet the named shapes.")


class VDPVchitectSampler:
    """Generates a video from a prompt with a Vchitect-2.0 pipeline, RepVideo on or off."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pipeline": _sampler.pipeline_input("a Vchitect"),
                "prompt": _sampler.prompt_input(),
                "negative_prompt": _sampler.negative_prompt_input(),
                "seed": _sampler.seed_input(OFFICIAL.seed),
                "steps": _sampler.steps_input(OFFICIAL.num_inference_steps),
                "cfg": _sampler.cfg_input(OFFICIAL.guidance_scale),
                "frames": _sampler.frames_input(OFFICIAL.num_frames, MAX_FRAMES, rule=OFFICIAL_DURATION),
                **_sampler.size_inputs(OFFICIAL.width, OFFICIAL.height, FRAME_SIZE_MULTIPLE, MAX_FRAME_SIZE),
                "repvideo": ("BOOLEAN", {"default": False,
                                         "tooltip": "RepVideo cross-layer representation aggregation for this run; "
                                                    "off is exactly Vchitect-2.0. The pipeline's own setting is "
                                                    "restored afterwards."}),
                "dynamic_cfg": _sampler.dynamic_cfg_input(
                    OFFICIAL.use_dynamic_cfg,
                    "Reschedule the guidance every step with the cosine ramp of the official Vchitect-2.0 loop: the "
                    "scale becomes 1 + cfg * ramp."),
            },
            "optional": _sampler.optional_inputs(),
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
               freeinit=None, fastercache=None, lora=None):
        problem = frame_size_problem(width, height)
        if problem is not None:
            raise ValueError(problem)
        return _sampler.run_sampler(
            pipeline, seed=seed, steps=steps, freeinit=freeinit, fastercache=fastercache, repvideo=repvideo, lora=lora,
            prompt=prompt, negative_prompt=negative_prompt, height=height, width=width, num_frames=frames,
            guidance_scale=cfg, use_dynamic_cfg=dynamic_cfg,
        )


NODE_CLASS_MAPPINGS = {
    "VDPVchitectLoader": VDPVchitectLoader,
    "VDPTinyVchitectLoader": VDPTinyVchitectLoader,
    "VDPEmbeddedVchitectLoader": VDPEmbeddedVchitectLoader,
    "VDPVchitectSampler": VDPVchitectSampler,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VDPVchitectLoader": "Vchitect-2.0 Loader (VDP)",
    "VDPTinyVchitectLoader": "Vchitect-2.0 Tiny Loader (VDP)",
    "VDPEmbeddedVchitectLoader": "Vchitect-2.0 Embedded Loader (VDP, shapes world)",
    "VDPVchitectSampler": "Vchitect-2.0 RepVideo Sampler (VDP)",
}
