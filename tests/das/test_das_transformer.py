"""DaSTransformer3DModel: official parity, released keys, initialisation, from_cogvideox, loading and bad input."""

import json

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import CogVideoXTransformer3DModel
from helpers import FIXTURES
from safetensors import safe_open

from video_diffusion_pack import DaSTransformer3DModel
from video_diffusion_pack.models.das_transformer import RELEASED_CONFIG

PARITY_FILE = FIXTURES / "das_transformer_parity.safetensors"
KEYS_FILE = FIXTURES / "das_released_keys.json"
TINY = dict(
    num_tracking_blocks=2, num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4,
    time_embed_dim=16, text_embed_dim=32, num_layers=4, sample_width=8, sample_height=8, sample_frames=9,
    max_text_seq_length=12, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def parity():
    with safe_open(str(PARITY_FILE), framework="pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}, f.metadata()


def tiny_inputs(batch=1, seed=0, config=TINY):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 3, config["in_channels"], config["sample_height"], config["sample_width"])
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    return dict(
        hidden_states=torch.randn(shape, generator=g),
        encoder_hidden_states=torch.randn(batch, config["max_text_seq_length"], config["text_embed_dim"], generator=g),
        timestep=torch.rand(batch, generator=g) * 1000,
        image_rotary_emb=get_3d_rotary_pos_embed(config["attention_head_dim"], ((0, 0), (4, 4)), (4, 4), 3),
    ), torch.randn(shape, generator=g)


def randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g) * 0.1)


@pytest.mark.parametrize("case", ["i2v_b1", "i2v_b2", "sincos_b1"])
def test_matches_official_output(parity, case):
    tensors, metadata = parity
    config_name = json.loads(metadata["cases"])[case]["config"]
    config = json.loads(metadata["configs"])[config_name]
    model = DaSTransformer3DModel(**config).eval()
    prefix = f"{config_name}.weights."
    weights = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
    model.load_state_dict(weights, strict=True)
    rotary = None
    if f"{case}.rotary_cos" in tensors:
        rotary = (tensors[f"{case}.rotary_cos"], tensors[f"{case}.rotary_sin"])
    with torch.no_grad():
        sample = model(
            hidden_states=tensors[f"{case}.hidden_states"],
            encoder_hidden_states=tensors[f"{case}.encoder_hidden_states"],
            timestep=tensors[f"{case}.timestep"],
            image_rotary_emb=rotary,
            tracking_maps=tensors[f"{case}.tracking_maps"],
        ).sample
    assert sample.shape == tensors[f"{case}.sample"].shape
    assert relative_error(sample, tensors[f"{case}.sample"]) <= 1e-5


def test_fixture_exercises_the_tracking_branch(parity):
    tensors, _ = parity
    for name in ("i2v", "sincos"):
        assert tensors[f"{name}.weights.combine_linears.0.weight"].abs().max() > 0
        assert tensors[f"{name}.weights.initial_combine_linear.weight"].abs().max() > 0
        assert not torch.equal(tensors[f"{name}.weights.transformer_blocks_copy.0.attn1.to_q.weight"],
                               tensors[f"{name}.weights.transformer_blocks.0.attn1.to_q.weight"])


def test_released_config_has_exactly_the_official_keys_and_shapes():
    table = json.loads(KEYS_FILE.read_text())
    official = table["shapes"]
    # the fixture script keeps its own copy of the config it ran the official code with: it must be ours
    assert table["metadata"]["config"] == RELEASED_CONFIG
    with init_empty_weights():
        model = DaSTransformer3DModel(**RELEASED_CONFIG)
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert ours == official
    assert len(ours) == 1495
    assert model.config.num_tracking_blocks == 18


def test_new_model_copy_blocks_equal_main_blocks_and_combine_linears_are_zero():
    model = DaSTransformer3DModel(**TINY)
    for index, copy_block in enumerate(model.transformer_blocks_copy):
        main = model.transformer_blocks[index].state_dict()
        for key, value in copy_block.state_dict().items():
            assert torch.equal(value, main[key]), key
            assert torch.isfinite(value).all()
        assert copy_block is not model.transformer_blocks[index]
    for linear in (*model.combine_linears, model.initial_combine_linear):
        assert not linear.weight.any() and not linear.bias.any()


def test_from_cogvideox_reproduces_the_base_model_while_combine_linears_are_zero():
    config = {k: v for k, v in TINY.items() if k != "num_tracking_blocks"}
    torch.manual_seed(0)
    base = CogVideoXTransformer3DModel(**config).eval()
    model = DaSTransformer3DModel.from_cogvideox(base, num_tracking_blocks=3)
    assert model.config.num_tracking_blocks == 3 and len(model.transformer_blocks_copy) == 3
    inputs, tracking = tiny_inputs(batch=2)
    with torch.no_grad():
        expected = base(**inputs).sample
        assert torch.equal(model(**inputs, tracking_maps=tracking).sample, expected)
        randomise(model.combine_linears, seed=1)
        randomise(model.initial_combine_linear, seed=2)
        assert relative_error(model(**inputs, tracking_maps=tracking).sample, expected) > 1e-3
        # the copy blocks own their weights: training them leaves the main stream alone
        model.transformer_blocks_copy[0].attn1.to_q.weight.add_(1.0)
        assert not torch.equal(model.transformer_blocks_copy[0].attn1.to_q.weight, base.transformer_blocks[0].attn1.to_q.weight)


def test_without_tracking_maps_it_is_the_plain_cogvideox_transformer():
    model = DaSTransformer3DModel(**TINY).eval()
    randomise(model.combine_linears, seed=3)
    base = CogVideoXTransformer3DModel(**{k: v for k, v in TINY.items() if k != "num_tracking_blocks"}).eval()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if k in base.state_dict()}, strict=True)
    inputs, _ = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(model(**inputs).sample, base(**inputs).sample)


def test_batch_elements_are_independent():
    model = DaSTransformer3DModel(**TINY).eval()
    randomise(model.combine_linears, seed=4)
    randomise(model.initial_combine_linear, seed=5)
    inputs, tracking = tiny_inputs(batch=2, seed=6)
    with torch.no_grad():
        both = model(**inputs, tracking_maps=tracking).sample
        first = model(**{k: (v[:1] if k != "image_rotary_emb" else v) for k, v in inputs.items()},
                      tracking_maps=tracking[:1]).sample
    assert relative_error(both[:1], first) < 1e-5


def test_save_and_load_round_trip_is_exact(tmp_path):
    model = DaSTransformer3DModel(**TINY).eval()
    randomise(model, seed=7)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == "DaSTransformer3DModel" and config["num_tracking_blocks"] == 2
    loaded = DaSTransformer3DModel.from_pretrained(tmp_path).eval()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_loads_a_folder_written_in_the_official_layout(tmp_path):
    model = DaSTransformer3DModel(**TINY).eval()
    randomise(model, seed=8)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["_class_name"] = "CogVideoXTransformer3DModelTracking"
    config["_diffusers_version"] = "0.32.2"
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = DaSTransformer3DModel.from_pretrained(tmp_path)
    assert isinstance(loaded, DaSTransformer3DModel) and loaded.config.num_tracking_blocks == 2
    assert torch.equal(loaded.combine_linears[1].weight, model.combine_linears[1].weight)


def test_plain_cogvideox_folder_is_refused_with_the_way_to_convert_it(tmp_path):
    base = CogVideoXTransformer3DModel(**{k: v for k, v in TINY.items() if k != "num_tracking_blocks"})
    base.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no num_tracking_blocks: it is a plain CogVideoX transformer") as error:
        DaSTransformer3DModel.from_pretrained(tmp_path)
    assert "from_cogvideox" in str(error.value) and "CogVideoXTransformer3DModel" in str(error.value)


def test_checkpoint_missing_a_tracking_key_is_reported_before_loading(tmp_path):
    from safetensors.torch import load_file, save_file

    DaSTransformer3DModel(**TINY).save_pretrained(tmp_path)
    weights_path = tmp_path / "diffusion_pytorch_model.safetensors"
    weights = load_file(str(weights_path))
    del weights["combine_linears.1.bias"]
    save_file(weights, str(weights_path))
    with pytest.raises(ValueError, match=r"missing keys \(1\): combine_linears.1.bias"):
        DaSTransformer3DModel.from_pretrained(tmp_path)


def test_tracking_maps_of_another_shape_are_refused():
    model = DaSTransformer3DModel(**TINY).eval()
    inputs, tracking = tiny_inputs()
    with pytest.raises(ValueError, match=r"tracking_maps has shape \(1, 3, 4, 8, 8\)"):
        model(**inputs, tracking_maps=tracking[:, :, :4])


def test_more_tracking_blocks_than_layers_are_refused():
    with pytest.raises(ValueError, match="num_tracking_blocks=5 must be an integer in 0..num_layers=4"):
        DaSTransformer3DModel(**{**TINY, "num_tracking_blocks": 5})


def test_from_cogvideox_refuses_other_models():
    with pytest.raises(TypeError, match="transformer=Linear"):
        DaSTransformer3DModel.from_cogvideox(torch.nn.Linear(2, 2))


def test_all_nan_weights_are_refused_with_the_file_named(tmp_path):
    from safetensors.torch import load_file, save_file

    DaSTransformer3DModel(**TINY).save_pretrained(tmp_path)
    weights_path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({key: torch.full_like(value, float("nan")) for key, value in load_file(str(weights_path)).items()},
              str(weights_path))
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model.safetensors holds non-finite weights") as error:
        DaSTransformer3DModel.from_pretrained(tmp_path)
    assert "for DaSTransformer3DModel: first 'patch_embed." in str(error.value)
