"""VchitectXLTransformer3DModel: official parity, batch > 1, released-config keys, RepVideo aggregation, loading errors."""

import json
import pathlib

import pytest
import torch
from accelerate import init_empty_weights
from helpers import FIXTURES
from safetensors import safe_open
from safetensors.torch import save_file

from video_diffusion_pack import RepVideoAggregation, VchitectXLTransformer3DModel
from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import official_transformer_state_dict_shapes

TINY_TRANSFORMER = FIXTURES / "vchitect_tiny_official" / "transformer"
PARITY_FILE = FIXTURES / "vchitect_transformer_parity.safetensors"
# the released Vchitect-2.0-2B geometry (SD3-medium MMDiT widths, 24 blocks)
CONFIG_2B = dict(
    sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64, num_attention_heads=24,
    joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
    pos_embed_max_size=192,
)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def parity():
    with safe_open(str(PARITY_FILE), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.fixture(scope="module")
def model():
    return VchitectXLTransformer3DModel.from_pretrained(str(TINY_TRANSFORMER)).eval()


def tiny_inputs(batch=1, frames=3, height=8, width=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(batch, frames, 16, height, width, generator=g),
        encoder_hidden_states=torch.randn(batch, 12, 32, generator=g),
        pooled_projections=torch.randn(batch, 16, generator=g),
        timestep=torch.rand(batch, generator=g) * 1000,
    )


@pytest.mark.parametrize("case", ["case_a", "case_b", "case_c"])
def test_matches_official_output_at_batch_1(parity, case):
    model = VchitectXLTransformer3DModel.from_config(VchitectXLTransformer3DModel.load_config(str(TINY_TRANSFORMER)))
    weights = {k[len("weights."):]: v for k, v in parity.items() if k.startswith("weights.")}
    model.load_state_dict(weights, strict=True)
    model.eval()
    inputs = {name: parity[f"{case}.{name}"] for name in
              ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep")}
    with torch.no_grad():
        sample = model(**inputs).sample
    expected = parity[f"{case}.sample"]  # official layout: frames flattened into the batch
    assert sample.shape == (1, *expected.shape)
    assert relative_error(sample[0], expected) <= 1e-5


def test_state_dict_keys_equal_the_official_checkpoint(parity, model):
    official_keys = {k[len("weights."):] for k in parity if k.startswith("weights.")}
    assert set(model.state_dict()) == official_keys


def test_released_2b_config_has_the_official_keys_and_shapes_on_meta_device():
    config = dict(CONFIG_2B, _class_name="VchitectXLTransformerModel", tp_size=1, rope_scaling_factor=1.0)
    with init_empty_weights():
        model = VchitectXLTransformer3DModel.from_config(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == official_transformer_state_dict_shapes(CONFIG_2B)
    assert all(p.device.type == "meta" for p in model.parameters())
    # ~2.4B parameters: SD3-medium plus seven extra 1536^2 linears per block
    assert 2.2e9 < sum(p.numel() for p in model.parameters()) < 2.6e9


def test_batch_of_two_equals_two_single_calls_with_own_timestep_and_text(model):
    inputs = tiny_inputs(batch=2)
    with torch.no_grad():
        batched = model(**inputs).sample
        for i in range(2):
            single = model(**{k: v[i : i + 1] for k, v in inputs.items()}).sample
            assert relative_error(batched[i : i + 1], single) <= 1e-5
    assert relative_error(batched[0], batched[1]) > 1e-2


@pytest.mark.parametrize("frames,height,width", [(1, 8, 8), (2, 8, 12), (4, 12, 6)])
def test_frame_counts_and_non_square_latents(model, frames, height, width):
    with torch.no_grad():
        out = model(**tiny_inputs(frames=frames, height=height, width=width)).sample
    assert out.shape == (1, frames, 16, height, width)
    assert torch.isfinite(out).all()


def test_temporal_rope_table_covers_only_the_frames_in_use():
    model = VchitectXLTransformer3DModel.from_pretrained(str(TINY_TRANSFORMER)).eval()
    with torch.no_grad():
        model(**tiny_inputs(frames=5))
    (table,) = model._rope_cache.values()
    assert table.shape == (5, model.config.attention_head_dim // 2)
    assert not hasattr(model, "freqs_cis")


def test_gradient_checkpointing_gives_the_same_gradients(model):
    inputs = tiny_inputs()
    model = VchitectXLTransformer3DModel.from_pretrained(str(TINY_TRANSFORMER))
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(**inputs).sample.square().mean().backward()
        grads.append(model.proj_out.weight.grad.clone())
    assert model.gradient_checkpointing
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_bad_inputs_raise_clear_errors(model):
    inputs = tiny_inputs()
    with pytest.raises(ValueError, match="in_channels=16"):
        model(**dict(inputs, hidden_states=torch.randn(1, 3, 4, 8, 8)))
    with pytest.raises(ValueError, match=r"divisible by patch_size=2"):
        model(**dict(inputs, hidden_states=torch.randn(1, 3, 16, 7, 8)))
    with pytest.raises(ValueError, match=r"encoder_hidden_states must be \[B=1"):
        model(**dict(inputs, encoder_hidden_states=torch.randn(2, 12, 32)))
    with pytest.raises(ValueError, match="caption_projection_dim=48"):
        VchitectXLTransformer3DModel(num_layers=1, num_attention_heads=2, attention_head_dim=16,
                                     caption_projection_dim=48)


# ----------------------------------------------------------------------------------------------- RepVideo


def official_repvideo_loop(model, inputs, gates):
    """The official RepVideo loop written out from its description: a list cache, stack().mean(0), resets at i % 6."""
    hidden = inputs["hidden_states"]
    batch, frames, _, height, width = hidden.shape
    x = model.pos_embed(hidden.flatten(0, 1))
    temb = model.time_text_embed(inputs["timestep"], inputs["pooled_projections"])
    c = model.context_embedder(inputs["encoder_hidden_states"]).repeat_interleave(frames, 0)
    rope = model._temporal_rope(frames, x.device)
    cache = [(x, c)]
    for i, block in enumerate(model.transformer_blocks):
        mean_x = torch.stack([e[0] for e in cache]).mean(0)
        mean_c = torch.stack([e[1] for e in cache]).mean(0)
        x = gates[i] * mean_x + (1 - gates[i]) * x
        c = gates[i] * mean_c + (1 - gates[i]) * c
        c, x = block(x, c, temb, frames, rope)
        cache = [(x, c)] if i % 6 == 0 else cache + [(x, c)]
    return x


def test_repvideo_off_is_exactly_vchitect_and_adds_no_parameters(model):
    assert model.repvideo is None
    assert not any("repvideo" in k for k in model.state_dict())


def test_repvideo_on_adds_only_one_gate_per_layer_initialised_to_half():
    base = VchitectXLTransformer3DModel.from_pretrained(str(TINY_TRANSFORMER))
    n_base = sum(p.numel() for p in base.parameters())
    base.enable_repvideo()
    assert sum(p.numel() for p in base.parameters()) - n_base == base.config.num_layers
    assert torch.equal(base.repvideo.learnable_gating, torch.full((3,), 0.5))
    assert base.config.repvideo_aggregation is True
    base.disable_repvideo()
    assert sum(p.numel() for p in base.parameters()) == n_base


def test_repvideo_matches_the_official_loop_with_window_resets_on_13_layers():
    torch.manual_seed(0)
    model = VchitectXLTransformer3DModel(
        sample_size=8, patch_size=2, in_channels=16, num_layers=13, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=32, caption_projection_dim=16, pooled_projection_dim=16, out_channels=16,
        pos_embed_max_size=8, repvideo_aggregation=True,
    ).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0, 0.3 if "gating" not in name else 0.0)
        model.repvideo.learnable_gating.uniform_(0.1, 0.9)  # random gates, not 0.5
        inputs = tiny_inputs(frames=3)
        reference = official_repvideo_loop(model, inputs, model.repvideo.learnable_gating)
        ours_hidden = {}
        model.transformer_blocks[-1].register_forward_hook(lambda m, a, out: ours_hidden.update(x=out[1]))
        model(**inputs)
    assert relative_error(ours_hidden["x"], reference) <= 1e-5


def test_repvideo_with_zero_gates_equals_no_aggregation(model):
    inputs = tiny_inputs()
    with torch.no_grad():
        plain = model(**inputs).sample
        model.enable_repvideo(gate_init=0.0)
        try:
            gated = model(**inputs).sample
        finally:
            model.disable_repvideo()
        assert torch.allclose(gated, plain, atol=1e-6)
        model.enable_repvideo()
        try:
            mixed = model(**inputs).sample
        finally:
            model.disable_repvideo()
    assert relative_error(mixed, plain) > 1e-3


def test_repvideo_window_size_must_be_positive():
    with pytest.raises(ValueError, match="window_size=0"):
        RepVideoAggregation(num_layers=4, window_size=0)


# ----------------------------------------------------------------------------------------------- loading


def copy_transformer(tmp_path) -> pathlib.Path:
    folder = tmp_path / "transformer"
    folder.mkdir()
    (folder / "config.json").write_text((TINY_TRANSFORMER / "config.json").read_text())
    return folder


def test_released_config_json_loads_as_is(model):
    config = json.loads((TINY_TRANSFORMER / "config.json").read_text())
    assert config["_class_name"] == "VchitectXLTransformerModel"
    assert model.config.num_layers == config["num_layers"]


def test_missing_and_unexpected_keys_are_listed_with_the_file(tmp_path):
    folder = copy_transformer(tmp_path)
    with safe_open(str(TINY_TRANSFORMER / "diffusion_pytorch_model.safetensors"), framework="pt") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}
    weights.pop("transformer_blocks.1.attn.to_q_temp.weight")
    weights["transformer_blocks.0.attn.extra.weight"] = torch.zeros(2)
    save_file(weights, str(folder / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError) as error:
        VchitectXLTransformer3DModel.from_pretrained(str(folder))
    message = str(error.value)
    assert "diffusion_pytorch_model.safetensors" in message
    assert "missing keys (1): transformer_blocks.1.attn.to_q_temp.weight" in message
    assert "unexpected keys (1): transformer_blocks.0.attn.extra.weight" in message


def test_corrupt_safetensors_file_is_reported(tmp_path):
    folder = copy_transformer(tmp_path)
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(ValueError, match=r"corrupt weights file .*diffusion_pytorch_model.safetensors"):
        VchitectXLTransformer3DModel.from_pretrained(str(folder))


def test_all_nan_weights_are_refused_with_the_file_named(tmp_path):
    folder = copy_transformer(tmp_path)
    with safe_open(str(TINY_TRANSFORMER / "diffusion_pytorch_model.safetensors"), framework="pt") as f:
        weights = {k: torch.full_like(f.get_tensor(k), float("nan")) for k in f.keys()}
    save_file(weights, str(folder / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match=r"diffusion_pytorch_model.safetensors holds non-finite weights") as error:
        VchitectXLTransformer3DModel.from_pretrained(str(folder))
    assert f"{len(weights)} tensor(s) in all" in str(error.value)


def test_frame_positions_tell_identical_frames_apart_and_are_off_as_released(model):
    assert model.frame_pos_embed is None and not any("frame_pos" in k for k in model.state_dict())
    inputs = tiny_inputs(frames=4)
    inputs["hidden_states"] = inputs["hidden_states"][:, :1].expand(-1, 4, -1, -1, -1).contiguous()
    with torch.no_grad():
        same = model(**inputs).sample
    # four identical frames: the temporal RoPE reweights identical values, so every frame's output is the same
    assert torch.allclose(same[:, 1:], same[:, :1].expand_as(same[:, 1:]), atol=1e-5)
    config = {key: value for key, value in model.config.items() if key != "_use_default_values"}
    config["frame_positions"] = 4
    positioned = VchitectXLTransformer3DModel.from_config(config).eval()
    missing, unexpected = positioned.load_state_dict(model.state_dict(), strict=False)
    assert missing == ["frame_pos_embed"] and unexpected == []
    # it starts as a sine-cosine table of the frame index, centred over the frames
    table = positioned.frame_pos_embed.detach()
    assert table.abs().sum(dim=0).max() > 0 and torch.allclose(table.mean(dim=0), torch.zeros(positioned.inner_dim),
                                                                atol=1e-6)
    with torch.no_grad():
        told_apart = positioned(**inputs).sample
        positioned.frame_pos_embed.zero_()  # a zero table is the released model
        assert torch.allclose(positioned(**inputs).sample, same, atol=1e-6)
    assert relative_error(told_apart[:, 0], told_apart[:, 3]) > 0.01
    with pytest.raises(ValueError, match="5 frames: this transformer embeds the index of at most frame_positions=4"):
        positioned(**tiny_inputs(frames=5))
    with pytest.raises(ValueError, match="frame_positions=-1 must be an integer >= 0"):
        VchitectXLTransformer3DModel.from_config({**config, "frame_positions": -1})


def _pairs_turned(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x [..., tokens, heads, c] with channel pairs (2j, 2j+1) turned by angles [tokens, c/2]."""
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def test_spatial_rope_turns_video_video_logits_by_row_and_column_only_and_is_off_as_released(model):
    assert model.config.spatial_rope_theta == 0 and model._spatial_rope(8, 8, torch.device("cpu")) is None
    config = {key: value for key, value in model.config.items() if key != "_use_default_values"}
    rotated = VchitectXLTransformer3DModel.from_config({**config, "spatial_rope_theta": 100.0}).eval()
    rotated.load_state_dict(model.state_dict(), strict=True)  # no weights of its own
    inputs = tiny_inputs(batch=2, frames=2, height=8, width=6)
    with torch.no_grad():
        assert relative_error(rotated(**inputs).sample, model(**inputs).sample) > 1e-3

    # the table: head channel pair j < c/4 turns by row * 100^(-j/(c/4)), the others by column, tokens row-major
    head_dim, rows, columns = 16, 4, 3  # an 8x6 latent in patches of 2
    table = rotated._spatial_rope(8, 6, torch.device("cpu"))
    assert table.shape == (1, rows * columns, 1, head_dim // 2)
    frequencies = 100.0 ** (-torch.arange(4, dtype=torch.float64) / 4)
    row, column = torch.meshgrid(torch.arange(rows), torch.arange(columns), indexing="ij")
    angles = torch.cat([row.reshape(-1, 1) * frequencies, column.reshape(-1, 1) * frequencies], dim=1)
    assert torch.allclose(torch.angle(table[0, :, 0]).double(), torch.atan2(angles.sin(), angles.cos()), atol=1e-5)

    # one attention module against the attention written out: rotated logits between video tokens, plain ones to text
    attention = rotated.transformer_blocks[0].attn
    g = torch.Generator().manual_seed(3)
    query, video_keys, text_keys = (torch.randn(2, n, 2, head_dim, generator=g) for n in (12, 12, 5))
    values = torch.randn(2, 17, 2, head_dim, generator=g)
    angles = angles.float()
    logits = torch.cat([
        torch.einsum("bihc,bjhc->bhij", _pairs_turned(query, angles), _pairs_turned(video_keys, angles)),
        torch.einsum("bihc,bjhc->bhij", query, text_keys),
    ], dim=-1) / head_dim ** 0.5
    expected = torch.einsum("bhij,bjhc->bihc", logits.softmax(dim=-1), values).flatten(-2)
    got = attention._spatial_with_rotations(
        query.flatten(-2), torch.cat([video_keys, text_keys], dim=1).flatten(-2), values.flatten(-2), table
    )
    assert torch.allclose(got, expected, atol=1e-5)
    for bad in (-1.0, 0.5, True, "100"):
        with pytest.raises(ValueError, match=f"spatial_rope_theta={bad!r} must be 0 \\(off, as released\\) or a RoPE"):
            VchitectXLTransformer3DModel.from_config({**config, "spatial_rope_theta": bad})
    with pytest.raises(ValueError, match="attention_head_dim=6 must be divisible by 4 for spatial_rope_theta"):
        VchitectXLTransformer3DModel.from_config(
            {**config, "spatial_rope_theta": 100.0, "attention_head_dim": 6, "caption_projection_dim": 12})
