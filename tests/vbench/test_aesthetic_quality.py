"""aesthetic_quality equals the official vbench 0.1.5 on a tiny seeded CLIP in the OpenAI layout and the LAION head."""

import numpy as np
import pytest
import torch

from tests.vbench.dimension_fixtures import fixture_clips, official_result, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench.dimensions import aesthetic_quality

OFFICIAL = official_result("aesthetic_quality")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aesthetic")
    entries = OFFICIAL["checkpoints"]
    return {
        "clip_vit_l_14": write_seeded_checkpoint(entries["clip_vit_l_14"], folder / "ViT-L-14.pt"),
        "aesthetic_head": write_seeded_checkpoint(entries["aesthetic_head"], folder / "sa_0_4_vit_l_14_linear.pth"),
    }


def test_scores_equal_the_official_code(checkpoints):
    videos = [fixture_clips()[r["clip"]] for r in OFFICIAL["per_video"]]
    aggregate, per_video = aesthetic_quality.compute(videos, checkpoints=checkpoints, device="cpu", batch_size=5)
    expected = [r["score"] for r in OFFICIAL["per_video"]]
    np.testing.assert_allclose(per_video, expected, rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, OFFICIAL["aggregate"], rtol=1e-5, atol=0)


def test_missing_checkpoint_names_the_manifest_entry(tmp_path):
    video = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(FileNotFoundError, match="vbench-clip-vit-l-14"):
        aesthetic_quality.compute(
            [video], checkpoints={"clip_vit_l_14": tmp_path / "nope.pt", "aesthetic_head": tmp_path / "h.pth"}
        )
    present = tmp_path / "ViT-L-14.pt"
    present.write_bytes(b"")
    with pytest.raises(KeyError, match="vbench-laion-aesthetic-head"):
        aesthetic_quality.compute([video], checkpoints={"clip_vit_l_14": present})


def test_a_head_of_another_shape_is_refused_with_its_keys(checkpoints, tmp_path):
    bad = tmp_path / "head.pth"
    torch.save({"weight": torch.zeros(1, 512), "bias": torch.zeros(1)}, bad)
    video = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"shape mismatches.*weight \(1, 512\) != \(1, 768\)"):
        aesthetic_quality.compute([video], checkpoints={**checkpoints, "aesthetic_head": bad})


@pytest.mark.parametrize(
    "videos, message",
    [
        ([np.zeros((2, 8, 8, 3), np.float32)], r"videos\[0\] must be a uint8 array"),
        ([np.zeros((2, 8, 8), np.uint8)], r"videos\[0\] must be a uint8 array"),
        ([], "non-empty list"),
    ],
)
def test_bad_videos_are_named(videos, message, checkpoints):
    with pytest.raises(ValueError, match=message):
        aesthetic_quality.compute(videos, checkpoints=checkpoints)
