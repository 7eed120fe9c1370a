"""i2v_subject equals the official vbench 0.1.5 (`vbench2_beta_i2v`) on a small seeded DINO ViT-B/16 in the official
layout, the input images found by prompt in the I2V suite's image folder; missing images and bad input named."""

import json
import shutil

import numpy as np
import pytest
import torch

from tests.vbench.dimension_fixtures import FIXTURES, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench import evaluate, i2v_suite, prompts, suite
from video_diffusion_pack.evaluation.vbench.dimensions import i2v_subject

FOLDER = FIXTURES / "i2v_subject"
OFFICIAL = json.loads((FOLDER / "i2v_subject.json").read_text(encoding="utf-8"))
PROMPTS = [suite.prompt_from_filename(r["clip"]) for r in OFFICIAL["per_video"]]
RESOLUTIONS = [r["image"].split("/")[1] for r in OFFICIAL["per_video"]]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    path = tmp_path_factory.mktemp("dino") / "dino_vitbase16_pretrain.pth"
    return {"dino_vitb16": write_seeded_checkpoint(OFFICIAL["checkpoints"]["dino_vitb16"], path)}


@pytest.fixture(scope="module")
def videos():
    from video_diffusion_pack.video_io import read_video

    return [read_video(FOLDER / r["clip"]).frames for r in OFFICIAL["per_video"]]


def expected_scores():
    return [r["score"] for r in OFFICIAL["per_video"]]


def test_scores_equal_the_official_code(checkpoints, videos):
    images = [FOLDER / r["image"] for r in OFFICIAL["per_video"]]
    aggregate, per_video = i2v_subject.compute(videos, checkpoints=checkpoints, images=images, batch_size=4)
    np.testing.assert_allclose([r["video_results"] for r in per_video], expected_scores(), rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, OFFICIAL["aggregate"], rtol=1e-5, atol=0)
    assert [r["image_path"] for r in per_video] == [str(path) for path in images]


def test_images_are_found_by_prompt_in_the_image_suite_folder(checkpoints, videos):
    # the fixture's two videos use two aspect ratios; each is scored with its folder of crops
    for video, prompt, resolution, expected in zip(videos, PROMPTS, RESOLUTIONS, expected_scores()):
        for folder in (FOLDER, FOLDER / "crop"):  # the suite's data folder or its crop folder
            _, per_video = i2v_subject.compute([video], checkpoints=checkpoints, prompts=[prompt],
                                               image_folder=folder, resolution=resolution)
            np.testing.assert_allclose(per_video[0]["video_results"], expected, rtol=1e-5, atol=0)


def test_frames_are_resized_with_antialias_as_the_official_default(checkpoints, videos, monkeypatch):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    def without_antialias(frames):
        frames = TF.resize(frames, 256, interpolation=InterpolationMode.BICUBIC, antialias=False)
        return TF.normalize(TF.center_crop(frames, 224).div(255.0), i2v_subject.IMAGENET_MEAN, i2v_subject.IMAGENET_STD)

    monkeypatch.setattr(i2v_subject, "frames_transform", without_antialias)
    images = [FOLDER / r["image"] for r in OFFICIAL["per_video"]]
    _, per_video = i2v_subject.compute(videos, checkpoints=checkpoints, images=images)
    assert all(abs(r["video_results"] - e) > 1e-4 for r, e in zip(per_video, expected_scores()))


def test_the_i2v_suite_gives_prompts_and_images():
    assert len(prompts("i2v_subject")) == 246 and len(prompts("i2v_background")) == 109
    assert len(prompts("camera_motion")) == 763
    assert i2v_suite.image_name(PROMPTS[0]) == "a seal swimming in the water.jpg"
    assert suite.auxiliary_info("i2v_subject")[PROMPTS[1]] == {"image_name": "pink water lilies in a pond.jpg"}
    assert i2v_suite.image_name("a cat") is None
    # the T2V suite is unchanged
    assert "i2v_subject" not in suite.suite_dimensions() and len(prompts("subject_consistency")) == 72


def test_standard_mode_looks_for_the_i2v_suite_files(checkpoints, tmp_path):
    clip = OFFICIAL["per_video"][0]["clip"]
    shutil.copyfile(FOLDER / clip, tmp_path / clip)
    with pytest.raises(FileNotFoundError, match=r"1229 video\(s\) of the VBench suite are missing") as missing:
        evaluate(tmp_path, ["i2v_subject"], checkpoints=checkpoints,
                 dimension_options={"i2v_subject": {"image_folder": FOLDER}})
    assert "a brown bear in the water with a fish in its mouth-0.mp4" in str(missing.value)  # the first prompt


def test_evaluate_writes_the_official_results_file(checkpoints, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    clip = OFFICIAL["per_video"][0]["clip"]
    shutil.copyfile(FOLDER / clip, folder / clip)
    results = evaluate(folder, ["i2v_subject"], checkpoints=checkpoints, mode="custom", output_dir=tmp_path,
                       name="i2v", dimension_options={"i2v_subject": {"image_folder": FOLDER, "resolution": "16-9"}})
    aggregate, per_video = results["i2v_subject"]
    assert per_video[0]["video_path"] == str(folder / clip)
    assert per_video[0]["image_path"] == str(FOLDER / OFFICIAL["per_video"][0]["image"])
    np.testing.assert_allclose(aggregate, expected_scores()[0], rtol=1e-5, atol=0)
    assert json.loads((tmp_path / "i2v_eval_results.json").read_text(encoding="utf-8")) == results


def test_evaluate_names_missing_images_before_decoding(checkpoints, tmp_path, monkeypatch):
    from video_diffusion_pack.evaluation import vbench

    def no_decoding(path):
        raise AssertionError("decoded before the images were checked")

    monkeypatch.setattr(vbench, "_decode", no_decoding)
    folder = tmp_path / "videos"
    folder.mkdir()
    for r in OFFICIAL["per_video"]:
        shutil.copyfile(FOLDER / r["clip"], folder / r["clip"])
    # only the 16-9 crop of the seal exists: the lilies' image is missing from the 16-9 folder
    with pytest.raises(FileNotFoundError, match=r"1 input image\(s\) of the I2V suite are missing .*pink water lilies"):
        evaluate(folder, ["i2v_subject"], checkpoints=checkpoints, mode="custom",
                 dimension_options={"i2v_subject": {"image_folder": FOLDER, "resolution": "16-9"}})
    with pytest.raises(ValueError, match="image_folder is needed"):
        evaluate(folder, ["i2v_subject"], checkpoints=checkpoints, mode="custom")
    with pytest.raises(ValueError, match=r"resolution='4-3' is not an aspect ratio of the I2V image suite"):
        evaluate(folder, ["i2v_subject"], checkpoints=checkpoints, mode="custom",
                 dimension_options={"i2v_subject": {"image_folder": FOLDER, "resolution": "4-3"}})
    with pytest.raises(FileNotFoundError, match=r"holds no 7-4 crops of the I2V image suite"):
        evaluate(folder, ["i2v_subject"], checkpoints=checkpoints, mode="custom",
                 dimension_options={"i2v_subject": {"image_folder": FOLDER, "resolution": "7-4"}})
    shutil.copyfile(FOLDER / OFFICIAL["per_video"][0]["clip"], folder / "a cat-0.mp4")
    with pytest.raises(ValueError, match=r"not in the I2V suite, so no input image: videos\[0\] \(.*a cat-0\.mp4'\)"):
        evaluate(folder, ["i2v_subject"], checkpoints=checkpoints, mode="custom",
                 dimension_options={"i2v_subject": {"image_folder": FOLDER, "resolution": "16-9"}})


def test_bad_images_and_short_videos_are_named(checkpoints, tmp_path):
    video = np.zeros((3, 32, 32, 3), np.uint8)
    with pytest.raises(FileNotFoundError, match="input image"):
        i2v_subject.compute([video], checkpoints=checkpoints, images=[tmp_path / "none.jpg"])
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"input image .*broken\.jpg' cannot be read"):
        i2v_subject.compute([video], checkpoints=checkpoints, images=[tmp_path / "broken.jpg"])
    with pytest.raises(ValueError, match="images gives 2 files for 1 videos"):
        i2v_subject.compute([video], checkpoints=checkpoints, images=[tmp_path / "broken.jpg"] * 2)
    with pytest.raises(ValueError, match=r"videos\[0\] has 1 frames; this dimension needs at least 2"):
        i2v_subject.compute([video[:1]], checkpoints=checkpoints, images=[tmp_path / "broken.jpg"])
    with pytest.raises(FileNotFoundError, match="vbench-dino-vitb16"):
        i2v_subject.compute([video], checkpoints={"dino_vitb16": tmp_path / "x.pth"},
                            images=[FOLDER / OFFICIAL["per_video"][0]["image"]])


def test_images_that_are_not_rgb_are_converted(checkpoints, tmp_path):
    from PIL import Image

    source = FOLDER / OFFICIAL["per_video"][1]["image"]
    Image.open(source).convert("RGBA").save(tmp_path / "rgba.png")
    video = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ours = [i2v_subject.compute([video], checkpoints=checkpoints, images=[path])[0] for path in
            (source, tmp_path / "rgba.png")]
    assert ours[0] == pytest.approx(ours[1], rel=1e-6)
    assert torch.equal(i2v_subject.image_transform(str(source)), i2v_subject.image_transform(str(tmp_path / "rgba.png")))


def test_vdp_eval_vbench_scores_i2v_subject(checkpoints, tmp_path):
    from tests.helpers.vdp import run_vdp

    videos = tmp_path / "videos"
    videos.mkdir()
    clip = OFFICIAL["per_video"][0]["clip"]
    shutil.copyfile(FOLDER / clip, videos / clip)
    weights = checkpoints["dino_vitb16"].parent
    result = run_vdp("eval", "vbench", videos, "--dimensions", "i2v_subject", "--mode", "custom", "--weights-dir",
                     weights, "--i2v-images", FOLDER, "--i2v-resolution", "16-9", "-o", tmp_path / "out",
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "VBench-I2V, the same way: i2v " in result.stdout
    aggregate, per_video = json.loads((tmp_path / "out" / "results_eval_results.json").read_text())["i2v_subject"]
    np.testing.assert_allclose(per_video[0]["video_results"], expected_scores()[0], rtol=1e-5, atol=0)
    missing = run_vdp("eval", "vbench", videos, "--dimensions", "i2v_subject", "--mode", "custom",
                      "-o", tmp_path / "out")
    assert missing.returncode == 2 and "argument --i2v-images: ['i2v_subject'] need the I2V image suite" in missing.stderr
