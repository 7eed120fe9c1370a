"""`vdp dataset shapes`: the folder it writes reads back with the pack's readers and agrees with the world's ground
truth; the same seed writes the same frames; bad settings are refused before anything is written."""

import json

import numpy as np
import pytest

from tests.helpers.vdp import run_vdp
from video_diffusion_pack.control.tracks import load_tracks
from video_diffusion_pack.evaluation.shapes import world
from video_diffusion_pack.evaluation.shapes.dataset import write_shapes_dataset
from video_diffusion_pack.training.data import ClipSettings, TrainingData
from video_diffusion_pack.training.families import family_rules
from video_diffusion_pack.video_io import read_image, read_video

COUNT = 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_shapes_dataset(tmp_path_factory.mktemp("world") / "shapes", COUNT, seed=11)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def decoded(folder, name):
    return read_video(folder / name).frames


def test_every_row_names_files_that_read_back_as_the_scene_s_video(folder):
    table = rows(folder / "metadata.jsonl")
    assert len(table) == COUNT
    for row in table:
        scene = world.Scene.from_dict(row["scene"])
        assert row["caption"] == world.caption(scene)
        truth = world.render_scene(scene)
        video = decoded(folder, row["file_name"])
        assert video.shape == (9, 64, 64, 3)
        assert np.abs(video.astype(int) - truth.frames).mean() < 4  # H.264 at quality 95 (yuv420p edges)
        assert np.array_equal(np.asarray(read_image(folder / row["image"])), truth.frames[0])
        tracking = decoded(folder, row["tracking_video"])
        expected = world.tracking_video(scene, truth.labels)
        assert np.abs(tracking.astype(int) - expected).mean() < 4
        with np.load(folder / row["ground_truth"]) as ground_truth:
            assert np.array_equal(ground_truth["labels"], truth.labels)
            assert np.array_equal(ground_truth["masks"], truth.masks)
            assert np.array_equal(ground_truth["centroids"], truth.centroids)
            assert tuple(ground_truth["depth_order"]) == scene.depth_order
        tracks = load_tracks(folder / row["ground_truth"], 64, 64)
        assert tracks.num_frames == 9 and tracks.num_points > 200
        assert row["referring_expressions"] == [f"the {item.color} {item.shape}" for item in scene.objects]


def test_the_inpainting_pairs_remove_one_object_inside_the_mask(folder):
    sources = {row["file_name"]: row for row in rows(folder / "metadata.jsonl")}
    pairs = rows(folder / "inpainting" / "metadata.jsonl")
    assert len(pairs) == COUNT
    for pair in pairs:
        source = sources[pair["source"]]
        scene = world.Scene.from_dict(source["scene"])
        removed = scene.objects[pair["removed_object"]]
        assert pair["instruction"] == f"remove the {removed.color} {removed.shape}"
        assert pair["referring_expression"] == f"the {removed.color} {removed.shape}"
        inputs = decoded(folder / "inpainting", pair["input_video"]).astype(int)
        target = decoded(folder / "inpainting", pair["file_name"]).astype(int)
        mask = decoded(folder / "inpainting", pair["mask"]).mean(axis=-1) > 127
        truth = world.render_scene(scene)
        without = world.render_scene(scene.without(pair["removed_object"])).frames
        # the pixels that removing the object changes are exactly the mask's
        changed = (truth.frames != without).any(axis=-1)
        assert changed.any() and np.array_equal(mask, changed)
        assert np.array_equal(mask, truth.labels == pair["removed_object"] + 1)
        assert (truth.frames[mask] == world.COLORS[removed.color]).all()
        assert np.abs(inputs - truth.frames).mean() < 4 and np.abs(target - without).mean() < 4


def test_the_same_seed_writes_the_same_frames_and_video_i_does_not_depend_on_the_count(folder, tmp_path):
    again = write_shapes_dataset(tmp_path / "again", 2, seed=11)
    first, second = rows(folder / "metadata.jsonl"), rows(again / "metadata.jsonl")
    assert second == first[:2]
    for row in second:
        assert np.array_equal(decoded(folder, row["file_name"]), decoded(again, row["file_name"]))
        assert (folder / row["ground_truth"]).read_bytes() == (again / row["ground_truth"]).read_bytes()
    other = write_shapes_dataset(tmp_path / "other", 2, seed=12)
    assert rows(other / "metadata.jsonl")[0]["caption"] != first[0]["caption"] or \
        not np.array_equal(decoded(other, first[0]["file_name"]), decoded(folder, first[0]["file_name"]))


def test_a_preview_grid_and_the_settings_are_written(folder):
    preview = read_image(folder / "preview.png")
    assert preview.size == (3 * 64, COUNT * 64)
    settings = json.loads((folder / "world.json").read_text())
    assert settings["count"] == COUNT and settings["seed"] == 11 and settings["num_frames"] == 9


def test_the_cli_writes_the_folder_with_the_size_frames_and_choices_asked_for(tmp_path):
    result = run_vdp("dataset", "shapes", "-o", tmp_path / "out", "--videos", "2", "--frames", "5", "--size", "48x32",
                     "--colors", "red,blue,white", "--motions", "left,grow", "--seed", "3")
    assert result.returncode == 0, result.stderr
    table = rows(tmp_path / "out" / "metadata.jsonl")
    assert len(table) == 2
    for row in table:
        assert read_video(tmp_path / "out" / row["file_name"]).frames.shape == (5, 48, 32, 3)
        scene = world.Scene.from_dict(row["scene"])
        assert {item.motion for item in scene.objects} <= {"left", "grow"}
        assert {item.color for item in scene.objects} | set(scene.background) <= {"red", "blue", "white"}


def test_object_size_two_tone_and_held_out_pairs_shape_the_drawn_scenes(tmp_path):
    result = run_vdp("dataset", "shapes", "-o", tmp_path / "out", "--videos", "24", "--frames", "4", "--size", "48x48",
                     "--max-objects", "1", "--colors", "red,blue,white", "--shapes", "circle,square",
                     "--motions", "left,right", "--object-size", "0.2,0.21", "--two-tone", "0",
                     "--hold-out", "red-circle,blue-square", "--seed", "5")
    assert result.returncode == 0, result.stderr
    scenes = [world.Scene.from_dict(row["scene"]) for row in rows(tmp_path / "out" / "metadata.jsonl")]
    pairs = {(item.color, item.shape) for scene in scenes for item in scene.objects}
    assert not pairs & {("red", "circle"), ("blue", "square")}
    assert {("red", "square"), ("blue", "circle")} <= pairs
    radii = [item.radius for scene in scenes for item in scene.objects]
    assert 0.2 * 48 <= min(radii) and max(radii) <= 0.21 * 48
    assert all(len(scene.background) == 1 for scene in scenes)
    settings = json.loads((tmp_path / "out" / "world.json").read_text())
    assert settings["object_size"] == [0.2, 0.21] and settings["two_tone"] == 0.0
    assert settings["hold_out"] == ["blue-square", "red-circle"]


def test_start_spread_0_makes_each_motion_cross_the_middle_of_the_frame(tmp_path):
    result = run_vdp("dataset", "shapes", "-o", tmp_path / "out", "--videos", "12", "--frames", "5", "--size", "48x48",
                     "--max-objects", "1", "--motions", "left,right,up,down", "--start-spread", "0", "--seed", "2")
    assert result.returncode == 0, result.stderr
    for row in rows(tmp_path / "out" / "metadata.jsonl"):
        scene = world.Scene.from_dict(row["scene"])
        centres = world.object_states(scene).centers[0]
        # the path's middle is the frame's middle, whatever the object's size and direction
        np.testing.assert_allclose((centres[0] + centres[-1]) / 2, [24.0, 24.0], atol=1e-9)
    assert json.loads((tmp_path / "out" / "world.json").read_text())["start_spread"] == 0.0
    # the default (1) draws the same scenes as before the option: starts anywhere they fit
    rng = np.random.default_rng([0, 3])
    spread_scene = world.sample_scene(rng, 48, 48, 5, max_objects=1, start_spread=1.0)
    assert spread_scene == world.sample_scene(np.random.default_rng([0, 3]), 48, 48, 5, max_objects=1)


def test_rotation_spread_0_draws_every_shape_upright(tmp_path):
    result = run_vdp("dataset", "shapes", "-o", tmp_path / "out", "--videos", "16", "--frames", "3", "--size", "48x48",
                     "--max-objects", "1", "--shapes", "square,triangle", "--motions", "left,right",
                     "--object-size", "0.2,0.25", "--rotation-spread", "0", "--seed", "4")
    assert result.returncode == 0, result.stderr
    fills = {"square": [], "triangle": []}
    for row in rows(tmp_path / "out" / "metadata.jsonl"):
        item = row["scene"]["objects"][0]
        assert item["angle_degrees"] == 0.0
        mask = np.load(tmp_path / "out" / row["ground_truth"])["masks"][0, 0]
        ys, xs = np.nonzero(mask)
        fills[item["shape"]].append(mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
        if item["shape"] == "triangle":  # pointing up: the top half of its box holds less of it than the bottom
            middle = (ys.min() + ys.max()) / 2
            assert (ys < middle).sum() < (ys > middle).sum()
    # a level square fills its bounding box; one turned by 45 degrees would fill half of it
    assert fills["square"] and min(fills["square"]) > 0.9
    assert fills["triangle"] and max(fills["triangle"]) < 0.6
    assert json.loads((tmp_path / "out" / "world.json").read_text())["rotation_spread"] == 0.0
    # the default (1) draws the same scenes as before the option: any orientation
    spread_scene = world.sample_scene(np.random.default_rng([0, 3]), 48, 48, 5, max_objects=1, rotation_spread=1.0)
    assert spread_scene == world.sample_scene(np.random.default_rng([0, 3]), 48, 48, 5, max_objects=1)


@pytest.mark.parametrize("arguments, message", [
    (["--videos", "0"], "argument --videos: count=0 must be in 1..1000000"),
    (["--size", "500x64"], "argument --size: height=500 must be a multiple of 16"),
    (["--size", "64"], "argument --size: size='64' must be HEIGHTxWIDTH"),
    (["--frames", "1"], "argument --frames: num_frames=1 must be in 2..128"),
    (["--colors", "red,pink"], "argument --colors: colors=['red', 'pink']: unknown colors ['pink']"),
    (["--motions", "left,jump"], "argument --motions: motions=['left', 'jump']: unknown motions ['jump']"),
    (["--shapes", "hexagon"], "argument --shapes: shapes=['hexagon']: unknown shapes ['hexagon']"),
    (["--object-size", "0.2"], "argument --object-size: object_size='0.2': must be MIN,MAX"),
    (["--object-size", "0.25,0.2"], "argument --object-size: object_size=[0.25, 0.2]: must be MIN,MAX with 0.05 <="),
    (["--object-size", "0.1,0.4"], "argument --object-size: object_size=[0.1, 0.4]: must be MIN,MAX with 0.05 <="),
    (["--two-tone", "1.5"], "argument --two-tone: two_tone=1.5: must be a probability in 0..1"),
    (["--start-spread", "-0.5"], "argument --start-spread: start_spread=-0.5: must be a number in 0..1"),
    (["--rotation-spread", "2"], "argument --rotation-spread: rotation_spread=2.0: must be a number in 0..1"),
    (["--hold-out", "red-hexagon"], "argument --hold-out: hold_out=['red-hexagon']: unknown pair red-hexagon"),
    (["--hold-out", "redcircle"], "argument --hold-out: hold_out='redcircle': 'redcircle' is not <colour>-<shape>"),
    (["--colors", "red,blue", "--shapes", "circle", "--hold-out", "red-circle,blue-circle"],
     "argument --hold-out: hold_out=['blue-circle', 'red-circle']: holds out every colour-shape pair"),
])
def test_bad_settings_exit_2_naming_the_argument_before_anything_is_written(tmp_path, arguments, message):
    result = run_vdp("dataset", "shapes", "-o", tmp_path / "out", *arguments)
    assert result.returncode == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_non_empty_output_folder_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run_vdp("dataset", "shapes", "-o", tmp_path / "out", "--videos", "1")
    assert result.returncode == 2
    assert "argument -o/--output" in result.stderr and "already exists and is not an empty folder" in result.stderr
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_an_interrupted_write_leaves_nothing_behind(tmp_path):
    def interrupt(done):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_shapes_dataset(tmp_path / "out", 5, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("family, subfolder", [("das", "."), ("lgvi", "inpainting")])
def test_the_trainer_s_data_reader_reads_the_folders_as_the_family_s_samples(folder, family, subfolder):
    rules = family_rules(family)
    frames, height, width = rules.embedded_clip
    clip = ClipSettings(num_frames=frames, height=height, width=width, frame_multiple=rules.frame_multiple,
                        frame_remainder=rules.frame_remainder, size_multiple=rules.size_multiple)
    data = TrainingData(folder / subfolder, clip, rules.required_columns, rules.text_column).check()
    assert len(data) == COUNT
    sample = data[0]
    assert sample["video"].shape == (frames, 3, height, width)
    assert -1 <= sample["video"].min() and sample["video"].max() <= 1
    if family == "das":
        assert sample["tracking_video"].shape == (frames, 3, height, width)
        assert sample["image"].shape == (3, height, width)
        assert np.abs(sample["image"] - sample["video"][0]).mean() < 0.05
        assert world.parse_caption(sample["caption"]).objects
    else:
        assert sample["input_video"].shape == (frames, 3, height, width)
        assert sample["mask"].shape == (frames, 1, height, width)
        assert sample["instruction"].startswith("remove the ")
        assert 0 < sample["mask"].mean() < 0.5
