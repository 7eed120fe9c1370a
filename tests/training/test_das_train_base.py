"""`vdp train --model das --train-base`: the whole transformer trains (the base and the tracking branch), as the
embedded DaS model was trained from scratch; without it only the tracking branch trains (the official recipe)."""

import json

import pytest
import torch
from helpers.training_data import write_training_folder


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each run builds its own Accelerator; accelerate keeps its state per process, so reset it after each test."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def test_train_base_trains_the_whole_transformer_and_the_default_only_the_branch(tmp_path):
    from video_diffusion_pack.cli import main
    from video_diffusion_pack.diffusers_pipelines.das import DaSPipeline
    from video_diffusion_pack.diffusers_pipelines.das.tiny import save_tiny_das_layout

    data = write_training_folder(tmp_path / "data", "das", count=2, frames=9)
    start = save_tiny_das_layout(tmp_path / "start")
    transformer = DaSPipeline.from_pretrained(str(start)).transformer
    before = transformer.state_dict()
    changed = {}
    for name, extra in (("branch", []), ("base", ["--train-base"])):
        status = main(["train", "--model", "das", "--pretrained", str(start), "--data", str(data), "--output",
                       str(tmp_path / name), "--steps", "1", "--lr", "1e-2", "--num-frames", "9", "--height", "32",
                       "--width", "32", "--report-to", "none", "--lr-warmup-steps", "0", *extra])
        assert status in (0, None)
        after = DaSPipeline.from_pretrained(str(tmp_path / name)).transformer.state_dict()
        changed[name] = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed["branch"] and all(key.startswith(("transformer_blocks_copy.", "combine_linears.",
                                                     "initial_combine_linear.")) for key in changed["branch"])
    assert any(key.startswith("transformer_blocks.") for key in changed["base"])
    assert any(key.startswith("patch_embed.") for key in changed["base"])
    summary = json.loads((tmp_path / "base" / "training_summary.json").read_text())
    assert summary["settings"]["train_base"] is True
    assert summary["trainable_parameters"] == sum(p.numel() for p in transformer.parameters())


@pytest.mark.parametrize("changes, message", [
    ({"model": "lgvi"}, "train_base=True trains the whole DaS transformer; it needs model='das'"),
    ({"training_type": "lora"}, "training_type='full' (got model='das', training_type='lora')"),
])
def test_train_base_is_refused_outside_full_das_training(tmp_path, changes, message):
    from video_diffusion_pack.training.settings import TrainingSettings

    settings = TrainingSettings(**{"model": "das", "data": str(tmp_path), "output": str(tmp_path / "run"),
                                   "train_base": True, **changes})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings.check()
