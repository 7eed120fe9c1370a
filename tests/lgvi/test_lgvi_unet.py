"""RoviUNet3DConditionModel: parity with the official RoviModel, key tables, config, batching, loading."""

import functools
import importlib.util
import inspect
import json

import pytest
import torch
from accelerate import init_empty_weights
from helpers import FIXTURES
from safetensors.torch import load_file

from video_diffusion_pack.models.rovi_unet import RoviUNet3DConditionModel

_spec = importlib.util.spec_from_file_location("make_lgvi_fixtures", FIXTURES / "make_lgvi_fixtures.py")
make_lgvi_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_lgvi_fixtures)
CONFIGS, CASES = make_lgvi_fixtures.CONFIGS, make_lgvi_fixtures.CASES


@pytest.fixture(scope="module")
def parity():
    return load_file(str(FIXTURES / make_lgvi_fixtures.UNET_FIXTURE))


@functools.lru_cache(maxsize=None)
def _tiny_model(config_name: str) -> RoviUNet3DConditionModel:
    """The seeded tiny model of a config (built once; tests only run it)."""
    model = RoviUNet3DConditionModel(**CONFIGS[config_name]).eval()
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    model.load_state_dict(make_lgvi_fixtures.tiny_unet_weights(config_name, shapes), strict=True)
    return model


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


@pytest.mark.parametrize("case", list(CASES))
def test_output_equals_the_official_roviModel(parity, case):
    model = _tiny_model(CASES[case][0])
    inputs = {key: parity[f"{case}.{key}"] for key in ("sample", "img_condition", "encoder_hidden_states", "timestep")}
    with torch.no_grad():
        output = model(**inputs)
    assert output.sample.shape == parity[f"{case}.expected_sample"].shape
    assert _relative_error(output.sample, parity[f"{case}.expected_sample"]) <= 1e-5
    if f"{case}.expected_mask" in parity:
        assert output.mask.shape == parity[f"{case}.expected_mask"].shape
        assert _relative_error(output.mask, parity[f"{case}.expected_mask"]) <= 1e-5
    else:
        assert output.mask is None


def test_state_dict_keys_and_shapes_equal_the_official_at_sd15_geometry():
    recorded = json.loads((FIXTURES / make_lgvi_fixtures.KEYS_FIXTURE).read_text())
    assert set(recorded["shapes"]) == set(make_lgvi_fixtures.RELEASED_CANDIDATES)
    for name, config in make_lgvi_fixtures.RELEASED_CANDIDATES.items():
        assert recorded["metadata"]["configs"][name] == json.loads(json.dumps(config))
        with init_empty_weights():
            model = RoviUNet3DConditionModel(**config)
        ours = {key: list(value.shape) for key, value in model.state_dict().items()}
        assert ours == recorded["shapes"][name], name


def test_config_arguments_equal_the_official_constructor():
    recorded = json.loads((FIXTURES / make_lgvi_fixtures.KEYS_FIXTURE).read_text())["metadata"]["init_arguments"]
    ours = [name for name in inspect.signature(RoviUNet3DConditionModel.__init__).parameters if name != "self"]
    assert ours == recorded


# the mask config has four levels: at 16x16 its lowest GroupNorms still see more than a handful of values
@pytest.mark.parametrize("config_name, size", [("lan_previous", 8), ("mask", 16)])
def test_batch_of_two_equals_two_single_runs(config_name, size):
    model = _tiny_model(config_name)
    generator = torch.Generator().manual_seed(5)
    sample = torch.randn(2, 4, 3, size, size, generator=generator)
    condition = torch.randn(2, 4, 3, size, size, generator=generator)
    text = torch.randn(2, 7, 32, generator=generator)
    timesteps = torch.tensor([900.0, 30.0])
    with torch.no_grad():
        both = model(sample, timesteps, text, condition)
        singles = [model(sample[i : i + 1], timesteps[i], text[i : i + 1], condition[i : i + 1]) for i in range(2)]
    torch.testing.assert_close(both.sample, torch.cat([s.sample for s in singles]), rtol=1e-5, atol=1e-5)
    if both.mask is not None:
        torch.testing.assert_close(both.mask, torch.cat([s.mask for s in singles]), rtol=1e-5, atol=1e-5)


def test_return_dict_false_gives_sample_and_mask_when_the_model_has_a_mask_decoder(parity):
    inputs = {key: parity[f"mask_b1.{key}"] for key in ("sample", "img_condition", "encoder_hidden_states", "timestep")}
    with torch.no_grad():
        as_tuple = _tiny_model("mask")(**inputs, return_dict=False)
        plain = _tiny_model("concat8")(**inputs, return_dict=False)
    assert len(as_tuple) == 2 and as_tuple[1].shape == (1, 1, 3, 16, 16)
    assert len(plain) == 1


def test_zero_initialised_branches_match_the_official_initialisation():
    model = RoviUNet3DConditionModel(**CONFIGS["lan_previous"], mask_decoder_type=None)
    assert torch.count_nonzero(model.down_blocks[0].attentions[0].transformer_blocks[0].attn_temp.to_out[0].weight) == 0
    assert torch.count_nonzero(model.down_blocks[0].attentions[0].transformer_blocks[0].lan_cross_attn.to_out[0].weight) == 0
    assert torch.count_nonzero(model.up_blocks[1].attentions[0].transformer_blocks[0].cross_frame_attn.to_out[0].weight) == 0
    add = RoviUNet3DConditionModel(**CONFIGS["add4"])
    assert torch.count_nonzero(add.condition_conv_in.weight) == 0 and torch.count_nonzero(add.condition_conv_in.bias) == 0


def test_from_pretrained_loads_a_folder_whose_config_names_the_official_class(tmp_path):
    model = _tiny_model("concat8")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["_class_name"] = "RoviModel"
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = RoviUNet3DConditionModel.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_from_pretrained_names_the_file_and_the_missing_keys(tmp_path):
    _tiny_model("concat8").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["lan_cross_attn"] = True
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model.safetensors.*missing keys.*lan_cross_attn"):
        RoviUNet3DConditionModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(in_channels=5), "in_channels=5"),
        (dict(cross_frame_type="random"), "cross_frame_type='random'"),
        (dict(mask_decoder_type="Other"), "mask_decoder_type='Other'"),
        (dict(dual_cross_attention=True), "dual_cross_attention"),
        (dict(down_block_types=("CrossAttnDownBlock2D", "DownBlock3D")), "down_block_types"),
    ],
)
def test_unsupported_config_is_refused_when_built(override, message):
    with pytest.raises(ValueError, match=message):
        RoviUNet3DConditionModel(**{**CONFIGS["concat8"], **override})


def test_config_keys_the_constructor_does_not_take_are_ignored_as_diffusers_does(tmp_path):
    # a config written from Stable Diffusion's 2-D UNet config (as the official from_pretrained_2d does) has extras
    _tiny_model("concat8").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(_class_name="RoviModel", addition_embed_type=None, time_cond_proj_dim=None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = RoviUNet3DConditionModel.from_pretrained(tmp_path)
    assert loaded.config.in_channels == 8
    assert all(torch.equal(value, loaded.state_dict()[key]) for key, value in _tiny_model("concat8").state_dict().items())


def test_from_pretrained_refuses_all_nan_weights_naming_the_file(tmp_path):
    from safetensors.torch import save_file

    _tiny_model("concat8").save_pretrained(tmp_path)
    weights_path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({key: torch.full_like(value, float("nan")) for key, value in load_file(str(weights_path)).items()},
              str(weights_path))
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model.safetensors holds non-finite weights"):
        RoviUNet3DConditionModel.from_pretrained(tmp_path)
