"""ComfyUI node for FasterCache: its settings as a ``VDP_FASTERCACHE`` that the pack's sampler nodes take.

The node only builds a ``FasterCacheConfig`` from a preset and optional overrides; the sampler applies it to
its pipeline for the run and removes it afterwards (``hooks/faster_cache.py`` holds the method).
"""

CATEGORY = "video_diffusion_pack/fastercache"
FASTERCACHE_TYPE = "VDP_FASTERCACHE"
# widget value meaning "the preset's value"
FROM_PRESET = -1
CACHE_PRECISIONS = ("model", "fp32", "bf16", "fp16")


class VDPFasterCache:
    """FasterCache settings for a sampler node: attention-output reuse and CFG-Cache from a fraction of the steps on."""

    @classmethod
    def INPUT_TYPES(cls):
        from ..hooks.faster_cache import FASTER_CACHE_PRESETS

        preset_note = f"{FROM_PRESET} keeps the preset's value."
        return {
            "required": {
                "preset": (sorted(FASTER_CACHE_PRESETS), {
                    "default": "vchitect-2.0",
                    "tooltip": "Official settings per model (vchitect-2.0: Vchitect-2.0's script; cogvideox: the "
                               "CogVideoX SAT script; default: a middle ground for other models; few-steps: about 20 steps, "
                               "as the embedded model samples). Schedules are "
                               "fractions of the steps, so a preset means the same at any step count.",
                }),
                "start_fraction": ("FLOAT", {
                    "default": FROM_PRESET, "min": FROM_PRESET, "max": 0.99, "step": 0.01,
                    "tooltip": "Caching starts at this fraction of the steps (vchitect-2.0: 0.30). Earlier is faster "
                               f"and drifts more. {preset_note}",
                }),
                "attention_interval": ("INT", {
                    "default": FROM_PRESET, "min": FROM_PRESET, "max": 16,
                    "tooltip": "Attention runs on every n-th step after the start and is reused in between "
                               f"(vchitect-2.0: 2; 1 never reuses). {preset_note}",
                }),
                "attention_weight": ("FLOAT", {
                    "default": FROM_PRESET, "min": FROM_PRESET, "max": 2.0, "step": 0.05,
                    "tooltip": "w in F_last + w * (F_last - F_prev): 0 reuses the last attention output as it is "
                               f"(vchitect-2.0: 0; cogvideox: 0.3). {preset_note}",
                }),
                "uncond_interval": ("INT", {
                    "default": FROM_PRESET, "min": FROM_PRESET, "max": 16,
                    "tooltip": "After the start, the unconditional (negative prompt) branch runs only on every n-th "
                               f"step and is rebuilt from the conditional one in between (1 never skips). {preset_note}",
                }),
                "low_frequency_factor": ("FLOAT", {
                    "default": FROM_PRESET, "min": FROM_PRESET, "max": 2.0, "step": 0.01,
                    "tooltip": "Per skipped step, the low-frequency part of the rebuilt unconditional residual grows "
                               f"by this factor early in the run (vchitect-2.0: 1.05). {preset_note}",
                }),
                "high_frequency_factor": ("FLOAT", {
                    "default": FROM_PRESET, "min": FROM_PRESET, "max": 2.0, "step": 0.01,
                    "tooltip": "Per skipped step, the high-frequency part grows by this factor late in the run "
                               f"(vchitect-2.0: 1.1). {preset_note}",
                }),
                "cache_precision": (list(CACHE_PRECISIONS), {
                    "default": "model",
                    "tooltip": "Precision of the cached tensors: model keeps the model's; bf16/fp16 halve the cache "
                               "of an fp32 model.",
                }),
            }
        }

    RETURN_TYPES = (FASTERCACHE_TYPE,)
    RETURN_NAMES = ("fastercache",)
    OUTPUT_TOOLTIPS = ("FasterCache settings; connect to a sampler's fastercache input.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = ("FasterCache (training-free): from about a third of the steps on, reuses attention outputs between "
                   "steps and rebuilds the negative-prompt branch from the positive one on most steps.")

    def build(self, preset, start_fraction, attention_interval, attention_weight, uncond_interval,
              low_frequency_factor, high_frequency_factor, cache_precision):
        from ..hooks.faster_cache import FasterCacheConfig

        if cache_precision not in CACHE_PRECISIONS:
            raise ValueError(f"cache_precision={cache_precision!r} must be one of {list(CACHE_PRECISIONS)}")
        overrides = {
            name: value
            for name, value in (
                ("start_fraction", start_fraction),
                ("attention_interval", attention_interval),
                ("attention_weight", attention_weight),
                ("uncond_interval", uncond_interval),
                ("low_frequency_factor", low_frequency_factor),
                ("high_frequency_factor", high_frequency_factor),
            )
            if value != FROM_PRESET
        }
        if cache_precision != "model":
            overrides["cache_dtype"] = cache_precision
        return (FasterCacheConfig.preset(preset, **overrides),)


NODE_CLASS_MAPPINGS = {"VDPFasterCache": VDPFasterCache}
NODE_DISPLAY_NAME_MAPPINGS = {"VDPFasterCache": "FasterCache (VDP)"}
