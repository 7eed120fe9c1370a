"""Output paths are checked before any model loads: a folder, an unwritable folder, an unsupported extension and an
output that is one of the command's input files exit with status 2 and one line naming the argument."""

import os
import subprocess

import numpy as np
import pytest
from helpers.vdp import run_vdp
from PIL import Image

from video_diffusion_pack.video_io import write_video


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, np.full((3, 32, 48, 3), 0.5, dtype=np.float32), fps=8)
    return path


def _refused_before_loading(result, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "embedded model" not in result.stderr and "smoke-test model" not in result.stderr  # nothing loaded
    assert message in result.stderr


def test_inpaint_refuses_to_write_over_its_input_video(clip):
    before = clip.read_bytes()
    result = run_vdp("inpaint", clip, "remove it", "-o", clip)
    _refused_before_loading(result, f"argument -o/--output: output '{clip}' is the same file as input_video '{clip}'")
    assert clip.read_bytes() == before


def test_inpaint_refuses_an_output_that_links_to_its_input(clip, tmp_path):
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    result = run_vdp("inpaint", clip, "remove it", "-o", link)
    _refused_before_loading(result, "is the same file as input_video")


def test_inpaint_refuses_an_output_spelled_another_way(clip, tmp_path):
    (tmp_path / "sub").mkdir()
    other_spelling = tmp_path / "sub" / ".." / "clip.mp4"
    result = run_vdp("inpaint", clip, "remove it", "-o", other_spelling)
    _refused_before_loading(result, "is the same file as input_video")


@pytest.fixture
def image_and_depth(tmp_path):
    Image.new("RGB", (48, 32), (200, 40, 40)).save(tmp_path / "image.png")
    np.save(tmp_path / "depth.npy", np.ones((32, 48), dtype=np.float32))
    return tmp_path / "image.png", tmp_path / "depth.npy"


def test_das_refuses_to_write_over_its_tracking_video(clip, image_and_depth):
    image, _ = image_and_depth
    result = run_vdp("das", "--prompt", "a cube", "--image", image, "--tracking-video", clip, "-o", clip)
    _refused_before_loading(result, "is the same file as --tracking-video")


def test_das_refuses_a_saved_tracking_video_that_is_the_output(tmp_path, image_and_depth):
    image, depth = image_and_depth
    output = tmp_path / "out.mp4"
    result = run_vdp("das", "--prompt", "a cube", "--image", image, "--depth", depth, "-o", output,
                     "--save-tracking", output)
    _refused_before_loading(result, f"argument --save-tracking: output '{output}' is the same file as -o/--output")


@pytest.mark.parametrize("name, message", [
    ("folder.mp4", "is a folder; give a file name ending in"),
    ("video.avi", "extension '.avi' is not supported"),
])
def test_generate_refuses_a_bad_output_before_loading(tmp_path, name, message):
    (tmp_path / "folder.mp4").mkdir()
    result = run_vdp("generate", "a red ball", "-o", tmp_path / name)
    _refused_before_loading(result, f"argument -o/--output: output path '{tmp_path / name}'")
    assert message in result.stderr


def _unwritable_folder(folder):
    """Makes `folder` unwritable for this process: permissions, and the immutable flag where permissions do not
    bind (root)."""
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        flagged = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if flagged.returncode != 0:
            folder.chmod(0o755)
            pytest.skip("root ignores permissions and `chattr +i` is not allowed here (needs CAP_LINUX_IMMUTABLE)")
    return folder


def _writable_again(folder):
    subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


def test_generate_refuses_an_unwritable_folder_before_loading(tmp_path):
    folder = _unwritable_folder(tmp_path / "locked")
    try:
        result = run_vdp("generate", "a red ball", "-o", folder / "video.mp4")
    finally:
        _writable_again(folder)
    _refused_before_loading(result, f"folder '{folder}' is not writable")


def test_convert_refuses_an_unwritable_output_folder_before_reading_the_checkpoint(tmp_path):
    (tmp_path / "sat").mkdir()
    (tmp_path / "sat" / "latest").write_text("1")
    folder = _unwritable_folder(tmp_path / "locked")
    try:
        result = run_vdp("convert", "repvideo", "--sat", tmp_path / "sat", "-o", folder / "converted")
    finally:
        _writable_again(folder)
    _refused_before_loading(result, f"argument -o/--output: the parent folder '{folder}' is not writable")
