"""control/: cameras and trajectories, tracks from depth, colours, the splat renderer, object motion, meshes, loading."""

import math

import numpy as np
import pytest
import torch

from video_diffusion_pack.control import (
    Camera,
    Tracks,
    apply_object_motion,
    camera_trajectory,
    colorize_tracks,
    default_intrinsics,
    estimate_depth,
    grid_pixels,
    load_tracks,
    look_at,
    mesh_vertex_colors,
    object_motion_matrices,
    render_mesh_tracking_video,
    render_tracking_video,
    tracks_from_depth,
)

H, W = 24, 32


def scene(seed=0, height=H, width=W):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(height, width, 3, generator=g), 1.0 + torch.rand(height, width, generator=g) * 3


def pixel_centres(height=H, width=W):
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1).float() + 0.5


# ---------------------------------------------------------------- cameras


def test_still_camera_reproduces_the_input_view():
    image, depth = scene()
    tracks = tracks_from_depth(image, depth, num_frames=5)
    assert tracks.points.shape == (5, H * W, 3)
    for frame in range(5):
        torch.testing.assert_close(tracks.points[frame, :, :2], pixel_centres(), atol=1e-4, rtol=0)
        torch.testing.assert_close(tracks.points[frame, :, 2], depth.flatten(), atol=1e-5, rtol=1e-6)
    assert tracks.visibility.all()


def test_identity_trajectory_renders_every_pixel_at_frame_0_in_its_frame_0_colour():
    image, depth = scene()
    tracks = tracks_from_depth(image, depth, num_frames=2)
    video = render_tracking_video(tracks, point_size=1)
    expected = tracks.colors.view(H, W, 3)
    torch.testing.assert_close(video[0], expected)
    torch.testing.assert_close(video[1], expected)


def test_translation_moves_points_by_focal_times_offset_over_depth():
    image, depth = scene()
    intrinsics = default_intrinsics(H, W)
    fx = intrinsics[0, 0].item()
    tracks = tracks_from_depth(image, depth, camera="trans 0.5 0 0", num_frames=5)
    z = depth.flatten()
    shift = tracks.points[:, :, 0] - pixel_centres()[:, 0]
    # the scene moves by +0.5 in camera x (the camera moves left): u grows by fx * 0.5 / z, linearly in time
    torch.testing.assert_close(shift[-1], fx * 0.5 / z, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(shift[2], fx * 0.25 / z, atol=1e-3, rtol=1e-4)
    assert shift[0].abs().max() < 1e-4
    torch.testing.assert_close(tracks.points[:, :, 1], pixel_centres()[:, 1].expand(5, -1), atol=1e-4, rtol=0)


def test_forward_translation_zooms_out_and_points_behind_the_camera_are_dropped():
    image, depth = scene()
    out = tracks_from_depth(image, depth, camera="trans 0 0 1", num_frames=3)
    torch.testing.assert_close(out.points[-1, :, 2], depth.flatten() + 1)
    behind = tracks_from_depth(image, depth, camera="trans 0 0 -10", num_frames=3)
    assert not behind.visibility[-1].any() and behind.visibility[0].all()
    assert torch.isnan(behind.points[-1, :, 0]).all()
    assert render_tracking_video(behind)[-1].abs().max() == 0


def test_rotation_about_y_turns_a_point_ahead_to_the_right():
    trajectory = camera_trajectory("rot y 30", num_frames=4)
    point = torch.tensor([0.0, 0.0, 2.0, 1.0])
    seen = trajectory[-1] @ point
    torch.testing.assert_close(seen[:3], torch.tensor([2 * math.sin(math.radians(30)), 0.0, 2 * math.cos(math.radians(30))]))
    camera = Camera(default_intrinsics(H, W), trajectory)
    uv, _ = camera.project(point[None, :3])
    assert uv[0, 0, 0] == pytest.approx(W / 2) and uv[-1, 0, 0] > W / 2


def test_frame_range_ramps_between_start_and_end_and_holds_after():
    trajectory = camera_trajectory("trans 1 0 0 10 20", num_frames=30)
    x = trajectory[:, 0, 3]
    assert x[:11].abs().max() == 0 and x[15] == pytest.approx(0.5) and torch.all(x[20:] == 1)


def test_commands_chain_in_order():
    chained = camera_trajectory("rot y 20; trans 0.3 0 0.1", num_frames=6)
    expected = camera_trajectory("rot y 20", num_frames=6) @ camera_trajectory("trans 0.3 0 0.1", num_frames=6)
    torch.testing.assert_close(chained, expected)


def test_spiral_starts_at_identity_and_keeps_looking_at_its_target():
    radius = 2.0
    trajectory = camera_trajectory(f"spiral {radius}", num_frames=13)
    torch.testing.assert_close(trajectory[0], torch.eye(4))
    rotations = trajectory[:, :3, :3]
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), torch.eye(3).expand(13, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(13))
    camera = Camera(default_intrinsics(H, W), trajectory)
    uv, depth = camera.project(torch.tensor([[0.0, 0.0, 0.5 * radius]]))
    torch.testing.assert_close(uv[:, 0], torch.tensor([W / 2, H / 2]).expand(13, 2), atol=1e-4, rtol=0)
    assert (depth > 0).all()
    # the camera really moves: positions -R^T t differ from the origin mid-way
    positions = -(rotations.transpose(1, 2) @ trajectory[:, :3, 3:]).squeeze(-1)
    assert positions[6].norm() > 0.05


def test_look_at_from_origin_along_z_is_identity_and_image_y_points_down():
    torch.testing.assert_close(look_at([0, 0, 0], [0, 0, 1]), torch.eye(4, dtype=torch.float64))
    pose = look_at([1.0, -2.0, 0.5], [0.0, 0.0, 3.0])
    target = pose @ torch.tensor([0.0, 0.0, 3.0, 1.0], dtype=torch.float64)
    assert target[0] == pytest.approx(0, abs=1e-9) and target[1] == pytest.approx(0, abs=1e-9) and target[2] > 0


@pytest.mark.parametrize("command, message", [
    ("zoom 2", "unknown command 'zoom'; expected one of ('trans', 'rot', 'spiral')"),
    ("trans 1 2", "'trans' takes 'dx dy dz'"),
    ("trans 1 a 0", "dy='a' is not a number"),
    ("rot w 30", "axis='w' must be one of ('x', 'y', 'z')"),
    ("rot y 30 10 60", "frame range 10..60 must satisfy 0 <= start <= end <= 48"),
    ("rot y 30 20 10", "frame range 20..10"),
    ("spiral 0", "radius=0.0 must be > 0"),
])
def test_bad_camera_commands_are_refused_with_the_reason(command, message):
    with pytest.raises(ValueError) as error:
        camera_trajectory(command)
    assert message in str(error.value)


# ---------------------------------------------------------------- tracks from depth


@pytest.mark.parametrize("bad, message", [
    (float("nan"), "depth must be finite and > 0 everywhere; 1 of 768 pixels are not (first at row 3, column 4: nan)"),
    (0.0, "first at row 3, column 4: 0.0"),
    (-2.0, "first at row 3, column 4: -2.0"),
])
def test_nan_or_non_positive_depth_is_refused(bad, message):
    image, depth = scene()
    depth[3, 4] = bad
    with pytest.raises(ValueError) as error:
        tracks_from_depth(image, depth)
    assert message in str(error.value)


def test_depth_of_another_size_than_the_image_is_refused():
    image, depth = scene()
    with pytest.raises(ValueError, match="depth is 24x31 but the image is 24x32"):
        tracks_from_depth(image, depth[:, :31])


def test_grid_of_70_gives_the_official_4900_points_inside_the_frame():
    pixels = grid_pixels(480, 720, 70)
    assert pixels.shape == (4900, 2)
    assert pixels[:, 0].min() == 5 and pixels[:, 0].max() < 720 and pixels[:, 1].max() < 480
    with pytest.raises(ValueError, match="grid_size=0 must be an integer in 1..24"):
        grid_pixels(H, W, 0)


# ---------------------------------------------------------------- colours


def test_colours_follow_the_official_formula():
    g = torch.Generator().manual_seed(1)
    points = torch.stack([torch.rand(3, 50, generator=g) * W, torch.rand(3, 50, generator=g) * H,
                          0.5 + torch.rand(3, 50, generator=g) * 4], -1)
    colors = colorize_tracks(points, H, W)
    inverse = 1 / points[0, :, 2].double().numpy()
    low, high = np.percentile(inverse, 2), np.percentile(inverse, 98)
    expected_blue = np.clip((inverse - low) / (high - low), 0, 1)
    np.testing.assert_allclose(colors[:, 2].numpy(), expected_blue, atol=1e-6)
    torch.testing.assert_close(colors[:, 0], points[0, :, 0] / W)
    torch.testing.assert_close(colors[:, 1], points[0, :, 1] / H)


def test_equal_depths_give_zero_blue():
    points = torch.cat([torch.rand(1, 10, 2) * 10, torch.ones(1, 10, 1)], -1)
    assert colorize_tracks(points, 10, 10)[:, 2].abs().max() == 0


# ---------------------------------------------------------------- renderer


def reference_render(tracks: Tracks, point_size: int) -> np.ndarray:
    """The straightforward renderer: per frame, sort far to near (stable) and paint each square in turn."""
    colors = tracks.colors.numpy()
    half = point_size // 2
    video = np.zeros((tracks.num_frames, tracks.height, tracks.width, 3), np.float32)
    for t in range(tracks.num_frames):
        painted = []
        for n in range(tracks.num_points):
            u, v, z = tracks.points[t, n].tolist()
            if not (tracks.visibility[t, n] and math.isfinite(u) and math.isfinite(v) and math.isfinite(z) and z > 0):
                continue
            x, y = math.floor(u), math.floor(v)
            if 0 <= x < tracks.width and 0 <= y < tracks.height:
                painted.append((-z, n, x, y))
        for _, n, x, y in sorted(painted, key=lambda item: item[0]):  # stable: ties keep index order
            video[t, max(0, y - half): y + half + 1, max(0, x - half): x + half + 1] = colors[n]
    return video


def random_tracks(seed, frames=3, points=300, height=H, width=W):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(frames, points, generator=g) * width * 1.2 - width * 0.1
    v = torch.rand(frames, points, generator=g) * height * 1.2 - height * 0.1
    z = torch.randint(-1, 6, (frames, points), generator=g).float()  # many ties, some behind the camera
    u[0, :5] = float("nan")
    visibility = torch.rand(frames, points, generator=g) > 0.2
    return Tracks(torch.stack([u, v, z], -1), visibility, height, width,
                  colors=torch.rand(points, 3, generator=g))


@pytest.mark.parametrize("point_size", [1, 2, 4, 5])
def test_renderer_is_pixel_identical_to_the_per_point_reference(point_size):
    tracks = random_tracks(seed=point_size)
    video = render_tracking_video(tracks, point_size=point_size)
    assert video.shape == (3, H, W, 3) and video.dtype == torch.float32
    np.testing.assert_array_equal(video.numpy(), reference_render(tracks, point_size))


def test_uint8_output_is_the_rounded_float_output():
    tracks = random_tracks(seed=9)
    as_float = render_tracking_video(tracks, point_size=4)
    as_bytes = render_tracking_video(tracks, point_size=4, dtype=torch.uint8)
    assert as_bytes.dtype == torch.uint8
    torch.testing.assert_close(as_bytes, (as_float * 255).round().to(torch.uint8))


def test_nearer_point_covers_a_farther_one_whatever_their_order():
    for order in ([0, 1], [1, 0]):
        depths = torch.tensor([5.0, 1.0])[order]
        points = torch.tensor([[[10.0, 10.0, depths[0]], [11.0, 10.0, depths[1]]]])
        colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])[order]
        video = render_tracking_video(Tracks(points, torch.ones(1, 2, dtype=torch.bool), H, W, colors=colors), point_size=4)
        assert video[0, 10, 10].tolist() == [0.0, 1.0, 0.0]


def test_point_size_must_be_positive():
    with pytest.raises(ValueError, match="point_size=0 must be an integer >= 1"):
        render_tracking_video(random_tracks(seed=1), point_size=0)


# ---------------------------------------------------------------- object motion


def square_mask(top=8, left=8, size=6):
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[top: top + size, left: left + size] = True
    return mask


def test_screen_space_translation_moves_only_the_masked_points():
    image, depth = scene()
    still = tracks_from_depth(image, depth, num_frames=5)
    loaded_like = Tracks(still.points, still.visibility, H, W)  # no world points: the official (u, v, z) path
    moved = apply_object_motion(loaded_like, square_mask(), "up", distance=10)
    selected = torch.zeros(H, W, dtype=torch.bool)
    selected[8:14, 8:14] = True
    selected = selected.flatten()
    delta = moved.points - loaded_like.points
    torch.testing.assert_close(delta[-1, selected], torch.tensor([0.0, -10.0, 0.0]).expand(int(selected.sum()), 3))
    torch.testing.assert_close(delta[2, selected, 1], torch.full((int(selected.sum()),), -5.0))
    assert delta[:, ~selected].abs().max() == 0 and delta[0].abs().max() == 0
    torch.testing.assert_close(moved.colors, loaded_like.colors)


def test_rotation_turns_the_object_about_its_centroid():
    image, depth = scene()
    tracks = tracks_from_depth(image, depth, num_frames=4)
    moved = apply_object_motion(tracks, square_mask(), "rot", distance=90)
    selected = square_mask().flatten()
    before, after = tracks.world_points[0, selected], moved.world_points[-1, selected]
    centroid = before.mean(0)
    torch.testing.assert_close(after.mean(0), centroid, atol=1e-5, rtol=0)
    torch.testing.assert_close((after - centroid).norm(dim=-1), (before - centroid).norm(dim=-1), atol=1e-5, rtol=0)
    # a quarter turn about y maps offsets (x, z) to (z, -x)
    torch.testing.assert_close((after - centroid)[:, 0], (before - centroid)[:, 2], atol=1e-5, rtol=0)
    assert torch.equal(moved.world_points[:, ~selected], tracks.world_points[:, ~selected])


def test_3d_translation_moves_the_centroid_by_the_distance_in_pixels():
    image, depth = scene()
    tracks = tracks_from_depth(image, depth, num_frames=3)
    moved = apply_object_motion(tracks, square_mask(), "right", distance=6)
    selected = square_mask().flatten()
    centroid = tracks.world_points[0, selected].mean(0)
    uv_before, _ = tracks.camera.project(centroid[None])
    uv_after, _ = tracks.camera.project(centroid[None] + (moved.world_points[-1, selected] - tracks.world_points[-1, selected]).mean(0))
    assert (uv_after[-1, 0, 0] - uv_before[-1, 0, 0]).item() == pytest.approx(6.0, abs=1e-3)


def test_object_motion_matrices_fix_the_centre():
    center = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    matrices = object_motion_matrices(center, "rot", 45.0, num_frames=3)
    torch.testing.assert_close(matrices[:, :3, :3] @ center + matrices[:, :3, 3], center.expand(3, 3))
    torch.testing.assert_close(matrices[0], torch.eye(4, dtype=torch.float64))


def test_empty_mask_unknown_motion_and_wrong_mask_size_are_refused():
    image, depth = scene()
    tracks = tracks_from_depth(image, depth, num_frames=3)
    with pytest.raises(ValueError, match="mask selects no track point"):
        apply_object_motion(tracks, torch.zeros(H, W, dtype=torch.bool), "up")
    with pytest.raises(ValueError, match=r"motion='spin' must be one of \('up', 'down', 'left', 'right', 'front', 'back', 'rot'\)"):
        apply_object_motion(tracks, square_mask(), "spin")
    with pytest.raises(ValueError, match="mask is 10x10 but the frames are 24x32"):
        apply_object_motion(tracks, torch.ones(10, 10), "up")


# ---------------------------------------------------------------- meshes


def reference_mesh_render(vertices, faces, camera, height, width):
    """Per pixel and per triangle: barycentric test at the pixel centre, perspective-correct depth, nearest wins."""
    colors = mesh_vertex_colors(vertices, camera, height, width).double()
    uv, depth = camera.project(vertices)
    video = torch.zeros(camera.num_frames, height, width, 3, dtype=torch.float64)
    for t in range(camera.num_frames):
        for y in range(height):
            for x in range(width):
                best = (math.inf, -1, None)
                for f, (a, b, c) in enumerate(faces.tolist()):
                    za, zb, zc = depth[t, [a, b, c]].double().tolist()
                    if min(za, zb, zc) <= 0:
                        continue
                    (ax, ay), (bx, by), (cx, cy) = uv[t, [a, b, c]].double().tolist()
                    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
                    if area == 0:
                        continue
                    px, py = x + 0.5, y + 0.5
                    wa = ((bx - px) * (cy - py) - (by - py) * (cx - px)) / area
                    wb = ((cx - px) * (ay - py) - (cy - py) * (ax - px)) / area
                    wc = 1 - wa - wb
                    if min(wa, wb, wc) < 0:
                        continue
                    inverse = wa / za + wb / zb + wc / zc
                    z = 1 / inverse
                    if z < best[0] or (z == best[0] and f > best[1]):
                        weights = torch.tensor([wa / za, wb / zb, wc / zc], dtype=torch.float64) / inverse
                        best = (z, f, (weights[:, None] * colors[[a, b, c]]).sum(0))
                if best[2] is not None:
                    video[t, y, x] = best[2]
    return video.float()


def test_mesh_rasteriser_matches_the_per_pixel_reference():
    height, width = 12, 16
    vertices = torch.tensor([
        [-1.0, -1.0, 3.0], [1.0, -0.8, 3.5], [0.2, 1.0, 2.5],      # a tilted triangle
        [-0.5, -0.5, 2.0], [0.8, 0.0, 2.0], [-0.2, 0.9, 2.2],      # nearer, overlapping it
        [0.0, 0.0, -1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0],        # one vertex behind the camera
    ])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    camera = Camera.from_command("trans 0.2 0 0; rot y 5", height, width, num_frames=2)
    frames = torch.stack([vertices, vertices + torch.tensor([0.0, 0.1, 0.0])])
    video = render_mesh_tracking_video(frames, faces, camera, height, width)
    expected = reference_mesh_render(frames, faces, camera, height, width)
    assert torch.equal(video.sum(-1) > 0, expected.sum(-1) > 0)
    torch.testing.assert_close(video, expected, atol=1e-5, rtol=0)


def test_nearer_triangle_occludes_whatever_the_face_order():
    vertices = torch.tensor([[-2.0, -2, 4], [2, -2, 4], [0, 2, 4], [-1.0, -1, 2], [1, -1, 2], [0, 1, 2]])
    camera = Camera.from_command("", H, W, num_frames=2)
    near_first = render_mesh_tracking_video(vertices, torch.tensor([[3, 4, 5], [0, 1, 2]]), camera, H, W)
    near_last = render_mesh_tracking_video(vertices, torch.tensor([[0, 1, 2], [3, 4, 5]]), camera, H, W)
    torch.testing.assert_close(near_first, near_last)


def test_mesh_vertex_colours_are_frame_0_screen_positions_and_black_off_screen():
    camera = Camera.from_command("trans 1 0 0", H, W, num_frames=2)
    vertices = torch.tensor([[0.1, 0.1, 4.0], [0.1, -0.1, 2.0], [0.0, 0.0, 3.0], [5.0, 0.0, 1.0]])
    colors = mesh_vertex_colors(vertices.expand(2, -1, -1), camera, H, W)
    uv, _ = camera.project(vertices)
    torch.testing.assert_close(colors[:3, 0], uv[0, :3, 0] / W)
    torch.testing.assert_close(colors[:3, 1], uv[0, :3, 1] / H)
    assert colors[1, 2] == 1 and colors[0, 2] == 0 and 0 < colors[2, 2] < 1  # nearer is bluer
    assert colors[3].abs().max() == 0  # outside frame 0


def test_mesh_faces_out_of_range_are_refused():
    camera = Camera.from_command("", H, W, num_frames=2)
    with pytest.raises(ValueError, match="faces index vertices 0..7; the mesh has 3"):
        render_mesh_tracking_video(torch.rand(3, 3) + 1, torch.tensor([[0, 1, 7]]), camera, H, W)


# ---------------------------------------------------------------- files and depth models


def test_loads_cotracker_layout_with_depth_sampled_at_the_tracks(tmp_path):
    g = torch.Generator().manual_seed(3)
    tracks_2d = torch.rand(1, 4, 20, 2, generator=g) * torch.tensor([W - 1, H - 1])
    visibility = torch.rand(1, 4, 20, 1, generator=g) > 0.3
    depth = 1 + torch.rand(4, H, W, generator=g)
    np.savez(tmp_path / "cotracker.npz", pred_tracks=tracks_2d.numpy(), pred_visibility=visibility.numpy())
    tracks = load_tracks(tmp_path / "cotracker.npz", H, W, depth=depth)
    assert tracks.points.shape == (4, 20, 3) and torch.equal(tracks.visibility, visibility[0, ..., 0])
    x, y = tracks_2d[0, ..., 0].long(), tracks_2d[0, ..., 1].long()
    torch.testing.assert_close(tracks.points[..., 2], depth[torch.arange(4)[:, None], y, x])


def test_loads_spatialtracker_layout_and_thresholds_float_visibility(tmp_path):
    points = torch.rand(1, 3, 10, 3) * torch.tensor([W, H, 5.0]) + torch.tensor([0.0, 0.0, 0.1])
    visibility = torch.linspace(0, 1, 30).view(1, 3, 10)
    torch.save({"tracks": points, "visibility": visibility}, tmp_path / "spatracker.pt")
    tracks = load_tracks(tmp_path / "spatracker.pt", H, W)
    torch.testing.assert_close(tracks.points, points[0])
    assert torch.equal(tracks.visibility, visibility[0] >= 0.9)


def test_bad_track_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"extension '.npy'; expected one of \('.npz', '.pt', '.pth'\)"):
        load_tracks(tmp_path / "tracks.npy", H, W)
    np.savez(tmp_path / "other.npz", points=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"has no tracks: expected one of the keys \['tracks', 'pred_tracks'\], found \['points'\]"):
        load_tracks(tmp_path / "other.npz", H, W)


def test_estimate_depth_runs_a_local_transformers_depth_model(tmp_path):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(0)
    config = DPTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=32,
                       patch_size=8, backbone_out_indices=[0, 1], neck_hidden_sizes=[8, 8], fusion_hidden_size=8,
                       head_in_index=-1, reassemble_factors=[2, 1])
    DPTForDepthEstimation(config).save_pretrained(tmp_path)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(tmp_path)
    image, _ = scene()
    depth = estimate_depth(image, tmp_path)
    assert depth.shape == (H, W) and torch.isfinite(depth).all() and (depth > 0).all()
    assert depth.median().item() == pytest.approx(1.0)  # DPT predicts relative disparity: scaled to median 1
    tracks_from_depth(image, depth, num_frames=2)
    with pytest.raises(ValueError, match="prediction='inverse' must be one of"):
        estimate_depth(image, tmp_path, prediction="inverse")
    with pytest.raises(FileNotFoundError, match="not a local transformers model folder"):
        estimate_depth(image, tmp_path / "missing")
