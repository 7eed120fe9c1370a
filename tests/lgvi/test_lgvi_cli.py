"""`vdp inpaint`: a real video file in, the edited video file out; bad arguments exit with status 2 before any model."""

import numpy as np
import pytest
import torch

from video_diffusion_pack.cli import main
from video_diffusion_pack.diffusers_pipelines.lgvi.lgvi_i import (
    load_lgvi_i_pipeline,
    save_tiny_lgvi_i_official_layout,
)
from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import save_tiny_lgvi_official_layout
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


def test_the_embedded_model_inpaints_an_mp4_into_an_mp4_at_the_input_frame_rate(input_video, tmp_path, capsys):
    output = tmp_path / "out.mp4"
    status, out, err = run_in_process(capsys, "inpaint", input_video, "remove the bird on the left", "-o", output,
                                      "--max-frames", "4")
    assert status == 0, err
    assert "runs the embedded model: a small LGVI (32x32, 8 frames) trained" in err
    assert "smoke-test" not in err and "noise" not in err
    assert out.strip() == str(output)
    frames, fps = read_video(output)
    assert frames.shape == (4, 32, 32, 3)  # the embedded model's frame size
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


def test_lgvi_i_smoke_test_writes_the_video_and_says_what_llava_wrote(input_video, tmp_path, capsys):
    output = tmp_path / "out.webp"
    status, out, err = run_in_process(capsys, "inpaint", input_video, "Can you make it solely about the pelican?",
                                      "-o", output, "--lgvi-i", "--max-frames", "3")
    assert status == 0, err
    assert "tiny LGVI-I" in err and "LLaVA wrote the edit prompt: " in err
    frames, _ = read_video(output)
    assert frames.shape == (3, 32, 48, 3)


def _lgvi_i_models_root(tmp_path):
    """The tiny LGVI-I weights in the layout `vdp download lgvi-i` writes: <root>/lgvi/<entry name>/."""
    written = save_tiny_lgvi_i_official_layout(tmp_path / "written", seed=0)
    root = tmp_path / "models_root"
    (root / "lgvi").mkdir(parents=True)
    for name in ("lgvi-i", "llava-v1.5-7b", "clip-vit-large-patch14-336"):
        (written / name).rename(root / "lgvi" / name)
    return root


def test_lgvi_i_folder_is_recognised_and_finds_llava_and_clip_in_the_models_root(
        input_video, tmp_path, capsys, monkeypatch):
    root = _lgvi_i_models_root(tmp_path)
    monkeypatch.setenv("VDP_MODELS_DIR", str(root))
    output = tmp_path / "out.mp4"
    request = "Can you make it solely about the pelican?"
    status, out, err = run_in_process(capsys, "inpaint", input_video, request, "-o", output, "--model",
                                      root / "lgvi" / "lgvi-i", "--max-new-tokens", "8", "--steps", "2",
                                      "--width", "48", "--height", "32", "--max-frames", "3")
    assert status == 0, err
    assert "smoke-test" not in err
    frames, _ = read_video(output)
    assert frames.shape == (3, 32, 48, 3)
    # the answer it prints is the one the same pipeline gives in Python
    pipe = load_lgvi_i_pipeline(root / "lgvi" / "lgvi-i", root / "lgvi" / "llava-v1.5-7b",
                                root / "lgvi" / "clip-vit-large-patch14-336", max_new_tokens=8)
    video, _ = read_video(input_video)
    expected = pipe(video=torch.from_numpy(video[:3]).float() / 255, prompt=request, height=32, width=48,
                    num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").instructions
    assert f"LLaVA wrote the edit prompt: {expected[0]!r}" in err


def test_lgvi_i_without_its_llava_folder_exits_2_naming_the_option(input_video, tmp_path, capsys, monkeypatch):
    root = _lgvi_i_models_root(tmp_path)
    monkeypatch.setenv("VDP_MODELS_DIR", str(tmp_path / "empty"))
    status, _, err = run_in_process(capsys, "inpaint", input_video, "remove the bird", "-o", tmp_path / "out.mp4",
                                    "--model", root / "lgvi" / "lgvi-i", "--clip", root)
    assert status == 2
    assert "argument --llava" in err and "vdp download llava-v1.5-7b" in err
    assert not (tmp_path / "out.mp4").exists()


def test_llava_without_a_model_exits_2(input_video, tmp_path, capsys):
    status, _, err = run_in_process(capsys, "inpaint", input_video, "remove the bird", "-o", tmp_path / "out.mp4",
                                    "--llava", tmp_path)
    assert status == 2 and "argument --llava/--clip" in err


def test_max_new_tokens_below_one_exits_2(input_video, tmp_path, capsys):
    status, _, err = run_in_process(capsys, "inpaint", input_video, "remove the bird", "-o", tmp_path / "out.mp4",
                                    "--lgvi-i", "--max-new-tokens", "0")
    assert status == 2 and "max_new_tokens=0 must be >= 1" in err
