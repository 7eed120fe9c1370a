"""`vdp eval vbench`, `vdp eval totals` and `vdp eval prompts`, run as a user runs them."""

import json

import numpy as np
import pytest
from helpers.vdp import run_vdp
from test_cli_imports import heavy_modules_after

from video_diffusion_pack.video_io import write_video


def still_then_jump(path, jump):
    # 0 -> jump on every pixel: (255 - jump) / 255 (levels that survive the yuv420p round trip)
    write_video(path, np.stack([np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), jump, np.uint8)]))


def test_vbench_scores_a_custom_folder_and_writes_the_official_results_file(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    still_then_jump(videos / "a cat-0.mp4", 30)
    still_then_jump(videos / "a dog-0.mp4", 0)
    result = run_vdp("eval", "vbench", videos, "--dimensions", "temporal_flickering", "--mode", "custom",
                     "-o", tmp_path / "out", "--name", "tiny", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "temporal_flickering" in result.stdout and f"{(225 / 255 + 1) / 2:.6f}" in result.stdout
    results = json.loads((tmp_path / "out" / "tiny_eval_results.json").read_text())
    aggregate, per_video = results["temporal_flickering"]
    assert {item["video_path"].rsplit("/", 1)[-1]: item["video_results"] for item in per_video} == {
        "a cat-0.mp4": 225 / 255, "a dog-0.mp4": 1.0}
    assert aggregate == (225 / 255 + 1) / 2

    totals = run_vdp("eval", "totals", tmp_path / "out" / "tiny_eval_results.json")
    assert totals.returncode == 0, totals.stderr
    # only temporal_flickering: ((x - 0.6293) / (1 - 0.6293)) / 6.5 for quality, semantic 0, total 4/5 of quality
    quality = (aggregate - 0.6293) / (1 - 0.6293) / 6.5
    assert json.loads(totals.stdout) == {"quality_score": round(quality, 6), "semantic_score": 0.0,
                                         "total_score": round(quality * 4 / 5, 6)}


def test_vbench_reports_missing_suite_files_and_missing_checkpoints_with_status_1(tmp_path):
    still_then_jump(tmp_path / "a cat-0.mp4", 30)
    missing = run_vdp("eval", "vbench", tmp_path, "--dimensions", "temporal_flickering", "-o", tmp_path / "out")
    assert missing.returncode == 1
    assert "375 video(s) of the VBench suite are missing" in missing.stderr
    no_weights = run_vdp("eval", "vbench", tmp_path, "--dimensions", "imaging_quality", "--mode", "custom",
                         "--weights-dir", tmp_path, "-o", tmp_path / "out")
    assert no_weights.returncode == 1
    assert "musiq_spaq_ckpt-358bb6af.pth" in no_weights.stderr and "vdp download vbench-musiq-spaq" in no_weights.stderr


def test_prompts_lists_a_dimension_and_its_file_names():
    result = run_vdp("eval", "prompts", "--dimension", "color", "--samples", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == ["a red bicycle-0.mp4", "a red bicycle-1.mp4", "a green bicycle-0.mp4"]
    assert len(result.stdout.splitlines()) == 85 * 2


ARGUMENT_ERRORS = [
    (["vbench", "{videos}", "--dimensions", "colr", "-o", "{out}"], "dimension 'colr' is not a VBench dimension"),
    (["vbench", "{videos}", "--dimensions", "color", "--mode", "custom", "-o", "{out}"],
     "custom input cannot score ['color']"),
    (["vbench", "{videos}", "--dimensions", "scene", "--detections", "{videos}/none.json", "-o", "{out}"],
     "argument --detections: detections='"),
    (["vbench", "{videos}", "--dimensions", "object_class", "--detector-python", "{videos}/python", "-o", "{out}"],
     "is not an executable file"),
    (["vbench", "{videos}", "--dimensions", "temporal_flickering", "--detections", "{videos}", "-o", "{out}"],
     "only object_class, multiple_objects, color, spatial_relationship, scene, camera_motion use a model backend"),
    (["vbench", "{videos}/nowhere", "--dimensions", "temporal_flickering", "-o", "{out}"], "is not a folder"),
    (["vbench", "{videos}", "--dimensions", "temporal_flickering", "--batch-size", "0", "-o", "{out}"],
     "batch_size=0 must be at least 1"),
    (["vbench", "{videos}", "--dimensions", "temporal_flickering", "--weights-dir", "{videos}/no", "-o", "{out}"],
     "weights_dir="),
    (["totals", "{videos}/none.json"], "is not a file"),
    (["prompts", "--dimension", "colour"], "dimension='colour' is not a VBench dimension"),
    (["prompts", "--dimension", "color", "--samples", "26"], "samples=26 must be in 1..25"),
    (["static-filter", "{videos}/nowhere", "-o", "{out}"], "videos='"),
    (["static-filter", "{videos}", "--batch-size", "0", "-o", "{out}"], "batch_size=0 must be at least 1"),
    (["static-filter", "{videos}", "-o", "{videos}"], "must not be the videos folder"),
]


@pytest.mark.parametrize("arguments, named", ARGUMENT_ERRORS, ids=lambda value: " ".join(value)[:40])
def test_argument_errors_exit_2_naming_the_argument(tmp_path, arguments, named):
    arguments = [value.format(videos=tmp_path, out=tmp_path / "out") for value in arguments]
    result = run_vdp("eval", *arguments)
    assert result.returncode == 2 and named in result.stderr, result.stderr


def test_static_filter_names_the_missing_raft_checkpoint_with_status_1(tmp_path):
    still_then_jump(tmp_path / "a cat-0.mp4", 30)
    result = run_vdp("eval", "static-filter", tmp_path, "--weights-dir", tmp_path, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "raft-things.pth" in result.stderr and "vdp download vbench-raft-things" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arguments", [["eval", "--help"], ["eval", "vbench", "--help"],
                                       ["eval", "static-filter", "--help"],
                                       ["eval", "vbench", "/nowhere", "--dimensions", "colr", "-o", "/tmp/o"]])
def test_help_and_argument_errors_import_neither_torch_nor_diffusers(arguments):
    assert heavy_modules_after(f"main({arguments!r})") == []
