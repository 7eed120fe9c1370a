"""background_consistency equals the official vbench 0.1.5 on a tiny seeded CLIP in the OpenAI ViT-B/32 layout."""

import numpy as np
import pytest
import torch

from tests.vbench.dimension_fixtures import fixture_clips, official_result, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench.dimensions import background_consistency

OFFICIAL = official_result("background_consistency")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip_b32") / "ViT-B-32.pt"
    return {"clip_vit_b_32": write_seeded_checkpoint(OFFICIAL["checkpoints"]["clip_vit_b_32"], path)}


def test_scores_equal_the_official_code(checkpoints):
    videos = [fixture_clips()[r["clip"]] for r in OFFICIAL["per_video"]]
    aggregate, per_video = background_consistency.compute(videos, checkpoints=checkpoints, batch_size=5)
    np.testing.assert_allclose(per_video, [r["score"] for r in OFFICIAL["per_video"]], rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, OFFICIAL["aggregate"], rtol=1e-5, atol=0)
    # the official aggregate is the sum of every video's similarities over the count of them, not a mean of videos
    sims = [r["video_sim"] for r in OFFICIAL["per_video"]]
    counts = [r["cnt_per_video"] for r in OFFICIAL["per_video"]]
    assert counts == [len(v) - 1 for v in videos]
    np.testing.assert_allclose(aggregate, sum(sims) / sum(counts), rtol=1e-5)
    assert abs(aggregate - np.mean(per_video)) > 1e-3


def test_a_vision_tower_of_another_shape_is_refused_with_its_keys(checkpoints, tmp_path):
    state = torch.load(checkpoints["clip_vit_b_32"], weights_only=True)
    state["visual.ln_post.weight"] = torch.ones(32)
    bad = tmp_path / "ViT-B-32.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"shape mismatches.*post_layernorm\.weight \(32,\) != \(64,\)"):
        background_consistency.compute([np.zeros((2, 32, 32, 3), np.uint8)], checkpoints={"clip_vit_b_32": bad})


def test_missing_checkpoint_and_short_videos_are_named(checkpoints, tmp_path):
    with pytest.raises(FileNotFoundError, match="vbench-clip-vit-b-32"):
        background_consistency.compute(
            [np.zeros((2, 32, 32, 3), np.uint8)], checkpoints={"clip_vit_b_32": tmp_path / "ViT-B-32.pt"}
        )
    with pytest.raises(KeyError, match=r"checkpoints\['clip_vit_b_32'\] is missing"):
        background_consistency.compute([np.zeros((2, 32, 32, 3), np.uint8)], checkpoints={})
    with pytest.raises(ValueError, match=r"videos\[1\] has 1 frames; this dimension needs at least 2"):
        background_consistency.compute(
            [np.zeros((2, 32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.uint8)], checkpoints=checkpoints
        )
