"""imaging_quality equals the official vbench 0.1.5 (pyiqa 0.1.10's MUSIQ) on a tiny seeded MUSIQ state dict."""

import numpy as np
import pytest
import torch

from tests.vbench.dimension_fixtures import fixture_clips, official_result, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench.dimensions import imaging_quality

OFFICIAL = official_result("imaging_quality")
ENTRY = OFFICIAL["checkpoints"]["musiq_spaq"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    path = tmp_path_factory.mktemp("musiq") / "musiq_spaq_ckpt-358bb6af.pth"
    return {"musiq_spaq": write_seeded_checkpoint(ENTRY, path)}


def test_scores_equal_the_official_code(checkpoints):
    videos = [fixture_clips()[r["clip"]] for r in OFFICIAL["per_video"]]
    assert max(videos[-1].shape[1:3]) > 512  # the 'longer' resize runs on the wide clip
    aggregate, per_video = imaging_quality.compute(
        videos, checkpoints=checkpoints, batch_size=3, musiq_architecture=ENTRY["architecture"]
    )
    np.testing.assert_allclose(per_video, [r["score"] for r in OFFICIAL["per_video"]], rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, OFFICIAL["aggregate"], rtol=1e-5, atol=0)


def test_frames_of_videos_of_one_size_share_batches_and_score_as_alone(checkpoints):
    # each clip twice in a row: the copies' frames go through MUSIQ in one batch of up to 64
    rows = [r for r in OFFICIAL["per_video"] for _ in range(2)]
    videos = [fixture_clips()[r["clip"]] for r in rows]
    _, per_video = imaging_quality.compute(videos, checkpoints=checkpoints, batch_size=64,
                                           musiq_architecture=ENTRY["architecture"])
    np.testing.assert_allclose(per_video, [r["score"] for r in rows], rtol=1e-5, atol=0)


def test_the_official_key_names_load_strictly(checkpoints, tmp_path):
    state = torch.load(checkpoints["musiq_spaq"], weights_only=True)
    state["transformer_encoder.extra"] = torch.zeros(1)
    del state["head.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"bad\.pth.*missing keys \(1\): head\.bias.*unexpected keys \(1\)"):
        imaging_quality.load_musiq(str(bad), **ENTRY["architecture"])


def test_preprocessing_resizes_only_above_512():
    frames = torch.full((1, 3, 100, 600), 255.0)
    assert imaging_quality.preprocess(frames).shape[-2:] == (85, 512)
    assert imaging_quality.preprocess(frames[..., :500]).shape[-2:] == (100, 500)
    # 255 maps to 1 (the antialiased resize of a constant frame may round by one float32 ulp, thread count dependent)
    assert abs(float(imaging_quality.preprocess(frames).max()) - 1.0) <= 1.2e-7


def test_unknown_preprocessing_mode_is_named(checkpoints):
    with pytest.raises(ValueError, match="imaging_quality_preprocessing_mode='widest'"):
        imaging_quality.compute(
            [np.zeros((1, 8, 8, 3), np.uint8)], checkpoints=checkpoints, imaging_quality_preprocessing_mode="widest"
        )
