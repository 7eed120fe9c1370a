"""Low-memory settings for every pipeline of the pack: one `memory` setting (a named preset plus switches).

A `MemoryConfig` names what to turn on: diffusers' offloading of whole models (`model`), of every leaf module
(`sequential`) or of block groups (`group`), VAE tiling and slicing, fp8 weight storage of the denoiser with bf16
compute (diffusers' `enable_layerwise_casting`), and the attention backend of models that call diffusers' attention
dispatch. `apply_memory(pipe, config, device)` turns them on with diffusers' own methods.

The presets and the checks are torch-free (the CLI parses and refuses `--memory` before torch is imported);
`apply_memory` imports torch when it runs.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

__all__ = [
    "MEMORY_PRESETS", "OFFLOAD_MODES", "MemoryConfig", "apply_memory", "memory_config", "memory_config_of",
    "weight_bytes_needed", "weight_bytes_on",
]

OFFLOAD_MODES = ("none", "model", "sequential", "group")
GROUP_OFFLOAD_TYPES = ("block_level", "leaf_level")

MEMORY_PRESETS: Dict[str, Dict[str, Any]] = {
    # everything on the device, nothing changed
    "none": dict(),
    # the VAE decodes in tiles and one video at a time; one model on the device at a time
    "balanced": dict(offload="model", vae_tiling=True, vae_slicing=True),
    # the denoiser's blocks are brought to the device one group at a time, weights stored in fp8
    "low": dict(offload="group", group_offload_type="block_level", vae_tiling=True, vae_slicing=True, fp8=True),
    # every leaf module is brought to the device when it runs (slowest, least device memory)
    "lowest": dict(offload="sequential", vae_tiling=True, vae_slicing=True, fp8=True),
}


@dataclass(frozen=True)
class MemoryConfig:
    """What to turn on to save device memory.

    Args:
        offload: "none", "model" (one whole model on the device at a time), "sequential" (every leaf module moved
            when it runs) or "group" (groups of blocks moved, `group_offload_type`, overlapping with CUDA streams).
        group_offload_type: "block_level" (`blocks_per_group` blocks at a time) or "leaf_level".
        blocks_per_group: blocks per group for block-level group offload.
        use_stream: overlap transfers and compute with a CUDA stream (group offload on CUDA only).
        vae_tiling: decode (and encode) in overlapping spatial tiles.
        vae_slicing: decode one video (or, for a 2-D VAE, one chunk of frames) at a time.
        fp8: store the denoiser's weights in float8 (e4m3) and compute in bf16.
        attention_backend: a diffusers attention backend name ("native", "flash", "sage", ...) for models that
            use diffusers' attention dispatch; None keeps the default.
    """

    offload: str = "none"
    group_offload_type: str = "block_level"
    blocks_per_group: int = 1
    use_stream: bool = True
    vae_tiling: bool = False
    vae_slicing: bool = False
    fp8: bool = False
    attention_backend: Optional[str] = None

    def __post_init__(self):
        if self.offload not in OFFLOAD_MODES:
            raise ValueError(f"offload={self.offload!r} is not an offload mode; choose from {list(OFFLOAD_MODES)}")
        if self.group_offload_type not in GROUP_OFFLOAD_TYPES:
            raise ValueError(
                f"group_offload_type={self.group_offload_type!r} is not a group offload type; "
                f"choose from {list(GROUP_OFFLOAD_TYPES)}"
            )
        if isinstance(self.blocks_per_group, bool) or not isinstance(self.blocks_per_group, int) \
                or self.blocks_per_group < 1:
            raise ValueError(f"blocks_per_group={self.blocks_per_group!r} must be an integer >= 1")
        for name in ("use_stream", "vae_tiling", "vae_slicing", "fp8"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False")
        if self.attention_backend is not None and (not isinstance(self.attention_backend, str)
                                                   or not self.attention_backend):
            raise ValueError(f"attention_backend={self.attention_backend!r} must be a backend name or None")

    @classmethod
    def preset(cls, name: str, **overrides) -> "MemoryConfig":
        """The config of a named preset (`MEMORY_PRESETS`), with any field overridden by keyword."""
        if name not in MEMORY_PRESETS:
            raise ValueError(f"memory={name!r} is not a memory preset; choose from {list(MEMORY_PRESETS)}")
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown memory switches {unknown}; the switches are {sorted(fields)}")
        return cls(**{**MEMORY_PRESETS[name], **overrides})

    @property
    def changes_nothing(self) -> bool:
        return self == MemoryConfig()


def memory_config(memory=None, **switches) -> MemoryConfig:
    """A `MemoryConfig` from a preset name (default "none"), a `MemoryConfig` or None, with switches overriding.

    Switches given as None are left at the preset's value.
    """
    switches = {name: value for name, value in switches.items() if value is not None}
    if isinstance(memory, MemoryConfig):
        return dataclasses.replace(memory, **switches) if switches else memory
    if memory is not None and not isinstance(memory, str):
        raise ValueError(f"memory={memory!r} must be a preset name ({list(MEMORY_PRESETS)}) or a MemoryConfig")
    return MemoryConfig.preset(memory or "none", **switches)


def _denoiser(pipe):
    for name in ("transformer", "unet"):
        model = getattr(pipe, name, None)
        if model is not None:
            return model
    raise ValueError(f"{type(pipe).__name__} has neither a transformer nor a unet to apply memory settings to")


def apply_memory(pipe, memory=None, device=None, **switches):
    """Turns on the low-memory settings on `pipe` and returns it; `device` is where the models compute.

    Checks everything before changing anything: an offload mode needs an accelerator device (on the CPU the
    weights already live in host memory, so "model"/"sequential" are refused there; "group" runs with the
    CPU as both places, which only tests the machinery), fp8 needs a torch with float8 and a device that casts it.

    Raises:
        ValueError: an unknown preset or switch, an offload mode on a device without an accelerator, fp8 without
            float8 support, an attention backend diffusers does not know, or a pipeline without a denoiser.
    """
    import torch

    config = memory_config(memory, **switches)
    device = torch.device(device if device is not None else getattr(pipe, "_execution_device", "cpu"))
    denoiser = _denoiser(pipe)
    if config.offload in ("model", "sequential") and device.type == "cpu":
        raise ValueError(
            f"offload={config.offload!r} needs an accelerator device (cuda); on device='cpu' the weights already "
            "live in host memory: use offload='none' (or 'group', which runs on the CPU as a no-op transfer)"
        )
    if config.fp8:
        if not hasattr(torch, "float8_e4m3fn"):
            raise ValueError(f"fp8=True needs a torch with float8 weights (torch.float8_e4m3fn); torch "
                             f"{torch.__version__} has none")
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("fp8=True computes in bf16, which this CUDA device does not support")
    if config.attention_backend is not None:
        from diffusers.models.attention_dispatch import AttentionBackendName

        allowed = [backend.value for backend in AttentionBackendName]
        if config.attention_backend not in allowed:
            raise ValueError(f"attention_backend={config.attention_backend!r} is not a diffusers attention backend; "
                             f"choose from {allowed}")

    if config.fp8:
        # the pipeline computes in bf16: the modules diffusers keeps out of fp8 storage (embeddings, norms, in/out
        # projections), the text encoders and the VAE take the denoiser's bf16 latents as they are
        pipe.to(dtype=torch.bfloat16)
        denoiser.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
    if config.attention_backend is not None:
        denoiser.set_attention_backend(config.attention_backend)
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        if config.vae_tiling:
            vae.enable_tiling()
        if config.vae_slicing:
            vae.enable_slicing()
    if config.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif config.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif config.offload == "group":
        kwargs = dict(onload_device=device, offload_device=torch.device("cpu"), offload_type=config.group_offload_type,
                      use_stream=config.use_stream and device.type == "cuda")
        if config.group_offload_type == "block_level":
            kwargs["num_blocks_per_group"] = config.blocks_per_group
        pipe.enable_group_offload(**kwargs)
    pipe._memory_config = config
    return pipe


def memory_config_of(pipe) -> Optional[MemoryConfig]:
    """The `MemoryConfig` applied to `pipe` by `apply_memory`, or None."""
    return getattr(pipe, "_memory_config", None)


def _modules(pipe):
    import torch

    return [module for module in pipe.components.values() if isinstance(module, torch.nn.Module)]


def _tensor_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def weight_bytes_needed(pipe, memory=None) -> int:
    """Bytes of weights `pipe` will hold on its compute device under `memory`, estimated before it is placed there.

    Without offload every model counts; with model offload the largest one (one model is on the device at a time);
    with sequential or group offload none (blocks are streamed; what they take at a time is activation-sized). fp8
    storage counts the denoiser at one byte a weight.
    """
    config = memory_config(memory)
    if config.offload in ("sequential", "group"):
        return 0
    denoiser = _denoiser(pipe)
    sizes = [sum(p.numel() for p in module.parameters()) if config.fp8 and module is denoiser
             else _tensor_bytes(module) for module in _modules(pipe)]
    if not sizes:
        return 0
    return max(sizes) if config.offload == "model" else sum(sizes)


def weight_bytes_on(pipe, device) -> int:
    """Bytes of `pipe`'s weights and buffers that are on `device` now (any index of its type when it names none)."""
    import torch

    device = torch.device(device)

    def is_there(tensor) -> bool:
        return tensor.device.type == device.type and device.index in (None, tensor.device.index)

    return sum(t.numel() * t.element_size() for module in _modules(pipe)
               for t in list(module.parameters()) + list(module.buffers()) if is_there(t))
