"""object_class, multiple_objects, color, spatial_relationship (GRiT), scene (Tag2Text) and camera_motion (CoTracker):
the pack's scoring of canned model outputs equals the official vbench==0.1.5 code run on the same outputs
(tests/fixtures/make_vbench_grit_fixtures.py), the frames the pack sends its backend are the ones the official code
hands its models, and the backend protocol runs for real in a subprocess with a canned model."""

import hashlib
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from video_diffusion_pack.evaluation.vbench import backend, evaluate, official_backend, suite
from video_diffusion_pack.evaluation.vbench.backend import BackendError
from video_diffusion_pack.evaluation.vbench.dimensions import (
    _grit,
    camera_motion,
    color,
    multiple_objects,
    object_class,
    scene,
    spatial_relationship,
)
from video_diffusion_pack.video_io import read_video, write_video

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vbench"
FIXTURE = json.loads((FIXTURES / "backend_dimensions.json").read_text(encoding="utf-8"))
MODULES = {module.NAME: module for module in (object_class, multiple_objects, color, spatial_relationship, scene,
                                              camera_motion)}
ONE_TASK_DIMENSIONS = ("object_class", "multiple_objects", "spatial_relationship", "color", "scene")


def sha(array) -> str:
    array = np.ascontiguousarray(array)
    return f"{array.dtype}:{list(array.shape)}:{hashlib.sha256(array.tobytes()).hexdigest()}"


def prompt_of(name: str) -> str:
    return name.rsplit("-", 1)[0]


def fixture_videos(tmp_path, dimension):
    """(decoded videos, paths named as the official run named them, prompts, auxiliary info) of a dimension."""
    folder = tmp_path / dimension
    folder.mkdir(exist_ok=True)
    names = FIXTURE["videos"][dimension]
    paths = []
    for name in names:
        path = folder / name
        if not path.exists():
            os.symlink(FIXTURES / FIXTURE["clips"][name], path)
        paths.append(str(path))
    videos = [read_video(path).frames for path in paths]
    prompts = [prompt_of(name) for name in names]
    info = suite.auxiliary_info(dimension) if dimension != "camera_motion" else {}
    return videos, paths, prompts, [info.get(prompt) for prompt in prompts]


def outputs_file(tmp_path):
    path = tmp_path / "model_outputs.json"
    path.write_text(json.dumps(FIXTURE["model_outputs"]), encoding="utf-8")
    return str(path)


def official(dimension):
    """The official results with the per-video paths as file names; per-video entries without `video_path`
    where the pack's compute leaves the path to evaluate()."""
    result = FIXTURE["results"][dimension]
    entries = result[-1]
    if dimension != "color":
        entries = [{key: value for key, value in entry.items() if key != "video_path"} for entry in entries]
    return [result[0], *result[1:-1], entries]


@pytest.mark.parametrize("dimension", list(MODULES))
def test_scores_equal_the_official_code_on_the_same_canned_outputs(tmp_path, dimension):
    videos, paths, prompts, info = fixture_videos(tmp_path, dimension)
    result = MODULES[dimension].compute(
        videos, checkpoints={}, video_paths=paths, prompts=prompts, auxiliary_info=info,
        model_outputs=outputs_file(tmp_path),
    )
    result = list(result)
    if dimension == "color":
        result[-1] = [{**entry, "video_path": os.path.basename(entry["video_path"])} for entry in result[-1]]
    # json text: exact values and the official int/float types (spatial_relationship keeps 1 and 1.0 apart)
    assert json.dumps(result) == json.dumps(official(dimension))


def test_the_fixture_exercises_the_quirks():
    color_result = FIXTURE["results"]["color"]
    assert len(color_result[1]) < len(FIXTURE["videos"]["color"])  # a video without object frames is skipped
    frame_scores = [score for entry in FIXTURE["results"]["spatial_relationship"][1] for score in entry["frame_results"]]
    assert 1.0 in frame_scores and any(isinstance(s, float) and s == 1 for s in frame_scores)
    assert any(0 < score < 1 for score in frame_scores)
    detections = FIXTURE["model_outputs"]["grit_objectdet"]
    assert any("error" in record for records in detections.values() for record in records)
    assert 0 < FIXTURE["results"]["camera_motion"][0] < 1


def backend_frames_of(clip):
    return _grit.detector_frames(read_video(FIXTURES / clip).frames)


@pytest.mark.parametrize("clip", ["moving_gradient.mp4", "pan_24fps.mp4", "long_gradient.mp4", "large_gradient.mp4"])
def test_detector_frames_equal_the_official_ones(clip):
    """middle 16 (padded), float32, resized above 768 pixels to 720 x 748: what run_caption_tensor receives."""
    frames = backend_frames_of(clip)
    size = _grit.detector_size(*frames.shape[1:3])
    assert (size is not None) == (clip == "large_gradient.mp4")
    sent = official_backend.grit_frames(frames, size, dense=False)
    assert [sha(frame) for frame in sent] == FIXTURE["frame_sha256"]["grit_objectdet"][clip]


@pytest.mark.parametrize("clip", ["moving_gradient.mp4", "pan_24fps.mp4", "long_gradient.mp4", "large_gradient.mp4"])
def test_dense_caption_frames_equal_the_official_ones(clip):
    frames = backend_frames_of(clip)
    size = _grit.detector_size(*frames.shape[1:3])
    if size is not None:
        pytest.importorskip("cv2", reason="color resizes frames above 768 pixels with cv2, in the backend environment")
    sent = official_backend.grit_frames(frames, size, dense=True)
    assert [sha(frame) for frame in sent] == FIXTURE["frame_sha256"]["grit_densecap"][clip]


@pytest.mark.parametrize("clip", sorted(FIXTURE["frame_sha256"]["tag2text"]))
def test_scene_frames_equal_decord_at_384(clip):
    """An mp4 scaled by FFmpeg's bilinear scaler while decoding, middle 16: decord's VideoReader(384, 384)."""
    path = str(FIXTURES / clip)
    assert sha(scene.captioner_frames(read_video(path).frames, path)) == FIXTURE["frame_sha256"]["tag2text"][clip][0]


@pytest.mark.parametrize("clip", sorted(FIXTURE["frame_sha256"]["cotracker"]))
def test_tracker_frames_are_every_decoded_frame(clip):
    assert sha(read_video(FIXTURES / clip).frames) == FIXTURE["frame_sha256"]["cotracker"][clip][0]


def test_middle_sampling_pads_with_the_last_frame():
    assert _grit.middle_frame_indices(8, 10) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert _grit.middle_frame_indices(16, 10) == list(range(10)) + [9] * 6
    # vbench.utils.get_frame_indices(16, 20, "middle") in the official environment
    assert _grit.middle_frame_indices(16, 20) == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18]


def test_camera_motion_truncates_tracks_toward_zero():
    """-0.6 -> 0 and 0.6 -> 0 with .long(); flooring would see a 1-pixel motion at the left edge."""
    tracks = np.zeros((2, 100, 2))
    grid = tracks.reshape(2, 10, 10, 2)
    grid[0, 5, 0] = [-0.6, 3.0]
    grid[1, 5, 0] = [0.6, 3.0]
    assert camera_motion.predict(tracks, 128, 128) == ["static"]
    grid[1, 5, 0] = [1.0, 3.0]  # left moves right by 1 > 0.64: left 'right', right 'static': no mapping -> None
    assert camera_motion.predict(tracks, 128, 128) == ["None"]


def test_color_object_and_substring_quirks():
    assert _grit.color_object("a red bicycle", "red") == "bicycle"
    assert _grit.color_object("an orange umbrella", "orange") == "umbrella"
    # "bored" holds "red": an object frame and a colour frame; "a red bicycle" counts for nothing when the frame's
    # first name is "car"; every caption is paired with the first name, so "a red car" beside "a blue bicycle"
    # makes a red-bicycle frame
    records = [{"captions": [["a bored bicycle", [0, 0, 1, 1]]], "objects": ["bicycle", "car"]},
               {"captions": [["a red bicycle", [0, 0, 1, 1]]], "objects": ["car", "bicycle"]},
               {"captions": [["a blue bicycle", [0, 0, 1, 1]], ["a red car", [0, 0, 1, 1]]], "objects": ["bicycle"]}]
    assert _grit.color_counts(records, "red", "bicycle", "color", "v") == (2, 2)


def test_spatial_relationship_never_checks_the_side():
    left_of = {"object_a": "cat", "object_b": "dog", "relationship": "on the left of"}
    cat_left = {"captions": [["cat", [0, 0, 10, 10]], ["dog", [50, 0, 60, 10]]], "objects": ["cat"]}
    cat_right = {"captions": [["cat", [50, 0, 60, 10]], ["dog", [0, 0, 10, 10]]], "objects": ["cat"]}
    two_cats = {"captions": [["cat", [50, 0, 60, 10]], ["cat", [0, 0, 10, 10]]], "objects": ["cat"]}
    assert _grit.spatial_frame_scores([cat_left, cat_right, two_cats], left_of, "s", "v") == [1, 1, 1]


def test_two_boxes_without_area_stop_spatial_relationship_as_the_official_code_does():
    info = {"object_a": "cat", "object_b": "dog", "relationship": "on the top of"}
    record = {"captions": [["cat", [3, 4, 3, 9]], ["dog", [7, 1, 7, 2]]], "objects": ["cat"]}
    with pytest.raises(ValueError, match=r"videos\[2\] frame 0 has two boxes of no area .* IoU is 0 / 0"):
        _grit.spatial_frame_scores([record], info, "spatial_relationship", "videos[2]")


# --- bad input -------------------------------------------------------------------------------------------------------


def test_a_video_missing_from_the_outputs_file_is_named(tmp_path):
    videos, paths, prompts, info = fixture_videos(tmp_path, "object_class")
    data = dict(FIXTURE["model_outputs"])
    data["grit_objectdet"] = {k: v for k, v in data["grit_objectdet"].items() if k != os.path.basename(paths[2])}
    (tmp_path / "partial.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"lacks the 'grit_objectdet' outputs of 1 video.*" + os.path.basename(paths[2])[:10]):
        object_class.compute(videos, checkpoints={}, video_paths=paths, auxiliary_info=info,
                             model_outputs=str(tmp_path / "partial.json"))


@pytest.mark.parametrize("content, message", [
    ("not json", "is not JSON"),
    (json.dumps({"format": "something else", "version": 1}), "is not a 'vdp-vbench-model-outputs' version 1"),
    (json.dumps({"format": "vdp-vbench-model-outputs", "version": 1}), "holds no 'grit_objectdet' outputs"),
])
def test_a_bad_outputs_file_is_refused(tmp_path, content, message):
    videos, paths, _, info = fixture_videos(tmp_path, "object_class")
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        object_class.compute(videos, checkpoints={}, video_paths=paths, auxiliary_info=info,
                             model_outputs=str(tmp_path / "bad.json"))


@pytest.mark.parametrize("record", [{"captions": [["dog", [0, 0, 1]]], "objects": []}, {"boxes": []},
                                    {"captions": [["dog", [0, 0, 1.5, 2]]], "objects": ["dog"]}])
def test_a_malformed_frame_record_is_refused(tmp_path, record):
    videos, paths, _, info = fixture_videos(tmp_path, "object_class")
    data = json.loads(json.dumps(FIXTURE["model_outputs"]))
    data["grit_objectdet"][os.path.basename(paths[0])][5] = record
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"grit_objectdet\[.*\]\[5\]: a frame record must be"):
        object_class.compute(videos, checkpoints={}, video_paths=paths, auxiliary_info=info,
                             model_outputs=str(tmp_path / "bad.json"))


def test_a_detector_error_stops_multiple_objects_but_not_object_class(tmp_path):
    videos, paths, _, info = fixture_videos(tmp_path, "multiple_objects")
    data = json.loads(json.dumps(FIXTURE["model_outputs"]))
    data["grit_objectdet"][os.path.basename(paths[1])][7] = {"error": "CUDA out of memory"}
    (tmp_path / "error.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"detector failed on videos\[1\] frame 7: CUDA out of memory"):
        multiple_objects.compute(videos, checkpoints={}, video_paths=paths, auxiliary_info=info,
                                 model_outputs=str(tmp_path / "error.json"))


def test_color_without_any_object_frame_has_no_score(tmp_path):
    videos, paths, prompts, info = fixture_videos(tmp_path, "color")
    data = json.loads(json.dumps(FIXTURE["model_outputs"]))
    for name in FIXTURE["videos"]["color"]:
        data["grit_densecap"][name] = [{"captions": [], "objects": []}] * 16
    (tmp_path / "none.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no video has a frame where the prompt's object is captioned"):
        color.compute(videos, checkpoints={}, video_paths=paths, prompts=prompts, auxiliary_info=info,
                      model_outputs=str(tmp_path / "none.json"))


def test_a_video_name_without_a_camera_motion_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"'a cat-0.mp4' names no camera motion; it must contain one of"):
        camera_motion.check_options([str(tmp_path / "a cat-0.mp4")], model_outputs=outputs_file(tmp_path))


def test_backend_options_are_checked(tmp_path):
    paths = [str(tmp_path / name) for name in FIXTURE["videos"]["scene"]]
    with pytest.raises(ValueError, match="give either backend_python .* or model_outputs"):
        scene.check_options(paths)
    with pytest.raises(ValueError, match="give either backend_python"):
        scene.check_options(paths, backend_python=sys.executable, model_outputs=outputs_file(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"backend_python='/no/such/python' is not an executable file"):
        scene.check_options(paths, backend_python="/no/such/python")
    with pytest.raises(ValueError, match=r"unknown options \['detector'\]"):
        scene.check_options(paths, detector="x")


# --- the backend, for real, with a canned model ----------------------------------------------------------------------

FAKE_GRIT = '''
import glob
import os
import sys

import numpy as np

class DenseCaptioning:
    """Canned GRiT: a bright frame (mean > 100) shows a dog and a cat, a dark one nothing; a frame whose first pixel
    is 255 makes it raise."""

    def __init__(self, device):
        self.device = device

    def initialize_model(self, model_weight):
        self.task, self.weight = "DenseCap", open(model_weight).read()

    def initialize_model_det(self, model_weight):
        self.task, self.weight = "ObjectDet", open(model_weight).read()

    def run_caption_tensor(self, frame):
        assert frame.dtype == (np.uint8 if self.task == "DenseCap" else np.float32), frame.dtype
        waiting = glob.glob(os.path.join(os.path.dirname(sys.argv[1]), "frames_*.npy"))
        with open(os.environ["CANNED_LOG"], "a") as log:  # how many frame files wait for the backend
            log.write(f"{len(waiting)} ")
        if frame[0, 0, 0] == 255:
            raise RuntimeError("canned failure")
        if frame.mean() <= 100:
            return [], None
        names = ["dog", "cat"]
        return [("a brown dog", [1, 2, 30, 40], names), ("a white cat", [40, 2, 80, 40], names)], None
'''


FAKE_TAG2TEXT = '''
class Caption:
    """Canned Tag2Text: a bright frame is "a busy street at night", a dark one "a dark room"."""

    def eval(self):
        return self

    def to(self, device):
        return self

    def generate(self, images, tag_input=None, return_tag_predict=False):
        assert tuple(images.shape) == (16, 3, 384, 384) and tag_input is None and return_tag_predict
        return ["a busy street at night" if image.mean() > 100 else "a dark room" for image in images], None


def tag2text_caption(pretrained, image_size, vit):
    assert open(pretrained).read() == "canned" and (image_size, vit) == (384, "swin_b")
    return Caption()
'''

FAKE_UTILS = '''
import torch

def tag2text_transform(n_px):
    return lambda frame: torch.from_numpy(frame).permute(2, 0, 1).float()
'''

FAKE_HUBCONF = '''
import torch


class Tracker(torch.nn.Module):
    """Canned CoTracker: a 10 x 10 grid that every frame moves 5 pixels to the right (a pan to the left)."""

    def forward(self, video, grid_size):
        assert video.dtype == torch.float32 and video.shape[0] == 1 and grid_size == 10
        steps = torch.arange(video.shape[1], dtype=torch.float32)
        grid = torch.stack(torch.meshgrid(torch.linspace(4, 60, 10), torch.linspace(4, 50, 10), indexing="xy"), -1)
        tracks = grid.reshape(1, 1, 100, 2) + torch.stack([steps * 5, steps * 0], -1).reshape(1, -1, 1, 2)
        return tracks, torch.ones(tracks.shape[:-1])


def cotracker2():
    return Tracker()
'''


@pytest.fixture
def fake_official_env(tmp_path, monkeypatch):
    """A `vbench` package whose GRiT and Tag2Text answer canned outputs, on the backend's PYTHONPATH, a local
    torch.hub repository with a canned `cotracker2`, and the checkpoint files."""
    root = tmp_path / "env"
    package = root / "vbench" / "third_party"
    (package / "tag2Text").mkdir(parents=True)
    for init in (root / "vbench", package, package / "tag2Text"):
        (init / "__init__.py").write_text("")
    (package / "grit_model.py").write_text(textwrap.dedent(FAKE_GRIT))
    (package / "tag2Text" / "tag2text.py").write_text(textwrap.dedent(FAKE_TAG2TEXT))
    (root / "vbench" / "utils.py").write_text(textwrap.dedent(FAKE_UTILS))
    (tmp_path / "co-tracker").mkdir()
    (tmp_path / "co-tracker" / "hubconf.py").write_text(textwrap.dedent(FAKE_HUBCONF))
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("CANNED_LOG", str(tmp_path / "canned.log"))
    checkpoints = {"grit": str(tmp_path / "grit_b_densecap_objectdet.pth"),
                   "tag2text": str(tmp_path / "tag2text_swin_14m.pth")}
    for path in checkpoints.values():
        Path(path).write_text("canned")
    return {**checkpoints, "tracker_repo": str(tmp_path / "co-tracker")}


def brightness_clip(tmp_path, levels, name="a dog and a cat-0.mp4"):
    """A clip whose frame t is uniformly grey at levels[t] (first pixel 255 where the level is 255)."""
    video = np.stack([np.full((64, 80, 3), level, np.uint8) for level in levels])
    path = tmp_path / name
    write_video(path, video, fps=8)
    return read_video(path).frames, str(path)


def test_backend_subprocess_scores_the_canned_detector(tmp_path, fake_official_env):
    # 10 frames: dark 0..3, bright 4..7, failing 8..9; the middle 16 of 10 are 0..9 then 9 six times
    video, path = brightness_clip(tmp_path, [20] * 4 + [200] * 4 + [255] * 2, name="a dog and a cat-0.mp4")
    saved = str(tmp_path / "saved.json")
    aggregate, entries = object_class.compute(
        [video], checkpoints=fake_official_env, video_paths=[path], auxiliary_info=[{"object": "dog"}],
        backend_python=sys.executable, save_model_outputs=saved,
    )
    # a failing frame detects nothing for object_class
    assert (aggregate, entries) == (4 / 16, [{"video_results": 4 / 16, "success_frame_count": 4, "frame_count": 16}])
    records = json.loads(Path(saved).read_text())["grit_objectdet"]["a dog and a cat-0.mp4"]
    assert [("error" in r, len(r.get("captions", []))) for r in records] == [(False, 0)] * 4 + [(False, 2)] * 4 + [
        (True, 0)] * 8
    assert records[4]["captions"][1] == ["a white cat", [40, 2, 80, 40]] and records[4]["objects"] == ["dog", "cat"]
    # the saved outputs score multiple_objects without the backend, which stops at the first failing frame
    with pytest.raises(ValueError, match=r"detector failed on videos\[0\] frame 8: RuntimeError: canned failure"):
        multiple_objects.compute([video], checkpoints={}, video_paths=[path], auxiliary_info=[{"object": "dog and cat"}],
                                 model_outputs=saved)


def test_backend_dense_captions_feed_color_one_video_at_a_time(tmp_path, fake_official_env):
    videos, paths = [], []
    for index, level in enumerate([200, 210, 20, 220, 230, 240]):  # the third is dark: no object frame, skipped
        video, path = brightness_clip(tmp_path, [level] * 4, name=f"a white dog-{index}.mp4")
        videos.append(video)
        paths.append(path)
    aggregate, entries = color.compute(videos, checkpoints=fake_official_env, video_paths=paths,
                                       prompts=["a white dog"] * 6, auxiliary_info=[{"color": "white"}] * 6,
                                       backend_python=sys.executable)
    # each caption is paired with the first name, 'dog': 'a brown dog' makes the object frame, 'a white cat' the hit
    assert aggregate == 1.0
    assert entries == [{"video_path": path, "video_results": 1.0, "cur_success_frame_rate": 1.0}
                       for path in paths[:2] + paths[3:]]
    waiting = [int(line) for line in (tmp_path / "canned.log").read_text().split()]
    assert len(waiting) == 6 * 16 and max(waiting) <= backend.AHEAD


def test_backend_captions_feed_scene(tmp_path, fake_official_env):
    video, path = brightness_clip(tmp_path, [20] * 5 + [200] * 5, name="street-0.mp4")
    saved = str(tmp_path / "captions.json")
    aggregate, entries = scene.compute([video], checkpoints=fake_official_env, video_paths=[path],
                                       auxiliary_info=[{"scene": {"scene": "street"}}], backend_python=sys.executable,
                                       save_model_outputs=saved)
    assert (aggregate, entries[0]["success_frame_count"]) == (11 / 16, 11)
    # "busy street" holds every word of "bus street" as a substring
    again = scene.compute([video], checkpoints={}, video_paths=[path], model_outputs=saved,
                          auxiliary_info=[{"scene": {"scene": "bus street"}}])
    assert again[0] == 11 / 16


def test_backend_tracks_feed_camera_motion(tmp_path, fake_official_env):
    videos, paths = [], []
    for name in ("a street, camera pans left-0.mp4", "a street, camera zooms in-0.mp4"):
        video, path = brightness_clip(tmp_path, [100] * 6, name=name)
        videos.append(video)
        paths.append(path)
    aggregate, per_type, entries = camera_motion.compute(
        videos, video_paths=paths, backend_python=sys.executable, tracker_repo=fake_official_env["tracker_repo"])
    assert aggregate == 0.5
    assert [entry["predict_type"] for entry in entries] == [["pan_left"], ["pan_left"]]
    assert per_type["pan_left"] == 1.0 and per_type["zoom_in"] == 0.0 and np.isnan(per_type["static"])


def test_a_failing_backend_is_named_with_its_error(tmp_path, fake_official_env, monkeypatch):
    video, path = brightness_clip(tmp_path, [200] * 4)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nowhere"))
    with pytest.raises(BackendError, match=r"grit_objectdet backend .*exit status 1:[\s\S]*cannot import the official vbench package"):
        object_class.compute([video], checkpoints=fake_official_env, video_paths=[path],
                             auxiliary_info=[{"object": "dog"}], backend_python=sys.executable)


def test_a_missing_grit_checkpoint_names_the_file_and_the_manifest_entry(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for prompt in suite.prompts("object_class"):
        for index in range(5):
            os.symlink(FIXTURES / "long_gradient.mp4", folder / suite.video_name(prompt, index))
    with pytest.raises(FileNotFoundError, match=r"grit_b_densecap_objectdet.pth.*`vdp download vbench-grit`"):
        evaluate(str(folder), ["object_class"], weights_dir=str(tmp_path / "empty"),
                 dimension_options={"object_class": {"backend_python": sys.executable}})


# --- evaluate() and the CLI ------------------------------------------------------------------------------------------


def suite_folder(tmp_path, dimension):
    folder = tmp_path / f"{dimension}_videos"
    folder.mkdir()
    names = []
    for prompt in suite.prompts(dimension):
        for index in range(5):
            name = suite.video_name(prompt, index)
            os.symlink(FIXTURES / "long_gradient.mp4", folder / name)
            names.append(name)
    return folder, names


def test_vdp_eval_vbench_scores_object_class_from_a_detections_file(tmp_path, capsys):
    from video_diffusion_pack.cli import main

    folder, names = suite_folder(tmp_path, "object_class")
    targets = suite.auxiliary_info("object_class")
    outputs, hits = {}, 0
    for number, name in enumerate(names):
        found = number % 17  # the first `found` frames show the target, the others something else
        hits += found
        outputs[name] = [{"captions": [["x", [0, 0, 1, 1]]],
                          "objects": [targets[prompt_of(name)]["object"] if t < found else "nothing"]}
                         for t in range(16)]
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps({"format": "vdp-vbench-model-outputs", "version": 1, "grit_objectdet": outputs}))
    assert main(["eval", "vbench", str(folder), "--dimensions", "object_class", "--detections", str(detections),
                 "--weights-dir", str(tmp_path), "-o", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "results_eval_results.json").read_text())
    aggregate, entries = written["object_class"]
    assert aggregate == hits / (16 * len(names))
    assert [os.path.basename(e["video_path"]) for e in entries] == names
    assert entries[3] == {"video_path": str(folder / names[3]), "video_results": 3 / 16, "success_frame_count": 3,
                          "frame_count": 16}
    assert "object_class" in capsys.readouterr().out


def test_vdp_eval_vbench_refuses_a_backend_dimension_without_a_backend(tmp_path, capsys):
    from video_diffusion_pack.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["eval", "vbench", str(tmp_path), "--dimensions", "scene", "-o", str(tmp_path / "out")])
    assert raised.value.code == 2
    assert "scene need either --detector-python or --detections" in capsys.readouterr().err


def test_camera_motion_through_evaluate_keeps_the_per_type_means_and_resumes(tmp_path):
    folder = tmp_path / "camera"
    folder.mkdir()
    for name in FIXTURE["videos"]["camera_motion"]:
        shutil.copy(FIXTURES / FIXTURE["clips"][name], folder / name)
    options = {"camera_motion": {"model_outputs": outputs_file(tmp_path)}}
    results = evaluate(str(folder), ["camera_motion"], mode="custom", output_dir=str(tmp_path / "out"),
                       dimension_options=options)
    aggregate, per_type, entries = results["camera_motion"]
    expected = FIXTURE["results"]["camera_motion"]
    assert (aggregate, per_type) == (expected[0], expected[1])
    by_name = {os.path.basename(e["video_path"]): e for e in entries}
    assert all({**by_name[e["video_path"]], "video_path": e["video_path"]} == e for e in expected[2])
    # a second run reads the results file instead of the outputs (which are gone now)
    os.remove(options["camera_motion"]["model_outputs"])
    options["camera_motion"]["model_outputs"] = str(tmp_path / "model_outputs.json")
    (tmp_path / "model_outputs.json").write_text(json.dumps({"format": "vdp-vbench-model-outputs", "version": 1,
                                                             "cotracker": {}}))
    again = evaluate(str(folder), ["camera_motion"], mode="custom", output_dir=str(tmp_path / "out"),
                     dimension_options=options)
    assert again["camera_motion"][:2] == [aggregate, per_type]


def test_camera_motion_in_standard_mode_lists_the_i2v_suite_files_missing(tmp_path):
    shutil.copy(FIXTURES / "moving_gradient.mp4", tmp_path / "a lake, camera pans left-0.mp4")
    # the I2V suite has 763 camera_motion prompts, 5 videos each
    with pytest.raises(FileNotFoundError, match=r"3815 video\(s\) of the VBench suite are missing"):
        evaluate(str(tmp_path), ["camera_motion"], dimension_options={"camera_motion": {"model_outputs": "x.json"}})


@pytest.mark.parametrize("response, message", [
    ('{"protocol": "vdp-vbench-backend", "version": 1, "task": "tag2text", "outputs": {}}',
     "answered outside protocol"),
    ('{"protocol": "vdp-vbench-backend", "version": 1, "task": "grit_objectdet", "outputs": {}}',
     r"gave no output for videos \['0'\]"),
    ('{"protocol": "vdp-vbench-backend", "version": 1, "task": "grit_objectdet", "outputs": {"0": [{"oops": 1}]}}',
     r"backend output for videos\[0\]: must be a list of 16 frame records"),
])
def test_a_backend_answering_outside_the_protocol_is_refused(tmp_path, monkeypatch, response, message):
    script = tmp_path / "answers.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys
        request = json.load(open(sys.argv[1]))
        for video in request["videos"]:  # take the frames as the real backend does
            while not os.path.exists(video["frames"]):
                pass
            os.remove(video["frames"])
        open(request["output"], "w").write({response!r})
    """))
    monkeypatch.setattr(backend, "RUNNER", str(script))
    with pytest.raises(ValueError, match=message):
        backend.run_backend(sys.executable, "grit_objectdet", [np.zeros((16, 8, 8, 3), np.uint8)], 1,
                            checkpoint=None, device="cpu", name="object_class", frame_count=16)
