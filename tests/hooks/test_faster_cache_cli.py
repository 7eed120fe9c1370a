"""Specification of `vdp generate --fastercache [PRESET]`, run as the installed console script."""

from helpers.vdp import TINY_SETTINGS, run_vdp

from video_diffusion_pack.cli import build_parser, generate
from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import TINY_TEXT_PROMPT
from video_diffusion_pack.hooks.faster_cache import FASTER_CACHE_PRESETS
from video_diffusion_pack.video_io import read_video

SETTINGS = [*TINY_SETTINGS[:-1], "4"]  # 4 steps: caching starts at the second


def test_cli_offers_every_preset():
    assert sorted(generate.FASTERCACHE_PRESETS) == sorted(FASTER_CACHE_PRESETS)


def test_bare_fastercache_takes_the_preset_of_the_pipeline():
    def preset(*arguments):
        return generate.fastercache_preset(build_parser().parse_args(["generate", "a cat", "-o", "x.mp4", *arguments]))

    assert preset("--fastercache") == "vchitect-2.0"
    assert preset("--fastercache", "--pipeline", "repvideo") == "cogvideox"
    assert preset("--fastercache=default", "--pipeline", "repvideo") == "default"
    assert preset() is None


def test_generate_with_fastercache_writes_the_requested_video(tmp_path):
    output = tmp_path / "cached.webp"

    result = run_vdp("generate", TINY_TEXT_PROMPT, "-o", output, *SETTINGS, "--fastercache=cogvideox")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(output)
    assert read_video(output).frames.shape == (3, 32, 48, 3)


def test_generate_refuses_an_unknown_preset_before_loading_a_model(tmp_path):
    result = run_vdp("generate", "a cat", "-o", tmp_path / "clip.mp4", "--fastercache=sora")

    assert result.returncode == 2
    assert "argument --fastercache: invalid choice: 'sora'" in result.stderr
    assert "vchitect-2.0" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
