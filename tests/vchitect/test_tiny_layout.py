"""The tiny Vchitect-2.0 family is laid out like the released checkpoint and loads with the stock classes."""

import json
import pathlib

import pytest
import torch
from helpers import FIXTURES
from safetensors import safe_open
from safetensors.torch import load_file

from video_diffusion_pack.diffusers_pipelines.vchitect import tiny

COMMITTED_LAYOUT = FIXTURES / "vchitect_tiny_official"

OFFICIAL_FILE_SET = {
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json",
    "tokenizer_2/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_3/tokenizer.json",
    "tokenizer_3/tokenizer_config.json",
    "tokenizer_3/special_tokens_map.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder_2/config.json",
    "text_encoder_2/model.safetensors",
    "text_encoder_3/config.json",
    "text_encoder_3/model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
}
ZERO_INITIALISED_IN_OFFICIAL_CODE = ("to_out_temporal", "to_add_out_temporal", "to_out_context")


@pytest.fixture(scope="module")
def generated_layout(tmp_path_factory):
    return tiny.save_tiny_official_layout(tmp_path_factory.mktemp("tiny_vchitect") / "layout", seed=0)


@pytest.fixture(params=["generated", "committed"])
def layout(request, generated_layout):
    return generated_layout if request.param == "generated" else COMMITTED_LAYOUT


def _relative_files(root: pathlib.Path) -> set:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def _safetensors_files(root: pathlib.Path) -> list:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*.safetensors"))


def test_layout_has_the_official_file_set(layout):
    assert _relative_files(layout) == OFFICIAL_FILE_SET


def test_layout_is_small(layout):
    assert sum((layout / name).stat().st_size for name in OFFICIAL_FILE_SET) < 2 * 1024 * 1024


def test_model_index_is_the_released_sd3_style_index(layout):
    index = json.loads((layout / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline"
    assert index["tokenizer"] == index["tokenizer_2"] == ["transformers", "CLIPTokenizer"]
    assert index["tokenizer_3"] == ["transformers", "T5TokenizerFast"]
    assert index["text_encoder"] == index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    assert index["text_encoder_3"] == ["transformers", "T5EncoderModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["scheduler"] == ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    assert "transformer" in index


def test_scheduler_is_flow_match_euler_with_shift_3(layout):
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(layout, subfolder="scheduler")
    assert scheduler.config.shift == 3.0
    assert scheduler.config.num_train_timesteps == 1000


@pytest.mark.parametrize("subfolder", ["tokenizer", "tokenizer_2"])
def test_clip_tokenizers_load_and_pad_to_77(layout, subfolder):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(layout, subfolder=subfolder)
    ids = tokenizer(tiny.TINY_TEXT_PROMPT, padding="max_length", max_length=77, truncation=True).input_ids
    assert tokenizer.model_max_length == 77
    assert len(ids) == 77
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.eos_token_id in ids
    assert tokenizer.unk_token_id not in ids[1 : ids.index(tokenizer.eos_token_id)]


def test_clip_g_tokenizer_pads_with_exclamation_mark_like_sd3(layout):
    from transformers import CLIPTokenizer

    assert CLIPTokenizer.from_pretrained(layout, subfolder="tokenizer").pad_token == "<|endoftext|>"
    assert CLIPTokenizer.from_pretrained(layout, subfolder="tokenizer_2").pad_token == "!"


def test_t5_tokenizer_loads_with_t5_tokenizer_fast_and_appends_eos(layout):
    from transformers import T5TokenizerFast

    tokenizer = T5TokenizerFast.from_pretrained(layout, subfolder="tokenizer_3")
    ids = tokenizer(tiny.TINY_TEXT_PROMPT, padding="max_length", max_length=256, truncation=True).input_ids
    assert len(ids) == 256
    length = ids.index(tokenizer.eos_token_id) + 1
    assert ids[length:] == [tokenizer.pad_token_id] * (256 - length)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == tiny.TINY_TEXT_PROMPT


def test_text_encoders_fit_the_transformer_text_dimensions(layout):
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    config = json.loads((layout / "transformer" / "config.json").read_text())
    hidden_sizes, projections = [], []
    for index in ("", "_2"):
        tokenizer = CLIPTokenizer.from_pretrained(layout, subfolder=f"tokenizer{index}")
        encoder = CLIPTextModelWithProjection.from_pretrained(layout, subfolder=f"text_encoder{index}")
        ids = tokenizer(tiny.TINY_TEXT_PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
        with torch.no_grad():
            output = encoder(ids, output_hidden_states=True)
        assert output.hidden_states[-2].shape[:2] == (1, 77)
        assert torch.isfinite(output.text_embeds).all()
        hidden_sizes.append(output.hidden_states[-2].shape[-1])
        projections.append(output.text_embeds.shape[-1])
    assert hidden_sizes[0] != hidden_sizes[1]
    assert sum(hidden_sizes) <= config["joint_attention_dim"]
    assert sum(projections) == config["pooled_projection_dim"]

    tokenizer = T5TokenizerFast.from_pretrained(layout, subfolder="tokenizer_3")
    encoder = T5EncoderModel.from_pretrained(layout, subfolder="text_encoder_3")
    ids = tokenizer(tiny.TINY_TEXT_PROMPT, padding="max_length", max_length=256, return_tensors="pt").input_ids
    with torch.no_grad():
        embeddings = encoder(ids)[0]
    assert embeddings.shape == (1, 256, config["joint_attention_dim"])
    assert torch.isfinite(embeddings).all()


def test_vae_decodes_a_16_channel_latent_with_8x_upsampling(layout):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(layout, subfolder="vae")
    assert vae.config.latent_channels == 16
    assert vae.config.scaling_factor == 1.5305
    assert vae.config.shift_factor == 0.0609
    assert not vae.config.use_quant_conv and not vae.config.use_post_quant_conv
    latent = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        image = vae.decode(latent).sample
    assert image.shape == (1, 3, 32, 32)
    assert torch.isfinite(image).all()


def test_transformer_config_names_the_official_class(layout):
    config = json.loads((layout / "transformer" / "config.json").read_text())
    assert config.pop("_class_name") == "VchitectXLTransformerModel"
    config.pop("_diffusers_version")
    assert config == tiny.tiny_transformer_config()


def test_transformer_weights_have_the_official_keys_and_shapes(layout):
    path = layout / "transformer" / "diffusion_pytorch_model.safetensors"
    expected = tiny.official_transformer_state_dict_shapes(tiny.tiny_transformer_config())
    with safe_open(str(path), "pt") as handle:
        found = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}
    assert found == expected
    assert len(found) == 137
    assert dtypes == {"F32"}


def test_official_key_table_drops_text_outputs_of_the_last_block():
    shapes = tiny.official_transformer_state_dict_shapes(tiny.tiny_transformer_config())
    assert "transformer_blocks.1.attn.to_add_out.weight" in shapes
    assert "transformer_blocks.2.attn.to_add_out.weight" not in shapes
    assert "transformer_blocks.2.ff_context.net.0.proj.weight" not in shapes
    assert shapes["transformer_blocks.2.norm1_context.linear.weight"] == (64, 32)
    assert shapes["transformer_blocks.1.norm1_context.linear.weight"] == (192, 32)


def test_official_key_table_rejects_caption_width_unequal_to_attention_width():
    config = dict(tiny.tiny_transformer_config(), caption_projection_dim=48)
    with pytest.raises(ValueError, match="caption_projection_dim=48"):
        tiny.official_transformer_state_dict_shapes(config)


def test_branches_zero_initialised_by_the_official_code_are_random(layout):
    weights = load_file(str(layout / "transformer" / "diffusion_pytorch_model.safetensors"))
    for key, value in weights.items():
        if any(f".{name}." in key for name in ZERO_INITIALISED_IN_OFFICIAL_CODE):
            assert value.abs().min() > 0, key


def test_pos_embed_buffer_equals_diffusers_patch_embed(layout):
    from diffusers.models.embeddings import PatchEmbed

    config = tiny.tiny_transformer_config()
    patch_embed = PatchEmbed(
        height=config["sample_size"],
        width=config["sample_size"],
        patch_size=config["patch_size"],
        in_channels=config["in_channels"],
        embed_dim=config["num_attention_heads"] * config["attention_head_dim"],
        pos_embed_max_size=config["pos_embed_max_size"],
    )
    weights = load_file(str(layout / "transformer" / "diffusion_pytorch_model.safetensors"))
    torch.testing.assert_close(weights["pos_embed.pos_embed"], patch_embed.pos_embed, rtol=0, atol=1e-7)


def test_parity_fixture_weights_are_the_committed_layout_weights():
    layout_weights = load_file(str(COMMITTED_LAYOUT / "transformer" / "diffusion_pytorch_model.safetensors"))
    fixture = load_file(str(FIXTURES / "vchitect_transformer_parity.safetensors"))
    fixture_weights = {key[len("weights."):]: value for key, value in fixture.items() if key.startswith("weights.")}
    assert fixture_weights.keys() == layout_weights.keys()
    for key, value in layout_weights.items():
        assert torch.equal(fixture_weights[key], value), key


def test_save_is_deterministic(tmp_path, generated_layout):
    again = tiny.save_tiny_official_layout(tmp_path / "again", seed=0)
    assert _safetensors_files(again) == _safetensors_files(generated_layout)
    for name in _safetensors_files(generated_layout):
        assert (again / name).read_bytes() == (generated_layout / name).read_bytes(), name


def test_seed_changes_every_component(tmp_path, generated_layout):
    other = tiny.save_tiny_official_layout(tmp_path / "other", seed=1)
    for name in _safetensors_files(generated_layout):
        assert (other / name).read_bytes() != (generated_layout / name).read_bytes(), name


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_save_rejects_a_bad_seed(tmp_path, seed):
    with pytest.raises(ValueError, match="seed="):
        tiny.save_tiny_official_layout(tmp_path / "bad", seed=seed)
