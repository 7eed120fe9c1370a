"""ComfyUI node for LoRAs: a LoRA file from ComfyUI's ``loras`` folder with a strength, as a ``VDP_LORA``.

The node only names the file and the strength (several nodes chain into one ``VDP_LORA``); the sampler nodes load the
LoRAs into their pipeline for the run and unload them afterwards (``diffusers_pipelines/lora.py``), so a pipeline a
loader node keeps in ComfyUI's cache is never changed for other graphs, and changing a LoRA reloads no model.
"""

import dataclasses
import os

CATEGORY = "video_diffusion_pack/lora"
LORA_TYPE = "VDP_LORA"
LORAS_FOLDER = "loras"
MAX_STRENGTH = 10.0


@dataclasses.dataclass(frozen=True)
class LoraSelection:
    """One LoRA of a ``VDP_LORA``: the file (absolute path), its name in the ``loras`` folder, its strength."""

    path: str
    name: str
    strength: float


def lora_names():
    """The LoRA files ComfyUI's ``loras`` folders hold (``extra_model_paths.yaml`` entries included)."""
    import folder_paths

    return folder_paths.get_filename_list(LORAS_FOLDER)


def lora_path(name: str) -> str:
    """Absolute path of ``name`` listed by :func:`lora_names`; FileNotFoundError naming the folders otherwise."""
    import folder_paths

    path = folder_paths.get_full_path(LORAS_FOLDER, name) if isinstance(name, str) else None
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(f"lora_name={name!r} is not a file in ComfyUI's loras folders "
                                f"{folder_paths.get_folder_paths(LORAS_FOLDER)}; put the LoRA file "
                                "(pytorch_lora_weights.safetensors from `vdp train --type lora`, renamed as you like) "
                                "there and refresh")
    return path


class VDPLoRA:
    """A LoRA with a strength for a VDP sampler node; chain several through the optional ``lora`` input."""

    @classmethod
    def INPUT_TYPES(cls):
        names = lora_names()
        return {
            "required": {
                "lora_name": (names or [f"no LoRA in models/{LORAS_FOLDER}"], {
                    "tooltip": f"A LoRA in diffusers' format (as `vdp train --type lora` writes it) from "
                               f"ComfyUI/models/{LORAS_FOLDER}/. It must be one for the sampler's model: a LoRA "
                               "of another model is refused with the prefix its keys should have.",
                }),
                "strength": ("FLOAT", {
                    "default": 1.0, "min": -MAX_STRENGTH, "max": MAX_STRENGTH, "step": 0.01,
                    "tooltip": "How strongly the LoRA acts (its adapter weight): 1 as trained, 0 leaves the output "
                               "exactly as without it, negative values push the other way.",
                }),
            },
            "optional": {
                "lora": (LORA_TYPE, {"tooltip": "LoRAs from other LoRA nodes, applied together with this one."}),
            },
        }

    RETURN_TYPES = (LORA_TYPE,)
    RETURN_NAMES = ("lora",)
    OUTPUT_TOOLTIPS = ("The LoRAs for the lora input of a VDP sampler node, which applies them for its run only.",)
    FUNCTION = "select"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Applies a trained LoRA file with a strength to a VDP sampler's pipeline for its run (connect to "
                   "the sampler's lora input); the cached pipeline is left as it was.")

    @classmethod
    def IS_CHANGED(cls, lora_name=None, strength=None, **_):
        # a LoRA file written again under the same name (a new training run) must run the sampler again
        try:
            stat = os.stat(lora_path(lora_name))
        except FileNotFoundError:
            return f"{lora_name!r} missing"
        return f"{lora_name!r} {stat.st_size} {stat.st_mtime_ns} {strength!r}"

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name=None):
        if lora_name is None:
            return True
        try:
            lora_path(lora_name)
        except FileNotFoundError as error:
            return str(error)
        return True

    def select(self, lora_name, strength, lora=None):
        from ..diffusers_pipelines.lora import check_adapter_weight

        check_adapter_weight("strength", strength)
        if abs(strength) > MAX_STRENGTH:
            raise ValueError(f"strength={strength!r} must be between {-MAX_STRENGTH} and {MAX_STRENGTH}")
        if lora is not None and not (isinstance(lora, tuple) and all(isinstance(s, LoraSelection) for s in lora)):
            raise ValueError(f"lora={lora!r} must come from a VDP LoRA node")
        return ((lora or ()) + (LoraSelection(lora_path(lora_name), lora_name, float(strength)),),)


NODE_CLASS_MAPPINGS = {"VDPLoRA": VDPLoRA}
NODE_DISPLAY_NAME_MAPPINGS = {"VDPLoRA": "LoRA (VDP)"}
