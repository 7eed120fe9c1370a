"""ComfyUI nodes for RepVideo as released (CogVideoX-2B with cross-layer aggregation): two loaders and a sampler.

The loaders return a ``CogVideoXRepVideoPipeline`` as a ``VDP_PIPELINE``; the sampler calls it and returns the
video as a core ``IMAGE`` batch ``[F, H, W, 3]``. The model code lives in ``diffusers_pipelines/cogvideox_repvideo``,
``models/`` and ``convert/``.
"""

import os
from typing import Optional

import torch

from . import _comfy

CATEGORY = "video_diffusion_pack/repvideo"
PIPELINE_TYPE = "VDP_PIPELINE"
WEIGHTS_KIND = "repvideo"
HUB_REPO = "Vchitect/RepVideo"
FRAME_SIZE_MULTIPLE = 16
MAX_FRAME_SIZE = 4096
# the CogVideoX VAE compresses time by 4: 4k + 1 frames
TEMPORAL_COMPRESSION = 4
MAX_FRAMES = 1025


def inputs_problem(width: Optional[int], height: Optional[int], frames: Optional[int]) -> Optional[str]:
    """Why ``width`` x ``height`` x ``frames`` cannot be generated, or None when they can.

    A value of None (an input fed by a link, not known at validation time) is not checked. The range is checked
    here too because newer ComfyUI skips its own min/max check for inputs VALIDATE_INPUTS takes.
    """
    for name, value in (("width", width), ("height", height)):
        if value is None:
            continue
        if value % FRAME_SIZE_MULTIPLE != 0 or not FRAME_SIZE_MULTIPLE <= value <= MAX_FRAME_SIZE:
            return (
                f"{name}={value} must be divisible by {FRAME_SIZE_MULTIPLE} and between {FRAME_SIZE_MULTIPLE} and "
                f"{MAX_FRAME_SIZE} (the VAE downsamples by 8 and the transformer patches 2x2)"
            )
    if frames is not None and (not 1 <= frames <= MAX_FRAMES or (frames - 1) % TEMPORAL_COMPRESSION):
        return (
            f"frames={frames} must be 1 + a multiple of {TEMPORAL_COMPRESSION} (the VAE compresses time by "
            f"{TEMPORAL_COMPRESSION}), e.g. 49, at most {MAX_FRAMES}"
        )
    return None


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
        size = {"min": FRAME_SIZE_MULTIPLE, "max": MAX_FRAME_SIZE, "step": FRAME_SIZE_MULTIPLE}
        return {
            "required": {
                "pipeline": (PIPELINE_TYPE, {"tooltip": "From a RepVideo loader."}),
                "prompt": ("STRING", {"multiline": True, "dynamicPrompts": True, "default": "",
                                      "tooltip": "What the video shows."}),
                "negative_prompt": ("STRING", {"multiline": True, "dynamicPrompts": True, "default": "",
                                               "tooltip": "What to steer away from (the official runs use an empty one)."}),
                "seed": ("INT", {"default": 42, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "Seed of the initial noise, drawn on the CPU (official: 42)."}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 1000, "tooltip": "Denoising steps (official: 50)."}),
                "cfg": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance scale (official: 6). Without dynamic_cfg, 1 or "
                                             "less turns guidance off."}),
                "frames": ("INT", {"default": 49, "min": 1, "max": MAX_FRAMES, "step": TEMPORAL_COMPRESSION,
                                   "tooltip": "Number of frames, 1 + a multiple of 4 (official: 49, about 6 s at 8 fps)."}),
                "width": ("INT", {"default": 720, **size, "tooltip": "Width in pixels, a multiple of 16 (official: 720)."}),
                "height": ("INT", {"default": 480, **size, "tooltip": "Height in pixels, a multiple of 16 (official: 480)."}),
                "repvideo": ("BOOLEAN", {"default": True,
                                         "tooltip": "RepVideo cross-layer aggregation for this run (the released "
                                                    "model was trained with it on); off runs the same weights as plain "
                                                    "CogVideoX. The pipeline's own setting is restored afterwards."}),
                "dynamic_cfg": ("BOOLEAN", {"default": True,
                                            "tooltip": "Reschedule the guidance every step with the official DynamicCFG "
                                                       "cosine ramp (exponent 5): the scale becomes 1 + cfg * ramp."}),
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
    OUTPUT_TOOLTIPS = ("The video as an IMAGE batch [frames, height, width, 3] in 0..1 (official frame rate: 8 fps).",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = "Text-to-video with RepVideo (CogVideoX-2B); aggregation and dynamic CFG as switches."

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None, frames=None):
        problem = inputs_problem(width, height, frames)
        return True if problem is None else problem

    def sample(self, pipeline, prompt, negative_prompt, seed, steps, cfg, frames, width, height, repvideo, dynamic_cfg,
               freeinit=None, fastercache=None):
        from ..hooks.faster_cache import faster_cache_applied
        from ..hooks.free_init import free_init_applied

        problem = inputs_problem(width, height, frames)
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
                max_sequence_length=pipeline.transformer.config.max_text_seq_length,
                callback_on_step_end=_comfy.progress_callback(total_steps),
                callback_on_step_end_tensor_inputs=[],
            )
        return (_comfy.video_to_image_batch(output.frames),)


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
