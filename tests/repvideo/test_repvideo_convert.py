"""convert_repvideo_sat_checkpoint and `vdp convert repvideo` on tiny checkpoints in the exact SAT layout."""

import json
import pathlib

import pytest
import torch
from helpers import FIXTURES
from safetensors.torch import load_file

from video_diffusion_pack import CogVideoXRepVideoPipeline, convert_repvideo_sat_checkpoint
from video_diffusion_pack.cli import main
from video_diffusion_pack.convert.repvideo_sat import SatCheckpointError
from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import save_tiny_cogvideox_repvideo_pipeline
from video_diffusion_pack.models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

KEYS = json.loads((FIXTURES / "repvideo_sat_tiny_keys.json").read_text())
CONFIG = KEYS["metadata"]["diffusers_config"]
GATES = "model.diffusion_model.transformer.learnable_gating"
POSITIONS = "model.diffusion_model.mixins.pos_embed.pos_embedding"


def sat_state(seed=0) -> dict:
    """Random values under the official tiny SAT key set (the position table is the model's sin-cos table)."""
    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in KEYS["shapes"].items()}
    state[POSITIONS] = CogVideoXRepVideoTransformer3DModel(**CONFIG).patch_embed.pos_embedding.float()
    return state


def write_sat(folder: pathlib.Path, state: dict, iteration="35000", payload=None) -> pathlib.Path:
    (folder / iteration).mkdir(parents=True)
    (folder / "latest").write_text(iteration)
    torch.save({"module": state} if payload is None else payload, folder / iteration / "mp_rank_00_model_states.pt")
    return folder


def convert(tmp_path, state, **kwargs):
    return convert_repvideo_sat_checkpoint(write_sat(tmp_path / "sat", state), tmp_path / "out",
                                           transformer_config=CONFIG, **kwargs)


def test_key_table_fixture_is_the_official_tiny_layout():
    assert KEYS["metadata"]["official_commit"] == "f7bc580"
    # per layer: 2 norms, qkv, dense, 2 MLP linears (weight + bias each), AdaLN linear, q and k norms = 18;
    # once: gates, position table, final norm, time MLP, patch and text projections, final layer = 18
    assert len(KEYS["shapes"]) == 13 * 18 + 18
    assert KEYS["shapes"][GATES] == [13]


def test_every_weight_lands_where_the_mapping_says(tmp_path):
    state = sat_state()
    model = CogVideoXRepVideoTransformer3DModel.from_pretrained(convert(tmp_path, state))
    converted = model.state_dict()
    prefix = "model.diffusion_model."
    qkv = state[prefix + "transformer.layers.12.attention.query_key_value.weight"]
    assert torch.equal(converted["transformer_blocks.12.attn1.to_k.weight"], qkv[32:64])
    modulation = state[prefix + "mixins.adaln_layer.adaLN_modulations.6.1.bias"].chunk(12)
    assert torch.equal(converted["transformer_blocks.6.norm1.linear.bias"], torch.cat(modulation[0:3] + modulation[6:9]))
    assert torch.equal(converted["transformer_blocks.6.norm2.linear.bias"], torch.cat(modulation[3:6] + modulation[9:12]))
    assert torch.equal(converted["repvideo.learnable_gating"], state[GATES])
    assert torch.equal(converted["norm_out.linear.weight"], state[prefix + "mixins.final_layer.adaLN_modulation.1.weight"])
    # no position table; per layer qkv weight and bias split in 3 (+4), AdaLN weight and bias in 2 (+2)
    assert len(converted) == len(state) - 1 + 13 * 6


def test_text_encoder_and_vae_keys_of_the_engine_are_skipped(tmp_path):
    state = sat_state()
    state["conditioner.embedders.0.transformer.shared.weight"] = torch.zeros(3, 2)
    state["first_stage_model.decoder.conv_in.weight"] = torch.zeros(2)
    out = convert(tmp_path, state)
    assert "conditioner" not in json.dumps(sorted(CogVideoXRepVideoTransformer3DModel.from_pretrained(out).state_dict()))


def test_dtype_option_casts_the_saved_weights(tmp_path):
    saved = load_file(str(pathlib.Path(convert(tmp_path, sat_state(), dtype="bf16")) / "diffusion_pytorch_model.safetensors"))
    assert {value.dtype for value in saved.values()} == {torch.bfloat16}


def test_pipeline_folder_takes_the_cogvideox_components_and_loads(tmp_path):
    tiny = save_tiny_cogvideox_repvideo_pipeline(tmp_path / "tiny")
    cogvideox = tmp_path / "cogvideox"  # the CogVideoX-2b entry of the manifest: these three folders only
    cogvideox.mkdir()
    for name in ("text_encoder", "tokenizer", "vae"):
        (tiny / name).rename(cogvideox / name)
    state = sat_state()
    out = convert_repvideo_sat_checkpoint(write_sat(tmp_path / "sat", state), tmp_path / "pipeline",
                                          cogvideox_dir=cogvideox, transformer_config=CONFIG)
    index = json.loads((pathlib.Path(out) / "model_index.json").read_text())
    assert index["_class_name"] == "CogVideoXRepVideoPipeline"
    scheduler = json.loads((pathlib.Path(out) / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["_class_name"], scheduler["snr_shift_scale"]) == ("CogVideoXDPMScheduler", 3.0)
    pipeline = CogVideoXRepVideoPipeline.from_pretrained(out)
    pipeline.set_progress_bar_config(disable=True)
    assert torch.equal(pipeline.transformer.repvideo.learnable_gating.detach(), state[GATES])
    frames = pipeline("a cat", height=64, width=64, num_frames=9, num_inference_steps=1, max_sequence_length=8).frames
    assert frames.shape == (1, 9, 64, 64, 3)


def test_cogvideox_folder_without_its_components_is_reported(tmp_path):
    (tmp_path / "cogvideox" / "vae").mkdir(parents=True)
    with pytest.raises(SatCheckpointError, match=r"lacks the component folders \['text_encoder', 'tokenizer'\]"):
        convert_repvideo_sat_checkpoint(write_sat(tmp_path / "sat", sat_state()), tmp_path / "out",
                                        cogvideox_dir=tmp_path / "cogvideox", transformer_config=CONFIG)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("model.diffusion_model.transformer.layers.3.mlp.dense_4h_to_h.bias"),
     "missing keys (1): transformer_blocks.3.ff.net.2.bias"),
    (lambda s: s.update({"model.diffusion_model.mixins.lora.0.weight": torch.zeros(1)}),
     "keys the RepVideo (CogVideoX-2B SAT) mapping does not know (1): model.diffusion_model.mixins.lora.0.weight"),
    (lambda s: s.update({"optimizer.state": torch.zeros(1)}),
     "mapping does not know (1): optimizer.state"),
    (lambda s: s.update({GATES: torch.zeros(12)}),
     "shape mismatches (1): repvideo.learnable_gating (12,) != (13,)"),
    (lambda s: s.pop(GATES), "missing keys (1): repvideo.learnable_gating"),
    (lambda s: s.pop(POSITIONS), "missing key model.diffusion_model.mixins.pos_embed.pos_embedding"),
    (lambda s: s.update({POSITIONS: s[POSITIONS] + 0.01}), "differs from the 3D sin-cos table of the config"),
])
def test_wrong_key_sets_are_listed(tmp_path, edit, message):
    state = sat_state()
    edit(state)
    with pytest.raises(SatCheckpointError) as error:
        convert(tmp_path, state)
    assert message in str(error.value)
    assert "mp_rank_00_model_states.pt" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_missing_latest_is_reported(tmp_path):
    (tmp_path / "sat").mkdir()
    with pytest.raises(SatCheckpointError, match="no `latest` file in sat_dir="):
        convert_repvideo_sat_checkpoint(tmp_path / "sat", tmp_path / "out", transformer_config=CONFIG)


def test_latest_naming_a_missing_iteration_is_reported(tmp_path):
    write_sat(tmp_path / "sat", sat_state())
    (tmp_path / "sat" / "latest").write_text("40000\n")
    with pytest.raises(SatCheckpointError, match="names iteration '40000', but .*40000/mp_rank_00_model_states.pt does not exist"):
        convert_repvideo_sat_checkpoint(tmp_path / "sat", tmp_path / "out", transformer_config=CONFIG)


def test_unreadable_latest_is_reported(tmp_path):
    write_sat(tmp_path / "sat", sat_state())
    (tmp_path / "sat" / "latest").write_text("last")
    with pytest.raises(SatCheckpointError, match="holds 'last'; it must be a positive iteration number or 'release'"):
        convert_repvideo_sat_checkpoint(tmp_path / "sat", tmp_path / "out", transformer_config=CONFIG)


def test_a_file_that_is_not_a_torch_checkpoint_is_reported(tmp_path):
    write_sat(tmp_path / "sat", sat_state())
    (tmp_path / "sat" / "35000" / "mp_rank_00_model_states.pt").write_text("not a checkpoint")
    with pytest.raises(SatCheckpointError, match="is not a torch checkpoint"):
        convert_repvideo_sat_checkpoint(tmp_path / "sat", tmp_path / "out", transformer_config=CONFIG)


def test_a_checkpoint_without_module_is_reported(tmp_path):
    write_sat(tmp_path / "sat", {}, payload={"state_dict": sat_state()})
    with pytest.raises(SatCheckpointError, match=r"has no `module` state dict .* found \['state_dict'\]"):
        convert_repvideo_sat_checkpoint(tmp_path / "sat", tmp_path / "out", transformer_config=CONFIG)


class _ClientState:
    """An object the safe loader refuses (DeepSpeed saves such entries next to `module`)."""


def test_non_tensor_objects_need_allow_pickle(tmp_path):
    write_sat(tmp_path / "sat", {}, payload={"module": sat_state(), "client_state": _ClientState()})
    with pytest.raises(SatCheckpointError, match="allow_pickle=True"):
        convert_repvideo_sat_checkpoint(tmp_path / "sat", tmp_path / "out", transformer_config=CONFIG)
    out = convert_repvideo_sat_checkpoint(tmp_path / "sat", tmp_path / "out", transformer_config=CONFIG, allow_pickle=True)
    assert (pathlib.Path(out) / "diffusion_pytorch_model.safetensors").is_file()


def test_existing_output_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        convert(tmp_path, sat_state())


def test_cli_converts_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("video_diffusion_pack.convert.repvideo_sat.RELEASED_CONFIG", CONFIG)
    write_sat(tmp_path / "sat", sat_state())
    assert main(["convert", "repvideo", "--sat", str(tmp_path / "sat"), "-o", str(tmp_path / "out")]) == 0
    assert "CogVideoXRepVideoTransformer3DModel" in capsys.readouterr().out
    assert (tmp_path / "out" / "diffusion_pytorch_model.safetensors").is_file()


def test_cli_reports_a_bad_checkpoint_with_status_1(tmp_path, capsys):
    state = sat_state()
    state.pop(GATES)
    write_sat(tmp_path / "sat", state)
    assert main(["convert", "repvideo", "--sat", str(tmp_path / "sat"), "-o", str(tmp_path / "out")]) == 1
    assert "missing keys" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--sat", "{tmp}/nowhere", "-o", "{tmp}/out"], "argument --sat: sat='{tmp}/nowhere' is not a folder"),
    (["--sat", "{tmp}", "-o", "{tmp}/out"], "has no `latest` file"),
    (["--sat", "{tmp}/sat", "--cogvideox", "{tmp}/nowhere", "-o", "{tmp}/out"], "argument --cogvideox"),
    (["--sat", "{tmp}/sat", "-o", "{tmp}/sat"], "argument -o/--output: output='{tmp}/sat' already exists"),
    (["--sat", "{tmp}/sat", "-o", "{tmp}/out", "--dtype", "fp8"], "argument --dtype: invalid choice: 'fp8'"),
])
def test_cli_checks_arguments_first(tmp_path, capsys, arguments, message):
    (tmp_path / "sat").mkdir()
    (tmp_path / "sat" / "latest").write_text("1")
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "repvideo"] + [a.format(tmp=tmp_path) for a in arguments])
    assert exit_info.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_manifest_conversion_command_is_a_valid_vdp_convert_command():
    import shlex

    from video_diffusion_pack.cli import build_parser
    from video_diffusion_pack.weights.manifest import load_manifest

    entry = load_manifest().entry_for_class("CogVideoXRepVideoPipeline")
    assert entry.repo_id == "Vchitect/RepVideo"
    words = shlex.split(entry.conversion_command)
    assert words[0] == "vdp"
    args = build_parser().parse_args(words[1:])
    assert (args.command, args.kind) == ("convert", "repvideo")
    assert args.sat.endswith(entry.comfyui_folder.split("models/", 1)[1])
    assert args.cogvideox.endswith("repvideo/CogVideoX-2b")


def test_an_all_nan_checkpoint_is_refused_and_nothing_is_written(tmp_path):
    state = {key: torch.full_like(value, float("nan")) for key, value in sat_state().items()}
    with pytest.raises(SatCheckpointError, match=r"mp_rank_00_model_states.pt holds non-finite weights") as error:
        convert(tmp_path, state)
    assert f"{len(state)} tensor(s) in all" in str(error.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sat"]


def test_a_binary_latest_file_is_named(tmp_path):
    sat = write_sat(tmp_path / "sat", sat_state())
    (sat / "latest").write_bytes(b"\xff\xfe\x00")
    # before: UnicodeDecodeError traceback
    with pytest.raises(SatCheckpointError, match=r"sat/latest is not a text file; it must hold a positive iteration"):
        convert_repvideo_sat_checkpoint(sat, tmp_path / "out", transformer_config=CONFIG)


@pytest.mark.parametrize("text, message", [
    ("{'a': 1", r"transformer/config.json is not valid JSON"),
    ("[1, 2]", r"transformer/config.json holds a JSON list; expected an object"),
    (json.dumps({**CONFIG, "num_layers": -1}), r"transformer/config.json does not describe a CogVideoX-RepVideo "
                                               r"transformer: num_layers=-1 must be >= 1"),
])
def test_a_broken_cogvideox_transformer_config_is_named(tmp_path, text, message):
    # before: JSONDecodeError / AttributeError / ValueError tracebacks
    sat = write_sat(tmp_path / "sat", sat_state())
    cogvideox = tmp_path / "cogvideox"
    for name in ("text_encoder", "tokenizer", "vae", "transformer"):
        (cogvideox / name).mkdir(parents=True)
    (cogvideox / "transformer" / "config.json").write_text(text)
    with pytest.raises(SatCheckpointError, match=message):
        convert_repvideo_sat_checkpoint(sat, tmp_path / "out", cogvideox_dir=cogvideox)
    assert not (tmp_path / "out").exists()
