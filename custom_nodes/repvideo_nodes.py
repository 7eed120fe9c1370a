"""ComfyUI nodes for RepVideo as released (CogVideoX-2B with cross-layer aggregation): two loaders and a sampler.

The loaders return a ``CogVideoXRepVideoPipeline`` as a ``VDP_PIPELINE``; the sampler calls it and returns the
video as a core ``IMAGE`` batch ``[F, H, W, 3]``. The model code lives in ``diffusers_pipelines/repvideo``,
``models/`` and ``convert/``.
"""

import os
from typing import Optional

from ..diffusers_pipelines.repvideo.defaults import OFFICIAL
from . import _comfy, _model_cache, _sampler

CATEGORY = "video_diffusion_pack/repvideo"
WEIGHTS_KIND = "repvideo"
HUB_REPO = "Vchitect/RepVideo"
FRAME_SIZE_MULTIPLE = 16
MAX_FRAME_SIZE = 4096
# the CogVideoX VAE compresses time by 4: 4k + 1 frames
TEMPORAL_COMPRESSION = 4
MAX_FRAMES = 1025


def inputs_problem(width: Optional[int], height: Optional[int], frames: Optional[int]) -> Optional[str]:
    """Why ``width`` x ``height`` x ``frames`` cannot be generated, or None when they can (None values, from links,
    pass)."""
    problem = _sampler.size_problem(width, height, FRAME_SIZE_MULTIPLE, MAX_FRAME_SIZE,
                                    "the VAE downsamples by 8 and the transformer patches 2x2")
    if problem is None and frames is not None and (
            not 1 <= frames <= MAX_FRAMES or (frames - 1) % TEMPORAL_COMPRESSION):
        problem = (
            f"frames={frames} must be 1 + a multiple of {TEMPORAL_COMPRESSION} (the VAE compresses time by "
            f"{TEMPORAL_COMPRESSION}), e.g. 49, at most {MAX_FRAMES}"
        )
    return problem


class VDPRepVideoLoader(_comfy.PipelineFolderLoader):
    """Loads a converted RepVideo pipeline directory from ComfyUI/models/video_diffusion_pack/repvideo/."""

    WEIGHTS_KIND = WEIGHTS_KIND
    PIPELINE_CLASS = "CogVideoXRepVideoPipeline"
    EXAMPLE = f"the converted {HUB_REPO} checkpoint (vdp convert repvideo)"
    DTYPE_TOOLTIP = "Weight dtype. The official inference runs in fp16; bf16 is the safer choice on recent GPUs."
    OUTPUT_TOOLTIPS = ("The RepVideo (CogVideoX-2B) pipeline on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = (
        f"Loads RepVideo ({HUB_REPO}, CogVideoX-2B with cross-layer aggregation) as a diffusers pipeline. The release "
        f"is a SwissArmyTransformer checkpoint: convert it once with `vdp convert repvideo`."
    )

    @classmethod
    def missing_message(cls, model, found):
        root = os.path.join(_comfy.comfyui_models_dir(), _comfy.MODELS_SUBFOLDER, WEIGHTS_KIND)
        return (
            super().missing_message(model, found)
            + f" The download is a SwissArmyTransformer checkpoint; convert it into a pipeline directory with "
            f"`vdp convert repvideo --sat {os.path.join(root, 'RepVideo')} --cogvideox {os.path.join(root, 'CogVideoX-2b')} "
            f"-o {os.path.join(root, 'RepVideo-diffusers')}`."
        )


class VDPTinyRepVideoLoader(_comfy.TinyPipelineLoader):
    """Builds the embedded tiny random-weight RepVideo pipeline (no download), for smoke tests."""

    BUILDER = "build_tiny_cogvideox_repvideo_pipeline"
    OUTPUT_TOOLTIPS = ("A tiny random-weight RepVideo (CogVideoX-2B) pipeline on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = "A tiny RepVideo pipeline with seeded random weights, built in memory: a smoke test for graphs."


class VDPRepVideoSampler:
    """Generates a video from a prompt with a RepVideo pipeline, the aggregation on or off."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pipeline": _sampler.pipeline_input("a RepVideo"),
                "prompt": _sampler.prompt_input(),
                "negative_prompt": _sampler.negative_prompt_input(),
                "seed": _sampler.seed_input(OFFICIAL.seed),
                "steps": _sampler.steps_input(OFFICIAL.num_inference_steps),
                "cfg": _sampler.cfg_input(OFFICIAL.guidance_scale),
                "frames": _sampler.frames_input(OFFICIAL.num_frames, MAX_FRAMES, step=TEMPORAL_COMPRESSION,
                                                rule=f"1 + a multiple of {TEMPORAL_COMPRESSION}"),
                **_sampler.size_inputs(OFFICIAL.width, OFFICIAL.height, FRAME_SIZE_MULTIPLE, MAX_FRAME_SIZE),
                "repvideo": ("BOOLEAN", {"default": True,
                                         "tooltip": "RepVideo cross-layer aggregation for this run (the released "
                                                    "model was trained with it on); off runs the same weights as "
                                                    "plain CogVideoX. The pipeline's own setting is restored "
                                                    "afterwards."}),
                "dynamic_cfg": _sampler.dynamic_cfg_input(
                    OFFICIAL.use_dynamic_cfg, "Reschedule the guidance every step with the official DynamicCFG cosine "
                                              "ramp (exponent 5): the scale becomes 1 + cfg * ramp."),
            },
            "optional": _sampler.optional_inputs(),
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The video as an IMAGE batch [frames, height, width, 3] in 0..1 (official frame rate: 8 fps).",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = "Text-to-video with RepVideo (CogVideoX-2B); aggregation and dynamic CFG as switches."

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None, frames=None):
        problem = inputs_problem(width, height, frames)
        return True if problem is None else problem

    def sample(self, pipeline, prompt, negative_prompt, seed, steps, cfg, frames, width, height, repvideo, dynamic_cfg,
               freeinit=None, fastercache=None, lora=None):
        problem = inputs_problem(width, height, frames)
        if problem is not None:
            raise ValueError(problem)
        pipeline = _model_cache.resolve_pipeline(pipeline)
        return _sampler.run_sampler(
            pipeline, seed=seed, steps=steps, freeinit=freeinit, fastercache=fastercache, repvideo=repvideo, lora=lora,
            prompt=prompt, negative_prompt=negative_prompt, height=height, width=width, num_frames=frames,
            guidance_scale=cfg, use_dynamic_cfg=dynamic_cfg,
            max_sequence_length=pipeline.transformer.config.max_text_seq_length,
        )


NODE_CLASS_MAPPINGS = {
    "VDPRepVideoLoader": VDPRepVideoLoader,
    "VDPTinyRepVideoLoader": VDPTinyRepVideoLoader,
    "VDPRepVideoSampler": VDPRepVideoSampler,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VDPRepVideoLoader": "RepVideo (CogVideoX-2B) Loader (VDP)",
    "VDPTinyRepVideoLoader": "RepVideo Tiny Loader (VDP, smoke test)",
    "VDPRepVideoSampler": "RepVideo (CogVideoX-2B) Sampler (VDP)",
}
