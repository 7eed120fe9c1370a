"""`vdp generate --pipeline`: Vchitect-2.0 or RepVideo as released (CogVideoX-2B), run as the installed console script."""

from helpers.vdp import run_vdp

from video_diffusion_pack.diffusers_pipelines.repvideo.defaults import SMOKE_TEST
from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import (
    TINY_REPVIDEO_PROMPT,
    save_tiny_cogvideox_repvideo_pipeline,
)
from video_diffusion_pack.video_io import read_video

# 9 frames: 3 latent frames (the CogVideoX VAE decodes an odd number of latent frames exactly)
REPVIDEO_SETTINGS = ["--frames", "9", "--height", "32", "--width", "32", "--steps", "2"]


def test_unknown_pipeline_exits_2_naming_the_allowed_values(tmp_path):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--pipeline", "nope")

    assert result.returncode == 2
    assert "argument --pipeline: invalid choice: 'nope'" in result.stderr
    assert "'vchitect'" in result.stderr and "'repvideo'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_repvideo_without_model_writes_the_video_of_the_embedded_model(tmp_path):
    output = tmp_path / "clip.mp4"

    result = run_vdp("generate", TINY_REPVIDEO_PROMPT, "-o", output, "--pipeline", "repvideo", *REPVIDEO_SETTINGS)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(output)
    assert "smoke-test model: a tiny RepVideo" in result.stderr
    assert read_video(output).frames.shape == (9, 32, 32, 3)


def test_repvideo_smoke_test_settings_are_the_default_without_model(tmp_path):
    output = tmp_path / "clip.webp"

    result = run_vdp("generate", TINY_REPVIDEO_PROMPT, "-o", output, "--pipeline", "repvideo", "--steps", "1")

    assert result.returncode == 0, result.stderr
    frames, fps = read_video(output)
    assert frames.shape == (SMOKE_TEST.num_frames, SMOKE_TEST.height, SMOKE_TEST.width, 3)
    assert fps == SMOKE_TEST.fps


def test_repvideo_loads_a_converted_folder(tmp_path):
    model = save_tiny_cogvideox_repvideo_pipeline(tmp_path / "RepVideo-diffusers")
    output = tmp_path / "clip.webp"

    result = run_vdp("generate", TINY_REPVIDEO_PROMPT, "-o", output, "--pipeline", "repvideo", "--model", model,
                     *REPVIDEO_SETTINGS, "--no-dynamic-cfg")

    assert result.returncode == 0, result.stderr
    assert "smoke-test model" not in result.stderr
    assert read_video(output).frames.shape == (9, 32, 32, 3)


def test_repvideo_refuses_a_frame_count_the_vae_cannot_encode(tmp_path):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--pipeline", "repvideo", "--frames", "5")

    assert result.returncode == 2
    assert "argument --frames: frames=5 must be 1 + a multiple of 8 for --pipeline repvideo" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_repvideo_names_the_conversion_when_the_converted_folder_is_missing(tmp_path):
    folder = tmp_path / "RepVideo"
    folder.mkdir()

    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--pipeline", "repvideo", "--model", folder)

    assert result.returncode == 2
    assert f"argument --model: model='{folder}' has no model_index.json" in result.stderr
    assert "`vdp convert repvideo --sat" in result.stderr
