"""control/ refuses what it cannot draw faithfully instead of returning NaN or black videos: non-finite or out-of-range
tracks and colours, camera numbers that overflow float32, singular intrinsics, splats wider than the frame, broken
track files; and it warns when a tracking video has frames where no point is visible."""

import math
import pickle

import numpy as np
import pytest
import torch

from video_diffusion_pack.control import (
    Camera,
    Tracks,
    camera_trajectory,
    default_intrinsics,
    disparity_to_depth,
    load_tracks,
    render_tracking_video,
    tracks_from_depth,
)
from video_diffusion_pack.control.object_motion import apply_object_motion
from video_diffusion_pack.control.render import BlankTrackingVideoWarning


def grid_tracks(depth=2.0, frames=5):
    u, v = torch.meshgrid(torch.linspace(2, 29, 8), torch.linspace(2, 21, 6), indexing="xy")
    base = torch.stack([u.flatten(), v.flatten(), torch.full((48,), depth)], -1)
    return torch.stack([base + torch.tensor([float(t), 0, 0]) for t in range(frames)])


def test_tracks_whose_points_are_all_nan_render_black_with_a_warning():
    # non-finite points are not drawn (the renderer's contract); before: an all-NaN or all-inf track set gave a black
    # video without a word
    for value in (float("nan"), float("inf")):
        points = torch.full((5, 48, 3), value)
        with pytest.warns(BlankTrackingVideoWarning, match="5 of 5 frames of the tracking video are black"):
            video = render_tracking_video(Tracks(points, torch.ones(5, 48, dtype=torch.bool), 24, 32))
        assert video.max() == 0


@pytest.mark.parametrize("colors, message", [(torch.full((48, 3), float("nan")), "colors has NaN or infinite values"),
                                             (torch.full((48, 3), 7.0), r"colors span 7\.\.7; expected RGB in 0\.\.1")])
def test_colours_must_be_finite_and_in_range(colors, message):
    tracks = Tracks(grid_tracks(), torch.ones(5, 48, dtype=torch.bool), 24, 32)
    with pytest.raises(ValueError, match=message):
        render_tracking_video(tracks, colors=colors)


def test_point_size_is_bounded_by_the_frame():
    tracks = Tracks(grid_tracks(), torch.ones(5, 48, dtype=torch.bool), 24, 32)
    assert render_tracking_video(tracks, point_size=32).shape == (5, 24, 32, 3)
    # before: point_size=10**6 ran for seconds on a 24x32 video (minutes at 480x720)
    with pytest.raises(ValueError, match=r"point_size=33 must be at most 32 \(a splat that wide already covers the "
                                         r"whole 24x32 frame\)"):
        render_tracking_video(tracks, point_size=33)


def test_a_tracking_video_with_frames_where_no_point_is_visible_warns():
    behind = grid_tracks(depth=-1.0)
    with pytest.warns(BlankTrackingVideoWarning, match=r"5 of 5 frames of the tracking video are black \(frames 0, 1, "
                                                       r"2, 3, 4\): no track point is visible"):
        video = render_tracking_video(Tracks(behind, torch.ones(5, 48, dtype=torch.bool), 24, 32))
    assert video.max() == 0
    with pytest.warns(BlankTrackingVideoWarning):
        render_tracking_video(Tracks(torch.zeros(3, 0, 3), torch.ones(3, 0, dtype=torch.bool), 24, 32))


@pytest.mark.parametrize("command, message", [
    ("trans 0 0 1e39", r"dz=1e39 must lie in -1e\+06\.\.1e\+06"),
    ("trans 1e38 1e38 1e38", r"dx=1e38 must lie in"),
    ("spiral 1e300", r"radius=1e300 must lie in"),
])
def test_camera_numbers_that_overflow_float32_are_refused_naming_the_command(command, message):
    # before: 'trans 0 0 1e39' failed later as 'world_to_camera contains NaN', 'spiral 1e300' as a vertical view
    with pytest.raises(ValueError, match=rf"camera command '{command}': {message}"):
        camera_trajectory(command, 9)


def test_a_field_of_view_too_narrow_for_float32_names_the_fov():
    with pytest.raises(ValueError, match=r"fov_degrees=1e-300 gives a focal length of .* pixels"):
        default_intrinsics(24, 32, fov_degrees=1e-300)
    assert math.isclose(default_intrinsics(24, 32, 1e-3)[0, 0].item(), 16 / math.tan(math.radians(1e-3) / 2),
                        rel_tol=1e-6)


def test_singular_intrinsics_and_bad_camera_shapes_are_refused():
    image, depth = torch.rand(24, 32, 3), torch.rand(24, 32) + 1
    with pytest.raises(ValueError, match=r"intrinsics .* is singular"):
        tracks_from_depth(image, depth, intrinsics=torch.zeros(3, 3), num_frames=5)  # before: all-NaN tracks
    with pytest.raises(ValueError, match=r"intrinsics has shape \(2, 2\); expected \[3, 3\]"):
        Camera(intrinsics=torch.eye(2), world_to_camera=torch.eye(4)[None])


def test_object_motion_distance_and_empty_disparity_messages():
    tracks = tracks_from_depth(torch.rand(24, 32, 3), torch.rand(24, 32) + 1, num_frames=5)
    with pytest.raises(ValueError, match=r"distance=1e\+300 must lie in -1e\+06\.\.1e\+06"):
        apply_object_motion(tracks, torch.ones(24, 32, dtype=torch.bool), "front", distance=1e300)
    with pytest.raises(ValueError, match=r"disparity is empty \(shape \(0, 0\)\)"):
        disparity_to_depth(torch.zeros(0, 0))


class _Payload:
    def __reduce__(self):
        return (print, ("never runs",))


def test_broken_track_files_are_refused_naming_the_file(tmp_path):
    torch.save({"tracks": grid_tracks()}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[:200])
    (tmp_path / "garbage.pt").write_bytes(bytes(range(256)) * 8)
    with open(tmp_path / "pickled.pt", "wb") as handle:
        pickle.dump({"x": _Payload()}, handle)
    (tmp_path / "text.npz").write_text("not an archive\n")
    assert load_tracks(tmp_path / "good.pt", 24, 32).num_points == 48
    for name in ("truncated.pt", "garbage.pt", "pickled.pt", "text.npz"):
        with pytest.raises(ValueError, match=rf"tracks file '.*{name}' "):  # before: RuntimeError / UnpicklingError
            load_tracks(tmp_path / name, 24, 32)


def test_track_file_nan_depth_and_threshold_are_refused(tmp_path):
    np.savez(tmp_path / "t.npz", pred_tracks=grid_tracks()[..., :2].numpy(), pred_visibility=np.ones((5, 48)))
    with pytest.raises(ValueError, match="depth has NaN or infinite values"):
        load_tracks(tmp_path / "t.npz", 24, 32, depth=torch.full((5, 24, 32), float("nan")))
    with pytest.raises(ValueError, match=r"visibility_threshold=nan must be a number in 0\.\.1"):
        load_tracks(tmp_path / "t.npz", 24, 32, visibility_threshold=float("nan"))
