"""`vdp generate --vbench` (the official VBench file set of a dimension for a pack pipeline, seeds recorded,
resumable) and `vdp eval ab` (one switch off and on from the same seeds, scored by evaluate()), end to end on the
embedded model with the model-free temporal_flickering."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers.vdp import run_vdp

from video_diffusion_pack.evaluation.vbench import sampling, suite
from video_diffusion_pack.video_io import read_video, read_video_metadata

TINY = ["--frames", "3", "--height", "32", "--width", "48", "--steps", "2"]
FLICKER_PROMPTS = suite.prompts("temporal_flickering")


def flicker_score(path) -> float:
    """VBench temporal flickering of one file, written out here from the official definition (float32 frames,
    mean |frame_t+1 - frame_t| per pair, (255 - mean) / 255)."""
    frames = read_video(path).frames.astype(np.float32)
    return (255.0 - float(np.mean([np.abs(a - b).mean() for a, b in zip(frames[1:], frames[:-1])]))) / 255.0


def test_the_plan_is_the_suite_file_set_with_seed_plus_index():
    planned = sampling.plan("subject_consistency", seed=7)
    assert len(planned) == 5 * len(suite.prompts("subject_consistency"))
    assert [(v.file_name, v.seed) for v in planned[:6]] == [
        (suite.video_name(suite.prompts("subject_consistency")[i // 5], i % 5), 7 + i % 5) for i in range(6)]
    assert sampling.default_samples("temporal_flickering") == 25
    assert len(sampling.plan("temporal_flickering")) == 25 * len(FLICKER_PROMPTS)
    with pytest.raises(ValueError, match=r"samples=26 must be an integer in 1\.\.25"):
        sampling.plan("color", samples=26)


def test_generate_vbench_writes_the_official_files_from_recorded_seeds_and_continues(tmp_path):
    out = tmp_path / "videos"

    first = run_vdp("generate", "--vbench", "temporal_flickering", "--samples", "2", "--max-prompts", "1",
                    "--seed", "10", "-o", out, *TINY)

    assert first.returncode == 0, first.stderr
    names = [suite.video_name(FLICKER_PROMPTS[0], i) for i in range(2)]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["vbench_samples.json"])
    record = json.loads((out / "vbench_samples.json").read_text())
    assert {name: (entry["prompt"], entry["seed"]) for name, entry in record["videos"].items()} == {
        names[0]: (FLICKER_PROMPTS[0], 10), names[1]: (FLICKER_PROMPTS[0], 11)}
    assert read_video_metadata(out / names[1])["seed"] == 11
    # sample 1 is the video `vdp generate PROMPT --seed 11` makes
    single = tmp_path / "single.mp4"
    alone = run_vdp("generate", FLICKER_PROMPTS[0], "--seed", "11", "-o", single, *TINY)
    assert alone.returncode == 0, alone.stderr
    # the same seed gives the same video, frame for frame (the mp4 encoding is a function of the frames)
    np.testing.assert_array_equal(read_video(single).frames, read_video(out / names[1]).frames)
    assert not np.array_equal(read_video(single).frames, read_video(out / names[0]).frames)

    kept = (out / names[0]).stat().st_mtime_ns
    second = run_vdp("generate", "--vbench", "temporal_flickering", "--samples", "2", "--max-prompts", "2",
                     "--seed", "10", "-o", out, *TINY)

    assert second.returncode == 0, second.stderr
    assert "2 video(s) written, 2 already there" in second.stdout
    assert (out / names[0]).stat().st_mtime_ns == kept
    assert (out / suite.video_name(FLICKER_PROMPTS[1], 1)).is_file()
    assert not list(out.glob(".*part"))

    other_seed = run_vdp("generate", "--vbench", "temporal_flickering", "--samples", "2", "--max-prompts", "1",
                         "--seed", "3", "-o", out, *TINY)
    assert other_seed.returncode == 1 and "other settings (seed differ" in other_seed.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--vbench", "sharpness"], "argument --vbench: dimension='sharpness' is not a VBench dimension"),
    (["a cat", "--vbench", "color"], "argument prompt: --vbench takes the suite's prompts of color"),
    (["--vbench", "color", "--samples", "26"], "argument --samples: samples=26 must be in 1..25"),
    (["a cat", "--samples", "2"], "argument --samples: only goes with --vbench"),
    (["--vbench", "color", "--max-prompts", "0"], "argument --max-prompts: max_prompts=0 must be >= 1"),
], ids=["unknown-dimension", "prompt-given", "too-many-samples", "samples-alone", "no-prompts"])
def test_generate_vbench_argument_errors_name_the_argument_without_importing_torch(tmp_path, arguments, message):
    script = ("import sys\nfrom video_diffusion_pack.cli import main\ntry:\n    main(sys.argv[1:])\n"
              "except SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script, "generate", *arguments, "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert message in done.stderr
    assert done.stderr.splitlines()[-1] == "exit 2 False"
    assert not (tmp_path / "out").exists()


def test_generate_vbench_output_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file.mp4"
    target.write_bytes(b"")
    done = run_vdp("generate", "--vbench", "color", "-o", target)
    assert done.returncode == 2 and "exists and is not a folder" in done.stderr


def test_ab_generates_both_sides_from_the_same_seeds_and_scores_them(tmp_path):
    out = tmp_path / "ab"
    arguments = ["eval", "ab", "--switch", "freeinit", "--freeinit-iters", "2", "--dimensions", "temporal_flickering",
                 "--samples", "2", "--max-prompts", "1", "--seed", "4", "-o", out, *TINY]

    done = run_vdp(*arguments)

    assert done.returncode == 0, done.stderr
    table = json.loads((out / "ab_results.json").read_text())
    names = [suite.video_name(FLICKER_PROMPTS[0], i) for i in range(2)]
    scores = {}
    for side in ("off", "on"):
        record = json.loads((out / side / "vbench_samples.json").read_text())
        assert {name: entry["seed"] for name, entry in record["videos"].items()} == {names[0]: 4, names[1]: 5}
        assert record["settings"]["freeinit"] == (2 if side == "on" else None)
        scores[side] = [flicker_score(out / side / name) for name in names]
        row = table["sides"][side]["dimensions"]["temporal_flickering"]
        assert row["videos"] == 2 and row["sampling_seconds"] > 0
        assert row["score"] == pytest.approx(np.mean(scores[side]), rel=1e-6)
        official_layout = json.loads((out / side / "temporal_flickering_eval_results.json").read_text())
        assert official_layout["temporal_flickering"][0] == row["score"]
    assert scores["off"] != scores["on"]  # FreeInit changed the videos
    off_row = f"| {table['sides']['off']['dimensions']['temporal_flickering']['score']:.6f} |"
    assert "| temporal_flickering | 2 " in done.stdout and off_row in done.stdout

    again = run_vdp(*arguments)

    assert again.returncode == 0, again.stderr
    assert "0 video(s) written, 2 already there" in again.stdout
    assert json.loads((out / "ab_results.json").read_text())["sides"]["on"]["dimensions"]["temporal_flickering"][
        "score"] == table["sides"]["on"]["dimensions"]["temporal_flickering"]["score"]


def test_ab_refuses_a_bad_switch_setting_before_loading(tmp_path):
    done = run_vdp("eval", "ab", "--switch", "repvideo", "--pipeline", "repvideo", "--dimensions",
                   "temporal_flickering", "-o", tmp_path / "ab")
    assert done.returncode == 2 and "argument --switch: the repvideo pipeline always aggregates" in done.stderr
    done = run_vdp("eval", "ab", "--switch", "fastercache", "--dimensions", "sharpness", "-o", tmp_path / "ab")
    assert done.returncode == 2 and "argument --dimensions: dimension 'sharpness' is not a VBench dimension" in done.stderr
    done = run_vdp("eval", "ab", "--switch", "fastercache", "--dimensions", "temporal_flickering", "--steps", "0",
                   "-o", tmp_path / "ab")
    assert done.returncode == 2 and "steps=0 must be >= 1" in done.stderr
    assert not (tmp_path / "ab").exists()


@pytest.mark.parametrize("arguments", [
    ["eval", "ab", "--help"],
    ["eval", "ab", "--switch", "freeinit", "--dimensions", "sharpness", "-o", "out"],
    ["eval", "ab", "--switch", "freeinit", "--dimensions", "temporal_flickering", "--height", "50", "-o", "out"],
], ids=["help", "bad-dimension", "bad-height"])
def test_ab_help_and_argument_errors_import_neither_torch_nor_diffusers(tmp_path, arguments):
    script = ("import sys\nfrom video_diffusion_pack.cli import main\ntry:\n    main(sys.argv[1:])\n"
              "except SystemExit as e:\n    print('exit', e.code, [m for m in ('torch', 'diffusers') if m in sys.modules],"
              " file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.stderr.splitlines()[-1] in ("exit 0 []", "exit 2 []"), done.stderr
    assert not (tmp_path / "out").exists()
