"""Mesh-to-video for DaS: a z-buffered rasterisation of an animated mesh, coloured by its frame-0 screen positions.

This is what the official Blender script (`scripts/blender.py`) renders, in torch: every vertex gets the colour
of its frame-0 projection (R = u / W, G = v / H, B = inverse depth normalised between its 2nd and 98th
percentiles, via `colorize_tracks`), vertices behind the camera or outside the frame at frame 0 are black, and
the surface is drawn as an emission shader on black, i.e. vertex colours interpolated across each triangle
(perspective-correct) and the nearest surface kept per pixel.

Rasterisation rules: a pixel is covered when its centre (x + 0.5, y + 0.5) lies inside or on the edge of a
triangle; triangles with a vertex at depth <= 0 in a frame are skipped in that frame (no clipping); both faces
are drawn; on equal depth the triangle listed later wins.
"""

import torch

from ._inputs import as_tensor
from .camera import Camera
from .colorize import colorize_tracks

# rasterisation fragments handled per chunk of triangles
FRAGMENTS_PER_CHUNK = 1 << 22


def mesh_vertex_colors(vertices: torch.Tensor, camera: Camera, height: int, width: int) -> torch.Tensor:
    """Per-vertex colours [V, 3] from the frame-0 projection; black where a vertex is behind or outside frame 0.

    The inverse-depth percentiles are taken over the vertices seen in frame 0.
    """
    uv, depth = camera.project(vertices[0].to(torch.float32))
    u, v = uv[0].unbind(-1)
    seen = (depth[0] > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    colors = torch.zeros(vertices.shape[1], 3)
    if seen.any():
        # the depth percentiles are those of the vertices seen in frame 0
        points = torch.cat([uv[:1, seen], depth[:1, seen, None]], dim=-1)
        colors[seen] = colorize_tracks(points, height, width)
    return colors


def render_mesh_tracking_video(vertices, faces, camera: Camera, height: int, width: int) -> torch.Tensor:
    """Rasterised tracking video [T, H, W, 3] (float32, 0..1) of an animated triangle mesh.

    Args:
        vertices: [T, V, 3] world positions per frame (or [V, 3] for a static mesh).
        faces: [F, 3] vertex indices of the triangles.
        camera (`Camera`): T frames of intrinsics and world-to-camera matrices.
        height (`int`), width (`int`): frame size in pixels.
    """
    vertices = as_tensor(vertices, "vertices", torch.float32)
    faces = as_tensor(faces, "faces")
    if vertices.ndim == 2:
        vertices = vertices.expand(camera.num_frames, -1, -1)
    if vertices.ndim != 3 or vertices.shape[-1] != 3 or vertices.shape[0] != camera.num_frames:
        raise ValueError(f"vertices has shape {tuple(vertices.shape)}; expected [{camera.num_frames}, V, 3] or [V, 3]")
    if faces.ndim != 2 or faces.shape[-1] != 3 or faces.is_floating_point():
        raise ValueError(f"faces has shape {tuple(faces.shape)} and dtype {faces.dtype}; expected integer [F, 3]")
    faces = faces.long()
    if len(faces) and (faces.min() < 0 or faces.max() >= vertices.shape[1]):
        raise ValueError(f"faces index vertices {int(faces.min())}..{int(faces.max())}; the mesh has {vertices.shape[1]}")
    if not torch.isfinite(vertices).all():
        raise ValueError("vertices contain NaN or infinite values")
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")

    colors = mesh_vertex_colors(vertices, camera, height, width)
    uv, depth = camera.project(vertices)
    video = torch.zeros(camera.num_frames, height, width, 3)
    for frame in range(camera.num_frames):
        video[frame] = _rasterise(uv[frame], depth[frame], faces, colors, height, width)
    return video


def _rasterise(uv, depth, faces, colors, height, width) -> torch.Tensor:
    """One frame: [H, W, 3] with the nearest triangle's interpolated colour per covered pixel."""
    corner_uv = uv[faces].to(torch.float64)  # [F, 3, 2]
    corner_depth = depth[faces].to(torch.float64)  # [F, 3]
    ax, ay = corner_uv[:, 0].unbind(-1)
    bx, by = corner_uv[:, 1].unbind(-1)
    cx, cy = corner_uv[:, 2].unbind(-1)
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    usable = (corner_depth > 0).all(-1) & (area != 0)
    # pixels whose centres fall in the bounding box
    x_min = torch.ceil(corner_uv[..., 0].amin(-1) - 0.5).clamp(0, width)
    x_max = torch.floor(corner_uv[..., 0].amax(-1) - 0.5).clamp(-1, width - 1)
    y_min = torch.ceil(corner_uv[..., 1].amin(-1) - 0.5).clamp(0, height)
    y_max = torch.floor(corner_uv[..., 1].amax(-1) - 0.5).clamp(-1, height - 1)
    box_width = torch.where(usable, (x_max - x_min + 1).clamp_min(0), torch.zeros_like(x_max)).long()
    box_height = torch.where(usable, (y_max - y_min + 1).clamp_min(0), torch.zeros_like(y_max)).long()
    counts = box_width * box_height

    nearest = torch.full((height * width,), float("inf"), dtype=torch.float64)
    best_face = torch.full((height * width,), -1, dtype=torch.long)
    fragments = []
    face_ids = counts.nonzero().squeeze(1)
    # chunks of consecutive triangles with about FRAGMENTS_PER_CHUNK fragments each
    chunk_of_face = (torch.cumsum(counts[face_ids], 0) - 1) // FRAGMENTS_PER_CHUNK
    for chunk_id in torch.unique(chunk_of_face).tolist():
        chunk = face_ids[chunk_of_face == chunk_id]
        face = torch.repeat_interleave(chunk, counts[chunk])
        first = torch.cumsum(counts[chunk], 0) - counts[chunk]
        local = torch.arange(len(face)) - torch.repeat_interleave(first, counts[chunk])
        px = x_min[face].long() + local % box_width[face]
        py = y_min[face].long() + local // box_width[face]
        centre_x, centre_y = px.to(torch.float64) + 0.5, py.to(torch.float64) + 0.5
        # barycentric weights of the pixel centre (signed areas; the sign of `area` makes both faces drawable)
        w_a = ((bx[face] - centre_x) * (cy[face] - centre_y) - (by[face] - centre_y) * (cx[face] - centre_x)) / area[face]
        w_b = ((cx[face] - centre_x) * (ay[face] - centre_y) - (cy[face] - centre_y) * (ax[face] - centre_x)) / area[face]
        w_c = 1.0 - w_a - w_b
        inside = (w_a >= 0) & (w_b >= 0) & (w_c >= 0)
        face, px, py = face[inside], px[inside], py[inside]
        weights = torch.stack([w_a[inside], w_b[inside], w_c[inside]], dim=-1)
        # perspective-correct: 1/z is linear in screen space
        inverse_depth = (weights / corner_depth[face]).sum(-1)
        pixel = py * width + px
        nearest.scatter_reduce_(0, pixel, 1.0 / inverse_depth, reduce="amin")
        fragments.append((face, pixel, weights, inverse_depth))

    for face, pixel, _weights, inverse_depth in fragments:
        front = (1.0 / inverse_depth) == nearest[pixel]
        best_face.scatter_reduce_(0, pixel[front], face[front], reduce="amax")
    image = torch.zeros(height * width, 3)
    for face, pixel, weights, inverse_depth in fragments:
        winner = best_face[pixel] == face
        face, pixel, weights, inverse_depth = face[winner], pixel[winner], weights[winner], inverse_depth[winner]
        corner_colors = colors[faces[face]].to(torch.float64)  # [M, 3 corners, 3 channels]
        perspective = weights / corner_depth[face] / inverse_depth[:, None]
        image[pixel] = (perspective[..., None] * corner_colors).sum(1).to(torch.float32)
    return image.view(height, width, 3)
