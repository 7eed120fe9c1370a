"""Specification of the `vdp` command, run as the installed console script."""

import os

import pytest
import torch
from helpers.vdp import TINY_SETTINGS, run_vdp

from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import TINY_TEXT_PROMPT, save_tiny_official_layout
from video_diffusion_pack.video_io import read_video


def test_generate_without_model_writes_the_requested_video_and_says_what_the_embedded_model_draws(tmp_path):
    output = tmp_path / "clip.mp4"

    result = run_vdp("generate", TINY_TEXT_PROMPT, "-o", output, *TINY_SETTINGS, "--fps", "10")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(output)
    assert "runs the embedded model: a small Vchitect-2.0" in result.stderr and "shapes world" in result.stderr
    assert "random weights" not in result.stderr
    frames, fps = read_video(output)
    assert frames.shape == (3, 32, 48, 3)
    assert fps == pytest.approx(10.0)


def test_generate_loads_a_model_folder_with_repvideo_and_dynamic_cfg(tmp_path):
    model = save_tiny_official_layout(tmp_path / "Vchitect-2.0-2B")
    output = tmp_path / "clip.webp"

    result = run_vdp(
        "generate", TINY_TEXT_PROMPT, "-o", output, "--model", model, *TINY_SETTINGS, "--repvideo", "--dynamic-cfg"
    )

    assert result.returncode == 0, result.stderr
    assert "smoke-test model" not in result.stderr
    assert read_video(output).frames.shape == (3, 32, 48, 3)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--height", "500"], "argument --height: height=500 must be divisible by 16"),
        (["--width", "0"], "argument --width: width=0 must be > 0"),
        (["--frames", "0"], "argument --frames: frames=0 must be >= 1"),
        (["--steps", "0"], "argument --steps: steps=0 must be >= 1"),
        (["--fps", "0"], "argument --fps: fps=0.0 must be a finite number > 0"),
        (["--guidance", "nan"], "argument --guidance: guidance=nan must be a finite number"),
        (["--seed", "-1"], "argument --seed: seed=-1 must be in 0..2**64-1"),
    ],
)
def test_generate_refuses_bad_settings_with_exit_code_2(tmp_path, arguments, message):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", *arguments)

    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_generate_reports_a_size_beyond_the_model_as_a_bad_argument(tmp_path):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--height", "512", "--frames", "1", "--steps", "1")

    assert result.returncode == 2
    # the pipeline's check is blamed on the option it comes from
    assert result.stderr.strip().splitlines()[-1].startswith("vdp generate: error: argument --height: height=512 exceeds")
    assert list(tmp_path.iterdir()) == []


def test_generate_refuses_a_missing_output_folder(tmp_path):
    output = tmp_path / "missing" / "clip.mp4"

    result = run_vdp("generate", "a cat", "-o", output)

    assert result.returncode == 2
    assert f"argument -o/--output: output path '{output}': folder '{output.parent}' does not exist" in result.stderr


def test_generate_refuses_an_unsupported_extension(tmp_path):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.avi")

    assert result.returncode == 2
    assert "argument -o/--output" in result.stderr and "'.avi' is not supported; use one of .mp4, .webp, .gif" in result.stderr


def test_generate_refuses_a_missing_model_folder(tmp_path):
    model = tmp_path / "no-such-model"

    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--model", model)

    assert result.returncode == 2
    assert f"argument --model: model='{model}' is not a folder" in result.stderr


def test_generate_refuses_a_model_folder_without_model_index(tmp_path):
    model = tmp_path / "weights"
    model.mkdir()

    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--model", model)

    assert result.returncode == 2
    assert f"argument --model: model='{model}' has no model_index.json" in result.stderr


def test_info_reports_versions_and_finds_local_weights(tmp_path):
    models_root = tmp_path / "models"
    vchitect = models_root / "vchitect" / "Vchitect-2.0-2B"
    for name in ("model_index.json", "scheduler/scheduler_config.json", "transformer/config.json",
                 "transformer/diffusion_pytorch_model.safetensors"):
        (vchitect / name).parent.mkdir(parents=True, exist_ok=True)
        (vchitect / name).write_text("{}")
    (models_root / "vchitect" / "my-finetune").mkdir()
    (models_root / "vchitect" / "my-finetune" / "model_index.json").write_text("{}")
    env = dict(os.environ, VDP_MODELS_DIR=str(models_root), HF_HUB_CACHE=str(tmp_path / "empty-hub-cache"))

    result = run_vdp("info", env=env)

    assert result.returncode == 0, result.stderr
    assert f"torch {torch.__version__}" in result.stdout
    assert "diffusers " in result.stdout and "transformers " in result.stdout and "cuda:" in result.stdout
    assert f"Vchitect-2.0-2B: present (not verified): {vchitect}" in result.stdout
    assert "RepVideo: missing (no folder); get it with `vdp download RepVideo`" in result.stdout
    assert f"vchitect: {models_root / 'vchitect' / 'my-finetune'}" in result.stdout
