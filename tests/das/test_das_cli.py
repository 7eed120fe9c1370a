"""`vdp das` and `vdp track-video`: the embedded model as the installed console script, the rest through `cli.main`."""

import numpy as np
import pytest
from helpers.vdp import run_vdp
from PIL import Image

from video_diffusion_pack.cli import main
from video_diffusion_pack.video_io import read_video, write_video


def run_in_process(capsys, *arguments):
    """(exit status, stdout, stderr) of `vdp ARGUMENTS` run in this process."""
    try:
        status = main([str(a) for a in arguments])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def inputs(tmp_path):
    g = np.random.default_rng(0)
    Image.fromarray((g.random((60, 90, 3)) * 255).astype(np.uint8)).save(tmp_path / "image.png")
    np.save(tmp_path / "depth.npy", (1 + g.random((60, 90))).astype(np.float32))
    mask = np.zeros((60, 90), np.uint8)
    mask[20:40, 30:60] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path


def test_track_video_renders_the_requested_frames_and_size(inputs, capsys):
    output = inputs / "tracking.mp4"
    status, out, err = run_in_process(capsys, "track-video", "--image", inputs / "image.png", "--depth", inputs / "depth.npy", "--camera",
                     "rot y 20; trans 0.1 0 0", "--object-mask", inputs / "mask.png", "--object-motion", "up",
                     "--frames", "9", "--height", "48", "--width", "64", "-o", output)
    assert status == 0, err
    assert out.strip() == str(output)
    frames, _ = read_video(output)
    assert frames.shape == (9, 48, 64, 3)
    assert frames[0].mean() > 20  # every pixel is a track at frame 0: no black background


def test_das_embedded_model_writes_the_video_and_the_tracking_video(inputs):
    output, tracking = inputs / "video.mp4", inputs / "tracking.webp"
    result = run_vdp("das", "--image", inputs / "image.png", "--depth", inputs / "depth.npy", "--camera", "rot y 10",
                     "--prompt", "a red panda", "--steps", "2", "-o", output, "--save-tracking", tracking)
    assert result.returncode == 0, result.stderr
    assert "runs the embedded model: a small Diffusion as Shader (32x32, 5 frames)" in result.stderr
    assert "noise" not in result.stderr
    assert result.stdout.strip().splitlines() == [str(tracking), str(output)]
    frames, _ = read_video(output)
    assert frames.shape == (5, 32, 32, 3)


@pytest.mark.parametrize("arguments, message", [
    (["--camera", "zoom 3"], "argument --camera: camera command 'zoom 3': unknown command 'zoom'"),
    (["--camera", "rot y 30 0 60"], "frame range 0..60 must satisfy 0 <= start <= end <= 4"),
    (["--object-mask", "{mask}"], "--object-mask and --object-motion go together"),
    (["--object-mask", "{empty}", "--object-motion", "up"], "mask selects no track point"),
    (["--depth", "{nan_depth}"], "argument --depth: depth must be finite and > 0 everywhere"),
    (["--grid-size", "0"], "grid_size=0 must be >= 1"),
])
def test_bad_tracking_input_exits_with_status_2_naming_the_argument(inputs, capsys, arguments, message):
    np.save(inputs / "nan_depth.npy", np.full((60, 90), np.nan, np.float32))
    Image.fromarray(np.zeros((60, 90), np.uint8)).save(inputs / "empty.png")
    paths = {"mask": inputs / "mask.png", "empty": inputs / "empty.png", "nan_depth": inputs / "nan_depth.npy"}
    arguments = [str(a).format(**paths) for a in arguments]
    base = {"--image": str(inputs / "image.png"), "--depth": str(inputs / "depth.npy")}
    for option in list(base):
        if option in arguments:
            base.pop(option)
    flat = [item for pair in base.items() for item in pair]
    status, _, err = run_in_process(capsys, "das", *flat, *arguments, "--prompt", "x", "-o", inputs / "out.mp4")
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (inputs / "out.mp4").exists()


def test_tracking_video_of_the_wrong_length_is_refused_before_loading_a_model(inputs, capsys):
    write_video(inputs / "short.mp4", np.zeros((3, 32, 32, 3), np.uint8), fps=8)
    status, _, err = run_in_process(capsys, "das", "--image", inputs / "image.png", "--tracking-video",
                                    inputs / "short.mp4", "--prompt", "x", "-o", inputs / "out.mp4")
    assert status == 2
    assert "it has 3 frames of 32x32; the embedded model needs 5 frames of 32x32 (HxW)" in err
    assert "runs the embedded model" not in err


def test_model_may_be_a_models_root_holding_the_download_layout(inputs, capsys):
    from video_diffusion_pack.diffusers_pipelines.das.tiny import save_tiny_das_layout

    save_tiny_das_layout(inputs / "models" / "video_diffusion_pack" / "das" / "Diffusion-As-Shader", seed=1)
    output, tracking = inputs / "video.mp4", inputs / "tracking.mp4"
    # the tracking video sets the geometry: the tiny model's 9 frames of 32x32
    write_video(tracking, (np.random.default_rng(1).random((9, 32, 32, 3)) * 255).astype(np.uint8), fps=8)
    # ComfyUI's models folder layout: <models>/video_diffusion_pack/das/Diffusion-As-Shader
    status, out, err = run_in_process(capsys, "das", "--image", inputs / "image.png", "--tracking-video", tracking,
                                      "--prompt", "a red panda", "--steps", "1", "--model", inputs / "models",
                                      "-o", output)
    assert status == 0, err
    assert "smoke-test model" not in err
    frames, _ = read_video(output)
    assert frames.shape == (9, 32, 32, 3)


def test_model_folder_without_the_weights_exits_2_with_the_download_command(inputs, capsys):
    (inputs / "empty").mkdir()
    status, _, err = run_in_process(capsys, "das", "--image", inputs / "image.png", "--depth", inputs / "depth.npy",
                                    "--prompt", "x", "--model", inputs / "empty", "-o", inputs / "out.mp4")
    assert status == 2
    assert "argument --model" in err and "vdp download Diffusion-As-Shader" in err
    assert not (inputs / "out.mp4").exists()
