"""video_diffusion_pack: a diffusers plugin library and a ComfyUI custom-node pack for video diffusion research systems.

Importing the package is cheap and never imports ComfyUI: the diffusers classes are resolved on first
attribute access, and ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` come from
``custom_nodes``, whose modules touch ``comfy`` only inside node functions.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> submodule (relative to this package) that defines it
_LAZY_EXPORTS = {
    "VchitectXLTransformer3DModel": ".models.vchitect_transformer",
    "RepVideoAggregation": ".models.repvideo",
    "VchitectRepVideoPipeline": ".diffusers_pipelines.vchitect",
    "VchitectRepVideoPipelineOutput": ".diffusers_pipelines.vchitect",
    "build_tiny_vchitect_pipeline": ".diffusers_pipelines.vchitect.tiny",
    "load_embedded_vchitect_pipeline": ".diffusers_pipelines.vchitect.embedded",
    "DaSTransformer3DModel": ".models.das_transformer",
    "DaSPipeline": ".diffusers_pipelines.das",
    "build_tiny_das_pipeline": ".diffusers_pipelines.das.tiny",
    "load_embedded_das_pipeline": ".diffusers_pipelines.das.embedded",
    "CogVideoXRepVideoTransformer3DModel": ".models.cogvideox_repvideo",
    "CogVideoXRepVideoPipeline": ".diffusers_pipelines.repvideo",
    "build_tiny_cogvideox_repvideo_pipeline": ".diffusers_pipelines.repvideo.tiny",
    "convert_repvideo_sat_checkpoint": ".convert.repvideo_sat",
    "RoviUNet3DConditionModel": ".models.rovi_unet",
    "InpaintByInstructionPipeline": ".diffusers_pipelines.lgvi",
    "InpaintByInstructionPipelineOutput": ".diffusers_pipelines.lgvi",
    "build_tiny_inpaint_pipeline": ".diffusers_pipelines.lgvi.tiny",
    "load_embedded_lgvi_pipeline": ".diffusers_pipelines.lgvi.embedded",
    "LGVIInstructionEncoder": ".models.lgvi_instruction_encoder",
    "build_tiny_lgvi_instruction_encoder": ".models.lgvi_instruction_encoder",
    "load_lgvi_i_pipeline": ".diffusers_pipelines.lgvi.lgvi_i",
    "build_tiny_lgvi_i_pipeline": ".diffusers_pipelines.lgvi.lgvi_i",
    "save_tiny_lgvi_i_official_layout": ".diffusers_pipelines.lgvi.lgvi_i",
    "Camera": ".control",
    "Tracks": ".control",
    "tracks_from_depth": ".control",
    "render_tracking_video": ".control",
    "FasterCacheConfig": ".hooks.faster_cache",
    "apply_faster_cache": ".hooks.faster_cache",
    "remove_faster_cache": ".hooks.faster_cache",
    "reset_faster_cache": ".hooks.faster_cache",
    "FreeInitConfig": ".hooks.free_init",
    "apply_free_init": ".hooks.free_init",
    "remove_free_init": ".hooks.free_init",
    "free_init_applied": ".hooks.free_init",
    "write_video": ".video_io",
    "read_video": ".video_io",
    "upscale_video": ".upscale",
    "load_upscale_model": ".upscale",
    "NODE_CLASS_MAPPINGS": ".custom_nodes",
    "NODE_DISPLAY_NAME_MAPPINGS": ".custom_nodes",
}

__all__ = sorted(_LAZY_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY_EXPORTS)
