"""temporal_style and overall_consistency equal the official vbench 0.1.5 on a tiny seeded ViCLIP in the
`ViClip-InternVid-10M-FLT.pth` layout (patch 14, 224 px, 8 frames, context 32), with the official CLIP BPE merges
the pack ships and with a prefix of them; frame sampling, uint8 preprocessing and tokenisation as the official
code; standard and custom-input modes through evaluate(); bad checkpoints named."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from tests.helpers.vbench_weights import seeded_arrays
from tests.vbench.dimension_fixtures import FIXTURES, fixture_clips, official_result, write_seeded_checkpoint
from video_diffusion_pack import video_io
from video_diffusion_pack.evaluation.vbench import evaluate, prompts, resolve_checkpoints, video_name
from video_diffusion_pack.evaluation.vbench.dimensions import overall_consistency, temporal_style
from video_diffusion_pack.evaluation.vbench.dimensions._clip_tokenizer import load_bpe, tokenize
from video_diffusion_pack.evaluation.vbench.dimensions._viclip import (
    ViCLIP,
    ViCLIPConfig,
    clip_transform_uint8,
    config_from_state_dict,
    middle_frame_indices,
)

TEMPORAL = official_result("temporal_style")
OVERALL = official_result("overall_consistency")
TOKENS = official_result("clip_tokens")
BPE = FIXTURES / "clip_bpe_prefix.txt.gz"
MODULES = {"temporal_style": (temporal_style, TEMPORAL), "overall_consistency": (overall_consistency, OVERALL)}
# one video's score encoded in two batches of other sizes: the scores are cosines of unit vectors and a float32 kernel
# may round differently at another batch size, so they agree to a few units of float32's 1.2e-7 at 1, not relative to
# the score (random-weight scores lie near 0)
SAME_VIDEO_OTHER_BATCH = dict(rel=0, abs=5e-7)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    # both fixtures were made with the same seeded ViCLIP, as both dimensions read the same released file
    assert TEMPORAL["checkpoints"] == OVERALL["checkpoints"]
    path = tmp_path_factory.mktemp("viclip") / "ViClip-InternVid-10M-FLT.pth"
    return {"viclip": write_seeded_checkpoint(TEMPORAL["checkpoints"]["viclip"], path, wrap="model")}


@pytest.mark.parametrize("dimension", list(MODULES))
@pytest.mark.parametrize("batch_size, vocabulary", [(8, "prefix"), (32, "prefix"), (32, "full")],
                         ids=["one_video_a_pass", "four_videos_a_pass", "full_vocabulary"])
def test_scores_equal_the_official_code(dimension, batch_size, vocabulary, checkpoints):
    module, official = MODULES[dimension]
    videos = [fixture_clips()[r["clip"]] for r in official["per_video"]]
    aggregate, per_video = module.compute(
        videos, checkpoints=checkpoints, batch_size=batch_size, prompts=[r["prompt"] for r in official["per_video"]],
        clip_bpe=BPE if vocabulary == "prefix" else None,
    )
    official = official if vocabulary == "prefix" else official["full_vocab"]
    np.testing.assert_allclose(per_video, [r["score"] for r in official["per_video"]], rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, official["aggregate"], rtol=1e-5, atol=0)


def test_the_module_has_the_official_parameter_names_and_shapes():
    table = {key: tuple(shape) for key, shape in TEMPORAL["checkpoints"]["viclip"]["keys"].items()}
    config = config_from_state_dict({key: torch.empty(shape) for key, shape in table.items()})
    assert config == ViCLIPConfig(vision_width=128, vision_layers=2, vision_heads=2, patch_size=14, image_size=224,
                                  num_frames=8, embed_dim=64, text_width=128, text_layers=1, text_heads=2,
                                  context_length=32, vocab_size=49408)
    assert {key: tuple(value.shape) for key, value in ViCLIP(config).state_dict().items()} == table
    # the released model: 447 tensors, 427.6M parameters
    with torch.device("meta"):
        released = ViCLIP(ViCLIPConfig())
    assert len(released.state_dict()) == 447
    assert round(sum(p.numel() for p in released.parameters()) / 1e6, 1) == 427.6


def test_frames_are_sampled_from_the_middle_of_equal_parts_and_padded():
    # the official get_frame_indices(n, length, 'middle') gives these
    assert middle_frame_indices(8, 10) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert middle_frame_indices(16, 10) == list(range(10)) + [9] * 6
    assert middle_frame_indices(8, 4) == [0, 1, 2, 3, 3, 3, 3, 3]
    assert middle_frame_indices(8, 9) == list(range(8))
    assert middle_frame_indices(8, 100) == [5, 18, 30, 43, 55, 68, 80, 93]
    assert middle_frame_indices(8, 33) == [1, 5, 9, 13, 17, 21, 25, 30]
    assert middle_frame_indices(8, 1) == [0] * 8


def test_a_short_video_scores_as_its_frames_padded_with_the_last(checkpoints):
    video = fixture_clips()["wide_noise.mp4"]  # 4 frames
    padded = video[[0, 1, 2, 3, 3, 3, 3, 3]]
    text = ["an astronaut flying in space, oil painting"]
    short, _ = overall_consistency.compute([video], checkpoints=checkpoints, prompts=text, clip_bpe=BPE)
    long, _ = overall_consistency.compute([padded], checkpoints=checkpoints, prompts=text, clip_bpe=BPE)
    assert short == long
    official = next(r["score"] for r in OVERALL["per_video"] if r["clip"] == "wide_noise.mp4")
    assert short == pytest.approx(official, rel=1e-5)


@pytest.mark.parametrize("shape", [(8, 130, 142), (8, 96, 544), (8, 300, 224)])
def test_uint8_preprocessing_is_torchvisions_clip_transform_with_its_rounding(shape):
    from torchvision import transforms

    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (shape[0], 3) + shape[1:], dtype=np.uint8))
    reference = transforms.Compose([  # VBench's clip_transform(224), run on uint8 tensors
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
        transforms.CenterCrop(224),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])(frames)
    ours = clip_transform_uint8(frames, 224)
    assert torch.equal(ours, reference)
    if shape[1:] != (300, 224):
        # a float resize (not rounded back to uint8) gives other pixels
        unrounded = transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False)(
            frames.float())
        unrounded = transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))(
            transforms.CenterCrop(224)(unrounded).div(255.0))
        assert not torch.allclose(unrounded, ours, atol=1e-3)


def test_token_ids_equal_the_official_tokenizers():
    tokenizer = load_bpe(BPE, "test")
    try:
        import ftfy  # noqa: F401
    except ImportError:
        ftfy = None
    ascii_only = 0
    for text, ids_77, ids_32, viclip_32 in zip(
        TOKENS["texts"], TOKENS["ids_77"], TOKENS["ids_32"], TOKENS["viclip_ids_32"], strict=True
    ):
        assert ids_32 == viclip_32  # clip.tokenize at context 32 is ViCLIP's tokenize
        plain = all(32 <= ord(char) < 127 or char in "\t" for char in text) and "&" not in text
        if plain or ftfy is not None:
            assert tokenize(tokenizer, [text], 77, "test")[0].tolist() == ids_77, text
            assert tokenize(tokenizer, [text], 32, "test")[0].tolist() == ids_32, text
            ascii_only += plain
        else:
            with pytest.raises(ValueError, match="install ftfy"):
                tokenize(tokenizer, [text], 77, "test")
    assert ascii_only == 6
    # a prompt longer than the context is cut with the end token kept last
    long = tokenize(tokenizer, [OVERALL["per_video"][0]["prompt"]], 32, "test")[0]
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert end == 6513 and long[-1] == end and (long != 0).all() and (long[:-1] != end).all()


def test_the_shipped_vocabulary_is_the_official_file_and_tokenises_the_suite_as_the_official_code():
    import hashlib

    from video_diffusion_pack.evaluation.vbench.dimensions._clip_tokenizer import OFFICIAL_BPE
    from video_diffusion_pack.evaluation.vbench.suite import full_info

    assert hashlib.sha256(OFFICIAL_BPE.read_bytes()).hexdigest() == TOKENS["full_vocab_sha256"]
    tokenizer = load_bpe(None, "test")
    assert len(tokenizer) == 49408
    suite = full_info()
    # every text the three dimensions tokenise (all printable ASCII, so ftfy is not needed)
    texts = sorted({entry["prompt_en"] for entry in suite
                    if {"temporal_style", "overall_consistency"} & set(entry["dimension"])}
                   | {entry["auxiliary_info"]["appearance_style"]["appearance_style"] for entry in suite
                      if "appearance_style" in entry.get("auxiliary_info", {})})
    assert len(texts) == TOKENS["suite_texts"]
    for context in (77, 32):
        rows = tokenize(tokenizer, texts, context, "test").tolist()
        assert hashlib.sha256(json.dumps(rows).encode()).hexdigest() == TOKENS["suite_sha256_full_vocab"][str(context)]


def test_custom_input_takes_the_prompt_from_the_file_name(checkpoints, tmp_path):
    """Both dimensions read one decoded video; the official scores of the same clip and prompt come back."""
    folder = tmp_path / "videos"
    folder.mkdir()
    expected = {}
    for record in OVERALL["full_vocab"]["per_video"][1:]:
        name = f"{record['prompt']}-3.mp4"
        shutil.copyfile(FIXTURES / record["clip"], folder / name)
        expected[str(folder / name)] = record["score"]
    results = evaluate(folder, ["temporal_style", "overall_consistency"], checkpoints=checkpoints, mode="custom",
                       output_dir=tmp_path, name="custom")
    for dimension in ("temporal_style", "overall_consistency"):
        aggregate, per_video = results[dimension]
        assert {item["video_path"] for item in per_video} == set(expected)
        for item in per_video:
            assert list(item) == ["video_path", "video_results"]
            assert item["video_results"] == pytest.approx(expected[item["video_path"]], rel=1e-5)
        assert aggregate == pytest.approx(np.mean(list(expected.values())), rel=1e-5)
    assert json.loads((tmp_path / "custom_eval_results.json").read_text(encoding="utf-8")) == results


def small_viclip(path):
    """A ViCLIP of 28 px frames (2 x 2 patches), so that the 93 x 5 suite files score in seconds."""
    config = ViCLIPConfig(vision_width=64, vision_layers=1, vision_heads=1, image_size=28, embed_dim=32,
                          text_width=64, text_layers=1, text_heads=1, vocab_size=6514)
    table = {key: list(value.shape) for key, value in ViCLIP(config).state_dict().items()}
    torch.save({"model": {key: torch.from_numpy(value) for key, value in seeded_arrays(table, 7).items()}}, path)
    return path


def test_standard_mode_scores_each_file_with_its_suite_prompt(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    sources = []
    for index in range(2):
        sources.append(folder / f"source{index}.mp4")
        video_io.write_video(sources[-1], rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8))
    suite = prompts("overall_consistency")
    for prompt in suite:
        for index in range(5):
            os.link(sources[index % 2], folder / video_name(prompt, index))
    for path in sources:
        path.unlink()
    checkpoints = {"viclip": small_viclip(tmp_path / "ViClip-InternVid-10M-FLT.pth")}
    results = evaluate(folder, ["overall_consistency"], checkpoints=checkpoints, output_dir=tmp_path, name="run",
                       dimension_options={"overall_consistency": {"clip_bpe": BPE}})
    aggregate, per_video = results["overall_consistency"]
    assert len(per_video) == 93 * 5
    assert [item["video_path"] for item in per_video[:2]] == [str(folder / video_name(suite[0], i)) for i in (0, 1)]
    assert json.loads((tmp_path / "run_eval_results.json").read_text(encoding="utf-8")) == results
    # samples 0, 2, 4 of a prompt are the same video with the same prompt, encoded in different batches (whole videos,
    # a few a pass, the last pass shorter); other prompts score otherwise
    for start in range(0, len(per_video), 5):
        scores = [item["video_results"] for item in per_video[start:start + 5]]
        assert scores[0] == pytest.approx(scores[2], **SAME_VIDEO_OTHER_BATCH)
        assert scores[0] == pytest.approx(scores[4], **SAME_VIDEO_OTHER_BATCH)
    assert len({round(item["video_results"], 6) for item in per_video[::5]}) > 80
    direct, _ = overall_consistency.compute([video_io.read_video(per_video[5]["video_path"]).frames],
                                            checkpoints=checkpoints, prompts=[suite[1]], clip_bpe=BPE)
    # one video a pass against four (measured 6.3e-8 apart at a score of 0.034)
    assert per_video[5]["video_results"] == pytest.approx(direct, **SAME_VIDEO_OTHER_BATCH)
    assert aggregate == pytest.approx(np.mean([item["video_results"] for item in per_video]), rel=1e-12)


def test_missing_checkpoints_name_their_manifest_entries(checkpoints, tmp_path):
    video = [np.zeros((2, 32, 32, 3), np.uint8)]
    with pytest.raises(FileNotFoundError, match=r"ViClip.*does not exist; `vdp download vbench-viclip`"):
        temporal_style.compute(video, checkpoints={"viclip": tmp_path / "ViClip-InternVid-10M-FLT.pth"}, prompts=["a"])
    with pytest.raises(KeyError, match=r"checkpoints\['viclip'\] is missing.*vdp download vbench-viclip"):
        overall_consistency.compute(video, checkpoints={}, prompts=["a"])
    with pytest.raises(FileNotFoundError, match=r"ViClip-InternVid-10M-FLT\.pth.*`vdp download vbench-viclip`"):
        resolve_checkpoints("temporal_style", tmp_path)
    with pytest.raises(ValueError, match=r"clip_bpe='.*nowhere\.txt\.gz' is not a file"):
        overall_consistency.compute(video, checkpoints=checkpoints, prompts=["a"], clip_bpe=tmp_path / "nowhere.txt.gz")
    with pytest.raises(ValueError, match=r"videos\[1\] has prompt ''"):
        temporal_style.compute(video * 2, checkpoints=checkpoints, prompts=["a", ""])
    with pytest.raises(ValueError, match="needs the prompt of each of the 1 videos"):
        temporal_style.compute(video, checkpoints=checkpoints)


def test_checkpoints_of_another_layout_are_refused_with_the_file(checkpoints, tmp_path):
    video = [np.zeros((2, 32, 32, 3), np.uint8)]
    state = torch.load(checkpoints["viclip"], weights_only=True)["model"]
    clip_like = tmp_path / "clip.pth"
    torch.save({"visual.conv1.weight": torch.zeros(8, 3, 14, 14)}, clip_like)
    with pytest.raises(ValueError, match=r"clip\.pth.*is not a ViCLIP checkpoint.*no vision_encoder\.conv1\.weight.*"
                                         r"`vdp download vbench-viclip`"):
        temporal_style.compute(video, checkpoints={**checkpoints, "viclip": clip_like}, prompts=["a"])
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {**state, "vision_encoder.ln_post.weight": torch.ones(64)}}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pth.*vision_encoder\.ln_post\.weight \(64,\) != \(128,\)"):
        temporal_style.compute(video, checkpoints={**checkpoints, "viclip": wrong}, prompts=["a"])
    partial = tmp_path / "partial.pth"
    torch.save({"model": {key: value for key, value in state.items() if key != "text_encoder.ln_final.bias"}}, partial)
    with pytest.raises(ValueError, match=r"partial\.pth.*text_encoder\.ln_final\.bias"):
        overall_consistency.compute(video, checkpoints={**checkpoints, "viclip": partial}, prompts=["a"])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pth.*is not a readable PyTorch file"):
        overall_consistency.compute(video, checkpoints={**checkpoints, "viclip": garbage}, prompts=["a"])


def test_vdp_eval_vbench_scores_both_dimensions_from_a_flat_weights_folder(checkpoints, tmp_path):
    from tests.helpers.vdp import run_vdp

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copyfile(checkpoints["viclip"], weights / "ViClip-InternVid-10M-FLT.pth")
    videos = tmp_path / "videos"
    videos.mkdir()
    record = OVERALL["full_vocab"]["per_video"][1]
    shutil.copyfile(FIXTURES / record["clip"], videos / f"{record['prompt']}-0.mp4")
    result = run_vdp("eval", "vbench", videos, "--dimensions", "temporal_style", "overall_consistency", "--mode",
                     "custom", "--weights-dir", weights, "-o", tmp_path / "out", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "out" / "results_eval_results.json").read_text(encoding="utf-8"))
    for dimension in ("temporal_style", "overall_consistency"):
        aggregate, [item] = results[dimension]
        assert item["video_path"] == str(videos / f"{record['prompt']}-0.mp4")
        assert item["video_results"] == pytest.approx(record["score"], rel=1e-5) and aggregate == item["video_results"]
    refused = run_vdp("eval", "vbench", videos, "--dimensions", "appearance_style", "--mode", "custom",
                      "--weights-dir", weights, "-o", tmp_path / "out")
    assert refused.returncode == 2 and "custom input cannot score ['appearance_style']" in refused.stderr
