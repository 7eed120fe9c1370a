"""Specification of write_video at the edges: frame-rate ranges read back, long and odd paths, SIGTERM cleanup."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import REPO_ROOT

from video_diffusion_pack.video_io import FPS_RANGES, check_video_output, read_video, write_video


def three_distinct_frames() -> np.ndarray:
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    frames[1], frames[2] = 128, 255
    return frames


@pytest.mark.parametrize(
    "extension, fps, stored_fps",
    [
        (".mp4", 0.001, 0.001),
        (".mp4", 1000.0, 1000.0),
        (".mp4", 30000 / 1001, 30000 / 1001),
        (".mp4", 0.37, 0.37),
        (".webp", 0.001, 0.001),
        (".webp", 1000.0, 1000.0),
        (".webp", 0.37, 1000 / 2703),  # whole milliseconds: 2703 ms a frame
        (".gif", 100 / 65535, 100 / 65535),
        (".gif", 50.0, 50.0),
        (".gif", 0.37, 100 / 270),  # 1/100 s: 2.70 s a frame
    ],
)
def test_frame_rates_at_the_ends_of_each_range_read_back_as_stored(tmp_path, extension, fps, stored_fps):
    path = write_video(tmp_path / f"clip{extension}", three_distinct_frames(), fps=fps)

    assert read_video(path).fps == pytest.approx(stored_fps, rel=1e-9)


@pytest.mark.parametrize("extension", [".mp4", ".webp", ".gif"])
@pytest.mark.parametrize("end", ["low", "high"])
def test_frame_rates_outside_the_range_are_refused_with_the_range(tmp_path, extension, end):
    lowest, highest = FPS_RANGES[extension]
    fps = lowest * 0.99 if end == "low" else highest * 1.01

    with pytest.raises(ValueError, match=rf"fps=.* is too {end} for \{extension} .*use an fps from .* to {highest:g}"):
        write_video(tmp_path / f"clip{extension}", three_distinct_frames(), fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_a_file_name_as_long_as_the_file_system_allows_is_written(tmp_path):
    name = "a" * (os.pathconf(tmp_path, "PC_NAME_MAX") - len(".mp4")) + ".mp4"

    path = write_video(tmp_path / name, three_distinct_frames())

    assert [entry.name for entry in tmp_path.iterdir()] == [name] and path.stat().st_size > 0


def test_a_long_multibyte_file_name_keeps_whole_characters_in_the_temporary_name(tmp_path):
    name = "é" * 125 + "b.mp4"  # 255 bytes in UTF-8

    write_video(tmp_path / name, three_distinct_frames())

    assert [entry.name for entry in tmp_path.iterdir()] == [name]


def test_a_file_name_longer_than_the_file_system_allows_is_refused_before_encoding(tmp_path):
    name = "a" * os.pathconf(tmp_path, "PC_NAME_MAX") + ".mp4"

    with pytest.raises(ValueError, match=r"the file name is \d+ bytes; this file system allows at most \d+"):
        write_video(tmp_path / name, three_distinct_frames())


def test_a_nul_in_the_path_is_refused_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="contains a NUL character"):
        write_video(str(tmp_path / "a\0b.mp4"), three_distinct_frames())
    assert list(tmp_path.iterdir()) == []


def test_an_output_path_that_is_a_folder_is_refused_before_encoding(tmp_path):
    (tmp_path / "clip.mp4").mkdir()

    with pytest.raises(ValueError, match=r"clip\.mp4' is a folder; give a file name ending in \.mp4"):
        check_video_output(tmp_path / "clip.mp4")


def test_a_bytes_path_is_accepted(tmp_path):
    path = write_video(os.fsencode(tmp_path / "clip.mp4"), three_distinct_frames())

    assert read_video(path).frames.shape == (3, 16, 16, 3)


def test_the_range_error_shows_values_just_above_one(tmp_path):
    frames = np.full((2, 4, 4, 3), 1.0000001, np.float32)

    with pytest.raises(ValueError, match=r"these range from 1\.00000012 to 1\.00000012"):
        write_video(tmp_path / "clip.mp4", frames)


WRITE_UNTIL_KILLED = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("video_io", sys.argv[1])
video_io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(video_io)
noise = np.random.default_rng(0).integers(0, 256, (400, 256, 256, 3), dtype=np.uint8)
print("encoding", flush=True)
video_io.write_video(sys.argv[2], noise)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be sent to a running process on Windows")
@pytest.mark.parametrize("extension", [".mp4", ".webp"])
def test_sigterm_during_encoding_removes_the_temporary_file(tmp_path, extension):
    process = subprocess.Popen(
        [sys.executable, "-c", WRITE_UNTIL_KILLED, str(REPO_ROOT / "video_io.py"), str(tmp_path / f"clip{extension}")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline() == "encoding\n"
    deadline = time.monotonic() + 60
    while not any(entry.name.endswith(".part") for entry in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
