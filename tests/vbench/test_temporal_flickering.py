"""temporal_flickering equals the official vbench 0.1.5 exactly (fixture made by
tests/fixtures/make_vbench_flicker_fixtures.py) and gives hand-checkable values on constant frames."""

import numpy as np
import pytest

from tests.vbench.dimension_fixtures import fixture_clips, official_result
from video_diffusion_pack.evaluation.vbench.dimensions import temporal_flickering

OFFICIAL = official_result("temporal_flickering")


def test_scores_equal_the_official_code_exactly():
    videos = [fixture_clips()[r["clip"]] for r in OFFICIAL["per_video"]]
    aggregate, per_video = temporal_flickering.compute(videos)
    assert per_video == [r["score"] for r in OFFICIAL["per_video"]]
    assert aggregate == OFFICIAL["aggregate"]
    assert len({round(score, 4) for score in per_video}) == 3  # the three clips score differently


def constant_video(levels, height=4, width=6):
    return np.stack([np.full((height, width, 3), level, np.uint8) for level in levels])


def test_constant_frames_give_the_hand_computed_score():
    # differences 10 and 0 -> mean 5 -> (255 - 5) / 255; a still video scores 1
    aggregate, per_video = temporal_flickering.compute([constant_video([0, 10, 10]), constant_video([7, 7])])
    assert per_video == [250 / 255, 1.0]
    assert aggregate == (250 / 255 + 1.0) / 2


def test_a_difference_in_one_channel_is_averaged_over_all_three():
    first, second = constant_video([0, 0])
    second[..., 1] = 30  # one channel of three differs by 30 -> mean 10
    assert temporal_flickering.video_score(np.stack([first, second])) == 245 / 255


@pytest.mark.parametrize(
    "videos, named",
    [
        ([constant_video([3])], r"videos\[0\] has 1 frames; this dimension needs at least 2"),
        ([constant_video([3, 4]).astype(np.float32)], r"videos\[0\] must be a uint8 array"),
        ([], "non-empty list"),
    ],
)
def test_bad_videos_are_named(videos, named):
    with pytest.raises(ValueError, match=named):
        temporal_flickering.compute(videos)
