"""ComfyUI nodes for Diffusion as Shader: loaders, tracking-video construction (camera, depth, object motion, track
files, rendering) and the sampler.

Tracking videos leave the render node as a core ``IMAGE`` batch, so they can be previewed or saved with core nodes
and fed to the sampler; any other ``IMAGE`` video of the right size (a Blender render, say) works as well. The math
lives in ``control/`` and ``diffusers_pipelines/das``.
"""

import os

import torch

from ..diffusers_pipelines.das.defaults import OFFICIAL
from . import _comfy, _sampler

CATEGORY = "video_diffusion_pack/das"
TRACKS_TYPE = "VDP_TRACKS"
CAMERA_TYPE = "VDP_CAMERA"
WEIGHTS_KIND = "das"
PIPELINE_CLASS = "DaSPipeline"
DEPTH_MEANINGS = ("disparity (white is near)", "depth (white is far)")
MAX_FRAMES = 1024


def _single_image(image: torch.Tensor, name: str) -> torch.Tensor:
    """ComfyUI IMAGE [B, H, W, 3] -> its first image [H, W, 3]."""
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"{name} has shape {tuple(image.shape)}; expected an IMAGE batch [batch, height, width, 3]")
    if image.shape[0] == 0:
        raise ValueError(f"{name} is an empty IMAGE batch (shape {tuple(image.shape)}); expected at least one image")
    if image.is_floating_point() and not bool(torch.isfinite(image[0]).all()):
        raise ValueError(f"{name} has NaN or infinite values; expected an IMAGE in 0..1")
    return image[0]


def input_file(path: str) -> str:
    """`path` (a name relative to ComfyUI's input folder, or an absolute path inside it) as an absolute path;
    ValueError for a path outside the input folder, as core's load nodes only read files from there."""
    import folder_paths

    folder = os.path.realpath(folder_paths.get_input_directory())
    resolved = os.path.realpath(os.path.join(folder, path))
    if os.path.commonpath([folder, resolved]) != folder:
        raise ValueError(f"path={path!r} is outside ComfyUI's input folder {folder!r}; put the tracks file there "
                         f"and give its name")
    return resolved


class VDPDaSLoader(_comfy.PipelineFolderLoader):
    """Loads a DaS pipeline directory from ComfyUI/models/video_diffusion_pack/das/."""

    WEIGHTS_KIND = WEIGHTS_KIND
    PIPELINE_CLASS = PIPELINE_CLASS
    EXAMPLE = "EXCAI/Diffusion-As-Shader"
    OUTPUT_TOOLTIPS = ("The DaS pipeline on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads Diffusion as Shader (EXCAI/Diffusion-As-Shader) as a diffusers pipeline."


class VDPTinyDaSLoader(_comfy.TinyPipelineLoader):
    """The embedded tiny DaS (no download): trained on the shapes world, or seeded random weights."""

    BUILDER = "build_tiny_das_pipeline"
    TRAINED = True
    OUTPUT_TOOLTIPS = ("A tiny DaS pipeline on ComfyUI's device: the shapes-world model (32x32, 5 frames) or random "
                       "weights (32x32, 9 frames).",)
    CATEGORY = CATEGORY
    DESCRIPTION = ("A tiny DaS pipeline, no download. weights 'trained' (default): the pack's model trained on its "
                   "shapes world, as the Embedded Loader (32x32, 5 frames; it moves the first frame's object along the "
                   "tracking video). 'random': seeded random weights for 32x32, 9-frame videos, noise, a smoke test.")


class VDPEmbeddedDaSLoader(_comfy.EmbeddedPipelineLoader):
    """Loads the pack's embedded DaS: a small model trained on the shapes world, shipped in the package."""

    LOADER = "load_embedded_das_pipeline"
    OUTPUT_TOOLTIPS = ("The embedded DaS (32x32, 5 frames) on ComfyUI's device.",)
    CATEGORY = CATEGORY
    DESCRIPTION = ("The pack's built-in Diffusion as Shader, trained on a CPU on its shapes world (no download): from "
                   "a 32x32 first frame of one flat shape on a plain or two-tone background and a 5-frame tracking "
                   "video, it moves the shape along the tracking video. Nothing outside that world.")


class VDPDaSCameraTrajectory:
    """A camera path from the official DaS command strings."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "command": ("STRING", {
                "default": "rot y 30",
                "tooltip": "';'-separated 'trans dx dy dz [start end]' (+x camera left, +y up, +z back), "
                           "'rot x|y|z degrees [start end]' ('rot y 30' pans left), 'spiral radius [start end]'. "
                           "Empty: a still camera.",
            }),
            "frames": ("INT", {"default": OFFICIAL.num_frames, "min": 2, "max": MAX_FRAMES,
                               "tooltip": f"Frames (DaS: {OFFICIAL.num_frames})."}),
        }}

    RETURN_TYPES = (CAMERA_TYPE,)
    RETURN_NAMES = ("camera",)
    OUTPUT_TOOLTIPS = ("World-to-camera matrices, one per frame.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = "Camera motion for a tracking video, from DaS's command strings."

    @classmethod
    def VALIDATE_INPUTS(cls, command=None, frames=None):
        from ..control.camera import camera_trajectory

        if command is None or frames is None:
            return True
        try:
            camera_trajectory(command, frames)
        except ValueError as error:
            return str(error)
        return True

    def build(self, command, frames):
        from ..control.camera import camera_trajectory

        return (camera_trajectory(command, frames),)


class VDPDaSDepthToTracks:
    """Tracks of every pixel (or a grid) of an image, from its depth map, seen along a camera path."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The first frame; its size is the video's size."}),
            "depth": ("IMAGE", {"tooltip": "A grey depth image of the same size (e.g. from a depth-estimation node)."}),
            "depth_meaning": (list(DEPTH_MEANINGS), {
                "default": DEPTH_MEANINGS[0],
                "tooltip": "Depth-estimation nodes usually give disparity (white is near); it becomes depth = 1 / value, "
                           "scaled to a median of 1. 'depth' takes the values as depth (black, i.e. 0, is refused).",
            }),
            "camera": (CAMERA_TYPE, {"tooltip": "From Camera Trajectory; its frame count is the video's."}),
            "fov_degrees": ("FLOAT", {"default": 55.0, "min": 1.0, "max": 179.0, "step": 0.5,
                                      "tooltip": "Horizontal field of view of the image (official default: 55)."}),
            "grid_size": ("INT", {"default": 0, "min": 0, "max": 4096,
                                  "tooltip": "0 tracks every pixel (the official image path); N tracks an N x N grid "
                                             "(the official trackers: 70)."}),
        }}

    RETURN_TYPES = (TRACKS_TYPE,)
    RETURN_NAMES = ("tracks",)
    OUTPUT_TOOLTIPS = ("3D point tracks, coloured by their frame-0 position and depth.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = "Unprojects the image's pixels with their depth and follows them along the camera path."

    def build(self, image, depth, depth_meaning, camera, fov_degrees, grid_size):
        from ..control import default_intrinsics, disparity_to_depth, tracks_from_depth

        if depth_meaning not in DEPTH_MEANINGS:
            raise ValueError(f"depth_meaning={depth_meaning!r} must be one of {list(DEPTH_MEANINGS)}")
        picture = _single_image(image, "image")
        values = _single_image(depth, "depth").mean(-1)
        depth_map = disparity_to_depth(values) if depth_meaning == DEPTH_MEANINGS[0] else values
        height, width = picture.shape[:2]
        tracks = tracks_from_depth(
            picture, depth_map, intrinsics=default_intrinsics(height, width, fov_degrees), camera=camera,
            grid_size=grid_size or None,
        )
        return (tracks,)


class VDPDaSObjectMotion:
    """Moves the tracked object under a mask: up, down, left, right, front, back or rot, about its centroid."""

    @classmethod
    def INPUT_TYPES(cls):
        from ..control.object_motion import DEFAULT_DISTANCE, MOTIONS

        return {"required": {
            "tracks": (TRACKS_TYPE, {"tooltip": "From Depth to Tracks (moved in 3D) or Load Tracks (moved in pixels)."}),
            "mask": ("MASK", {"tooltip": "The object in the first frame (values > 0.5), at the tracks' size."}),
            "motion": (list(MOTIONS), {"default": "up", "tooltip": "front moves away from the camera, back towards it; "
                                                                   "rot turns about the vertical axis."}),
            "distance": ("FLOAT", {"default": DEFAULT_DISTANCE, "min": -4096.0, "max": 4096.0, "step": 1.0,
                                   "tooltip": "Pixels at the object's depth by the last frame (degrees for rot); "
                                              "official: 50."}),
        }}

    RETURN_TYPES = (TRACKS_TYPE,)
    RETURN_NAMES = ("tracks",)
    OUTPUT_TOOLTIPS = ("The tracks with the object moving; colours unchanged.",)
    FUNCTION = "move"
    CATEGORY = CATEGORY
    DESCRIPTION = "Object manipulation: the masked points move about their centroid over the frames."

    def move(self, tracks, mask, motion, distance):
        from ..control import apply_object_motion

        if mask.ndim == 3:
            mask = mask[0]
        return (apply_object_motion(tracks, mask, motion, distance),)


class VDPDaSLoadTracks:
    """Loads tracker output (SpatialTracker or CoTracker layout, .npz or .pt) for motion transfer."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "path": ("STRING", {"default": "tracks.npz",
                                "tooltip": "A .npz/.pt file in ComfyUI's input folder (its name there)."}),
            "width": ("INT", {"default": OFFICIAL.width, "min": 1, "max": 8192,
                              "tooltip": "Width of the tracked video."}),
            "height": ("INT", {"default": OFFICIAL.height, "min": 1, "max": 8192,
                               "tooltip": "Height of the tracked video."}),
            "visibility_threshold": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 1.0, "step": 0.01,
                                               "tooltip": "For float visibilities (SpatialTracker: 0.9)."}),
        }}

    RETURN_TYPES = (TRACKS_TYPE,)
    RETURN_NAMES = ("tracks",)
    OUTPUT_TOOLTIPS = ("The tracks, coloured by their frame-0 position and depth.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Tracks from a tracker's output file (2D tracks get depth 1)."

    def load(self, path, width, height, visibility_threshold):
        from ..control import load_tracks

        return (load_tracks(input_file(path), height, width, visibility_threshold=visibility_threshold),)


class VDPDaSRenderTracking:
    """Renders tracks as the tracking video (coloured squares on black, nearer points on top)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "tracks": (TRACKS_TYPE, {"tooltip": "From Depth to Tracks, Object Motion or Load Tracks."}),
            "point_size": ("INT", {"default": 2, "min": 1, "max": 64,
                                   "tooltip": "Official: 2 for every-pixel depth tracks, 4 for 70x70 tracker grids "
                                              "(a splat is 2 * (size // 2) + 1 pixels wide)."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("tracking_video",)
    OUTPUT_TOOLTIPS = ("The tracking video as an IMAGE batch [frames, height, width, 3].",)
    FUNCTION = "render"
    CATEGORY = CATEGORY
    DESCRIPTION = "The DaS tracking video, previewable with core image nodes."

    def render(self, tracks, point_size):
        from ..control import render_tracking_video

        return (render_tracking_video(tracks, point_size=point_size),)


class VDPDaSSampler:
    """Generates a video from an image, a prompt and a tracking video with a DaS pipeline."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pipeline": _sampler.pipeline_input("a DaS"),
            "image": ("IMAGE", {"tooltip": "The first frame (resized to the tracking video's size)."}),
            "tracking_video": ("IMAGE", {"tooltip": "Its frame count and size are the output's (DaS: "
                                                    f"{OFFICIAL.num_frames} x {OFFICIAL.height}x{OFFICIAL.width})."}),
            "prompt": _sampler.prompt_input(),
            "negative_prompt": _sampler.negative_prompt_input(OFFICIAL.negative_prompt,
                                                              "The official negative prompt by default."),
            "seed": _sampler.seed_input(OFFICIAL.seed, "the noise"),
            "steps": _sampler.steps_input(OFFICIAL.num_inference_steps),
            "cfg": _sampler.guidance_input(OFFICIAL.guidance_scale,
                                           "Classifier-free guidance; 1 or less turns it off"),
            "dynamic_cfg": _sampler.dynamic_cfg_input(OFFICIAL.use_dynamic_cfg, "The official cosine guidance ramp."),
        }, "optional": _sampler.optional_inputs()}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The video as an IMAGE batch [frames, height, width, 3] in 0..1.",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = "Diffusion as Shader: image-to-video following the tracking video."

    def sample(self, pipeline, image, tracking_video, prompt, negative_prompt, seed, steps, cfg, dynamic_cfg,
               freeinit=None, fastercache=None, lora=None):
        from PIL import Image

        first = _single_image(image, "image")
        picture = Image.fromarray((first.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())
        num_frames, height, width = tracking_video.shape[:3]
        return _sampler.run_sampler(
            pipeline, seed=seed, steps=steps, freeinit=freeinit, fastercache=fastercache, lora=lora,
            image=picture, prompt=prompt, negative_prompt=negative_prompt, tracking_video=tracking_video.cpu(),
            height=height, width=width, num_frames=num_frames, guidance_scale=cfg, use_dynamic_cfg=dynamic_cfg,
        )


NODE_CLASS_MAPPINGS = {
    "VDPDaSLoader": VDPDaSLoader,
    "VDPTinyDaSLoader": VDPTinyDaSLoader,
    "VDPEmbeddedDaSLoader": VDPEmbeddedDaSLoader,
    "VDPDaSCameraTrajectory": VDPDaSCameraTrajectory,
    "VDPDaSDepthToTracks": VDPDaSDepthToTracks,
    "VDPDaSObjectMotion": VDPDaSObjectMotion,
    "VDPDaSLoadTracks": VDPDaSLoadTracks,
    "VDPDaSRenderTracking": VDPDaSRenderTracking,
    "VDPDaSSampler": VDPDaSSampler,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VDPDaSLoader": "DaS Loader (VDP)",
    "VDPTinyDaSLoader": "DaS Tiny Loader (VDP)",
    "VDPEmbeddedDaSLoader": "DaS Embedded Loader (VDP, shapes world)",
    "VDPDaSCameraTrajectory": "DaS Camera Trajectory (VDP)",
    "VDPDaSDepthToTracks": "DaS Depth to Tracks (VDP)",
    "VDPDaSObjectMotion": "DaS Object Motion (VDP)",
    "VDPDaSLoadTracks": "DaS Load Tracks (VDP)",
    "VDPDaSRenderTracking": "DaS Render Tracking Video (VDP)",
    "VDPDaSSampler": "DaS Sampler (VDP)",
}
