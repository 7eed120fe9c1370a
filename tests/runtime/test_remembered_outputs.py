"""Videos that remember how they were made: write_video's metadata in mp4, WebP and GIF, `vdp info FILE`,
`vdp generate --like FILE`, and the settings `vdp das` and `vdp inpaint` store."""

import numpy as np
import pytest
from helpers.vdp import run_vdp
from PIL import Image

from video_diffusion_pack import __version__
from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import TINY_REPVIDEO_PROMPT
from video_diffusion_pack.video_io import read_video, read_video_metadata, write_video

SETTINGS = {"command": "generate", "prompt": "a corgi ü", "seed": 3, "guidance": 6.5, "freeinit": None,
            "nested": {"steps": [1, 2]}}
FRAMES = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("extension", [".mp4", ".webp", ".gif"])
def test_metadata_round_trips_in_every_format(tmp_path, extension):
    path = write_video(tmp_path / f"clip{extension}", FRAMES, fps=8, metadata=SETTINGS)
    assert read_video_metadata(path) == SETTINGS
    assert read_video(path).frames.shape[1:] == (16, 16, 3)
    plain = write_video(tmp_path / f"plain{extension}", FRAMES, fps=8)
    assert read_video_metadata(plain) == {}


def test_metadata_that_is_not_json_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="metadata must hold only JSON values"):
        write_video(tmp_path / "clip.mp4", FRAMES, metadata={"seed": float("nan")})
    with pytest.raises(ValueError, match="metadata=list must be a dict"):
        write_video(tmp_path / "clip.mp4", FRAMES, metadata=[1])
    assert list(tmp_path.iterdir()) == []


def test_generate_remembers_its_settings_and_like_repeats_the_run(tmp_path):
    # WebP: libx264 on several threads does not encode the same frames to the same bytes twice, WebP does
    first, second = tmp_path / "first.webp", tmp_path / "second.webp"
    result = run_vdp("generate", TINY_REPVIDEO_PROMPT, "-o", first, "--pipeline", "repvideo", "--frames", "9",
                     "--height", "32", "--width", "32", "--steps", "2", "--seed", "5", "--device", "cpu",
                     "--guidance", "4.5")
    assert result.returncode == 0, result.stderr
    settings = read_video_metadata(first)
    assert {key: settings[key] for key in ("command", "pipeline", "prompt", "seed", "steps", "frames", "guidance",
                                       "freeinit")} \
        == {"command": "generate", "pipeline": "repvideo", "prompt": TINY_REPVIDEO_PROMPT, "seed": 5, "steps": 2,
            "frames": 9, "guidance": 4.5, "freeinit": None}
    assert settings["video_diffusion_pack"] == __version__ and settings["model"] is None
    assert "output" not in settings and "like" not in settings

    info = run_vdp("info", first)
    assert info.returncode == 0, info.stderr
    assert f'prompt: "{TINY_REPVIDEO_PROMPT}"' in info.stdout.splitlines() and "seed: 5" in info.stdout

    result = run_vdp("generate", "--like", first, "-o", second, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert np.array_equal(read_video(second).frames, read_video(first).frames)
    assert read_video_metadata(second) == settings

    third = tmp_path / "third.webp"
    result = run_vdp("generate", "--like", first, "-o", third, "--device", "cpu", "--seed", "6")
    assert result.returncode == 0, result.stderr
    assert read_video_metadata(third)["seed"] == 6 and read_video_metadata(third)["steps"] == 2
    assert not np.array_equal(read_video(third).frames, read_video(first).frames)


def test_like_and_info_on_a_video_without_settings_say_so(tmp_path):
    plain = write_video(tmp_path / "plain.mp4", FRAMES)
    result = run_vdp("generate", "--like", plain, "-o", tmp_path / "out.mp4")
    assert result.returncode == 2
    assert "argument --like: " in result.stderr and "holds no settings of a `vdp generate` run" in result.stderr
    info = run_vdp("info", plain)
    assert info.returncode == 1 and "carries no vdp settings" in info.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_like_takes_only_a_generate_video(tmp_path):
    tracking = write_video(tmp_path / "tracking.mp4", FRAMES, metadata={"command": "track-video", "fov": 55.0})
    result = run_vdp("generate", "--like", tracking, "-o", tmp_path / "out.mp4")
    assert result.returncode == 2
    assert "holds no settings of a `vdp generate` run (found command='track-video')" in result.stderr


def test_das_and_inpaint_remember_their_resolved_settings(tmp_path):
    from video_diffusion_pack.cli import main

    g = np.random.default_rng(0)
    Image.fromarray((g.random((60, 90, 3)) * 255).astype(np.uint8)).save(tmp_path / "image.png")
    np.save(tmp_path / "depth.npy", (1 + g.random((60, 90))).astype(np.float32))
    das = tmp_path / "das.webp"
    assert main(["das", "--image", str(tmp_path / "image.png"), "--depth", str(tmp_path / "depth.npy"), "--camera",
                 "rot y 10", "--prompt", "a red panda", "--steps", "2", "--seed", "7", "-o", str(das)]) == 0
    settings = read_video_metadata(das)
    assert {key: settings[key] for key in ("command", "prompt", "camera", "steps", "seed", "frames", "height", "width",
                                           "model", "video_diffusion_pack")} \
        == {"command": "das", "prompt": "a red panda", "camera": "rot y 10", "steps": 2, "seed": 7, "frames": 5,
            "height": 32, "width": 32, "model": None, "video_diffusion_pack": __version__}

    source = write_video(tmp_path / "birds.mp4", (g.random((5, 40, 64, 3)) * 255).astype(np.uint8), fps=12)
    edited = tmp_path / "edited.gif"
    assert main(["inpaint", str(source), "remove the bird", "-o", str(edited), "--max-frames", "4", "--gs", "2.5"]) == 0
    settings = read_video_metadata(edited)
    assert {key: settings[key] for key in ("command", "input_video", "instruction", "gs", "max_frames", "fps",
                                           "lgvi_i")} \
        == {"command": "inpaint", "input_video": str(source), "instruction": "remove the bird", "gs": 2.5,
            "max_frames": 4, "fps": 12.0, "lgvi_i": False}
    assert isinstance(settings["steps"], int) and isinstance(settings["seed"], int)
