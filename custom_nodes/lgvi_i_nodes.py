"""ComfyUI loaders for LGVI-I: the inpainting pipeline with LLaVA-1.5 writing the instruction from a chat request.

The loaders return a ``VDP_PIPELINE`` for the ``VDPInpaintByInstruction`` node; with LGVI-I its prompt is the request
("I have this shot of a pelican ... make it solely about the pelican") and LLaVA turns it into the inpainting
instruction. The weights are three folders under ``ComfyUI/models/video_diffusion_pack/lgvi/``: ``lgvi-i``,
``llava-v1.5-7b`` and ``clip-vit-large-patch14-336``.
"""

import json
import os
from typing import Callable, List

from ..diffusers_pipelines.lgvi.defaults import OFFICIAL
from . import _comfy

# a sub-menu of the LGVI nodes (they are in "video_diffusion_pack/lgvi")
CATEGORY = "video_diffusion_pack/lgvi/lgvi-i"
WEIGHTS_KIND = "lgvi"
OVERLAY_PATH = os.path.join("llava", "llava_weights.pth")
# manifest entries of the three folders, in the order of the node's inputs
FOLDER_ENTRIES = {"lgvi_i": "lgvi-i", "llava": "llava-v1.5-7b", "clip": "clip-vit-large-patch14-336"}
# the file that marks each folder for `weights.find_local_folder`
FOLDER_MARKERS = {"lgvi_i": "model_index.json", "llava": "config.json", "clip": "config.json"}


def _read_config(folder: str) -> dict:
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _is_lgvi_i(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, name)) for name in ("model_index.json", OVERLAY_PATH))


def _is_llava(folder: str) -> bool:
    return "mm_hidden_size" in _read_config(folder)


def _is_clip(folder: str) -> bool:
    return _read_config(folder).get("model_type") in ("clip", "clip_vision_model")


FOLDER_KINDS = {"lgvi_i": _is_lgvi_i, "llava": _is_llava, "clip": _is_clip}


def list_folders(is_wanted: Callable[[str], bool]) -> List[str]:
    """Names of the sub-folders of the ``lgvi`` search folders that ``is_wanted`` accepts, sorted."""
    found = set()
    for search_folder in _comfy.model_folder_paths(WEIGHTS_KIND):
        if not os.path.isdir(search_folder):
            continue
        for name in os.listdir(search_folder):
            if is_wanted(os.path.join(search_folder, name)):
                found.add(name)
    return sorted(found)


def resolve_folder(argument: str, name: str) -> str:
    """Absolute path of ``name`` in the ``lgvi`` search folders, checked to be of the kind ``argument`` takes.

    Each search folder's ``name`` is found with ``weights.find_local_folder``, as every loader of the pack finds its
    weights, so ``name`` may be the folder itself or a models root holding ``lgvi/<entry>/``.
    """
    from ..weights.manifest import find_local_folder, load_manifest

    entry = load_manifest().get(FOLDER_ENTRIES[argument])
    for search_folder in _comfy.model_folder_paths(WEIGHTS_KIND):
        try:
            folder = find_local_folder(os.path.join(search_folder, name), entry, FOLDER_MARKERS[argument])
        except FileNotFoundError:
            continue
        if FOLDER_KINDS[argument](str(folder)):
            return str(folder)
    raise FileNotFoundError(_missing_message(argument, name))


def _missing_message(argument: str, name: str) -> str:
    from ..weights.manifest import load_manifest

    entry = load_manifest().get(FOLDER_ENTRIES[argument])
    return (
        f"{argument}={name!r} is not a {entry.name} folder in {_comfy.model_folder_paths(WEIGHTS_KIND)}; found: "
        f"{list_folders(FOLDER_KINDS[argument])}. Download it ({entry.repo_id}) with "
        f"`{entry.download_command(_comfy.comfyui_models_dir())}`, or add a '{_comfy.model_folder_key(WEIGHTS_KIND)}' "
        f"entry to extra_model_paths.yaml; then refresh."
    )


class VDPLGVIILoader:
    """Loads LGVI-I (jianzongwu/lgvi-i + liuhaotian/llava-v1.5-7b + openai/clip-vit-large-patch14-336)."""

    RETURN_TYPES = ("VDP_PIPELINE",)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The LGVI-I inpainting pipeline, LLaVA-1.5 as its instruction encoder, on ComfyUI's device.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Loads LGVI-I: the video inpainting UNet plus LLaVA-1.5, which reads the first frame and a chat "
                   "request and writes the inpainting instruction.")

    @classmethod
    def INPUT_TYPES(cls):
        where = f"ComfyUI/models/{_comfy.MODELS_SUBFOLDER}/{WEIGHTS_KIND}/"
        inputs = {}
        for argument, entry in FOLDER_ENTRIES.items():
            found = list_folders(FOLDER_KINDS[argument])
            inputs[argument] = (found or [f"no {entry} folder in {where}"], {
                "tooltip": f"The {entry} folder under {where}.",
            })
        inputs["dtype"] = (list(_comfy.DTYPES), {
            "default": "fp16", "tooltip": "Weight dtype. The official inference runs in fp16."})
        inputs["max_new_tokens"] = ("INT", {
            "default": OFFICIAL.max_new_tokens, "min": 1, "max": 4096,
            "tooltip": f"Longest answer LLaVA may write (official: {OFFICIAL.max_new_tokens}).",
        })
        return {"required": inputs}

    @classmethod
    def VALIDATE_INPUTS(cls, lgvi_i, llava, clip):
        # one message naming every missing folder (ComfyUI repeats it under each of the three inputs)
        problems = [_missing_message(argument, name)
                    for argument, name in (("lgvi_i", lgvi_i), ("llava", llava), ("clip", clip))
                    if name not in list_folders(FOLDER_KINDS[argument])]
        return " ".join(problems) if problems else True

    def load(self, lgvi_i, llava, clip, dtype, max_new_tokens):
        from ..diffusers_pipelines.lgvi.lgvi_i import load_lgvi_i_pipeline

        if dtype not in _comfy.DTYPES:
            raise ValueError(f"dtype={dtype!r} must be one of {list(_comfy.DTYPES)}")
        folders = {argument: resolve_folder(argument, name)
                   for argument, name in (("lgvi_i", lgvi_i), ("llava", llava), ("clip", clip))}
        inputs = dict(lgvi_i=lgvi_i, llava=llava, clip=clip, dtype=dtype, max_new_tokens=max_new_tokens)
        return (_comfy.managed_pipeline(
            type(self), inputs, lambda: load_lgvi_i_pipeline(folders["lgvi_i"], folders["llava"], folders["clip"],
                                                             torch_dtype=_comfy.DTYPES[dtype],
                                                             max_new_tokens=max_new_tokens)),)


class VDPTinyLGVIILoader(_comfy.TinyPipelineLoader):
    """A tiny random-weight LGVI-I pipeline (no download), for testing graphs."""

    BUILDER = "build_tiny_lgvi_i_pipeline"
    OUTPUT_TOOLTIPS = ("A tiny random-weight LGVI-I pipeline (any size that is a multiple of 8) on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = ("A tiny LGVI-I pipeline with seeded random weights and a tiny LLaVA writing up to 8 tokens: a smoke "
                   "test for graphs.")


NODE_CLASS_MAPPINGS = {"VDPLGVIILoader": VDPLGVIILoader, "VDPTinyLGVIILoader": VDPTinyLGVIILoader}
NODE_DISPLAY_NAME_MAPPINGS = {
    "VDPLGVIILoader": "LGVI-I Loader (VDP, LLaVA instructions)",
    "VDPTinyLGVIILoader": "LGVI-I Tiny Loader (VDP, smoke test)",
}
