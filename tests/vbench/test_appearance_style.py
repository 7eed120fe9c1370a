"""appearance_style equals the official vbench 0.1.5 on a tiny seeded CLIP in the OpenAI ViT-B/32 layout (both
towers), with the official CLIP BPE merges the pack ships and with a prefix of them."""

import json
import os

import numpy as np
import pytest
import torch

from tests.helpers.vbench_weights import seeded_arrays
from tests.vbench.dimension_fixtures import FIXTURES, fixture_clips, official_result, write_seeded_checkpoint
from video_diffusion_pack import video_io
from video_diffusion_pack.evaluation.vbench import evaluate, prompts, resolve_checkpoints, video_name
from video_diffusion_pack.evaluation.vbench.dimensions import appearance_style
from video_diffusion_pack.evaluation.vbench.suite import auxiliary_info

OFFICIAL = official_result("appearance_style")
BPE = FIXTURES / "clip_bpe_prefix.txt.gz"
# the largest |score| there is (cos = 1): exp(logit_scale) / 100. Scores are cosines of random features, some near 0,
# where a relative error says little; they are compared within 1e-5 relative or 1e-5 of this range
RANGE = float(np.exp(OFFICIAL["logit_scale"]) / 100)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip_b32") / "ViT-B-32.pt"
    return {"clip_vit_b_32": write_seeded_checkpoint(OFFICIAL["checkpoints"]["clip_vit_b_32"], path)}


def styles(results):
    return [{"appearance_style": r["style"]} for r in results]


@pytest.mark.parametrize("vocabulary", ["prefix", "full"])
def test_scores_equal_the_official_code(vocabulary, checkpoints):
    expected = OFFICIAL if vocabulary == "prefix" else OFFICIAL["full_vocab"]
    videos = [fixture_clips()[r["clip"]] for r in OFFICIAL["per_video"]]
    aggregate, per_video = appearance_style.compute(
        videos, checkpoints=checkpoints, batch_size=7, auxiliary_info=styles(OFFICIAL["per_video"]),
        clip_bpe=BPE if vocabulary == "prefix" else None,
    )
    for ours, official in zip(per_video, expected["per_video"], strict=True):
        np.testing.assert_allclose(ours["video_results"], official["score"], rtol=1e-5, atol=1e-5 * RANGE)
        np.testing.assert_allclose(ours["frame_results"], official["frame_results"], rtol=1e-5, atol=1e-5 * RANGE)
        np.testing.assert_allclose(ours["cur_sim"], official["cur_sim"], rtol=1e-5, atol=1e-5 * RANGE)
        assert ours["cur_sim"] == ours["frame_results"][-1]
    np.testing.assert_allclose(aggregate, expected["aggregate"], rtol=1e-5, atol=1e-5 * RANGE)
    # every frame counts once: the aggregate is over frames, not the mean of the videos (9, 4 and 10 frames)
    assert [len(r["frame_results"]) for r in per_video] == [len(v) for v in videos]
    frames = np.concatenate([r["frame_results"] for r in expected["per_video"]])
    np.testing.assert_allclose(aggregate, frames.mean(), rtol=1e-5, atol=1e-5 * RANGE)
    assert abs(aggregate - np.mean([r["video_results"] for r in per_video])) > 1e-5


def test_frames_go_through_pil_bicubic_which_antialiases():
    # a 1-pixel checkerboard 448 px high: PIL's bicubic halves it to grey, a tensor resize without antialias
    # would keep picking the extremes
    frame = ((np.indices((448, 896)).sum(0) % 2) * 255).astype(np.uint8)[None, :, :, None].repeat(3, -1)
    pixels = appearance_style.clip_transform_image(frame)
    assert pixels.shape == (1, 3, 224, 224)
    grey = (127.5 / 255 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711])
    np.testing.assert_allclose(pixels[0, :, 100:120, 100:120].mean((1, 2)).numpy(), grey, atol=0.02)


def test_standard_mode_scores_each_prompt_with_its_suite_style(checkpoints, tmp_path):
    """All 90 x 5 files of the suite (the same two videos linked under every name): the results file has the
    official layout and each video was scored with the style of its prompt."""
    folder = tmp_path / "videos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sources = []
    for index in range(2):
        path = folder / f"source{index}.mp4"
        video_io.write_video(path, rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8))
        sources.append(path)
    suite = prompts("appearance_style")
    for prompt in suite:
        for index in range(5):
            os.link(sources[index % 2], folder / video_name(prompt, index))
    for path in sources:
        path.unlink()
    results = evaluate(folder, ["appearance_style"], checkpoints=checkpoints, output_dir=tmp_path, name="style")
    aggregate, per_video = results["appearance_style"]
    assert len(per_video) == 90 * 5
    assert list(per_video[0]) == ["video_path", "video_results", "frame_results", "cur_sim"]
    assert json.loads((tmp_path / "style_eval_results.json").read_text(encoding="utf-8")) == results
    # the same video under two prompts of the same style scores the same, under another style differently
    style_of = auxiliary_info("appearance_style")
    by_style = {}
    for item in per_video[::5]:  # sample 0 of every prompt: source0
        prompt = os.path.basename(item["video_path"])[: -len("-0.mp4")]
        by_style.setdefault(style_of[prompt]["appearance_style"], set()).add(round(item["video_results"], 12))
    assert len(by_style) == 9 and all(len(scores) == 1 for scores in by_style.values())
    assert len({next(iter(scores)) for scores in by_style.values()}) == 9
    direct, _ = appearance_style.compute(
        [video_io.read_video(per_video[0]["video_path"]).frames], checkpoints=checkpoints,
        auxiliary_info=[style_of[suite[0]]],
    )
    assert per_video[0]["video_results"] == pytest.approx(direct, rel=1e-5, abs=1e-5 * RANGE)
    frames = [score for item in per_video for score in item["frame_results"]]
    assert aggregate == pytest.approx(sum(frames) / len(frames), rel=1e-12)


def test_custom_input_is_refused_as_the_official_code_does(checkpoints, tmp_path):
    with pytest.raises(ValueError, match=r"\['appearance_style'\] need the suite's auxiliary info"):
        evaluate(FIXTURES, ["appearance_style"], checkpoints=checkpoints, mode="custom")
    video = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="needs the suite's auxiliary info"):
        appearance_style.compute([video], checkpoints=checkpoints)
    with pytest.raises(ValueError, match=r"videos\[0\] has auxiliary info \{'color': 'red'\}"):
        appearance_style.compute([video], checkpoints=checkpoints, auxiliary_info=[{"color": "red"}])


def test_missing_checkpoints_name_their_manifest_entries(checkpoints, tmp_path):
    video = [np.zeros((2, 32, 32, 3), np.uint8)]
    info = [{"appearance_style": "oil painting"}]
    with pytest.raises(FileNotFoundError, match=r"ViT-B-32\.pt.*does not exist; `vdp download vbench-clip-vit-b-32`"):
        appearance_style.compute(video, checkpoints={"clip_vit_b_32": tmp_path / "ViT-B-32.pt"}, auxiliary_info=info)
    with pytest.raises(KeyError, match=r"checkpoints\['clip_vit_b_32'\] is missing.*vdp download vbench-clip-vit-b-32"):
        appearance_style.compute(video, checkpoints={}, auxiliary_info=info)
    with pytest.raises(FileNotFoundError, match=r"ViT-B-32\.pt.*`vdp download vbench-clip-vit-b-32`"):
        resolve_checkpoints("appearance_style", tmp_path)
    with pytest.raises(ValueError, match=r"clip_bpe='.*nowhere\.txt\.gz' is not a file"):
        appearance_style.compute(video, checkpoints=checkpoints, auxiliary_info=info,
                                 clip_bpe=tmp_path / "nowhere.txt.gz")


def test_checkpoints_of_another_layout_are_refused_with_the_file(checkpoints, tmp_path):
    video = [np.zeros((2, 32, 32, 3), np.uint8)]
    info = [{"appearance_style": "oil painting"}]
    state = torch.load(checkpoints["clip_vit_b_32"], weights_only=True)
    vision_only = tmp_path / "vision_only.pt"
    torch.save({key: value for key, value in state.items() if key.startswith("visual.")}, vision_only)
    with pytest.raises(ValueError, match=r"vision_only\.pt.*not an OpenAI CLIP checkpoint with both towers.*"
                                         r"token_embedding\.weight.*`vdp download vbench-clip-vit-b-32`"):
        appearance_style.compute(video, checkpoints={**checkpoints, "clip_vit_b_32": vision_only},
                                 auxiliary_info=info)
    wrong = tmp_path / "wrong.pt"
    torch.save({**state, "ln_final.weight": torch.ones(32)}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pt.*final_layer_norm\.weight \(32,\) != \(64,\)"):
        appearance_style.compute(video, checkpoints={**checkpoints, "clip_vit_b_32": wrong}, auxiliary_info=info)
    stray = tmp_path / "stray.pt"
    torch.save({**state, "transformer.extra_scale": torch.ones(64)}, stray)
    with pytest.raises(ValueError, match=r"stray\.pt.*unexpected keys \['transformer\.extra_scale'\]"):
        appearance_style.compute(video, checkpoints={**checkpoints, "clip_vit_b_32": stray}, auxiliary_info=info)
    not_bpe = tmp_path / "vocab.txt.gz"
    not_bpe.write_bytes(b"plain text, not gzip")
    with pytest.raises(ValueError, match=r"vocab\.txt\.gz.*is not a gzip text file of merges"):
        appearance_style.compute(video, checkpoints=checkpoints, auxiliary_info=info, clip_bpe=not_bpe)


def test_a_bpe_vocabulary_beyond_the_token_table_is_refused(tmp_path):
    """The prefix vocabulary's end token (6513) needs 6514 token embeddings; a CLIP with 1000 is refused."""
    entry = OFFICIAL["checkpoints"]["clip_vit_b_32"]
    table = {**entry["keys"], "token_embedding.weight": [1000, entry["keys"]["token_embedding.weight"][1]]}
    state = {key: torch.from_numpy(value) for key, value in seeded_arrays(table, 1).items()}
    torch.save(state, tmp_path / "ViT-B-32.pt")
    with pytest.raises(ValueError, match=r"token id 6513, beyond the 1000 token embeddings"):
        appearance_style.compute([np.zeros((2, 32, 32, 3), np.uint8)],
                                 checkpoints={"clip_vit_b_32": tmp_path / "ViT-B-32.pt"}, clip_bpe=BPE,
                                 auxiliary_info=[{"appearance_style": "oil painting"}])
