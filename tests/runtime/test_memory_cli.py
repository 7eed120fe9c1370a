"""`--memory` and its switches on the CLI: the same video with offload and VAE tiling/slicing, and bad
settings exit 2 before any model loads, writing nothing."""

import numpy as np
import pytest
from helpers.vdp import run_vdp

from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import TINY_REPVIDEO_PROMPT
from video_diffusion_pack.video_io import read_video

SETTINGS = ["--pipeline", "repvideo", "--frames", "9", "--height", "32", "--width", "32", "--steps", "2",
            "--device", "cpu"]


def generate(path, *memory):
    result = run_vdp("generate", TINY_REPVIDEO_PROMPT, "-o", path, *SETTINGS, *memory)
    assert result.returncode == 0, result.stderr
    return read_video(path).frames


def test_offload_and_vae_switches_give_the_same_video(tmp_path):
    reference = generate(tmp_path / "plain.mp4")
    same = generate(tmp_path / "low.mp4", "--offload", "group", "--vae-tiling", "--vae-slicing")
    assert np.array_equal(same, reference)
    assert reference.shape == (9, 32, 32, 3)


@pytest.mark.parametrize("memory, message", [
    (["--memory", "balanced"], "argument --memory/--offload: offload='model' needs --device cuda"),
    (["--memory", "lowest"], "offload='sequential' needs --device cuda"),
    (["--memory", "none", "--blocks-per-group", "0"], "argument --memory: blocks_per_group=0 must be an integer >= 1"),
    (["--memory", "small"], "argument --memory: invalid choice: 'small' (choose from 'none', 'balanced', 'low',"),
])
def test_bad_memory_settings_exit_2_and_write_nothing(tmp_path, memory, message):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", *SETTINGS, *memory)
    assert result.returncode == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["generate", "das", "inpaint"])
def test_every_generating_command_has_the_memory_setting(command):
    result = run_vdp(command, "--help")
    assert result.returncode == 0
    for option in ("--memory {none,balanced,low,lowest}", "--offload", "--vae-tiling", "--fp8", "--attention-backend"):
        assert option in result.stdout
