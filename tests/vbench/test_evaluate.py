"""evaluate(): the official suite's files in standard mode, any videos in custom mode, results in the official
`<name>_eval_results.json` layout, resume, each video decoded once, and every bad input named before work starts."""

import json
import os
import shutil

import numpy as np
import pytest

from tests.vbench.dimension_fixtures import FIXTURES, official_result, write_seeded_checkpoint
from video_diffusion_pack import video_io
from video_diffusion_pack.evaluation import vbench
from video_diffusion_pack.evaluation.vbench import evaluate, prompts, vbench_totals, video_name

AESTHETIC = official_result("aesthetic_quality")
FLICKER = official_result("temporal_flickering")
JUMPS = (0, 2, 8, 10, 16)


def constant_video(path, levels, size=16):
    """A video of constant frames at `levels`, checked to decode to exactly those levels (some grey levels do not
    survive the yuv420p round trip; the levels used here do)."""
    frames = np.stack([np.full((size, size, 3), level, np.uint8) for level in levels])
    video_io.write_video(path, frames)
    assert np.array_equal(video_io.read_video(path).frames, frames)
    return path


@pytest.fixture(scope="module")
def suite_folder(tmp_path_factory):
    """Every temporal_flickering file of the suite: sample i is a still video whose second frame jumps by JUMPS[i]."""
    folder = tmp_path_factory.mktemp("suite")
    sources = [constant_video(folder / f"source{i}.mp4", [0, jump, jump]) for i, jump in enumerate(JUMPS)]
    for prompt in prompts("temporal_flickering"):
        for index, source in enumerate(sources):
            os.link(source, folder / video_name(prompt, index))
    for source in sources:
        source.unlink()
    return folder


@pytest.fixture(scope="module")
def aesthetic_folder(tmp_path_factory):
    """The seeded aesthetic_quality checkpoints of the official fixture, as a flat folder of official file names."""
    folder = tmp_path_factory.mktemp("weights")
    entries = AESTHETIC["checkpoints"]
    write_seeded_checkpoint(entries["clip_vit_l_14"], folder / "ViT-L-14.pt")
    write_seeded_checkpoint(entries["aesthetic_head"], folder / "sa_0_4_vit_l_14_linear.pth")
    return folder


def custom_folder(tmp_path, names=("moving_gradient.mp4", "static_flicker.mp4")):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in names:
        shutil.copyfile(FIXTURES / name, folder / name)
    return folder


def test_standard_mode_scores_every_file_of_the_suite_in_the_official_layout(suite_folder, tmp_path):
    results = evaluate(suite_folder, ["temporal_flickering"], output_dir=tmp_path, name="tiny")
    aggregate, per_video = results["temporal_flickering"]
    suite = prompts("temporal_flickering")
    assert len(suite) == 75 and len(per_video) == 75 * 5
    assert [item["video_path"] for item in per_video[:5]] == [
        os.path.join(suite_folder, video_name(suite[0], index)) for index in range(5)
    ]
    # sample i: differences JUMPS[i] and 0 -> (255 - JUMPS[i] / 2) / 255
    expected = [(255 - jump / 2) / 255 for jump in JUMPS]
    assert [item["video_results"] for item in per_video[:5]] == expected
    assert [item["video_results"] for item in per_video[-5:]] == expected
    assert aggregate == pytest.approx(sum(expected) / 5, rel=1e-12)
    written = (tmp_path / "tiny_eval_results.json").read_text(encoding="utf-8")
    assert written.startswith('{\n    "temporal_flickering": [\n        0.98')  # official indent 4
    assert json.loads(written) == results
    assert set(vbench_totals(results)) == {"quality_score", "semantic_score", "total_score"}


def test_missing_suite_files_are_listed(suite_folder, tmp_path):
    folder = tmp_path / "partial"
    shutil.copytree(suite_folder, folder, copy_function=os.link)
    gone = [video_name(prompts("temporal_flickering")[3], 2), video_name(prompts("temporal_flickering")[70], 4)]
    for name in gone:
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match="2 video") as error:
        evaluate(folder, ["temporal_flickering"])
    assert all(name in str(error.value) for name in gone)


def test_custom_mode_equals_the_official_scores_with_each_video_decoded_once(aesthetic_folder, tmp_path, monkeypatch):
    folder = custom_folder(tmp_path, ("moving_gradient.mp4", "wide_noise.mp4"))
    decoded = []
    read_video = video_io.read_video

    def counting_read_video(path, **kwargs):
        decoded.append(os.path.basename(path))
        return read_video(path, **kwargs)

    monkeypatch.setattr(video_io, "read_video", counting_read_video)
    results = evaluate(folder, ["temporal_flickering", "aesthetic_quality"], aesthetic_folder, mode="custom",
                       batch_size=5)
    assert sorted(decoded) == ["moving_gradient.mp4", "wide_noise.mp4"]
    official_flicker = {r["clip"]: r["score"] for r in FLICKER["per_video"]}
    for item in results["temporal_flickering"][1]:
        assert item["video_results"] == official_flicker[os.path.basename(item["video_path"])]
    official_aesthetic = {r["clip"]: r["score"] for r in AESTHETIC["per_video"]}
    names = [os.path.basename(item["video_path"]) for item in results["aesthetic_quality"][1]]
    assert sorted(names) == sorted(official_aesthetic)
    np.testing.assert_allclose(
        [item["video_results"] for item in results["aesthetic_quality"][1]],
        [official_aesthetic[name] for name in names], rtol=1e-5, atol=0,
    )
    np.testing.assert_allclose(results["aesthetic_quality"][0], AESTHETIC["aggregate"], rtol=1e-5, atol=0)


def test_custom_mode_takes_a_list_of_files(tmp_path):
    first = constant_video(tmp_path / "a cat-0.mp4", [0, 30])
    second = constant_video(tmp_path / "a dog-3.mp4", [8, 8])
    results = evaluate([first, second], ["temporal_flickering"], mode="custom")
    assert [item["video_results"] for item in results["temporal_flickering"][1]] == [225 / 255, 1.0]


def test_a_partial_results_file_is_continued_not_recomputed(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    constant_video(folder / "a cat-0.mp4", [0, 30])
    evaluate(folder, ["temporal_flickering"], mode="custom", output_dir=tmp_path / "out")
    path = tmp_path / "out" / "results_eval_results.json"
    stored = json.loads(path.read_text())
    stored["temporal_flickering"][0] = 0.125  # a value the computation cannot give: kept only if not recomputed
    path.write_text(json.dumps(stored))
    assert evaluate(folder, ["temporal_flickering"], mode="custom", output_dir=tmp_path / "out")[
        "temporal_flickering"][0] == 0.125
    again = evaluate(folder, ["temporal_flickering"], mode="custom", output_dir=tmp_path / "out", resume=False)
    assert again["temporal_flickering"][0] == 225 / 255
    assert json.loads(path.read_text())["temporal_flickering"][0] == 225 / 255


def test_a_results_file_of_other_videos_or_another_suite_is_refused(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    constant_video(folder / "a cat-0.mp4", [0, 30])
    out = tmp_path / "out"
    out.mkdir()
    other = {"temporal_flickering": [0.9, [{"video_path": "elsewhere/a bird-0.mp4", "video_results": 0.9}]]}
    (out / "results_eval_results.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r"results_eval_results\.json.*'temporal_flickering' was scored on other videos"):
        evaluate(folder, ["temporal_flickering"], mode="custom", output_dir=out)
    (out / "results_eval_results.json").write_text(json.dumps({"Human_Anatomy": [0.5, []]}))
    with pytest.raises(ValueError, match=r"'Human_Anatomy', which is not a dimension of the vbench-0\.1\.5 suite"):
        evaluate(folder, ["temporal_flickering"], mode="custom", output_dir=out)


@pytest.mark.parametrize(
    "dimensions, named",
    [
        (["temporal_flickers"], "dimension 'temporal_flickers' is not a VBench dimension"),
        ([], "dimensions must name at least one"),
        (["temporal_flickering", "temporal_flickering"], "more than once"),
    ],
)
def test_bad_dimension_names_are_refused(tmp_path, dimensions, named):
    with pytest.raises(ValueError, match=named):
        evaluate(tmp_path, dimensions, mode="custom")


def test_a_video_too_short_for_a_dimension_is_named_with_its_file(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    constant_video(folder / "a cat-0.mp4", [0, 30])
    constant_video(folder / "a dog-0.mp4", [9])
    with pytest.raises(ValueError, match=r"videos\[1\] \('.*a dog-0\.mp4'\) has 1 frames; this dimension needs at least 2"):
        evaluate(folder, ["temporal_flickering"], mode="custom")


def test_a_corrupt_video_is_named(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    constant_video(folder / "a cat-0.mp4", [0, 30])
    (folder / "a dog-0.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match=r"video '.*a dog-0\.mp4' cannot be decoded"):
        evaluate(folder, ["temporal_flickering"], mode="custom")


def test_missing_or_wrong_checkpoints_are_named_with_the_manifest_entry(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    constant_video(folder / "a cat-0.mp4", [0, 30])
    with pytest.raises(FileNotFoundError, match=r"musiq_spaq_ckpt-358bb6af\.pth.*`vdp download vbench-musiq-spaq`"):
        evaluate(folder, ["temporal_flickering", "imaging_quality"], tmp_path, mode="custom")
    with pytest.raises(ValueError, match=r"needs weights_dir or checkpoints\['musiq_spaq'\]"):
        evaluate(folder, ["imaging_quality"], mode="custom")
    with pytest.raises(ValueError, match=r"checkpoints names \['musiq'\], which no dimension"):
        evaluate(folder, ["imaging_quality"], mode="custom", checkpoints={"musiq": tmp_path / "x.pth"})
    garbage = tmp_path / "weights" / "vbench" / "vbench-musiq-spaq" / "musiq_spaq_ckpt-358bb6af.pth"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"\x00" * 64)
    assert vbench.resolve_checkpoints("imaging_quality", tmp_path / "weights") == {"musiq_spaq": str(garbage)}
    with pytest.raises(ValueError, match=r"musiq_spaq_ckpt-358bb6af\.pth' is not a readable PyTorch file"):
        evaluate(folder, ["imaging_quality"], tmp_path / "weights", mode="custom")


def test_other_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        evaluate(tmp_path, ["temporal_flickering"], mode="customs")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        evaluate(tmp_path, ["temporal_flickering"], batch_size=0)
    with pytest.raises(ValueError, match="videos must be a folder in standard mode"):
        evaluate([tmp_path / "a-0.mp4"], ["temporal_flickering"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate(tmp_path / "nowhere", ["temporal_flickering"])
    with pytest.raises(ValueError, match="holds no video"):
        evaluate(tmp_path, ["temporal_flickering"], mode="custom")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="output_dir=.*file' exists and is not a folder"):
        evaluate(tmp_path, ["temporal_flickering"], output_dir=tmp_path / "file")
    with pytest.raises(ValueError, match="dimension_options must map dimensions"):
        evaluate(tmp_path, ["temporal_flickering"], dimension_options={"imaging_quality": {}})
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'fp16', 'bf16'\), got 'fp8'"):
        evaluate(tmp_path, ["temporal_flickering"], output_dir=tmp_path / "out", precision="fp8")
    assert not (tmp_path / "out").exists()


def test_scorer_key_checks_word_problems_as_the_strict_loaders_do():
    import torch

    from video_diffusion_pack.evaluation.vbench.dimensions._common import key_problems
    from video_diffusion_pack.models.checkpoint import key_table_problems

    expected = {f"w{i}": torch.zeros(2, 3) for i in range(25)} | {"b": torch.zeros(3)}
    found = {f"w{i}": torch.zeros(2, 3) for i in range(3, 25)} | {"b": torch.zeros(4), "extra": torch.zeros(1)}
    shapes = {key: tuple(value.shape) for key, value in expected.items()}
    assert key_problems(expected, found) == key_table_problems(
        shapes, {key: tuple(value.shape) for key, value in found.items()})
    assert key_problems(expected, found) == [
        "missing keys (3): w0, w1, w2", "unexpected keys (1): extra", "shape mismatches (1): b (4,) != (3,)"]


def test_row_batches_join_groups_of_one_shape_and_split_at_a_new_shape():
    import torch

    from video_diffusion_pack.evaluation.vbench.dimensions._common import row_batches, rows_by_owner

    groups = [torch.arange(3 * 4.0).reshape(3, 2, 2), 100 + torch.arange(2 * 4.0).reshape(2, 2, 2),
              torch.zeros(0, 2, 2), 200 + torch.arange(5 * 9.0).reshape(5, 3, 3)]
    batches = list(row_batches(iter(groups), 4))
    assert [owners for _, owners in batches] == [[0, 0, 0, 1], [1], [3, 3, 3, 3], [3]]
    assert torch.equal(batches[0][0], torch.cat([groups[0], groups[1][:1]]))
    assert torch.equal(batches[1][0], groups[1][1:])
    outputs = torch.cat([rows.flatten(1).sum(1) for rows, _ in batches])
    owners = [owner for _, batch_owners in batches for owner in batch_owners]
    split = rows_by_owner(outputs, owners, 4)
    for group, rows in zip(groups, split):
        assert torch.equal(rows, group.flatten(1).sum(1))


def test_half_precision_runs_the_models_in_bf16_and_stays_near_the_fp32_scores(aesthetic_folder, tmp_path):
    folder = custom_folder(tmp_path, ("moving_gradient.mp4", "wide_noise.mp4"))
    full = evaluate(folder, ["aesthetic_quality"], aesthetic_folder, mode="custom")
    half = evaluate(folder, ["aesthetic_quality"], aesthetic_folder, mode="custom", precision="bf16")
    full_scores = [item["video_results"] for item in full["aesthetic_quality"][1]]
    half_scores = [item["video_results"] for item in half["aesthetic_quality"][1]]
    # bf16 keeps 8 significant bits: the scores move, by less than a percent
    assert full_scores != half_scores
    np.testing.assert_allclose(half_scores, full_scores, rtol=1e-2, atol=0)
