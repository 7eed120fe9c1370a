"""Real multi-process training on 2 CPU processes (gloo): DDP through accelerate with `vdp train`'s module entry point
under torchrun, and each specification's FSDP plan applied with `fully_shard`."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.training_data import write_training_folder
from safetensors.torch import load_file

from video_diffusion_pack.training.settings import TrainingSettings
from video_diffusion_pack.training.trainer import Trainer

HELPERS = Path(__file__).resolve().parents[1] / "helpers"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(*arguments, timeout=300):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *arguments]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _losses(output):
    return [json.loads(line)["loss"] for line in (output / "metrics.jsonl").read_text().splitlines()]


def test_ddp_on_two_processes_equals_one_process_with_the_doubled_batch(tmp_path):
    """Process r of W takes data batch m * W + r of micro-batch m (and its noise), so 2 processes with batch 1 step
    on the same 2 samples, noise and mean gradient as 1 process accumulating 2 micro-batches of 1 per step."""
    data = write_training_folder(tmp_path / "data", "das", count=4, frames=2, index="prompts.txt")
    common = ["--model", "vchitect", "--data", str(data), "--steps", "3", "--num-frames", "2", "--height", "32",
              "--width", "32", "--report-to", "none"]
    _torchrun("-m", "video_diffusion_pack.training", *common, "--output", str(tmp_path / "ddp"))
    summary = json.loads((tmp_path / "ddp" / "training_summary.json").read_text())
    assert summary["processes"] == 2
    try:
        Trainer(TrainingSettings(model="vchitect", data=str(data), output=str(tmp_path / "one"), steps=3, num_frames=2,
                                 height=32, width=32, report_to="none",
                                 gradient_accumulation_steps=2)).run()
    finally:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    ddp, one = _losses(tmp_path / "ddp"), _losses(tmp_path / "one")
    assert len(ddp) == 3 and ddp[0] != ddp[1]
    np.testing.assert_allclose(ddp, one, rtol=0, atol=1e-5)
    # at the recipe's lr 1e-4; AdamW normalises each gradient, so a parameter whose gradient is near zero (its last
    # bits differ between DDP's all-reduce mean and the accumulated sum) moves by up to ~lr/10 differently, and the
    # weight difference grows with the learning rate (1.1e-4 at lr 3e-3) while the losses stay within 1e-6
    weights = "transformer/diffusion_pytorch_model.safetensors"
    trained, reference = load_file(tmp_path / "ddp" / weights), load_file(tmp_path / "one" / weights)
    assert max((trained[k] - reference[k]).abs().max().item() for k in reference) <= 1e-5


# the plan each family must have: its transformer blocks (LGVI: the UNet's down and up blocks) as FSDP units, the
# frozen encoders whole on every process
PLANS = {
    "vchitect": (["VchitectTransformerBlock"], {"text_encoder", "text_encoder_2", "text_encoder_3", "vae"}),
    "repvideo": (["CogVideoXBlock"], {"text_encoder", "vae"}),
    "das": (["CogVideoXBlock"], {"text_encoder", "vae"}),
    "lgvi": (["RoviDownBlock", "RoviUpBlock"], {"text_encoder", "vae"}),
}


def test_each_specifications_fsdp_plan_on_two_gloo_processes_matches_one_process(tmp_path):
    report_path = tmp_path / "plan.json"
    _torchrun(str(HELPERS / "fsdp_plan_worker.py"), str(report_path), *PLANS, timeout=400)
    report = json.loads(report_path.read_text())
    for name, (units, replicated) in PLANS.items():
        entry = report[name]
        assert entry["world"] == 2
        assert entry["units"] == units, name
        assert set(entry["replicated"]) == replicated, name
        assert all(count >= 2 for count in entry["unit_counts"].values()), name
        assert entry["whole_losses"][0] != entry["whole_losses"][1], name
        np.testing.assert_allclose(entry["sharded_losses"], entry["whole_losses"], rtol=0, atol=1e-5, err_msg=name)


def test_fsdp_plugin_carries_the_plan():
    pytest.importorskip("accelerate")
    from video_diffusion_pack.training.sharding import ShardingPlan, fsdp_plugin

    class Block:
        pass

    plugin = fsdp_plugin(ShardingPlan("transformer", (Block,), ("vae",)))
    assert plugin.fsdp_version == 2
    assert plugin.transformer_cls_names_to_wrap == ["Block"]
    assert plugin.reshard_after_forward is True


def test_local_learning_on_two_processes_equals_one_process_accumulating_the_same_samples(tmp_path):
    """The local-learning step all-reduces the gradients of the denoiser and of the auxiliary networks itself (its
    per-group backwards bypass DDP's reducer): 2 processes with batch 1 follow 1 process accumulating 2 micro-batches."""
    data = write_training_folder(tmp_path / "data", "das", count=4, frames=2, index="prompts.txt")
    common = ["--model", "vchitect", "--data", str(data), "--steps", "3", "--num-frames", "2", "--height", "32",
              "--width", "32", "--report-to", "none", "--local-learning", "infopro", "--local-groups", "2"]
    _torchrun("-m", "video_diffusion_pack.training", *common, "--output", str(tmp_path / "ddp"))
    assert json.loads((tmp_path / "ddp" / "training_summary.json").read_text())["processes"] == 2
    try:
        Trainer(TrainingSettings(model="vchitect", data=str(data), output=str(tmp_path / "one"), steps=3, num_frames=2,
                                 height=32, width=32, report_to="none", gradient_accumulation_steps=2,
                                 local_learning="infopro", local_groups=2)).run()
    finally:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    ddp, one = _losses(tmp_path / "ddp"), _losses(tmp_path / "one")
    assert len(ddp) == 3 and ddp[0] != ddp[1]
    np.testing.assert_allclose(ddp, one, rtol=0, atol=1e-5)
    weights = "transformer/diffusion_pytorch_model.safetensors"
    trained, reference = load_file(tmp_path / "ddp" / weights), load_file(tmp_path / "one" / weights)
    assert trained.keys() == reference.keys()
    assert max((trained[k] - reference[k]).abs().max().item() for k in reference) <= 1e-5
