"""The shapes world's scenes: deterministic from the seed, captions that say what the frames show, consistent ground
truth (masks, centroids, depth order, tracks, tracking video)."""

import numpy as np
import pytest
import torch

from video_diffusion_pack.control.render import render_tracking_video
from video_diffusion_pack.control.tracks import Tracks
from video_diffusion_pack.evaluation.shapes import world

SEEDS = range(16)


def scene_of(seed, **settings):
    settings = {"height": 64, "width": 64, "num_frames": 9, **settings}
    return world.sample_scene(np.random.default_rng(seed), **settings)


def test_the_same_seed_gives_the_same_scene_and_frames_byte_for_byte():
    first, second = scene_of(7), scene_of(7)
    assert first == second
    assert world.render_scene(first).frames.tobytes() == world.render_scene(second).frames.tobytes()
    assert world.render_scene(scene_of(8)).frames.tobytes() != world.render_scene(first).frames.tobytes()


def test_scenes_cover_every_shape_motion_count_and_both_background_kinds():
    scenes = [scene_of(seed) for seed in range(60)]
    objects = [item for scene in scenes for item in scene.objects]
    assert {item.shape for item in objects} == set(world.SHAPES)
    assert {item.motion for item in objects} == set(world.MOTIONS)
    assert {len(scene.objects) for scene in scenes} == {1, 2, 3}
    assert {len(scene.background) for scene in scenes} == {1, 2}
    assert not any(item.shape == "circle" and item.motion == "rotate" for item in objects)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_caption_parses_back_to_the_scene(seed):
    scene = scene_of(seed)
    parsed = world.parse_caption(world.caption(scene))
    assert parsed.objects == tuple((item.color, item.shape, item.motion) for item in scene.objects)
    assert parsed.background == scene.background
    assert parsed.relation == scene.relation


def test_captions_read_as_the_grammar_says():
    scene = world.Scene(height=64, width=64, num_frames=9, background=("blue",), relation="above", objects=(
        world.ShapeObject("circle", "red", "left", (40.0, 16.0), 7.0, 0.0, 2.0),
        world.ShapeObject("square", "orange", "up-right", (20.0, 44.0), 7.0, 0.0, 3.0),
        world.ShapeObject("star", "green", "grow", (20.0, 20.0), 7.0, 0.0, 5.0)))
    assert world.caption(scene) == ("a red circle moving left above an orange square moving up and right and a green "
                                    "star growing on a blue background")
    two_tone = world.Scene(64, 64, 9, scene.objects[:1], ("white", "black"))
    assert world.caption(two_tone) == "a red circle moving left on a white and black background"


@pytest.mark.parametrize("seed", SEEDS)
def test_the_frames_show_what_the_caption_says(seed):
    """Colours, motion directions, sizes and the relation, measured on the masks of the frames' own pixels."""
    scene = scene_of(seed)
    rendered = world.render_scene(scene)
    parsed = world.parse_caption(world.caption(scene))
    frames = rendered.frames.astype(int)
    background = np.array(world.COLORS[parsed.background[0]])
    assert (frames[:, 0, 0] == background).all()
    if len(parsed.background) == 2:
        assert (frames[:, -1, -1] == world.COLORS[parsed.background[1]]).all()
    centres, areas = [], []
    for color, shape, motion in parsed.objects:
        pixels = (frames == world.COLORS[color]).all(axis=-1)  # [F, H, W]
        area = pixels.sum(axis=(1, 2))
        assert (area > 0).all(), f"{color} {shape} missing in some frame"
        ys, xs = np.mgrid[0:scene.height, 0:scene.width] + 0.5
        centre = np.stack([(pixels * xs).sum(axis=(1, 2)) / area, (pixels * ys).sum(axis=(1, 2)) / area], axis=1)
        centres.append(centre)
        areas.append(area)
        shift = centre[-1] - centre[0]
        if motion in world.DIRECTIONS:
            direction = np.array(world.DIRECTIONS[motion]) / np.linalg.norm(world.DIRECTIONS[motion])
            assert shift @ direction > 0.8 * world.TRAVEL_FRACTION * 64, (motion, shift)
            assert abs(np.cross(direction, shift)) < 3.0
        else:
            assert np.linalg.norm(shift) < 2.5
        if motion == "grow":
            assert area[-1] > 1.8 * area[0]
        elif motion == "shrink":
            assert area[-1] < 0.45 * area[0]
        else:
            assert 0.8 < area[-1] / area[0] < 1.25
    if parsed.relation is not None:
        assert world.relation_between(centres[0][0], centres[1][0]) == parsed.relation


@pytest.mark.parametrize("seed", SEEDS)
def test_masks_labels_centroids_and_depth_order_agree(seed):
    scene = scene_of(seed)
    rendered = world.render_scene(scene)
    ys, xs = np.mgrid[0:scene.height, 0:scene.width] + 0.5
    for index, item in enumerate(scene.objects):
        seen = rendered.labels == index + 1
        assert not (seen & ~rendered.masks[index]).any(), "a pixel labelled with an object outside its silhouette"
        assert (seen.sum(axis=(1, 2)) >= world.MIN_VISIBLE_FRACTION * rendered.masks[index].sum(axis=(1, 2))).all()
        mask = rendered.masks[index]
        area = mask.sum(axis=(1, 2))
        centre = np.stack([(mask * xs).sum(axis=(1, 2)) / area, (mask * ys).sum(axis=(1, 2)) / area], axis=1)
        assert np.abs(centre - rendered.centroids[index]).max() < 0.6
        assert (rendered.frames[seen] == world.COLORS[item.color]).all()
        assert np.allclose(rendered.depth[seen], np.broadcast_to(rendered.object_depths[index][:, None, None],
                                                                 seen.shape)[seen])
    for nearer, farther in zip(scene.depth_order, scene.depth_order[1:]):
        overlap = rendered.masks[nearer] & rendered.masks[farther]
        assert (rendered.labels[overlap] == nearer + 1).all(), "a farther object painted over a nearer one"
    assert (rendered.depth[rendered.labels == 0] == world.BACKGROUND_DEPTH).all()


@pytest.mark.parametrize("seed", range(8))
def test_point_tracks_drawn_by_the_pack_renderer_match_the_dense_tracking_video(seed):
    scene = scene_of(seed)
    rendered = world.render_scene(scene)
    dense = world.tracking_video(scene, rendered.labels).astype(np.float32) / 255
    points, visibility = world.point_tracks(scene, rendered.labels)
    first = points[0].astype(np.float64)
    colors = np.stack([first[:, 0] / 64, first[:, 1] / 64, world.normalised_inverse_depth(first[:, 2])], axis=1)
    tracks = Tracks(torch.from_numpy(points), torch.from_numpy(visibility), 64, 64,
                    colors=torch.from_numpy(colors).float())
    splats = render_tracking_video(tracks, point_size=1).numpy()
    drawn = splats.max(axis=-1) > 0
    assert drawn.sum() > 200 * scene.num_frames
    assert np.abs(splats[drawn] - dense[drawn]).max() < 6 / 255


def test_the_tracking_video_keeps_each_point_s_frame_zero_colour():
    scene = world.Scene(64, 64, 9, (world.ShapeObject("square", "red", "right", (16.0, 32.0), 7.0, 0.0, 2.0),),
                        ("blue",))
    rendered = world.render_scene(scene)
    video = world.tracking_video(scene, rendered.labels)
    # 2.8 pixels a frame to the right: frame 5 shows the square 14 whole pixels from where frame 0 does
    assert rendered.centroids[0, 5, 0] - rendered.centroids[0, 0, 0] == pytest.approx(14.0)
    assert np.array_equal(np.argwhere(rendered.labels[5] == 1), np.argwhere(rendered.labels[0] == 1) + [0, 14])
    assert np.array_equal(video[5][rendered.labels[5] == 1], video[0][rendered.labels[0] == 1])
    assert not np.array_equal(video[5][rendered.labels[5] == 1], video[5][rendered.labels[0] == 1])
    blue = video[0][rendered.labels[0] == 1][:, 2]
    assert (blue == round(255 * world.normalised_inverse_depth(2.0))).all()
    assert (video[0][rendered.labels[0] == 0][:, 2] == 0).all()


@pytest.mark.parametrize("prompt, unparsed", [
    ("a pink circle moving left on a blue background", "pink circle moving left on a blue background"),
    ("a red hexagon moving left on a blue background", "hexagon moving left on a blue background"),
    ("a red circle dancing on a blue background", "dancing on a blue background"),
    ("a red circle moving left", "<end of prompt>"),
    ("a red circle moving left on a blue background please", "please"),
])
def test_a_prompt_outside_the_grammar_is_refused_naming_the_unparsed_words(prompt, unparsed):
    with pytest.raises(ValueError, match="outside the shapes grammar") as error:
        world.parse_caption(prompt)
    assert f"could not parse {unparsed!r}" in str(error.value)


@pytest.mark.parametrize("settings, message", [
    ({"colors": ["red", "pink"]}, r"unknown colors \['pink'\]"),
    ({"motions": ["jump"]}, r"unknown motions \['jump'\]"),
    ({"shapes": []}, "no shapes"),
    ({"colors": ["red"]}, "at least 2"),
    ({"shapes": ["circle"], "motions": ["rotate"]}, "cannot visibly rotate"),
    ({"max_objects": 4}, "max_objects=4"),
])
def test_bad_world_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        scene_of(0, **settings)
