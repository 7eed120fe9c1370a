"""ComfyUI node for FreeInit: its settings as a ``VDP_FREEINIT`` that the pack's sampler nodes take.

The node only builds a ``FreeInitConfig``; the sampler applies it to its pipeline for the run
(``hooks/free_init.py`` holds the method).
"""

CATEGORY = "video_diffusion_pack/freeinit"
FREEINIT_TYPE = "VDP_FREEINIT"


class VDPFreeInit:
    """FreeInit settings for a sampler node: re-sample from noise whose low frequencies come from the last result."""

    @classmethod
    def INPUT_TYPES(cls):
        from ..hooks.free_init import METHODS

        stop_frequency = {"default": 0.25, "min": 0.01, "max": 1.0, "step": 0.01}
        return {
            "required": {
                "iterations": ("INT", {
                    "default": 3, "min": 1, "max": 16,
                    "tooltip": "Sampling passes, the first included; each later one costs a full run "
                               "(fewer steps with fast_sampling). The authors recommend 3 to 5; 1 is plain sampling.",
                }),
                "filter": (list(METHODS), {
                    "default": "butterworth",
                    "tooltip": "Low-pass filter that picks the frequencies kept from the previous result. "
                               "gaussian suits base models with more flicker; ideal and box cut sharply.",
                }),
                "d_s": ("FLOAT", {
                    **stop_frequency,
                    "tooltip": "Spatial stop frequency (fraction of the highest frequency over height and width).",
                }),
                "d_t": ("FLOAT", {
                    **stop_frequency,
                    "tooltip": "Temporal stop frequency (fraction of the highest frequency over frames).",
                }),
                "order": ("INT", {
                    "default": 4, "min": 1, "max": 16,
                    "tooltip": "Order of the butterworth filter: higher is sharper (ideal-like), lower is smoother "
                               "(gaussian-like). Other filters ignore it.",
                }),
                "fast_sampling": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "Coarse-to-fine: pass i of n runs (i+1)/n of the steps, about half the total "
                               "cost for n=3, at some loss of quality.",
                }),
                "renoise_level": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                    "tooltip": "How far along the training noise schedule the previous result is re-noised (1.0 = "
                               "t=999, the official setting). 0 chooses it from the schedule: 1.0 where the last "
                               "timestep keeps signal, below 1 on flow-matching and zero-terminal-SNR models "
                               "(Vchitect-2.0: sigma 0.936), where 1.0 would erase the previous result.",
                }),
            }
        }

    RETURN_TYPES = (FREEINIT_TYPE,)
    RETURN_NAMES = ("freeinit",)
    OUTPUT_TOOLTIPS = ("FreeInit settings for the freeinit input of a VDP sampler node.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "FreeInit (training-free): samples several times, each time starting from noise whose low frequencies "
        "come from the previous video, for better temporal consistency. Connect to a VDP sampler's freeinit input."
    )

    def build(self, iterations, filter, d_s, d_t, order, fast_sampling, renoise_level):
        from ..hooks.free_init import FreeInitConfig

        return (FreeInitConfig(
            num_iters=iterations,
            method=filter,
            order=order,
            spatial_stop_frequency=d_s,
            temporal_stop_frequency=d_t,
            use_fast_sampling=fast_sampling,
            renoise_level=None if renoise_level == 0 else renoise_level,
        ),)


NODE_CLASS_MAPPINGS = {"VDPFreeInit": VDPFreeInit}
NODE_DISPLAY_NAME_MAPPINGS = {"VDPFreeInit": "FreeInit (VDP)"}
