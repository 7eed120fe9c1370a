"""`vdp --help`, `vdp <command> --help`, every argument error and the pipelines' defaults import neither torch nor
diffusers; each case runs in a fresh interpreter, where nothing else has imported them."""

import subprocess
import sys

import pytest

HEAVY_MODULES = ("torch", "diffusers")

# prints the heavy modules that `call` imported; `call` may exit (help, argument errors)
_PROBE = """
import sys
{setup}
try:
    {call}
except SystemExit:
    pass
print("heavy:" + ",".join(name for name in {heavy!r} if name in sys.modules), file=sys.stderr)
"""


def heavy_modules_after(call: str, setup: str = "from video_diffusion_pack.cli import build_parser, main") -> list:
    """The heavy modules imported by `setup` and `call` in a fresh interpreter (its last stderr line says)."""
    script = _PROBE.format(setup=setup, call=call, heavy=HEAVY_MODULES)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("heavy:"), result.stderr
    return [name for name in last_line.removeprefix("heavy:").split(",") if name]


HELP_COMMANDS = [
    [], ["generate"], ["info"], ["download"], ["das"], ["track-video"], ["inpaint"], ["convert"], ["convert", "repvideo"],
    ["upscale"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda command: " ".join(["vdp", *command, "--help"]))
def test_help_imports_neither_torch_nor_diffusers(command):
    assert heavy_modules_after(f"build_parser().parse_args({[*command, '--help']!r})") == []


ARGUMENT_ERRORS = [
    ["generate"],
    ["generate", "a cat", "-o", "clip.mp4", "--pipeline", "nope"],
    ["generate", "a cat", "-o", "clip.mp4", "--height", "500"],
    ["generate", "a cat", "-o", "clip.mp4", "--pipeline", "repvideo", "--frames", "5"],
    ["generate", "a cat", "-o", "clip.avi"],
    ["generate", "a cat", "-o", "clip.mp4", "--model", "no-such-folder"],
    ["download"],
    ["das", "--prompt", "a cat", "-o", "clip.mp4", "--image", "no-such-image.png"],
    ["track-video", "-o", "clip.mp4", "--frames", "1"],
    ["inpaint", "no-such-video.mp4", "remove the cat", "-o", "clip.mp4"],
    ["inpaint", "no-such-video.mp4", "remove the cat", "-o", "clip.mp4", "--steps", "0"],
    ["convert", "repvideo", "--sat", "no-such-folder", "-o", "out"],
    ["upscale", "no-such-video.mp4", "-o", "clip.mp4", "--model", "x4.pth"],
    ["upscale", "no-such-video.mp4", "-o", "clip.mp4"],
    ["upscale", "no-such-video.mp4", "-o", "clip.mp4", "--model", "x4.pth", "--tile", "64", "--overlap", "40"],
    ["generate", "a cat", "-o", "clip.mp4", "--upscale", "no-such-model.pth"],
    ["das", "--prompt", "a cat", "-o", "clip.mp4", "--tracking-video", "t.mp4", "--upscale", "no-such-model.pth"],
]


@pytest.mark.parametrize("arguments", ARGUMENT_ERRORS, ids=lambda arguments: " ".join(["vdp", *arguments]))
def test_an_argument_error_imports_neither_torch_nor_diffusers(arguments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert heavy_modules_after(f"main({arguments!r})") == []


@pytest.mark.parametrize("pipeline", ["vchitect", "repvideo", "das", "lgvi"])
def test_pipeline_defaults_import_neither_torch_nor_diffusers(pipeline):
    module = f"video_diffusion_pack.diffusers_pipelines.{pipeline}.defaults"
    assert heavy_modules_after("OFFICIAL, SMOKE_TEST", setup=f"from {module} import OFFICIAL, SMOKE_TEST") == []
