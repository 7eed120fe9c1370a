"""ComfyUI node scoring a video (an ``IMAGE`` batch of frames) on a prompt-free VBench quality dimension.

The node holds no scoring: it turns the frames into uint8 and calls the dimension module of
``evaluation/vbench/dimensions``, which loads the official checkpoint files. Those are found in the folder given,
else in ComfyUI's ``models/video_diffusion_pack/vbench/`` (where ``vdp download --comfyui-models`` puts them, one
folder per manifest entry) or any path added for the ``video_diffusion_pack_vbench`` key.
"""

import os

from ..evaluation.vbench import registry
from ..evaluation.vbench.totals import QUALITY_DIMENSIONS

CATEGORY = "video_diffusion_pack/vbench"
WEIGHTS_KIND = "vbench"
DEFAULT_DIMENSION = "aesthetic_quality"


def dimensions():
    """The quality dimensions (all prompt-free) that this version of the pack computes, in the official order."""
    available = set(registry.available_dimensions())
    return [name for name in QUALITY_DIMENSIONS if name in available]


def _weights_folders(checkpoint_folder: str):
    if checkpoint_folder:
        return [checkpoint_folder]
    from ._comfy import model_folder_paths

    return model_folder_paths(WEIGHTS_KIND)


def _checkpoints(dimension: str, checkpoint_folder: str):
    from ..evaluation.vbench import resolve_checkpoints

    return resolve_checkpoints(dimension, _weights_folders(checkpoint_folder))


class VDPVBenchScore:
    """VBench score of one video on a quality dimension, with the official checkpoints, as a number and a report."""

    DESCRIPTION = (
        "Scores the frames of one video on a VBench quality dimension exactly as the official vbench code does, "
        "from the official checkpoint files."
    )

    @classmethod
    def INPUT_TYPES(cls):
        names = dimensions()
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video's frames, in order."}),
                "dimension": (names, {
                    "default": DEFAULT_DIMENSION if DEFAULT_DIMENSION in names else names[0],
                    "tooltip": "temporal_flickering: no model, needs 2+ frames; aesthetic_quality: LAION head on "
                               "CLIP ViT-L/14; imaging_quality: MUSIQ (SPAQ), the video's raw 0..100 score / 100; "
                               "motion_smoothness: AMT-S interpolation error (needs 3+ frames, 128+ px).",
                }),
                "checkpoint_folder": ("STRING", {
                    "default": "",
                    "tooltip": "Folder holding the official checkpoint files (flat, under their official names, or "
                               "one folder per manifest entry); empty: models/video_diffusion_pack/vbench, where "
                               "`vdp download --comfyui-models` puts them.",
                }),
                "batch_size": ("INT", {"default": 8, "min": 1, "max": 256,
                                       "tooltip": "Frames (or frame pairs) per model call."}),
            }
        }

    RETURN_TYPES = ("FLOAT", "STRING")
    RETURN_NAMES = ("score", "report")
    OUTPUT_TOOLTIPS = (
        "The dimension's score of this video, as the official aggregate over one video.",
        "One line: the dimension, the score and the number of frames.",
    )
    FUNCTION = "score"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, dimension, checkpoint_folder):
        names = dimensions()
        if dimension not in names:
            return f"dimension={dimension!r}; allowed: {', '.join(names)}"
        if checkpoint_folder and not os.path.isdir(checkpoint_folder):
            return f"checkpoint_folder={checkpoint_folder!r} is not a folder"
        try:
            _checkpoints(dimension, checkpoint_folder)
        except (FileNotFoundError, ValueError) as error:
            return str(error)
        return True

    def score(self, images, dimension, checkpoint_folder, batch_size):
        import torch

        from ._comfy import torch_device

        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images of shape {tuple(images.shape)} must be an IMAGE batch [frames, height, width, 3]")
        if not torch.isfinite(images).all():
            raise ValueError("images holds non-finite values")
        module = registry.dimension_module(dimension)
        frames = (images.detach().cpu().float() * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        aggregate, _ = module.compute([frames], checkpoints=_checkpoints(dimension, checkpoint_folder),
                                      device=torch_device(), batch_size=batch_size)
        report = f"{dimension}: {aggregate:.6f} ({len(frames)} frames)"
        return {"ui": {"text": [report]}, "result": (float(aggregate), report)}


NODE_CLASS_MAPPINGS = {"VDPVBenchScore": VDPVBenchScore}
NODE_DISPLAY_NAME_MAPPINGS = {"VDPVBenchScore": "VBench Score (VDP)"}
