"""human_action equals the official vbench 0.1.5 on a small seeded UMT classifier in the official layout: the
recognised actions, the aggregate, the pooled features and the top-5 probabilities; OpenCV's INTER_LINEAR resize,
the frame sampling and the file-name rule as the official code; bad input named."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from tests.helpers.vbench_weights import arrays_sha256, seeded_arrays
from tests.vbench.dimension_fixtures import FIXTURES
from video_diffusion_pack.evaluation.vbench import evaluate
from video_diffusion_pack.evaluation.vbench.dimensions import human_action
from video_diffusion_pack.evaluation.vbench.dimensions._opencv_resize import resize_linear

FOLDER = FIXTURES / "human_action"
OFFICIAL = json.loads((FOLDER / "human_action.json").read_text(encoding="utf-8"))
VARIANTS = OFFICIAL["variants"]


def write_umt_checkpoint(entry: dict, path):
    """The seeded UMT checkpoint of a fixture variant (hash checked), with its crafted head bias."""
    arrays = seeded_arrays(entry["keys"], entry["seed"], 1.0, entry["key_gains"])
    assert arrays_sha256(arrays) == entry["sha256"]
    for index, value in entry["head_bias"].items():
        arrays["head.bias"][int(index)] = value
    torch.save({key: torch.from_numpy(value) for key, value in arrays.items()}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("umt")
    return {
        variant: {"umt_l16": write_umt_checkpoint(VARIANTS[variant]["checkpoint"], folder / f"{variant}.pth")}
        for variant in VARIANTS
    }


@pytest.fixture(scope="module")
def clips():
    from video_diffusion_pack.video_io import read_video

    names = [r["clip"] for r in VARIANTS["recognises"]["per_video"]]
    return names, [read_video(FOLDER / name).frames for name in names]


@pytest.mark.parametrize("variant", ["recognises", "recognises_nothing"])
def test_scores_equal_the_official_code(variant, checkpoints, clips):
    names, videos = clips
    aggregate, per_video = human_action.compute(
        videos, checkpoints=checkpoints[variant], video_paths=[str(FOLDER / name) for name in names], batch_size=32
    )
    expected = VARIANTS[variant]["per_video"]
    assert [r["video_results"] for r in per_video] == [r["score"] for r in expected]
    assert [r["cor_num_per_video"] for r in per_video] == [r["cor_num_per_video"] for r in expected]
    assert aggregate == VARIANTS[variant]["aggregate"]


def test_both_outcomes_are_covered():
    # recognised, in the top 5 below 0.85 (playing guitar, class 309), and nothing above 0.85 at all
    assert [r["score"] for r in VARIANTS["recognises"]["per_video"]] == [True, False, True]
    assert 309 in VARIANTS["recognises"]["per_video"][1]["top5_indices"]
    assert all(max(r["top5_probabilities"]) < 0.85 for r in VARIANTS["recognises_nothing"]["per_video"])


def test_features_and_probabilities_equal_the_official_umt(checkpoints, clips):
    from video_diffusion_pack.evaluation.vbench.dimensions._umt import load_umt_classifier

    model = load_umt_classifier(str(checkpoints["recognises"]["umt_l16"]), "test")
    pooled = []
    model.fc_norm.register_forward_hook(lambda module, args, output: pooled.append(output))
    batch = torch.stack([human_action.umt_transform(video) for video in clips[1]])
    with torch.no_grad():
        probabilities = torch.sigmoid(model(pixel_values=batch).logits)
    values, indices = probabilities.topk(5)
    expected = VARIANTS["recognises"]["per_video"]
    np.testing.assert_allclose(pooled[0].numpy(), [r["fc_norm"] for r in expected], rtol=1e-5, atol=1e-5)
    assert indices.tolist() == [r["top5_indices"] for r in expected]
    np.testing.assert_allclose(values.numpy(), [r["top5_probabilities"] for r in expected], rtol=1e-5, atol=0)


def test_resize_equals_opencv_inter_linear():
    rng = np.random.default_rng(OFFICIAL["opencv_resize"]["cases"][0]["seed"])
    for case in OFFICIAL["opencv_resize"]["cases"]:
        image = rng.integers(0, 256, case["shape"], dtype=np.uint8)
        ours = resize_linear(image, *case["size"])
        assert ours.shape == (case["size"][1], case["size"][0], 3)
        assert hashlib.sha256(ours.tobytes()).hexdigest() == case["sha256"], case


def test_middle_sampling_pads_with_the_last_frame():
    assert human_action.middle_frame_indices(8, 10) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert human_action.middle_frame_indices(16, 10) == list(range(10)) + [9] * 6
    assert human_action.middle_frame_indices(16, 32) == list(range(0, 32, 2))


def test_the_action_is_read_from_the_file_name_as_the_official_code():
    assert human_action.action_from_filename("/x/A person is riding a bike-0.mp4") == "riding a bike"
    assert human_action.action_from_filename("A person is juggling balls_take2-1.mp4") == "juggling balls"
    assert human_action.action_from_filename("Dancing Ballet-3.mp4") == "dancing ballet"
    assert human_action.kinetics_400_classes()[0] == "riding a bike"
    assert len(human_action.kinetics_400_classes()) == 400


def test_probabilities_count_after_rounding_to_4_decimals():
    assert human_action.recognised_classes([0.849951, 0.84994], [0, 1]) == ["riding a bike"]
    assert human_action.recognised_classes([0.2], [0]) == []


def test_evaluate_writes_the_official_results_file(checkpoints, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    names = [r["clip"] for r in VARIANTS["recognises"]["per_video"]]
    for name in names:
        shutil.copyfile(FOLDER / name, videos / name)
    results = evaluate(videos, ["human_action"], checkpoints=checkpoints["recognises"], mode="custom",
                       output_dir=tmp_path, name="action")
    aggregate, per_video = results["human_action"]
    by_name = {r["clip"]: r["score"] for r in VARIANTS["recognises"]["per_video"]}
    assert {item["video_path"].rsplit("/", 1)[-1]: item["video_results"] for item in per_video} == by_name
    assert aggregate == pytest.approx(2 / 3, rel=1e-12)
    assert json.loads((tmp_path / "action_eval_results.json").read_text(encoding="utf-8")) == results


def test_bad_checkpoints_are_named(checkpoints, tmp_path):
    video = np.zeros((4, 32, 32, 3), np.uint8)
    paths = ["A person is riding a bike-0.mp4"]
    with pytest.raises(FileNotFoundError, match="vbench-umt-l16"):
        human_action.compute([video], checkpoints={"umt_l16": tmp_path / "x.pth"}, video_paths=paths)
    state = torch.load(checkpoints["recognises"]["umt_l16"], weights_only=True)
    del state["blocks.1.attn.v_bias"]
    state["cls_token"] = torch.zeros(1, 1, 128)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing keys \(1\): blocks\.1\.attn\.v_bias.*unexpected keys \(1\): cls_token"):
        human_action.compute([video], checkpoints={"umt_l16": tmp_path / "bad.pth"}, video_paths=paths)
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a UMT video classifier checkpoint in the official layout"):
        human_action.compute([video], checkpoints={"umt_l16": tmp_path / "other.pth"}, video_paths=paths)
    state = torch.load(checkpoints["recognises"]["umt_l16"], weights_only=True)
    state["pos_embed"] = state["pos_embed"][:, : 196 * 8]
    torch.save(state, tmp_path / "eight_frames.pth")
    with pytest.raises(ValueError, match="classifies 8 frames into 400 classes; human_action needs 16 frames"):
        human_action.compute([video], checkpoints={"umt_l16": tmp_path / "eight_frames.pth"}, video_paths=paths)


def test_video_paths_are_required(checkpoints):
    with pytest.raises(ValueError, match="video_paths must give one file name per video"):
        human_action.compute([np.zeros((4, 32, 32, 3), np.uint8)], checkpoints=checkpoints["recognises"])
    with pytest.raises(ValueError, match=r"videos\[0\] must be a uint8 array"):
        human_action.compute([np.zeros((4, 32, 32), np.uint8)], checkpoints=checkpoints["recognises"],
                             video_paths=["a.mp4"])



def test_the_released_vit_l16_layout_maps_onto_videomae_exactly():
    """The official file's 319 tensors (ViT-L/16: width 1024, 24 blocks, 16 frames), named as the official model
    names them (the fixture's tiny table, widened), map one to one onto VideoMAEForVideoClassification (meta
    tensors: no memory)."""
    from video_diffusion_pack.evaluation.vbench.dimensions._umt import (
        build_classifier,
        key_pairs,
        videomae_config_from_state_dict,
    )
    from video_diffusion_pack.models.checkpoint import key_table_problems

    tiny = VARIANTS["recognises"]["checkpoint"]["keys"]
    widths = {128: 1024, 3 * 128: 3 * 1024, 4 * 128: 4 * 1024}
    table = {}
    for key, shape in tiny.items():
        shape = [widths.get(size, size) for size in shape]
        for block in range(24) if key.startswith("blocks.0.") else [None]:
            table[key.replace("blocks.0.", f"blocks.{block}.") if block is not None else key] = tuple(shape)
    assert len(table) == 319 and table["pos_embed"] == (1, 3136, 1024)
    with torch.device("meta"):
        state = {key: torch.empty(shape) for key, shape in table.items()}
        config = videomae_config_from_state_dict(state)
        model = build_classifier(config)
    assert (config.num_frames, config.num_attention_heads, config.intermediate_size, config.num_labels) == (
        16, 16, 4096, 400)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    mapped = {"pos_embed": tuple(model.videomae.embeddings.position_embeddings.shape)}
    for official, keys in key_pairs(config.num_hidden_layers, ours):
        mapped[official] = (sum(ours[key][0] for key in keys), *ours[keys[0]][1:])
    assert key_table_problems(mapped, table) == []
    assert sum(len(keys) for _, keys in key_pairs(24, ours)) == len(ours)
