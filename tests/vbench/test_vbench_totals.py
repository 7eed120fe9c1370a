"""VBench totals: the published leaderboard numbers are reproduced from the published per-dimension values."""

import pytest

from video_diffusion_pack.evaluation.vbench.totals import i2v_totals, normalized_scores, vbench_totals

# published per-dimension values (percent) of the VBench leaderboard
COGVIDEOX_5B = {
    "subject_consistency": 96.23, "background_consistency": 96.52, "temporal_flickering": 98.66,
    "motion_smoothness": 96.92, "dynamic_degree": 70.97, "aesthetic_quality": 61.98, "imaging_quality": 62.90,
    "object_class": 85.23, "multiple_objects": 62.11, "human_action": 99.40, "color": 82.81,
    "spatial_relationship": 66.35, "scene": 53.20, "appearance_style": 24.91, "temporal_style": 25.38,
    "overall_consistency": 27.59,
}
VCHITECT_2 = {
    "subject_consistency": 96.83, "background_consistency": 96.66, "temporal_flickering": 98.57,
    "motion_smoothness": 98.98, "dynamic_degree": 63.89, "aesthetic_quality": 60.41, "imaging_quality": 65.35,
    "object_class": 86.61, "multiple_objects": 68.84, "human_action": 97.20, "color": 87.04,
    "spatial_relationship": 57.55, "scene": 56.57, "appearance_style": 23.73, "temporal_style": 25.01,
    "overall_consistency": 27.57,
}


@pytest.mark.parametrize(
    "percent, expected",
    [(COGVIDEOX_5B, (82.76, 77.04, 81.61)), (VCHITECT_2, (83.53, 77.06, 82.24))],
    ids=["CogVideoX-5B", "Vchitect-2.0"],
)
def test_leaderboard_totals(percent, expected):
    totals = vbench_totals({name: value / 100 for name, value in percent.items()})
    got = (totals["quality_score"] * 100, totals["semantic_score"] * 100, totals["total_score"] * 100)
    assert got == pytest.approx(expected, abs=0.006)


def test_results_file_layout_and_space_keys_give_the_same_totals():
    fractions = {name: value / 100 for name, value in COGVIDEOX_5B.items()}
    as_results = {name: [value, [{"video_path": "x.mp4", "video_results": value}]] for name, value in fractions.items()}
    with_spaces = {name.replace("_", " "): value for name, value in fractions.items()}
    assert vbench_totals(as_results) == vbench_totals(fractions) == vbench_totals(with_spaces)


def test_normalisation_is_not_clipped_and_missing_counts_zero():
    normalized = normalized_scores({"subject_consistency": 0.1, "dynamic_degree": 1.0})
    assert normalized["subject_consistency"] == pytest.approx((0.1 - 0.1462) / (1 - 0.1462))
    assert normalized["dynamic_degree"] == 0.5
    assert normalized["scene"] == 0.0
    totals = vbench_totals({"dynamic_degree": 1.0})
    assert totals["quality_score"] == pytest.approx(0.5 / 6.5)
    assert totals["semantic_score"] == 0.0
    assert totals["total_score"] == pytest.approx(4 * 0.5 / 6.5 / 5)


def test_i2v_totals():
    scores = {"camera_motion": 0.5, "i2v_subject": 0.9, "i2v_background": 0.8, "subject_consistency": 0.95,
              "background_consistency": 0.96, "motion_smoothness": 0.97, "dynamic_degree": 0.4,
              "aesthetic_quality": 0.6, "imaging_quality": 0.7}
    totals = i2v_totals(scores)
    i2v = (0.05 + 0.9 + 0.8) / 2.1
    quality = (0.95 + 0.96 + 0.97 + 0.2 + 0.6 + 0.7) / 5.5
    assert totals == pytest.approx({"i2v_score": i2v, "quality_score": quality, "total_score": (i2v + quality) / 2})


@pytest.mark.parametrize(
    "scores, message",
    [({"sharpness": 0.5}, "'sharpness' is not a VBench dimension"),
     ({"scene": float("nan")}, "scores['scene'] must be a finite number"),
     ({"scene": "high"}, "scores['scene'] must be a finite number"),
     ([0.5], "scores must be a mapping")],
)
def test_bad_scores_are_named(scores, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        vbench_totals(scores)
