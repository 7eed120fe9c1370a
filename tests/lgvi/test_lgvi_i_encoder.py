"""LGVIInstructionEncoder: parity with the official LGVI-I LLaVA path, loading the released layouts, round trip,
bad input."""

import json
import shutil

import pytest
import torch
from helpers import FIXTURES
from safetensors import safe_open

from video_diffusion_pack.convert.llava import load_official_instruction_encoder
from video_diffusion_pack.models.lgvi_instruction_encoder import (
    LGVIInstructionEncoder,
    build_tiny_lgvi_instruction_encoder,
)
from video_diffusion_pack.models.lgvi_instruction_prompt import (
    _ids_around_images,
    build_inpaint_conversation,
    prompt_start_index,
)

PARITY_FILE = FIXTURES / "lgvi_i_encoder_parity.safetensors"
TINY_OFFICIAL = FIXTURES / "lgvi_i_tiny_official"
LLAVA_DIR = TINY_OFFICIAL / "llava-v1.5-7b"
CLIP_DIR = TINY_OFFICIAL / "clip-vit-large-patch14-336"
OVERLAY = TINY_OFFICIAL / "lgvi-i" / "llava" / "llava_weights.pth"
IMAGE_TOKEN_INDEX = -200  # the official placeholder id of the image in the prompt ids


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def parity():
    with safe_open(str(PARITY_FILE), framework="pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}, f.metadata()


@pytest.fixture(scope="module")
def official_encoder():
    return load_official_instruction_encoder(str(LLAVA_DIR), str(CLIP_DIR), str(OVERLAY))


def first_frame(parity_tensors):
    return parity_tensors["image"].permute(2, 0, 1).float() / 255.0


def test_conversation_prompt_equals_official(parity):
    _, metadata = parity
    assert build_inpaint_conversation(metadata["request"]) == metadata["prompt"]


def test_prompt_token_layout_equals_official(parity, official_encoder):
    tensors, metadata = parity
    pieces = _ids_around_images(build_inpaint_conversation(metadata["request"]), official_encoder.tokenizer)
    assert pieces[0] + [IMAGE_TOKEN_INDEX] + pieces[1] == tensors["input_ids"].tolist()


def test_first_frame_preprocessing_equals_official(parity, official_encoder):
    tensors, _ = parity
    pixel_values = official_encoder.preprocess_first_frame(first_frame(tensors))
    assert pixel_values.shape == (1, 3, 28, 28)
    torch.testing.assert_close(pixel_values[0], tensors["pixel_values"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", ["greedy", "sampled"])
def test_generation_matches_official(parity, official_encoder, case):
    tensors, metadata = parity
    reference_text = json.loads(metadata["texts"])[case]["text"]
    do_sample = case == "sampled"
    seed, max_new_tokens = int(metadata["sample_seed"]), int(metadata["max_new_tokens"])
    pixel_values = official_encoder.preprocess_first_frame(first_frame(tensors))
    ids, features, text = official_encoder.generate_one(
        pixel_values, metadata["request"], do_sample=do_sample, max_new_tokens=max_new_tokens,
        generator=torch.Generator().manual_seed(seed),
    )
    assert ids.tolist() == tensors[f"{case}.generated_ids"].tolist()
    assert text == reference_text
    assert relative_error(features[0], tensors[f"{case}.features_full"]) <= 1e-5

    embeds, texts = official_encoder.encode_instruction(
        first_frame(tensors)[None], [metadata["request"]], generator=torch.Generator().manual_seed(seed),
        do_sample=do_sample, max_new_tokens=max_new_tokens,
    )
    assert texts == [reference_text]
    assert embeds.shape == (1, *tensors[f"{case}.features"].shape)
    assert relative_error(embeds[0], tensors[f"{case}.features"]) <= 1e-5


def test_prompt_start_equals_official(parity, official_encoder):
    _, metadata = parity
    starts = json.loads(metadata["prompt_starts"])
    assert len(starts) == 6 and starts[next(iter(starts))] > 1
    assert {text: prompt_start_index(text, official_encoder.tokenizer) for text in starts} == starts


def test_from_official_loads_the_overlay_on_top_of_llava(official_encoder):
    overlay = torch.load(OVERLAY, weights_only=True)
    base = torch.load(LLAVA_DIR / "pytorch_model-00001-of-00002.bin", weights_only=True)
    embed = official_encoder.mllm.get_input_embeddings().weight
    assert torch.equal(embed, overlay["language_embedding"]["weight"].float())
    assert not torch.equal(embed, base["model.embed_tokens.weight"])
    projector = official_encoder.mllm.model.multi_modal_projector
    assert torch.equal(projector.linear_2.bias, overlay["vision_embedding"]["2.bias"].float())
    assert torch.equal(official_encoder.transfer_head[2].weight, overlay["transfer_layer"]["2.weight"].float())
    assert official_encoder.config.cross_attention_dim == 32
    # LLaMA (embeddings, lm_head, 2 layers of 9, final norm), projector, transfer head, CLIP vision tower (3 layers)
    assert len(official_encoder.state_dict()) == 2 + 9 * 2 + 1 + 4 + 3 + 55


def copy_tiny_official(tmp_path):
    root = tmp_path / "official"
    shutil.copytree(TINY_OFFICIAL, root)
    return root / "llava-v1.5-7b", root / "clip-vit-large-patch14-336", root / "lgvi-i" / "llava" / "llava_weights.pth"


def test_from_official_names_missing_and_unexpected_keys(tmp_path):
    llava_dir, clip_dir, overlay_path = copy_tiny_official(tmp_path)
    overlay = torch.load(overlay_path, weights_only=True)
    overlay["transfer_layer"]["4.weight"] = torch.zeros(2, 2)
    del overlay["transfer_layer"]["0.bias"]
    torch.save(overlay, overlay_path)
    expected = r"missing keys \(1\): transfer_head.0.bias.*unexpected keys \(1\): transfer_head.4"
    with pytest.raises(ValueError, match=expected):
        load_official_instruction_encoder(str(llava_dir), str(clip_dir), str(overlay_path))


def test_from_official_names_shape_mismatches(tmp_path):
    llava_dir, clip_dir, overlay_path = copy_tiny_official(tmp_path)
    overlay = torch.load(overlay_path, weights_only=True)
    overlay["vision_embedding"]["0.bias"] = torch.zeros(7)
    torch.save(overlay, overlay_path)
    expected = r"shape mismatches \(1\): mllm.model.multi_modal_projector.linear_1.bias \(7,\)"
    with pytest.raises(ValueError, match=expected):
        load_official_instruction_encoder(str(llava_dir), str(clip_dir), str(overlay_path))


def test_from_official_reports_missing_files_and_parts(tmp_path):
    llava_dir, clip_dir, overlay_path = copy_tiny_official(tmp_path)
    with pytest.raises(FileNotFoundError, match="lgvi_i_llava_weights="):
        load_official_instruction_encoder(str(llava_dir), str(clip_dir), str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match="clip_dir="):
        load_official_instruction_encoder(str(llava_dir), str(tmp_path / "nope"), str(overlay_path))
    with pytest.raises(ValueError, match="cross_attention_dim=768 but the transfer head"):
        load_official_instruction_encoder(str(llava_dir), str(clip_dir), str(overlay_path), cross_attention_dim=768)
    (llava_dir / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(FileNotFoundError, match="pytorch_model-00002-of-00002.bin"):
        load_official_instruction_encoder(str(llava_dir), str(clip_dir), str(overlay_path))
    torch.save({"language_embedding": {}}, overlay_path)
    with pytest.raises(ValueError, match="expected the parts"):
        load_official_instruction_encoder(str(llava_dir), str(clip_dir), str(overlay_path))


@pytest.fixture(scope="module")
def tiny_encoder():
    return build_tiny_lgvi_instruction_encoder(seed=0, cross_attention_dim=24, max_new_tokens=6)


def test_save_and_load_round_trip(tiny_encoder, tmp_path):
    frames = torch.rand(1, 3, 30, 40, generator=torch.Generator().manual_seed(1))
    embeds, texts = tiny_encoder.encode_instruction(
        frames, ["remove the bird"], generator=torch.Generator().manual_seed(2)
    )
    tiny_encoder.save_pretrained(tmp_path / "encoder")
    loaded = LGVIInstructionEncoder.from_pretrained(tmp_path / "encoder")
    private = {"_name_or_path", "_use_default_values"}
    assert {k: v for k, v in loaded.config.items() if k not in private} == {
        k: v for k, v in tiny_encoder.config.items() if k not in private
    }
    reloaded_embeds, reloaded_texts = loaded.encode_instruction(
        frames, ["remove the bird"], generator=torch.Generator().manual_seed(2)
    )
    assert reloaded_texts == texts
    # the same weights; memory-mapped tensors may take other SIMD paths than the in-memory ones
    assert relative_error(reloaded_embeds, embeds) <= 1e-6


def test_batch_loops_per_sample_and_pads_with_zeros(tiny_encoder):
    frames = torch.rand(2, 3, 30, 40, generator=torch.Generator().manual_seed(3))
    requests = ["remove the bird", "make it about the pelican"]
    embeds, texts = tiny_encoder.encode_instruction(
        frames, requests, generator=[torch.Generator().manual_seed(4), torch.Generator().manual_seed(5)]
    )
    assert embeds.shape[0] == 2 and embeds.shape[2] == 24 and len(texts) == 2
    for index, seed in enumerate((4, 5)):
        single, single_text = tiny_encoder.encode_instruction(
            frames[index:index + 1], requests[index:index + 1], generator=torch.Generator().manual_seed(seed)
        )
        assert single_text == texts[index:index + 1]
        length = single.shape[1]
        torch.testing.assert_close(embeds[index, :length], single[0], rtol=0, atol=0)
        assert torch.count_nonzero(embeds[index, length:]) == 0


def test_sampling_is_seeded_and_greedy_is_deterministic(tiny_encoder):
    frames = torch.rand(1, 3, 30, 40, generator=torch.Generator().manual_seed(6))
    first = tiny_encoder.encode_instruction(frames, ["remove it"], generator=torch.Generator().manual_seed(9))
    again = tiny_encoder.encode_instruction(frames, ["remove it"], generator=torch.Generator().manual_seed(9))
    assert first[1] == again[1] and torch.equal(first[0], again[0])
    greedy = tiny_encoder.encode_instruction(frames, ["remove it"], do_sample=False)
    assert greedy[1] == tiny_encoder.encode_instruction(frames, ["remove it"], do_sample=False)[1]


@pytest.mark.parametrize(
    "frames, requests, kwargs, match",
    [
        (torch.rand(1, 4, 8, 8), ["x"], {}, r"first_frames=\(1, 4, 8, 8\) must be"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), ["x"], {}, "first_frames has dtype torch.uint8"),
        (torch.rand(2, 3, 8, 8), ["x"], {}, "1 requests for 2 first frames"),
        (torch.rand(1, 3, 8, 8), "x", {}, "requests='x' must be a list"),
        (torch.rand(1, 3, 8, 8), ["  "], {}, "is empty"),
        (torch.rand(1, 3, 8, 8), ["a <image> b"], {}, "contains '<image>'"),
        (torch.rand(1, 3, 8, 8), ["x"], {"max_new_tokens": 0}, "max_new_tokens=0 must be a positive int"),
        (torch.rand(1, 3, 8, 8), ["x"], {"temperature": 0}, "temperature=0 must be a positive number"),
        (torch.rand(1, 3, 8, 8), ["x"], {"max_new_tokens": 1}, "leaves no tokens after its prompt start"),
    ],
)
def test_encode_instruction_rejects_bad_input(tiny_encoder, frames, requests, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_encoder.encode_instruction(frames, requests, **kwargs)


def test_tiny_builder_checks_its_arguments():
    with pytest.raises(ValueError, match="seed=-1"):
        build_tiny_lgvi_instruction_encoder(seed=-1)
    with pytest.raises(ValueError, match="cross_attention_dim=0"):
        build_tiny_lgvi_instruction_encoder(cross_attention_dim=0)


def test_from_pretrained_refuses_all_nan_weights_naming_the_file(tiny_encoder, tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_encoder.save_pretrained(tmp_path / "encoder")
    weights_path = tmp_path / "encoder" / "diffusion_pytorch_model.safetensors"
    save_file({key: torch.full_like(value, float("nan")) for key, value in load_file(str(weights_path)).items()},
              str(weights_path))
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model.safetensors holds non-finite weights"):
        LGVIInstructionEncoder.from_pretrained(tmp_path / "encoder")


def test_official_conversion_refuses_a_nan_overlay_naming_the_file(tmp_path):
    llava_dir, clip_dir, overlay_path = copy_tiny_official(tmp_path)
    overlay = torch.load(overlay_path, weights_only=True)
    overlay["transfer_layer"]["2.weight"] = torch.full_like(overlay["transfer_layer"]["2.weight"], float("nan"))
    torch.save(overlay, overlay_path)
    with pytest.raises(ValueError, match=r"llava_weights.pth holds non-finite .*: first 'transfer_layer.2.weight'"):
        load_official_instruction_encoder(str(llava_dir), str(clip_dir), str(overlay_path))
