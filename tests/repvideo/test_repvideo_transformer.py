"""CogVideoXRepVideoTransformer3DModel: parity with the official SAT DiT through the converter, the off switch."""

import json
import pathlib

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from helpers import FIXTURES
from safetensors import safe_open
from safetensors.torch import load_file

from video_diffusion_pack.convert.repvideo_sat import convert_repvideo_sat_checkpoint
from video_diffusion_pack.models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

PARITY = FIXTURES / "repvideo_sat_parity.safetensors"
ENGINE_PREFIX = "model.diffusion_model."


def _fixture():
    tensors = load_file(str(PARITY))
    with safe_open(str(PARITY), framework="pt") as f:
        metadata = f.metadata()
    return tensors, metadata


def write_sat_folder(folder: pathlib.Path, module_state: dict, iteration: int = 1) -> pathlib.Path:
    """A SAT save folder: `latest` + `<iteration>/mp_rank_00_model_states.pt` holding {'module': state}."""
    (folder / str(iteration)).mkdir(parents=True)
    (folder / "latest").write_text(str(iteration))
    torch.save({"module": module_state}, folder / str(iteration) / "mp_rank_00_model_states.pt")
    return folder


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tensors, metadata = _fixture()
    root = tmp_path_factory.mktemp("repvideo_parity")
    sat_state = {key: value for key, value in tensors.items() if key.startswith(ENGINE_PREFIX)}
    write_sat_folder(root / "sat", sat_state)
    out = convert_repvideo_sat_checkpoint(
        root / "sat", root / "transformer", transformer_config=json.loads(metadata["diffusers_config"])
    )
    return CogVideoXRepVideoTransformer3DModel.from_pretrained(out).eval(), tensors


def _tiny_config(**overrides):
    config = dict(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=8,
        text_embed_dim=16, num_layers=13, sample_width=8, sample_height=8, sample_frames=9, max_text_seq_length=4,
    )
    config.update(overrides)
    return config


def _inputs(batch=1, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(batch, 3, 4, 8, 8, generator=generator),
        encoder_hidden_states=torch.randn(batch, 4, 16, generator=generator),
        timestep=torch.tensor([321] * batch),
    )


def test_fixture_gates_are_trained_like_values_not_the_initial_half():
    tensors, metadata = _fixture()
    gates = tensors[ENGINE_PREFIX + "transformer.learnable_gating"]
    assert metadata["official_commit"] == "f7bc580"
    assert gates.shape == (13,) and not torch.allclose(gates, torch.full_like(gates, 0.5))


@pytest.mark.parametrize("case", ["b1", "b2"])
def test_converted_sat_checkpoint_matches_the_official_sat_dit(converted, case):
    model, tensors = converted
    with torch.no_grad():
        sample = model(tensors[f"{case}.x"], tensors[f"{case}.context"], tensors[f"{case}.timesteps"]).sample
    reference = tensors[f"{case}.sample"]
    assert sample.shape == reference.shape
    relative_error = ((sample - reference).norm() / reference.norm()).item()
    assert relative_error <= 1e-5, relative_error


def test_converted_gates_are_the_checkpoint_gates(converted):
    model, tensors = converted
    assert torch.equal(model.repvideo.learnable_gating.detach(), tensors[ENGINE_PREFIX + "transformer.learnable_gating"])


def test_aggregation_changes_the_official_output_so_parity_tests_it(converted):
    model, tensors = converted
    with torch.no_grad(), model.repvideo_switched(False):
        sample = model(tensors["b1.x"], tensors["b1.context"], tensors["b1.timesteps"]).sample
    reference = tensors["b1.sample"]
    assert ((sample - reference).norm() / reference.norm()).item() > 1e-2


def test_switched_off_equals_stock_cogvideox_bit_for_bit():
    torch.manual_seed(0)
    stock = CogVideoXTransformer3DModel(**_tiny_config()).eval()
    model = CogVideoXRepVideoTransformer3DModel.from_cogvideox(stock)
    model.disable_repvideo()
    with torch.no_grad():
        assert torch.equal(model(**_inputs(batch=2)).sample, stock(**_inputs(batch=2)).sample)
    assert set(model.state_dict()) == set(stock.state_dict())
    assert model.config.repvideo_aggregation is False


def test_config_off_builds_the_stock_key_set_and_forward():
    torch.manual_seed(0)
    model = CogVideoXRepVideoTransformer3DModel(**_tiny_config(), repvideo_aggregation=False).eval()
    stock = CogVideoXTransformer3DModel(**_tiny_config()).eval()
    stock.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(model(**_inputs()).sample, stock(**_inputs()).sample)


def test_from_cogvideox_shares_weights_and_adds_half_gates():
    stock = CogVideoXTransformer3DModel(**_tiny_config()).eval()
    model = CogVideoXRepVideoTransformer3DModel.from_cogvideox(stock)
    assert model.proj_out.weight.data_ptr() == stock.proj_out.weight.data_ptr()
    assert torch.equal(model.repvideo.learnable_gating.detach(), torch.full((13,), 0.5))
    assert set(model.state_dict()) - set(stock.state_dict()) == {"repvideo.learnable_gating"}
    with torch.no_grad():
        assert not torch.allclose(model(**_inputs()).sample, stock(**_inputs()).sample)


def test_from_cogvideox_refuses_other_models():
    with pytest.raises(TypeError, match="transformer=Linear must be a plain diffusers CogVideoXTransformer3DModel"):
        CogVideoXRepVideoTransformer3DModel.from_cogvideox(torch.nn.Linear(2, 2))


def test_repvideo_switched_restores_the_trained_gates():
    model = CogVideoXRepVideoTransformer3DModel(**_tiny_config()).eval()
    with torch.no_grad():
        model.repvideo.learnable_gating.uniform_(0.1, 0.9)
    gates = model.repvideo.learnable_gating.detach().clone()
    with model.repvideo_switched(False):
        assert model.repvideo is None
    assert model.config.repvideo_aggregation is True
    assert torch.equal(model.repvideo.learnable_gating.detach(), gates)


def test_save_load_round_trip_is_exact(tmp_path):
    model = CogVideoXRepVideoTransformer3DModel(**_tiny_config()).eval()
    with torch.no_grad():
        model.repvideo.learnable_gating.uniform_(0.1, 0.9)
    model.save_pretrained(tmp_path)
    loaded = CogVideoXRepVideoTransformer3DModel.from_pretrained(tmp_path).eval()
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)
    public = lambda config: {key: value for key, value in config.items() if not key.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(model.config)
    # equal weights at other addresses may take other CPU kernel paths: equal up to float32 rounding
    with torch.no_grad():
        torch.testing.assert_close(loaded(**_inputs()).sample, model(**_inputs()).sample, rtol=0, atol=1e-5)
    assert json.loads((tmp_path / "config.json").read_text())["_class_name"] == "CogVideoXRepVideoTransformer3DModel"


def test_from_pretrained_refuses_a_plain_cogvideox_folder(tmp_path):
    CogVideoXTransformer3DModel(**_tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no repvideo_aggregation: it is a plain CogVideoX transformer"):
        CogVideoXRepVideoTransformer3DModel.from_pretrained(tmp_path)


def test_repvideo_aggregation_must_be_a_bool():
    with pytest.raises(ValueError, match="repvideo_aggregation='yes' must be True or False"):
        CogVideoXRepVideoTransformer3DModel(**_tiny_config(), repvideo_aggregation="yes")


def test_from_pretrained_refuses_all_nan_weights_naming_the_file(tmp_path):
    from safetensors.torch import save_file

    CogVideoXRepVideoTransformer3DModel(**_tiny_config()).save_pretrained(tmp_path)
    weights_path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({key: torch.full_like(value, float("nan")) for key, value in load_file(str(weights_path)).items()},
              str(weights_path))
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model.safetensors holds non-finite weights") as error:
        CogVideoXRepVideoTransformer3DModel.from_pretrained(tmp_path)
    assert "for CogVideoXRepVideoTransformer3DModel: first 'patch_embed." in str(error.value)


def test_from_pretrained_refuses_one_infinite_gate(tmp_path):
    from safetensors.torch import save_file

    CogVideoXRepVideoTransformer3DModel(**_tiny_config()).save_pretrained(tmp_path)
    weights_path = tmp_path / "diffusion_pytorch_model.safetensors"
    weights = load_file(str(weights_path))
    weights["repvideo.learnable_gating"][3] = float("inf")
    save_file(weights, str(weights_path))
    with pytest.raises(ValueError, match=r"first 'repvideo.learnable_gating' \(13,\), 1 tensor\(s\) in all"):
        CogVideoXRepVideoTransformer3DModel.from_pretrained(tmp_path)
