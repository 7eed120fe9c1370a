"""The loader nodes' `memory` input: a preset of diffusers_pipelines/memory.py, applied on ComfyUI's device."""

from ..diffusers_pipelines.memory import MEMORY_PRESETS

MEMORY_TOOLTIP = (
    "Low-memory preset. none: everything on the device; balanced: one model on the device at a time, VAE tiling and "
    "slicing; low: the denoiser's blocks moved to the device group by group, fp8 weights with bf16 compute; lowest: "
    "every layer moved when it runs, fp8 weights (slowest). Offloading needs a GPU; on the CPU use none or low."
)


def memory_inputs():
    """The optional ``memory`` socket of the loader nodes."""
    return {"memory": (list(MEMORY_PRESETS), {"default": "none", "tooltip": MEMORY_TOOLTIP})}


def place_pipeline(pipeline, memory: str, device):
    """Moves `pipeline` to `device` (unless the preset offloads, which places it itself) and applies the preset."""
    from ..diffusers_pipelines.memory import apply_memory, memory_config

    config = memory_config(memory)
    if config.offload == "none":
        pipeline.to(device)
    return apply_memory(pipeline, config, device=device)


def check_memory(memory: str, device) -> None:
    """Refuses, before anything loads, a preset that is not one or that offloads whole models on the CPU."""
    from ..diffusers_pipelines.memory import memory_config

    config = memory_config(memory)
    if config.offload in ("model", "sequential") and str(device).startswith("cpu"):
        raise ValueError(f"memory={memory!r} offloads with offload={config.offload!r}, which needs a GPU; ComfyUI runs "
                         "on the cpu here: choose memory 'none' or 'low'")
