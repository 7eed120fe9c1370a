"""3D tracking videos for Diffusion as Shader: tracks, cameras, colours, rendering, object motion, meshes, depth.

Pure torch (+ kornia geometry); no model weights are needed except for the optional depth estimation.
"""

from .camera import Camera, camera_trajectory, default_intrinsics, look_at
from .colorize import colorize_tracks
from .depth import disparity_to_depth, estimate_depth, grid_pixels, tracks_from_depth
from .mesh import mesh_vertex_colors, render_mesh_tracking_video
from .object_motion import MOTIONS, apply_object_motion, object_motion_matrices
from .render import render_tracking_video
from .tracks import Tracks, load_tracks

__all__ = [
    "MOTIONS",
    "Camera",
    "Tracks",
    "apply_object_motion",
    "camera_trajectory",
    "colorize_tracks",
    "default_intrinsics",
    "disparity_to_depth",
    "estimate_depth",
    "grid_pixels",
    "load_tracks",
    "look_at",
    "mesh_vertex_colors",
    "object_motion_matrices",
    "render_mesh_tracking_video",
    "render_tracking_video",
    "tracks_from_depth",
]
