"""Specification of write_video / read_video: formats, frame layouts, errors and atomic writes."""

import numpy as np
import pytest
import torch
from PIL import Image

from video_diffusion_pack.video_io import read_video, write_video

FRAMES, HEIGHT, WIDTH = 6, 32, 48


def smooth_video(frames=FRAMES, height=HEIGHT, width=WIDTH) -> np.ndarray:
    """Float frames in 0..1 with gradients over x, y and time (easy for lossy codecs)."""
    t, y, x = np.meshgrid(
        np.linspace(0, 1, frames), np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij"
    )
    return np.stack([x, y, 0.5 * (t + x)], axis=-1).astype(np.float32)


def mean_abs_error(decoded: np.ndarray, video: np.ndarray) -> float:
    return float(np.abs(decoded.astype(np.float64) - np.round(video * 255)).mean())


@pytest.mark.parametrize("extension, tolerance", [(".mp4", 4.0), (".webp", 4.0), (".gif", 6.0)])
def test_round_trip_keeps_frame_count_size_and_pixels(tmp_path, extension, tolerance):
    video = smooth_video()
    path = write_video(tmp_path / f"clip{extension}", video, fps=8)

    frames, fps = read_video(path)

    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert mean_abs_error(frames, video) < tolerance
    # GIF delays are whole 1/100 s: 8 fps is stored as 0.12 s per frame
    assert fps == pytest.approx(8.0 if extension != ".gif" else 100 / 12)


def test_mp4_keeps_a_fractional_frame_rate(tmp_path):
    path = write_video(tmp_path / "clip.mp4", smooth_video(), fps=7.5)

    assert read_video(path).fps == pytest.approx(7.5)


def test_uint8_frames_are_written_unchanged_in_value(tmp_path):
    video = np.round(smooth_video() * 255).astype(np.uint8)
    path = write_video(tmp_path / "clip.webp", video, quality=100)

    assert mean_abs_error(read_video(path).frames, video / 255.0) < 2.0


def test_comfyui_image_tensor_is_accepted(tmp_path):
    video = torch.from_numpy(smooth_video())  # [F, H, W, 3] float in 0..1, ComfyUI IMAGE layout

    frames, _ = read_video(write_video(tmp_path / "clip.mp4", video))

    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)


def test_list_of_pil_images_is_accepted(tmp_path):
    images = [Image.fromarray(frame) for frame in np.round(smooth_video() * 255).astype(np.uint8)]

    frames, _ = read_video(write_video(tmp_path / "clip.gif", images))

    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)


def test_mp4_pads_odd_sizes_to_even_by_repeating_the_edge(tmp_path):
    video = smooth_video(height=33, width=47)

    with pytest.warns(UserWarning, match="padding 47x33 to 48x34"):
        path = write_video(tmp_path / "odd.mp4", video)
    frames, _ = read_video(path)

    assert frames.shape == (FRAMES, 34, 48, 3)
    assert mean_abs_error(frames[:, :33, :47], video) < 4.0
    assert np.abs(frames[:, 33].astype(int) - frames[:, 32].astype(int)).mean() < 4.0


@pytest.mark.parametrize("height,width", [(48, 48), (32, 96), (32, 80)])
def test_mp4_of_the_same_frames_decodes_to_the_same_pixels(tmp_path, height, width):
    # widths that are not a multiple of 64 leave row padding in the frames libx264 reads; before that padding was
    # filled, 30 encodings of 48x48 frames in one process gave 9 different files, decoding up to 46 levels apart.
    # Widths of an odd number of macroblocks (48, 80) also made libx264's macroblock tree read uninitialised stack
    # memory: one encoding in 12 sometimes decoded differently inside the full suite's process (see the next test)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.zeros((8, height, width, 3))
    for index in range(8):  # a red disc with soft edges moving right on blue, as a generated video draws it
        distance = np.sqrt((ys - height / 2) ** 2 + (xs - 8.7 - 4.3 * index) ** 2)
        alpha = np.clip((height / 5 - distance) / 3, 0, 1)[..., None]
        frames[index] = alpha * np.array([0.86, 0.12, 0.1]) + (1 - alpha) * np.array([0.1, 0.15, 0.8])
    first = read_video(write_video(tmp_path / "first.mp4", frames)).frames
    for index in range(11):
        np.testing.assert_array_equal(read_video(write_video(tmp_path / f"{index}.mp4", frames)).frames, first)


@pytest.mark.parametrize("width,tree", [(48, "0"), (80, "0"), (720, "0"), (32, "1"), (96, "1"), (64, "1")])
def test_mp4_turns_the_macroblock_tree_off_at_an_odd_number_of_macroblock_columns(tmp_path, width, tree):
    # libx264 writes its settings into the stream (an SEI message): at an odd count of 16-pixel columns its
    # macroblock-tree pass reads uninitialised stack memory (valgrind), so the writer turns that pass off there
    # and only there
    path = write_video(tmp_path / "clip.mp4", smooth_video(height=16, width=width), quality=70)
    settings = path.read_bytes()
    assert f"mbtree={tree}".encode() in settings
    assert b"crf=15.0" in settings  # the quality's crf is kept beside it


def test_quality_trades_file_size(tmp_path):
    video = np.random.default_rng(0).random((FRAMES, HEIGHT, WIDTH, 3), dtype=np.float32)
    small = write_video(tmp_path / "small.mp4", video, quality=10)
    large = write_video(tmp_path / "large.mp4", video, quality=90)

    assert small.stat().st_size < large.stat().st_size


def test_existing_file_is_replaced(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"old")

    write_video(path, smooth_video())

    assert read_video(path).frames.shape[0] == FRAMES


def test_missing_folder_is_named(tmp_path):
    target = tmp_path / "missing" / "clip.mp4"

    with pytest.raises(ValueError, match=f"output path '{target}': folder '{target.parent}' does not exist"):
        write_video(target, smooth_video())


def test_unknown_extension_lists_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match=r"extension '\.avi' is not supported; use one of \.mp4, \.webp, \.gif"):
        write_video(tmp_path / "clip.avi", smooth_video())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.zeros((0, 8, 8, 3), np.float32), "frames is empty"),
        ([], "frames is empty"),
        (np.zeros((8, 8, 3), np.float32), r"must have 4 dimensions \[F, H, W, 3\]"),
        (np.zeros((1, 4, 8, 8, 3), np.float32), r"batch of videos; pass one video .* out.frames\[0\]"),
        (np.zeros((4, 3, 8, 8), np.float32), r"channels first; move the channels last"),
        (np.zeros((4, 8, 8, 4), np.float32), "3 RGB channels last"),
        (np.full((4, 8, 8, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 8, 8, 3), 1.5, np.float32), r"must lie in 0\.\.1; these range from 1\.5 to 1\.5"),
        (np.zeros((4, 8, 8, 3), np.int32), "dtype int32 are not supported"),
        ([Image.new("RGB", (8, 8)), Image.new("RGB", (8, 6))], r"frames\[1\] has size \(8, 6\)"),
    ],
)
def test_bad_frames_are_refused_and_leave_no_file(tmp_path, frames, message):
    with pytest.raises(ValueError, match=message):
        write_video(tmp_path / "clip.mp4", frames)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [0, -8, float("nan"), float("inf")])
def test_non_positive_fps_is_refused(tmp_path, fps):
    with pytest.raises(ValueError, match="fps=.* must be a finite number > 0"):
        write_video(tmp_path / "clip.mp4", smooth_video(), fps=fps)


def test_gif_refuses_frame_rates_browsers_cannot_show(tmp_path):
    with pytest.raises(ValueError, match="fps=60 is too high for .gif"):
        write_video(tmp_path / "clip.gif", smooth_video(), fps=60)


def test_gif_refuses_a_quality_setting(tmp_path):
    with pytest.raises(ValueError, match="quality=50 cannot be used for .gif"):
        write_video(tmp_path / "clip.gif", smooth_video(), quality=50)


@pytest.fixture
def failing_mp4_encoder(tmp_path, monkeypatch):
    """Make the mp4 muxer fail right after it wrote the first packets; record the folder at that moment."""
    from av.container import OutputContainer

    mux = OutputContainer.mux
    seen_during_encoding = []

    def fail_after_writing(self, packets):
        mux(self, packets)
        if packets:
            seen_during_encoding.extend(sorted(entry.name for entry in tmp_path.iterdir()))
            raise RuntimeError("encoder failed")

    monkeypatch.setattr(OutputContainer, "mux", fail_after_writing)
    return seen_during_encoding


def test_encoder_error_removes_the_temporary_and_writes_nothing(tmp_path, failing_mp4_encoder):
    with pytest.raises(RuntimeError, match="encoder failed"):
        write_video(tmp_path / "clip.mp4", smooth_video())

    assert len(failing_mp4_encoder) == 1 and failing_mp4_encoder[0].startswith(".clip.mp4.")
    assert list(tmp_path.iterdir()) == []


def test_encoder_error_keeps_the_previous_file(tmp_path, failing_mp4_encoder):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"previous")

    with pytest.raises(RuntimeError, match="encoder failed"):
        write_video(path, smooth_video())

    assert list(tmp_path.iterdir()) == [path] and path.read_bytes() == b"previous"


def test_read_video_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_video(tmp_path / "absent.mp4")
