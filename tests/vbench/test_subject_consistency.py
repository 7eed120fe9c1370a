"""subject_consistency equals the official vbench 0.1.5 on a small seeded DINO ViT-B/16 in the official layout,
non-square frames included (DINO's own position-table interpolation)."""

import numpy as np
import pytest
import torch

from tests.vbench.dimension_fixtures import fixture_clips, official_result, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench.dimensions import subject_consistency

OFFICIAL = official_result("subject_consistency")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    path = tmp_path_factory.mktemp("dino") / "dino_vitbase16_pretrain.pth"
    return {"dino_vitb16": write_seeded_checkpoint(OFFICIAL["checkpoints"]["dino_vitb16"], path)}


def official_videos():
    return [fixture_clips()[r["clip"]] for r in OFFICIAL["per_video"]]


@pytest.fixture(scope="module")
def scores(checkpoints):
    return subject_consistency.compute(official_videos(), checkpoints=checkpoints, batch_size=3)


def test_scores_equal_the_official_code(scores):
    # both clips are non-square: 128x160 -> 224x280 and 96x544 -> 224x1269
    assert all(v.shape[1] != v.shape[2] for v in official_videos())
    aggregate, per_video = scores
    np.testing.assert_allclose(per_video, [r["score"] for r in OFFICIAL["per_video"]], rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, OFFICIAL["aggregate"], rtol=1e-5, atol=0)


def test_the_aggregate_weighs_frames_not_videos(scores):
    aggregate, per_video = scores
    terms = [len(v) - 1 for v in official_videos()]
    assert terms[0] != terms[1]
    np.testing.assert_allclose(aggregate, np.dot(per_video, terms) / sum(terms), rtol=1e-12)
    assert abs(aggregate - np.mean(per_video)) > 1e-4


def test_transformers_own_interpolation_would_miss_the_official_scores(checkpoints, monkeypatch):
    from transformers.models.vit.modeling_vit import ViTEmbeddings

    from video_diffusion_pack.evaluation.vbench.dimensions import _dino

    monkeypatch.setattr(_dino, "_dino_interpolate_pos_encoding", ViTEmbeddings.interpolate_pos_encoding)
    _, per_video = subject_consistency.compute(official_videos(), checkpoints=checkpoints, batch_size=3)
    expected = np.array([r["score"] for r in OFFICIAL["per_video"]])
    assert np.all(np.abs(np.array(per_video) - expected) / expected > 5e-5)


def test_frames_of_videos_of_one_size_share_batches_and_score_as_alone(checkpoints):
    rows = [r for r in OFFICIAL["per_video"] for _ in range(2)]
    videos = [video for video in official_videos() for _ in range(2)]
    _, per_video = subject_consistency.compute(videos, checkpoints=checkpoints, batch_size=64)
    np.testing.assert_allclose(per_video, [r["score"] for r in rows], rtol=1e-5, atol=0)


def test_dino_interpolation_differs_from_transformers_default(checkpoints):
    from transformers.models.vit.modeling_vit import ViTEmbeddings

    from video_diffusion_pack.evaluation.vbench.dimensions._dino import load_dino_vit

    model = load_dino_vit(str(checkpoints["dino_vitb16"]), "test")
    tokens = torch.zeros(1, 1 + 14 * 24, model.config.hidden_size)
    ours = model.embeddings.interpolate_pos_encoding(tokens, 224, 398)
    default = ViTEmbeddings.interpolate_pos_encoding(model.embeddings, tokens, 224, 398)
    assert ours.shape == default.shape == (1, 1 + 14 * 24, model.config.hidden_size)
    relative = (ours - default).norm() / default.norm()
    assert relative > 0.01
    # 224x224 frames use the table as stored
    square = model.embeddings.interpolate_pos_encoding(torch.zeros(1, 197, model.config.hidden_size), 224, 224)
    assert torch.equal(square, model.embeddings.position_embeddings)


def test_unexpected_and_missing_keys_are_named(checkpoints, tmp_path):
    state = torch.load(checkpoints["dino_vitb16"], weights_only=True)
    state["head.weight"] = torch.zeros(3, 128)
    del state["blocks.1.mlp.fc2.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    video = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"missing keys \(1\): blocks\.1\.mlp\.fc2\.bias.*unexpected keys \(1\): head\.weight"):
        subject_consistency.compute([video], checkpoints={"dino_vitb16": bad})


def test_a_file_of_another_layout_is_refused(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match="not a DINO ViT checkpoint in the official layout"):
        subject_consistency.compute([np.zeros((2, 32, 32, 3), np.uint8)], checkpoints={"dino_vitb16": other})


def test_missing_checkpoint_and_short_videos_are_named(checkpoints, tmp_path):
    with pytest.raises(FileNotFoundError, match="vbench-dino-vitb16"):
        subject_consistency.compute([np.zeros((2, 32, 32, 3), np.uint8)], checkpoints={"dino_vitb16": tmp_path / "x"})
    with pytest.raises(ValueError, match=r"videos\[0\] has 1 frames; this dimension needs at least 2"):
        subject_consistency.compute([np.zeros((1, 32, 32, 3), np.uint8)], checkpoints=checkpoints)
