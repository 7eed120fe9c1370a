"""Specification of the errors for unreadable files: one MediaReadError naming the file and what was expected."""

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from video_diffusion_pack.video_io import MediaReadError, read_image, read_video, write_video

EXPECTED = {
    ".mp4": "expected an MP4 file with a video stream",
    ".gif": r"expected a GIF image \(still or animated\)",
    ".webp": r"expected a WebP image \(still or animated\)",
}


def noise_video(frames=20) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)


def write_audio_only_mp4(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def truncated_copy(source: Path, target: Path, keep_bytes: int) -> Path:
    target.write_bytes(source.read_bytes()[:keep_bytes])
    return target


def test_audio_only_mp4_says_it_holds_no_video_stream(tmp_path):
    path = write_audio_only_mp4(tmp_path / "audio.mp4")

    message = r"audio\.mp4': no video stream \(it holds only audio streams\); " + EXPECTED[".mp4"]
    with pytest.raises(MediaReadError, match=message):
        read_video(path)


def test_mp4_cut_inside_its_header_says_it_holds_no_video_stream(tmp_path):
    whole = write_video(tmp_path / "whole.mp4", noise_video())
    path = truncated_copy(whole, tmp_path / "head.mp4", 200)

    message = r"head\.mp4': no video stream \(the header is missing or truncated\); " + EXPECTED[".mp4"]
    with pytest.raises(MediaReadError, match=message):
        read_video(path)


def test_mp4_cut_in_the_middle_says_after_how_many_frames_decoding_failed(tmp_path):
    whole = write_video(tmp_path / "whole.mp4", noise_video())
    path = truncated_copy(whole, tmp_path / "half.mp4", whole.stat().st_size // 2)

    with pytest.raises(MediaReadError, match=r"half\.mp4': decoding failed after \d+ frames .*truncated or corrupt"):
        read_video(path)


def test_frames_before_the_cut_of_a_truncated_mp4_can_still_be_read(tmp_path):
    whole = write_video(tmp_path / "whole.mp4", noise_video())
    path = truncated_copy(whole, tmp_path / "half.mp4", whole.stat().st_size // 2)

    np.testing.assert_array_equal(read_video(path, max_frames=2).frames, read_video(whole, max_frames=2).frames)


@pytest.mark.parametrize("extension", [".mp4", ".gif", ".webp"])
def test_empty_file_says_it_is_empty(tmp_path, extension):
    path = tmp_path / f"empty{extension}"
    path.write_bytes(b"")

    with pytest.raises(MediaReadError, match=r"the file is empty \(0 bytes\); " + EXPECTED[extension]):
        read_video(path)


@pytest.mark.parametrize("extension", [".mp4", ".gif", ".webp"])
def test_text_file_named_as_a_video_names_the_file_and_the_format_expected(tmp_path, extension):
    path = tmp_path / f"notes{extension}"
    path.write_text("not a video\n" * 20)

    with pytest.raises(MediaReadError, match=rf"notes\{extension}': .*cannot .*; " + EXPECTED[extension]):
        read_video(path)


@pytest.mark.parametrize("extension", [".gif", ".webp"])
def test_truncated_animated_image_names_the_file(tmp_path, extension):
    whole = write_video(tmp_path / f"whole{extension}", noise_video(8))
    path = truncated_copy(whole, tmp_path / f"cut{extension}", whole.stat().st_size // 2)

    with pytest.raises(MediaReadError, match=rf"cut\{extension}': Pillow cannot decode it .*; " + EXPECTED[extension]):
        read_video(path)


def test_gif_header_claiming_a_huge_size_is_refused_as_a_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.gif"
    # a logical screen and an image of 65535 x 65535 pixels, with no pixel data worth the name
    path.write_bytes(b"GIF89a\xff\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02D\x01\x00;")

    with pytest.raises(MediaReadError, match=r"bomb\.gif': its size is refused as a decompression bomb"):
        read_video(path)


def test_media_read_error_is_a_value_error_for_callers_that_catch_those(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")

    with pytest.raises(ValueError):
        read_video(path)


def test_read_image_converts_to_the_mode_asked_for(tmp_path):
    path = tmp_path / "mask.png"
    Image.fromarray(noise_video(1)[0]).save(path)

    mask = read_image(path, mode="L")

    assert mask.mode == "L" and mask.size == (64, 64)


def test_read_image_of_a_corrupt_png_names_the_file(tmp_path):
    path = tmp_path / "mask.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)

    with pytest.raises(MediaReadError, match=r"mask\.png': Pillow cannot decode it .*; expected an image file"):
        read_image(path)


def test_read_image_of_an_empty_file_says_it_is_empty(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"")

    with pytest.raises(MediaReadError, match=r"image\.png': the file is empty \(0 bytes\); expected an image file"):
        read_image(path)


def test_read_image_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.png': no such file"):
        read_image(tmp_path / "absent.png")
