"""`vdp inpaint`: a real video file in, the edited video file out; bad arguments exit with status 2 before any model."""

import numpy as np
import pytest

from video_diffusion_pack.cli import main
from video_diffusion_pack.diffusers_pipelines.inpaint_by_instruction.tiny import save_tiny_lgvi_official_layout
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
def input_video(tmp_path):
    frames = (np.random.default_rng(0).random((5, 40, 64, 3)) * 255).astype(np.uint8)
    return write_video(tmp_path / "birds.mp4", frames, fps=12)


def test_smoke_test_inpaints_an_mp4_into_an_mp4_at_the_input_frame_rate(input_video, tmp_path, capsys):
    output = tmp_path / "out.mp4"
    status, out, err = run_in_process(capsys, "inpaint", input_video, "remove the bird on the left", "-o", output,
                                      "--max-frames", "4")
    assert status == 0, err
    assert "smoke-test model" in err
    assert out.strip() == str(output)
    frames, fps = read_video(output)
    assert frames.shape == (4, 32, 48, 3)
    assert fps == pytest.approx(12.0)


def test_model_folder_in_the_released_layout_with_settings(input_video, tmp_path, capsys):
    model = save_tiny_lgvi_official_layout(tmp_path / "lgvi", seed=1)
    output = tmp_path / "out.webp"
    status, out, err = run_in_process(capsys, "inpaint", input_video, "remove the bird", "-o", output, "--model", model,
                                      "--steps", "2", "--gs", "2.0", "--igs", "1.2", "--seed", "3", "--width", "64",
                                      "--height", "40", "--fps", "6")
    assert status == 0, err
    assert "smoke-test" not in err
    frames, _ = read_video(output)
    assert frames.shape[1:] == (40, 64, 3)


@pytest.mark.parametrize("arguments, message", [
    (["--height", "36"], "argument --height: height=36 must be a positive multiple of 8"),
    (["--steps", "0"], "argument --steps: steps=0 must be >= 1"),
    (["--max-frames", "0"], "argument --max-frames: max_frames=0 must be >= 1"),
    (["--gs", "nan"], "argument --gs: gs=nan must be a finite number"),
    (["--model", "{missing}"], "argument --model"),
])
def test_bad_arguments_exit_with_status_2_naming_the_argument(input_video, tmp_path, capsys, arguments, message):
    arguments = [a.format(missing=tmp_path / "nowhere") for a in arguments]
    status, _, err = run_in_process(capsys, "inpaint", input_video, "remove the bird", "-o", tmp_path / "o.mp4", *arguments)
    assert status == 2
    assert message in err


def test_missing_input_and_bad_output_are_refused(input_video, tmp_path, capsys):
    status, _, err = run_in_process(capsys, "inpaint", tmp_path / "none.mp4", "remove it", "-o", tmp_path / "o.mp4")
    assert status == 2 and "argument input_video: input_video=" in err and "is not a file" in err
    status, _, err = run_in_process(capsys, "inpaint", input_video, "remove it", "-o", tmp_path / "o.avi")
    assert status == 2 and "argument -o/--output" in err and "'.avi' is not supported" in err
    status, _, err = run_in_process(capsys, "inpaint", input_video, "  ", "-o", tmp_path / "o.mp4")
    assert status == 2 and "instruction='  ' is empty" in err
