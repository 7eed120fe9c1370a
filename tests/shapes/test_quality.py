"""The shapes quality bed: its detector recovers the scene of true videos of the world (after H.264), scores noise and
mismatched videos near or below chance, and measures DaS control and LGVI removal against the world's truth."""

import dataclasses
import json
import re

import numpy as np
import pytest

from tests.helpers.vdp import run_vdp
from video_diffusion_pack.evaluation.shapes import quality, world
from video_diffusion_pack.video_io import read_video, write_video

SCENES = [world.sample_scene(np.random.default_rng([5, seed]), 64, 64, 9) for seed in range(16)]


def through_h264(frames, path):
    write_video(path, frames, 8, quality=95)
    return read_video(path).frames


@pytest.fixture(scope="module")
def true_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bed")
    return [through_h264(world.render_scene(scene).frames, folder / f"{index}.mp4")
            for index, scene in enumerate(SCENES)]


def test_the_detector_recovers_the_scene_of_true_videos(true_videos):
    scores = [quality.score_prompt(video, world.caption(scene)) for video, scene in zip(true_videos, SCENES)]
    summary = quality.summarise(scores)
    for field in ("color", "shape", "motion", "background", "count", "relation"):
        assert summary[field] == 1.0, (field, summary)
    assert summary["temporal_iou"] > 0.85 and summary["color_drift"] < 0.02
    assert any(len(scene.objects) == 3 for scene in SCENES) and any(len(scene.background) == 2 for scene in SCENES)


def test_noise_scores_no_better_than_chance():
    rng = np.random.default_rng(0)
    scores = [quality.score_prompt(rng.integers(0, 256, (9, 64, 64, 3), dtype=np.uint8), world.caption(scene))
              for scene in SCENES]
    summary = quality.summarise(scores)
    chance = quality.chance_levels()
    for field in ("color", "shape", "motion"):
        assert summary[field] <= chance[field] + 0.05, (field, summary)
    assert summary["background"] <= 0.2 and summary["temporal_iou"] < 0.2


def test_a_video_of_another_scene_scores_near_chance(true_videos):
    scores = [quality.score_prompt(video, world.caption(SCENES[(index + 1) % len(SCENES)]))
              for index, video in enumerate(true_videos)]
    summary = quality.summarise(scores)
    assert summary["color"] < 0.45 and summary["shape"] < 0.3 and summary["motion"] < 0.3, summary
    assert summary["background"] < 0.3


def single(shape="square", color="red", motion="left", **changes):
    item = world.ShapeObject(shape, color, motion, (40.0, 32.0), 8.0, 10.0, 2.0)
    return world.Scene(64, 64, 9, (dataclasses.replace(item, **changes),), ("blue",))


@pytest.mark.parametrize("drawn, wrong_field", [
    ({"motion": "right", "center": (24.0, 32.0)}, "motion"),
    ({"motion": "grow"}, "motion"),
    ({"shape": "star"}, "shape"),
    ({"shape": "triangle"}, "shape"),
    ({"color": "orange"}, "color"),
])
def test_a_video_that_draws_one_thing_wrong_loses_exactly_that_score(drawn, wrong_field):
    prompt = world.caption(single())
    assert quality.score_prompt(world.render_scene(single()).frames, prompt).motion == 1.0
    scores = quality.score_prompt(world.render_scene(single(**drawn)).frames, prompt)
    expected = {"color": 1.0, "shape": 1.0, "motion": 1.0, "background": 1.0}
    expected[wrong_field] = 0.0
    if wrong_field == "color":  # the named object is missing, so nothing of it can be scored
        expected.update(shape=0.0, motion=0.0)
    assert {field: getattr(scores, field) for field in expected} == expected


@pytest.mark.parametrize("motion", world.MOTIONS)
def test_every_motion_is_told_apart(motion):
    scene = single(motion=motion, center=(32.0, 32.0), radius=7.0)
    detection = quality.detect(world.render_scene(scene).frames)
    assert quality.classify_motion(detection.objects["red"]) == motion


@pytest.mark.parametrize("shape", world.SHAPES)
@pytest.mark.parametrize("angle", [0.0, 17.0, 33.0])
def test_every_shape_is_told_apart_at_any_angle(shape, angle):
    scene = single(shape=shape, motion="left", angle_degrees=angle)
    detection = quality.detect(world.render_scene(scene).frames)
    assert quality.classify_shape(detection.objects["red"]) == shape


@pytest.mark.parametrize("index", range(6))
def test_control_error_is_small_with_the_scene_s_tracking_video_and_large_with_another_trajectory(index, tmp_path):
    scene = SCENES[index]
    rendered = world.render_scene(scene)
    own = through_h264(world.tracking_video(scene, rendered.labels), tmp_path / "own.mp4")
    reverse = {"left": "right", "right": "left", "up": "down", "down": "up", "up-left": "down-right",
               "down-right": "up-left", "up-right": "down-left", "down-left": "up-right"}
    other = dataclasses.replace(scene, objects=tuple(
        dataclasses.replace(item, motion=reverse.get(item.motion, "left" if item.center[0] > 32 else "right"))
        for item in scene.objects))
    other_tracking = world.tracking_video(other, world.render_scene(other).labels)
    prompt = world.caption(scene)
    good = quality.score_control(rendered.frames, own, prompt)
    bad = quality.score_control(rendered.frames, other_tracking, prompt)
    assert good.matched == 1.0 and good.centroid_error_pixels < 3.0
    assert bad.centroid_error_pixels > 3 * good.centroid_error_pixels + 5.0


def test_inpainting_scores_a_perfect_removal_high_and_no_removal_low():
    scene = next(scene for scene in SCENES if len(scene.objects) >= 2)
    rendered = world.render_scene(scene)
    target = world.render_scene(scene.without(0)).frames
    mask = rendered.labels == 1
    perfect = quality.score_inpainting(target, target, rendered.frames, mask)
    assert perfect.edited_psnr == quality.PSNR_CAP_DB and perfect.edited_ssim == pytest.approx(1.0)
    assert perfect.untouched_psnr == quality.PSNR_CAP_DB and perfect.untouched_ssim == pytest.approx(1.0)
    untouched = quality.score_inpainting(rendered.frames, target, rendered.frames, mask)
    assert untouched.edited_psnr < 15 and untouched.edited_ssim < 0.8
    mask_video = np.repeat(mask[..., None] * np.uint8(255), 3, axis=-1)
    assert quality.score_inpainting(target, target, rendered.frames, mask_video) == perfect
    rng = np.random.default_rng(1)
    noisy = np.clip(target + rng.normal(0, 20, target.shape), 0, 255).astype(np.uint8)
    scores = quality.score_inpainting(noisy, target, rendered.frames, mask)
    assert 20 < scores.edited_psnr < 25 and 20 < scores.untouched_psnr < 25


def test_a_prompt_outside_the_grammar_is_refused_naming_the_unparsed_words():
    frames = world.render_scene(single()).frames
    with pytest.raises(ValueError, match=r"outside the shapes grammar: could not parse 'cat sitting on a blue"):
        quality.score_prompt(frames, "a red cat sitting on a blue background")


@pytest.mark.parametrize("frames, message", [
    (np.zeros((9, 3, 64, 64), np.uint8), r"shape \(9, 3, 64, 64\); expected \[frames, height, width, 3\]"),
    (np.zeros((1, 64, 64, 3), np.uint8), "at least 2 frames"),
    (np.zeros((9, 8, 8, 3), np.uint8), "16x16"),
    (np.full((9, 64, 64, 3), 2.0), "outside 0..1"),
    (np.zeros((9, 64, 64, 3), np.int64), "dtype int64"),
])
def test_a_video_of_the_wrong_shape_or_kind_is_refused(frames, message):
    with pytest.raises(ValueError, match=message):
        quality.score_prompt(frames, world.caption(single()))


def test_mismatched_tracking_video_and_mask_shapes_are_refused():
    frames = world.render_scene(single()).frames
    with pytest.raises(ValueError, match="tracking_video has shape"):
        quality.score_control(frames, frames[:5], world.caption(single()))
    with pytest.raises(ValueError, match="mask has shape"):
        quality.score_inpainting(frames, frames, frames, np.zeros((9, 32, 32), bool))


def test_vdp_eval_shapes_scores_a_written_video_and_its_tracking_video(tmp_path):
    scene = SCENES[0]
    rendered = world.render_scene(scene)
    write_video(tmp_path / "video.mp4", rendered.frames, 8, quality=95)
    write_video(tmp_path / "tracking.mp4", world.tracking_video(scene, rendered.labels), 8, quality=95)
    result = run_vdp("eval", "shapes", str(tmp_path / "video.mp4"), "--prompt", world.caption(scene),
                     "--tracking-video", str(tmp_path / "tracking.mp4"), "-o", str(tmp_path / "scores.json"))
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["prompt"]["color"] == 1.0 and scores["prompt"]["motion"] == 1.0
    assert scores["control"]["matched"] == 1.0 and scores["control"]["centroid_error_pixels"] < 3.0


@pytest.mark.parametrize("arguments, message", [
    (["--prompt", "a red cat sitting on a blue background"], "argument --prompt: .*could not parse 'cat sitting"),
    (["--prompt", "a red circle moving left on a blue background", "--target", "x.mp4"], "go together"),
])
def test_vdp_eval_shapes_refuses_bad_arguments_with_status_2(arguments, message, tmp_path):
    write_video(tmp_path / "video.mp4", world.render_scene(single()).frames, 8)
    if "--target" in arguments:
        write_video(tmp_path / "x.mp4", world.render_scene(single()).frames, 8)
        arguments = [a if a != "x.mp4" else str(tmp_path / "x.mp4") for a in arguments]
    result = run_vdp("eval", "shapes", str(tmp_path / "video.mp4"), *arguments)
    assert result.returncode == 2 and re.search(message, result.stderr), result.stderr
