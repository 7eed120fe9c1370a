"""Specification of `vdp generate --freeinit N`, run as the installed console script."""

from helpers.vdp import TINY_SETTINGS, run_vdp

from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import TINY_TEXT_PROMPT
from video_diffusion_pack.video_io import read_video


def test_generate_with_freeinit_samples_every_pass_and_writes_the_video(tmp_path):
    output = tmp_path / "freeinit.webp"

    result = run_vdp("generate", TINY_TEXT_PROMPT, "-o", output, *TINY_SETTINGS, "--freeinit", "2")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(output)
    steps = int(TINY_SETTINGS[TINY_SETTINGS.index("--steps") + 1])
    assert "FreeInit 2/2: 100%" in result.stderr and f"{2 * steps}/{2 * steps}" in result.stderr
    assert read_video(output).frames.shape == (3, 32, 48, 3)


def test_generate_refuses_fewer_than_one_pass_before_loading_a_model(tmp_path):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--freeinit", "0")

    assert result.returncode == 2
    assert "argument --freeinit: freeinit=0 must be in 1..16" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
