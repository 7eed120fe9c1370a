"""`vdp train --local-learning MODE`: argument errors before any model loads, every mode trains the embedded
Vchitect-2.0 and RepVideo models through the generic trainer, the export is the main network only, resume carries
the auxiliary networks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
from helpers.training_data import write_training_folder

from video_diffusion_pack.cli import main
from video_diffusion_pack.training.data import ClipSettings, TrainingData, collate
from video_diffusion_pack.training.families import family_rules
from video_diffusion_pack.training.specifications import get_specification


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # one sample: every step trains on the same video and caption (the noise and timestep still vary)
    return write_training_folder(tmp_path_factory.mktemp("local") / "data", "das", count=1)


def _base(data, output, model="vchitect"):
    return ["train", "--model", model, "--data", str(data), "--output", str(output), "--report-to", "none"]


@pytest.mark.parametrize("arguments, message", [
    (["--local-learning", "man", "--local-groups", "1"],
     "argument --local-groups: local_groups=1 must be an integer >= 2"),
    (["--local-learning", "man", "--local-groups", "4"],
     "argument --local-groups: local_groups=4 is more than the denoiser's 3 blocks; allowed: 2..3"),
    (["--local-learning", "infopro", "--local-cuts", "2,1"],
     "argument --local-cuts: local_cuts=(2, 1) must be strictly increasing"),
    (["--local-learning", "infopro", "--local-cuts", "1,3"],
     "argument --local-cuts: local_cuts=(1, 3): every cut must be in 1..2"),
    (["--local-learning", "infopro", "--local-cuts", "1,x"], "argument --local-cuts: cut points '1,x' must be"),
    (["--local-learning", "auglocal", "--local-groups", "2", "--hpff-wx", "0.1"],
     "argument --hpff-wx: hpff_wx=0.1 is an option of local_learning='hpff'; mode 'auglocal' takes auglocal_depth, "
     "auglocal_tau"),
    (["--local-learning", "hpff", "--local-groups", "2", "--man-momentum", "0.9"],
     "man_momentum=0.9 is an option of local_learning='man'; mode 'hpff' takes hpff_wx, hpff_wy, hpff_patches"),
    (["--man-momentum", "0.9"], "man_momentum=0.9 is a local-learning option; give local_learning"),
    (["--local-learning", "man"], "local_learning='man' needs local_groups (--local-groups K) or local_cuts"),
    (["--local-learning", "sgd", "--local-groups", "2"],
     "local_learning='sgd' is not allowed; use one of auglocal, man, hpff, infopro"),
    (["--local-learning", "man", "--local-groups", "2", "--gradient-checkpointing"],
     "gradient_checkpointing=1.0 with local_learning='man': every block belongs to a local group, whose activations "
     "are freed after its own backward; allowed: gradient_checkpointing=0"),
    (["--local-learning", "man", "--local-groups", "2", "--type", "lora"],
     "training_type='lora' with local_learning='man': only full is supported"),
    (["--local-learning", "man", "--local-groups", "2", "--man-momentum", "1.5"],
     "argument --man-momentum: man_momentum=1.5"),
    (["--local-learning", "hpff", "--local-groups", "2", "--hpff-patches", "3"],
     "argument --hpff-patches: hpff_patches=3: the height of 32 gives 2 tokens, which do not split into 3 equal "
     "patches"),
])
def test_local_learning_argument_errors_exit_2_naming_the_value(data, tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as raised:
        main(_base(data, tmp_path / "out") + arguments)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_families_without_stages_and_repvideo_patches_are_refused(data, tmp_path, capsys):
    for model, arguments, message in (
        ("das", ["--local-learning", "man", "--local-groups", "2"],
         "model 'das' cannot train by local learning (no denoiser stages); allowed models: vchitect, repvideo"),
        ("repvideo", ["--local-learning", "hpff", "--local-groups", "2"],
         "hpff_patches=2 is not supported by model 'repvideo'"),
        ("repvideo", ["--local-learning", "infopro", "--local-groups", "8"],
         "local_groups=8 is more than the denoiser's 7 blocks"),
    ):
        with pytest.raises(SystemExit) as raised:
            main(_base(data, tmp_path / "out", model) + arguments)
        assert raised.value.code == 2
        assert message in capsys.readouterr().err


def test_config_file_takes_the_local_learning_options(data, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(f"model: vchitect\ndata: {data}\noutput: {tmp_path / 'out'}\nlocal-learning: auglocal\n"
                      "local_cuts: [2, 1]\n")
    with pytest.raises(SystemExit):
        main(["train", "--config", str(config)])
    assert "local_cuts=(2, 1) must be strictly increasing" in capsys.readouterr().err


def test_local_learning_argument_errors_import_neither_torch_nor_diffusers(data, tmp_path):
    argv = _base(data, tmp_path / "o") + ["--local-learning", "auglocal", "--local-groups", "2", "--hpff-wx", "1"]
    script = ("import sys\nfrom video_diffusion_pack.cli import main\n"
              f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
              "print('heavy:' + ','.join(m for m in ('torch', 'diffusers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "heavy:", result.stderr
    assert "hpff_wx=1.0 is an option of local_learning='hpff'" in result.stderr


def _fixed_batch_loss(model, data, transformer):
    """The specification's loss of the data's first sample, with fixed noise, timestep and no text dropout."""
    spec = get_specification(model)
    components = spec.load_components(None)
    components["transformer"] = transformer
    frames, height, width = family_rules(model).embedded_clip
    rules = family_rules(model)
    clip = ClipSettings(num_frames=frames, height=height, width=width, frame_multiple=rules.frame_multiple,
                        frame_remainder=rules.frame_remainder, size_multiple=rules.size_multiple)
    batch = collate([TrainingData(data, clip).check()[0]])
    torch.manual_seed(0)
    with torch.no_grad():
        latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
        losses = [spec.loss(spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(s),
                                         training=False)).item() for s in range(4)]
    return sum(losses) / len(losses)


def _exported_transformer(model, output):
    from video_diffusion_pack.models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel
    from video_diffusion_pack.models.vchitect_transformer import VchitectXLTransformer3DModel

    cls = VchitectXLTransformer3DModel if model == "vchitect" else CogVideoXRepVideoTransformer3DModel
    return cls.from_pretrained(Path(output) / "transformer")


@pytest.mark.parametrize("model, mode, groups", [
    ("vchitect", "auglocal", "2"), ("vchitect", "man", "2"), ("vchitect", "hpff", "3"), ("vchitect", "infopro", "3"),
    ("repvideo", "man", "3"),
])
def test_every_mode_trains_through_vdp_train_and_exports_the_main_network_only(data, tmp_path, model, mode, groups):
    output = tmp_path / "out"
    main(_base(data, output, model) + ["--local-learning", mode, "--local-groups", groups, "--steps", "12",
                                       "--lr", "2e-3"])
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 12
    # every non-final group logged its own local loss (HPFF's group 0 has none)
    expected = [f"loss_group_{i}" for i in range(int(groups) - 1) if not (mode == "hpff" and i == 0)]
    assert sorted(k for k in records[0] if k.startswith("loss_group_")) == expected
    initial = get_specification(model).load_components(None)["transformer"]
    trained = _exported_transformer(model, output)
    exported = safetensors.torch.load_file(next((output / "transformer").glob("*.safetensors")))
    assert set(exported) == set(initial.state_dict())
    assert _fixed_batch_loss(model, data, trained) < 0.9 * _fixed_batch_loss(model, data, initial)
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["settings"]["local_learning"] == mode


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state; a run with another mixed precision needs it reset (and reset after)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_resume_restores_the_auxiliary_networks(data, tmp_path, fresh_accelerate_state):
    """A run resumed from step 2 continues the curve of the uninterrupted run: MAN's trainable and EMA copies come
    back from the checkpoint (fresh copies would give other group losses at step 3)."""
    options = ["--local-learning", "man", "--local-groups", "3", "--man-momentum", "0.5", "--steps", "4",
               "--lr", "1e-3", "--gradient-accumulation-steps", "2", "--mixed-precision", "bf16"]
    main(_base(data, tmp_path / "whole") + options + ["--checkpoint-every", "2"])
    checkpoint = tmp_path / "whole" / "checkpoints" / "checkpoint-000002"
    main(_base(data, tmp_path / "resumed") + options + ["--resume", str(checkpoint)])
    whole = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [3, 4]
    for ours, theirs in zip(resumed, whole[2:]):
        for key in ("loss", "loss_group_0", "loss_group_1"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5), key


def test_embedded_block_counts_equal_the_embedded_models():
    for model in ("vchitect", "repvideo"):
        blocks, _ = get_specification(model).denoiser_modules(get_specification(model).load_components(None))
        assert family_rules(model).embedded_blocks == len(blocks), model


@pytest.mark.parametrize("model", ["vchitect", "repvideo"])
def test_stages_in_order_give_the_specifications_forward(data, model):
    spec = get_specification(model)
    components = spec.load_components(None)
    torch.manual_seed(0)
    frames, height, width = family_rules(model).embedded_clip
    channels = components["transformer"].config.in_channels
    latent_frames = frames if model == "vchitect" else (frames - 1) // 4 + 1
    latents = {"latents": torch.randn(1, latent_frames, channels, height // 8, width // 8)}
    conditions = spec.prepare_conditions(components, {"caption": ["a red circle moving right"]})
    with torch.no_grad():
        whole = spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(5))
        stages = spec.denoiser_stages(components, latents, conditions, generator=torch.Generator().manual_seed(5))
        state = stages.prelude()
        for block in stages.blocks:
            state = block(state)
        prediction = stages.head(state)
    torch.testing.assert_close(prediction, whole.prediction, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stages.target, whole.target)
    torch.testing.assert_close(stages.weights, whole.weights)
