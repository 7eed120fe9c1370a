"""Specification of read_video's frame selection: start, max_frames, stride and size decode only what is returned."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO_ROOT

from video_diffusion_pack.video_io import read_video, write_video

# 300 frames: x264 places keyframes at scene cuts and every 250 frames, so a late start needs a real seek
LONG_FRAMES, HEIGHT, WIDTH = 300, 48, 64


def moving_pattern(frames: int, height: int, width: int) -> np.ndarray:
    """uint8 frames [F, H, W, 3] that all differ from each other (a pattern sliding by 3 pixels a frame)."""
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    channels = ((x + 3 * t) % 256, (y + 2 * t) % 256, (x // 2 + y // 2 + t) % 256)
    return np.stack([np.broadcast_to(c, (frames, height, width)) for c in channels], axis=-1).astype(np.uint8)


@pytest.fixture(scope="module")
def long_mp4(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", moving_pattern(LONG_FRAMES, HEIGHT, WIDTH), fps=8)


@pytest.fixture(scope="module")
def every_mp4_frame(long_mp4):
    return read_video(long_mp4).frames


@pytest.mark.parametrize(
    "start, max_frames, stride", [(0, 5, 1), (3, 4, 1), (251, 4, 1), (280, None, 3), (100, 10, 7)]
)
def test_mp4_selection_returns_the_same_frames_as_slicing_the_whole_video(
    long_mp4, every_mp4_frame, start, max_frames, stride
):
    frames, _ = read_video(long_mp4, start=start, max_frames=max_frames, stride=stride)

    np.testing.assert_array_equal(frames, every_mp4_frame[start::stride][:max_frames])


def test_max_frames_beyond_the_end_returns_the_frames_that_exist(long_mp4, every_mp4_frame):
    frames, _ = read_video(long_mp4, start=LONG_FRAMES - 2, max_frames=10)

    np.testing.assert_array_equal(frames, every_mp4_frame[-2:])


def test_stride_divides_the_frame_rate_so_the_frames_keep_their_speed(long_mp4):
    assert read_video(long_mp4, max_frames=3, stride=4).fps == pytest.approx(8 / 4)


def test_size_resizes_every_frame_to_height_and_width(long_mp4):
    frames, _ = read_video(long_mp4, max_frames=2, size=(24, 40))

    assert frames.shape == (2, 24, 40, 3) and frames.dtype == np.uint8


@pytest.mark.parametrize("extension", [".webp", ".gif"])
def test_animated_image_selection_returns_the_same_frames_as_slicing(tmp_path, extension):
    path = write_video(tmp_path / f"clip{extension}", moving_pattern(20, 16, 16), fps=5)
    every_frame, every_frame_fps = read_video(path)

    frames, fps = read_video(path, start=2, max_frames=4, stride=3)

    np.testing.assert_array_equal(frames, every_frame[2::3][:4])
    assert fps == pytest.approx(every_frame_fps / 3)


@pytest.mark.parametrize("extension", [".webp", ".gif"])
def test_animated_image_size_resizes_every_frame(tmp_path, extension):
    path = write_video(tmp_path / f"clip{extension}", moving_pattern(4, 16, 16), fps=5)

    assert read_video(path, size=(8, 12)).frames.shape[1:] == (8, 12, 3)


@pytest.mark.parametrize("extension", [".mp4", ".gif"])
def test_start_past_the_last_frame_names_the_frame_count(tmp_path, extension):
    path = write_video(tmp_path / f"clip{extension}", moving_pattern(6, 16, 16))

    with pytest.raises(ValueError, match=r"start=6 is past the last frame of .*clip.*, which has 6 frames"):
        read_video(path, start=6)


@pytest.mark.parametrize(
    "argument, message",
    [
        ({"start": -1}, r"start=-1 must be an integer >= 0"),
        ({"start": 1.5}, r"start=1.5 must be an integer >= 0"),
        ({"max_frames": 0}, r"max_frames=0 must be an integer >= 1"),
        ({"stride": 0}, r"stride=0 must be an integer >= 1"),
        ({"stride": True}, r"stride=True must be an integer >= 1"),
        ({"size": (16,)}, r"size=\(16,\) must be \(height, width\)"),
        ({"size": (0, 16)}, r"size=\(0, 16\) must be \(height, width\)"),
    ],
)
def test_bad_selection_arguments_are_named_before_the_file_is_opened(tmp_path, argument, message):
    with pytest.raises(ValueError, match=message):
        read_video(tmp_path / "absent.mp4", **argument)


PEAK_MEMORY_SCRIPT = """
import importlib.util, sys


def peak_resident_bytes():
    # VmHWM belongs to this program's memory map; ru_maxrss would carry over the parent's peak through exec
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


spec = importlib.util.spec_from_file_location("video_io", sys.argv[1])
video_io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(video_io)
video_io.read_video(sys.argv[3])  # imports PyAV and sets up the decoder before the measurement
before = peak_resident_bytes()
frames = video_io.read_video(sys.argv[2], **eval(sys.argv[4])).frames
print(peak_resident_bytes() - before)
"""


def peak_memory_growth(video_path, warm_up_path, **selection) -> int:
    """Bytes the peak resident memory of a fresh interpreter grows by while it reads ``video_path``."""
    completed = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_SCRIPT, str(REPO_ROOT / "video_io.py"), str(video_path), str(warm_up_path),
         repr(selection)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return int(completed.stdout.strip())


@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak memory from /proc/self/status")
def test_reading_two_frames_of_a_long_video_needs_memory_for_two_frames_only(tmp_path):
    # 120 frames of 640x352: 81 MB of RGB frames when decoded whole
    whole = moving_pattern(120, 352, 640)
    long_path = write_video(tmp_path / "long.mp4", whole, fps=24)
    warm_up_path = write_video(tmp_path / "tiny.mp4", moving_pattern(2, 16, 16))

    two_frames = peak_memory_growth(long_path, warm_up_path, max_frames=2)
    every_frame = peak_memory_growth(long_path, warm_up_path)

    assert every_frame > 0.9 * whole.nbytes  # the measurement sees a whole decode
    assert two_frames < 0.1 * whole.nbytes  # about 4 MB: two frames plus the decoder's buffers
