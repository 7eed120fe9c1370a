"""`vdp upscale` and `--upscale FILE` of `vdp generate`, `vdp das` and `vdp inpaint`: real video files written and
read back; bad models, tiles and outputs refused before any model loads.

The console script runs as a user starts it where the process matters (the main run, Ctrl-C); the other cases call
the same entry point in this process, which saves a torch start-up per case."""

import contextlib
import io
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from helpers.upscalers import save_state_dict, tiny_compact_state_dict, tiny_esrgan_state_dict
from helpers.vdp import TINY_SETTINGS, ctrl_c_as_in_a_terminal, run_vdp, vdp_executable
from PIL import Image
from safetensors.torch import save_file

from video_diffusion_pack.cli import main
from video_diffusion_pack.upscale import load_upscale_model
from video_diffusion_pack.video_io import read_video, read_video_metadata, write_video


def _gradient_video(frames: int, height: int, width: int) -> np.ndarray:
    """A smooth moving gradient in 0..1, which lossy codecs keep well."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([np.stack([(x + 2 * t) / (width + 2 * frames), y / height, np.full(x.shape, 0.5)], -1)
                     for t in range(frames)]).astype(np.float32)


@pytest.fixture
def files(tmp_path):
    """An input video that remembers a generation, and tiny upscaler files."""
    write_video(tmp_path / "in.webp", _gradient_video(4, 40, 56), fps=10, quality=100,
                metadata={"command": "generate", "seed": 3})
    save_state_dict(tiny_compact_state_dict(scale=2), tmp_path / "x2.safetensors")
    save_state_dict(tiny_compact_state_dict(scale=1), tmp_path / "x1.pth")
    save_state_dict(tiny_esrgan_state_dict(scale=2, unshuffle=True), tmp_path / "x2plus.pth")
    return tmp_path


def vdp_here(*arguments) -> subprocess.CompletedProcess:
    """`vdp ARGUMENTS` through the console script's entry point, in this process."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main([str(argument) for argument in arguments])
        except SystemExit as exit:
            status = exit.code
    return subprocess.CompletedProcess(arguments, status, stdout.getvalue(), stderr.getvalue())


def _refused_before_loading(result, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "smoke-test model" not in result.stderr and "upscaling" not in result.stderr
    assert message in result.stderr


def test_upscale_writes_the_video_at_the_models_scale_with_its_settings(files):
    output = files / "out.webp"
    result = run_vdp("upscale", files / "in.webp", "-o", output, "--model", files / "x2.safetensors", "--tile", "32",
                     "--overlap", "16", "--batch", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(output)
    written = read_video(output)
    assert written.frames.shape == (4, 80, 112, 3)
    assert written.fps == pytest.approx(10)
    # spandrel's output for the decoded input frames, through the same lossy WebP encoder
    source = torch.from_numpy(read_video(files / "in.webp").frames).float() / 255
    model = load_upscale_model(files / "x2.safetensors")
    expected = torch.cat([model(frame.permute(2, 0, 1)[None]) for frame in source]).permute(0, 2, 3, 1).numpy()
    reference = read_video(write_video(files / "reference.webp", expected, fps=10)).frames
    assert np.abs(written.frames.astype(int) - reference).mean() < 0.05  # of 255 levels
    settings = read_video_metadata(output)
    assert settings["command"] == "upscale"
    assert (settings["tile"], settings["overlap"], settings["batch"]) == (32, 16, 2)
    assert (settings["upscale_architecture"], settings["upscale_scale"]) == ("RealESRGAN Compact", 2)
    assert settings["source"] == {"command": "generate", "seed": 3}
    info = run_vdp("info", output)
    assert info.returncode == 0 and 'command: "upscale"' in info.stdout


def test_upscale_of_an_mp4_reads_and_writes_mp4(files):
    write_video(files / "in.mp4", _gradient_video(3, 32, 48), fps=8)
    result = vdp_here("upscale", files / "in.mp4", "-o", files / "out.mp4", "--model", files / "x2plus.pth",
                     "--tile", "32", "--overlap", "8")
    assert result.returncode == 0, result.stderr
    assert read_video(files / "out.mp4").frames.shape == (3, 64, 96, 3)


def test_a_file_spandrel_cannot_identify_is_refused_with_its_verdict(files):
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(files / "unknown.safetensors"))
    result = vdp_here("upscale", files / "in.webp", "-o", files / "out.webp", "--model", files / "unknown.safetensors")
    _refused_before_loading(result, "argument --model: model '")
    assert "spandrel cannot identify its architecture (UnsupportedModelError" in result.stderr
    assert "expected the weights of a single-image super-resolution model" in result.stderr
    assert not (files / "out.webp").exists()


def test_a_model_that_is_not_an_upscaler_is_refused(files):
    result = vdp_here("upscale", files / "in.webp", "-o", files / "out.webp", "--model", files / "x1.pth")
    _refused_before_loading(result, "(Restoration, scale 1): a restoration model that keeps the size, not an upscaler")


def test_a_tile_the_model_cannot_take_is_refused(files):
    result = vdp_here("upscale", files / "in.webp", "-o", files / "out.webp", "--model", files / "x2plus.pth",
                     "--tile", "30", "--overlap", "8")
    _refused_before_loading(result, "argument --tile: tile=30 does not fit ESRGAN (scale 2): its tiles must be a "
                                    "multiple of 4 pixels")


@pytest.mark.parametrize("arguments, message", [
    (["-o", "{in}"], "argument -o/--output: output '{in}' is the same file as input_video"),
    (["-o", "{dir}/out.webp", "--overlap", "300"], "argument --overlap: overlap=300 must be at most half of tile=512"),
    (["-o", "{dir}/out.avi"], "argument -o/--output"),
    (["-o", "{dir}/out.webp", "--batch", "0"], "argument --batch: batch=0 must be an integer >= 1"),
])
def test_bad_arguments_exit_with_one_line(files, arguments, message):
    fill = {"in": files / "in.webp", "dir": files}
    result = vdp_here("upscale", files / "in.webp", "--model", files / "x2.safetensors",
                     *[argument.format(**fill) for argument in arguments])
    _refused_before_loading(result, message.format(**fill))


def test_generate_upscales_its_frames_before_writing_them(files):
    output = files / "gen.webp"
    result = vdp_here("generate", "a red ball", "-o", output, *TINY_SETTINGS, "--upscale", files / "x2.safetensors")
    assert result.returncode == 0, result.stderr
    assert read_video(output).frames.shape == (3, 64, 96, 3)
    settings = read_video_metadata(output)
    assert settings["upscale"] == str(files / "x2.safetensors")
    assert settings["upscale_scale"] == 2


@pytest.mark.parametrize("command", ["generate", "das", "inpaint"])
def test_a_bad_upscaler_is_refused_before_the_pipeline_loads(files, command):
    Image.new("RGB", (48, 32), (200, 40, 40)).save(files / "image.png")
    np.save(files / "depth.npy", np.ones((32, 48), dtype=np.float32))
    arguments = {
        "generate": ["generate", "a red ball", *TINY_SETTINGS],
        "das": ["das", "--prompt", "a cube", "--image", files / "image.png", "--depth", files / "depth.npy"],
        "inpaint": ["inpaint", files / "in.webp", "remove it"],
    }[command]
    result = vdp_here(*arguments, "-o", files / "out.webp", "--upscale", files / "x1.pth")
    _refused_before_loading(result, "argument --upscale: upscale '")
    assert "not an upscaler" in result.stderr
    missing = vdp_here(*arguments, "-o", files / "out.webp", "--upscale", files / "absent.pth")
    _refused_before_loading(missing, f"argument --upscale: upscale '{files / 'absent.pth'}' does not exist")


def test_inpaint_upscales_its_frames_before_writing_them(files):
    output = files / "edited.webp"
    result = vdp_here("inpaint", files / "in.webp", "remove it", "-o", output, "--width", "32", "--height", "32",
                     "--max-frames", "2", "--steps", "1", "--upscale", files / "x2.safetensors")
    assert result.returncode == 0, result.stderr
    assert read_video(output).frames.shape == (2, 64, 64, 3)
    assert read_video_metadata(output)["upscale_architecture"] == "RealESRGAN Compact"


def test_upscale_stopped_by_ctrl_c_while_upscaling_exits_with_one_line_and_writes_nothing(files):
    write_video(files / "long.webp", _gradient_video(30, 128, 128), fps=8)
    save_state_dict(tiny_esrgan_state_dict(scale=4), files / "x4.pth")
    output = files / "out"
    output.mkdir()
    process = subprocess.Popen([vdp_executable(), "upscale", str(files / "long.webp"), "-o", str(output / "big.webp"),
                                "--model", str(files / "x4.pth"), "--tile", "16", "--overlap", "4"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=ctrl_c_as_in_a_terminal)
    lines, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline and not any("upscaling" in line for line in lines):
        lines.append(process.stderr.readline())
        if not lines[-1]:
            process.kill()
            pytest.fail(f"vdp upscale ended before upscaling: {''.join(lines)}")
    time.sleep(1.0)  # into the tiles
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("vdp upscale did not stop within 60 s of the signal")
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1].endswith("vdp upscale: interrupted by Ctrl-C (SIGINT); nothing half-written was left")
    assert list(output.iterdir()) == []


def test_das_upscales_its_frames_before_writing_them(files):
    Image.new("RGB", (32, 32), (200, 40, 40)).save(files / "image.png")
    np.save(files / "depth.npy", np.ones((32, 32), dtype=np.float32))
    output = files / "das.webp"
    result = vdp_here("das", "--prompt", "a cube", "--image", files / "image.png", "--depth", files / "depth.npy",
                      "--camera", "rot y 10", "--steps", "1", "-o", output, "--upscale", files / "x2.safetensors")
    assert result.returncode == 0, result.stderr
    frames = read_video(output).frames
    assert frames.shape[1:] == (64, 64, 3)
    assert read_video_metadata(output)["upscale_scale"] == 2
