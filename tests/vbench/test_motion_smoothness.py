"""motion_smoothness equals the official vbench 0.1.5 on a full-size AMT-S with seeded random weights in the
official `{'state_dict': ...}` layout."""

import numpy as np
import pytest
import torch

from tests.vbench.dimension_fixtures import fixture_clips, official_result, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench.dimensions import motion_smoothness

OFFICIAL = official_result("motion_smoothness")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    path = tmp_path_factory.mktemp("amt") / "amt-s.pth"
    return {"amt_s": write_seeded_checkpoint(OFFICIAL["checkpoints"]["amt_s"], path, wrap="state_dict")}


def test_scores_equal_the_official_code(checkpoints):
    videos = [fixture_clips()[r["clip"]] for r in OFFICIAL["per_video"]]
    aggregate, per_video = motion_smoothness.compute(videos, checkpoints=checkpoints, batch_size=3)
    np.testing.assert_allclose(per_video, [r["score"] for r in OFFICIAL["per_video"]], rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, OFFICIAL["aggregate"], rtol=1e-5, atol=0)


def test_frame_pairs_of_videos_of_one_size_share_batches_and_score_as_alone(checkpoints):
    rows = [r for r in OFFICIAL["per_video"] for _ in range(2)]
    videos = [fixture_clips()[r["clip"]] for r in rows]
    _, per_video = motion_smoothness.compute(videos, checkpoints=checkpoints, batch_size=16)
    np.testing.assert_allclose(per_video, [r["score"] for r in rows], rtol=1e-5, atol=0)


def test_the_checkpoint_has_the_official_parameter_count(checkpoints):
    state = torch.load(checkpoints["amt_s"], weights_only=True)["state_dict"]
    assert len(state) == 213 and sum(v.numel() for v in state.values()) == 2_990_543


def test_a_bare_state_dict_is_refused_naming_the_layout(checkpoints, tmp_path):
    bare = tmp_path / "bare.pth"
    torch.save(torch.load(checkpoints["amt_s"], weights_only=True)["state_dict"], bare)
    with pytest.raises(ValueError, match="'state_dict' entry"):
        motion_smoothness.compute([np.zeros((3, 128, 128, 3), np.uint8)], checkpoints={"amt_s": bare})


@pytest.mark.parametrize(
    "shape, message",
    [((2, 128, 128, 3), "has 2 frames; this dimension needs at least 3"), ((5, 96, 544, 3), "96x544")],
)
def test_too_short_or_too_small_videos_are_named(checkpoints, shape, message):
    with pytest.raises(ValueError, match=message):
        motion_smoothness.compute([np.zeros(shape, np.uint8)], checkpoints=checkpoints)
