"""Whole runs of the generic trainer on the embedded Vchitect model: resume equivalence and its refusals, the progress
bar, tracker, validation videos and training_summary.json, --push-to-hub against the local Hub, and the scale options
refused where this machine cannot run them."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.training_data import write_training_folder
from safetensors.torch import load_file

from video_diffusion_pack.cli import main
from video_diffusion_pack.training.settings import TrainingSettings
from video_diffusion_pack.training.trainer import StepResult, Trainer, TrainingStep

# the embedded Vchitect model on 2-frame 32x32 clips: a step takes a fraction of a second on one core
CLIP = dict(model="vchitect", num_frames=2, height=32, width=32, report_to="none")


@pytest.fixture(autouse=True)
def fresh_accelerate():
    """Each run builds its own Accelerator; accelerate keeps its state per process, so reset it after each test."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_training_folder(tmp_path_factory.mktemp("data"), "das", count=4, frames=5, index="prompts.txt")


def _settings(data, output, **changes):
    return TrainingSettings(**{**CLIP, "data": str(data), "output": str(output), **changes})


def _losses(output):
    return [json.loads(line)["loss"] for line in (output / "metrics.jsonl").read_text().splitlines()]


class _Interrupt(TrainingStep):
    """The default step, interrupted (as by Ctrl-C) on its ``at``-th call."""

    def __init__(self, at):
        self.at, self.calls = at, 0

    def __call__(self, trainer, latents, conditions, generator) -> StepResult:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().__call__(trainer, latents, conditions, generator)


def test_resumed_run_continues_the_uninterrupted_loss_curve(data, tmp_path):
    # a schedule that changes every step and accumulation, so that the scheduler, optimiser and data position all
    # have to come back from the checkpoint
    run = dict(steps=5, checkpoint_every=2, gradient_accumulation_steps=2, lr_scheduler="cosine", lr_warmup_steps=1,
               learning_rate=3e-3)
    Trainer(_settings(data, tmp_path / "whole", **run)).run()
    with pytest.raises(KeyboardInterrupt):  # interrupted in step 3, after checkpoint-000002
        Trainer(_settings(data, tmp_path / "cut", **run), step=_Interrupt(at=2 * 2 + 1)).run()
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-000002"]
    summary = Trainer(_settings(data, tmp_path / "cut", resume="latest", **run)).run()
    assert summary["resumed_from_step"] == 2
    whole, resumed = _losses(tmp_path / "whole"), _losses(tmp_path / "cut")
    assert len(whole) == len(resumed) == 5
    np.testing.assert_allclose(resumed, whole, rtol=0, atol=1e-6)
    first = load_file(tmp_path / "whole" / "transformer" / "diffusion_pytorch_model.safetensors")
    second = load_file(tmp_path / "cut" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert max((first[k] - second[k]).abs().max().item() for k in first) <= 1e-6


def test_resuming_a_checkpoint_of_another_model_or_settings_is_refused_before_a_model_loads(data, tmp_path):
    Trainer(_settings(data, tmp_path / "run", steps=1)).run()
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-000001"
    probe = ("import sys\nfrom video_diffusion_pack.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    print('exit', e.code)\n"
             "print('loaded:' + ','.join(m for m in ('diffusers', 'transformers') if m in sys.modules))")
    base = ["train", "--data", str(data), "--num-frames", "5", "--height", "32", "--width", "32", "--report-to", "none"]
    for arguments, message in (
        (["--model", "repvideo", "--output", str(tmp_path / "other"), "--resume", str(checkpoint)],
         "model: checkpoint 'vchitect', this run 'repvideo'"),
        (["--model", "vchitect", "--output", str(tmp_path / "run"), "--resume", "latest", "--lr", "0.5",
          "--num-frames", "2"], "learning_rate: checkpoint 0.0001, this run 0.5"),
    ):
        result = subprocess.run([sys.executable, "-c", probe, *base, *arguments], capture_output=True, text=True,
                                timeout=120)
        assert "is a checkpoint of another run; its settings differ" in result.stderr, result.stderr
        assert message in result.stderr
        assert result.stdout.splitlines()[-2:] == ["exit 2", "loaded:"], result.stdout


def test_progress_tracker_validation_videos_and_summary(data, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="the tracker half of this test needs tensorboard (the test extra)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from video_diffusion_pack.video_io import read_video

    output = tmp_path / "run"
    summary = Trainer(_settings(data, output, steps=4, validation_every=2, validation_steps=2, report_to="tensorboard"),
                      command="vdp train --model vchitect ...").run()
    progress = capsys.readouterr().err
    for field in ("loss=", "lr=", "steps_per_s="):
        assert field in progress
    assert "4/4" in progress
    videos = sorted((output / "validation").glob("*.mp4"))
    assert [v.name for v in videos] == ["step-000002.mp4", "step-000004.mp4"]
    assert read_video(videos[-1]).frames.shape == (2, 32, 32, 3)
    on_disk = json.loads((output / "training_summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["command"] == "vdp train --model vchitect ..."
    assert on_disk["settings"]["steps"] == on_disk["steps"] == 4
    assert on_disk["final_loss"] == _losses(output)[-1]
    assert on_disk["time_s"] > 0 and on_disk["peak_memory_bytes"] > 50 * 2**20
    assert on_disk["validation_videos"] == [str(v) for v in videos]
    events = EventAccumulator(str(output / "logs" / "vdp-train"), size_guidance={"images": 0}).Reload()
    assert {"loss", "lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4]
    np.testing.assert_allclose([e.value for e in events.Scalars("loss")], _losses(output), rtol=1e-6)
    images = [(e.step, e.width, e.height) for tag in events.Tags()["images"] for e in events.Images(tag)]
    # one image a validation video, at the step it was made: its two 32x32 frames side by side
    assert sorted(images) == [(2, 64, 32), (4, 64, 32)]


def test_push_to_hub_uploads_the_export_to_the_hub(data, tmp_path, monkeypatch):
    from helpers.fake_hub import FakeHub

    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "writer")
        hub.write_tokens = {"writer"}
        output = tmp_path / "lora"
        summary = Trainer(_settings(data, output, steps=1, training_type="lora", lora_rank=2,
                                    push_to_hub="me/vchitect-lora")).run()
        files = hub.repos["me/vchitect-lora"].files
        assert sorted(files) == ["pytorch_lora_weights.safetensors", "training_summary.json"]
        assert files["pytorch_lora_weights.safetensors"] == (output / "pytorch_lora_weights.safetensors").read_bytes()
        assert summary["pushed_to_hub"].startswith(f"{hub.url}/me/vchitect-lora/commit/")

        full = tmp_path / "full"
        Trainer(_settings(data, full, steps=1, push_to_hub="me/vchitect-full")).run()
        files = hub.repos["me/vchitect-full"].files
        index = json.loads(files["model_index.json"])
        assert index["_class_name"] == "VchitectRepVideoPipeline"
        on_disk = sorted(str(p.relative_to(full)) for p in full.rglob("*") if p.is_file()
                         and p.relative_to(full).parts[0] in [k for k in index if not k.startswith("_")])
        assert sorted(f for f in files if "/" in f) == on_disk
        assert not any(f.startswith(("checkpoints/", "logs/")) or f == "metrics.jsonl" for f in files)
        weights = "transformer/diffusion_pytorch_model.safetensors"
        assert files[weights] == (full / weights).read_bytes()

        # a token without write access fails before training: no model loads, nothing is written
        monkeypatch.setenv("HF_TOKEN", "reader")
        with pytest.raises(ValueError, match="push_to_hub='me/other': the repo cannot be created"):
            Trainer(_settings(data, tmp_path / "refused", steps=1, push_to_hub="me/other"))
        assert not (tmp_path / "refused").exists() and "me/other" not in hub.repos


@pytest.mark.parametrize("arguments, message", [
    (["--push-to-hub", "not a repo"], "argument --push-to-hub: push_to_hub='not a repo' is not a Hub repo id"),
    (["--optimizer", "sgd"], "argument --optimizer: optimizer='sgd' is not allowed; use one of adamw, adamw8bit"),
])
def test_scale_argument_errors_exit_2(data, tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as raised:
        main(["train", "--model", "vchitect", "--data", str(data), "--output", str(tmp_path / "o"), *arguments])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")
def test_fsdp_and_8bit_adamw_are_refused_on_cpu_before_a_model_loads(data, tmp_path):
    with pytest.raises(ValueError, match=r"fsdp=True \(--fsdp\): accelerate's FSDP plugin runs on CUDA GPUs"):
        Trainer(_settings(data, tmp_path / "a", fsdp=True))
    try:
        import bitsandbytes  # noqa: F401
        expected = "bitsandbytes' 8-bit AdamW keeps its states on CUDA GPUs"
    except ImportError:
        expected = r"needs bitsandbytes: pip install 'comfyui-video-diffusion-pack\[bnb\]'"
    with pytest.raises(ValueError, match=expected):
        Trainer(_settings(data, tmp_path / "b", optimizer="adamw8bit"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("fraction, recomputed", [(1.0, 7), (0.5, 4), (0.0, 0)])
def test_gradient_checkpointing_recomputes_the_chosen_blocks_of_the_repvideo_transformer(fraction, recomputed):
    """The CogVideoX-RepVideo transformer has its own forward (which does not read diffusers' checkpointing flag):
    the chosen blocks run again in the backward, and the gradients are unchanged."""
    from video_diffusion_pack.training.specifications import get_specification
    from video_diffusion_pack.training.trainer import enable_gradient_checkpointing

    spec = get_specification("repvideo")
    components = spec.load_components(None)
    transformer = components["transformer"]
    batch = {"video": torch.rand(1, 9, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1,
             "caption": ["a corgi"]}
    torch.manual_seed(0)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)

    def gradients():
        transformer.zero_grad()
        calls = []
        # on each block's first layer: the recomputation calls the block's own forward, which calls its layers
        hooks = [block.norm1.register_forward_hook(lambda *_: calls.append(1)) for block in transformer.transformer_blocks]
        loss = spec.loss(spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(1)))
        forward_calls = len(calls)
        loss.backward()
        for hook in hooks:
            hook.remove()
        return len(calls) - forward_calls, {n: p.grad.clone() for n, p in transformer.named_parameters()}

    plain_calls, plain = gradients()
    assert enable_gradient_checkpointing(transformer, fraction) == recomputed
    calls, checkpointed = gradients()
    assert (plain_calls, calls) == (0, recomputed)
    assert max((checkpointed[n] - plain[n]).abs().max().item() for n in plain) <= 1e-6


@pytest.mark.parametrize("model", ["vchitect", "lgvi"])
def test_precomputed_and_on_the_fly_training_give_the_same_losses(model, tmp_path):
    """--precompute encodes latents and text once into the cache and trains without the VAE and text encoders; with
    the same seed the loss curve is the one of encoding every step."""
    family = "lgvi" if model == "lgvi" else "das"
    size = (32, 32) if model == "vchitect" else (32, 48)
    data = write_training_folder(tmp_path / "data", family, count=2, frames=3, size=size, index="metadata.jsonl")
    clip = dict(CLIP, model=model, num_frames=2 if model == "vchitect" else 3, height=32,
                width=32 if model == "vchitect" else 48)
    runs = {}
    for precompute in (False, True):
        output = tmp_path / f"run-{precompute}"
        Trainer(TrainingSettings(**{**clip, "data": str(data), "output": str(output), "steps": 3,
                                    "precompute": precompute})).run()
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        runs[precompute] = _losses(output)
    assert len(runs[True]) == 3 and runs[True][0] != runs[True][1]
    np.testing.assert_allclose(runs[True], runs[False], rtol=1e-5, atol=1e-6)


def _ema_expected(initial, live, decay):
    """diffusers' EMAModel with warm-up, written out: the first update copies the weights, update k after it uses
    min(decay, 1 - (1 + k) ** (-2/3))."""
    shadow = {name: value.clone() for name, value in initial.items()}
    for index, weights in enumerate(live):
        used = 0.0 if index == 0 else min(decay, 1 - (1 + index) ** (-2 / 3))
        for name in shadow:
            shadow[name] = shadow[name] - (1 - used) * (shadow[name] - weights[name])
    return shadow


def test_ema_exports_the_moving_average_of_the_weights_and_resumes_it(data, tmp_path):
    run = dict(steps=4, ema_decay=0.5, checkpoint_every=1, learning_rate=1e-2)
    Trainer(_settings(data, tmp_path / "whole", **run)).run()
    checkpoints = sorted((tmp_path / "whole" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 4
    live = [load_file(str(folder / "model.safetensors")) for folder in checkpoints]
    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import build_tiny_vchitect_pipeline

    # the run starts from the tiny random-weight model (no --pretrained)
    initial = {name: value.float() for name, value in
               build_tiny_vchitect_pipeline(weights="random").transformer.state_dict().items() if name in live[0]}
    expected = _ema_expected(initial, live, 0.5)
    exported = load_file(str(tmp_path / "whole" / "transformer" / "diffusion_pytorch_model.safetensors"))
    moved = [name for name in expected if not torch.equal(live[-1][name], initial[name])]
    assert len(moved) > 10  # the weights trained
    for name in expected:
        torch.testing.assert_close(exported[name], expected[name], rtol=0, atol=1e-6)
    # the export is the average, not the last weights
    assert max((exported[name] - live[-1][name]).abs().max().item() for name in moved) > 1e-4
    # interrupted in step 3 and resumed: the same average
    with pytest.raises(KeyboardInterrupt):
        Trainer(_settings(data, tmp_path / "cut", **run), step=_Interrupt(at=3)).run()
    Trainer(_settings(data, tmp_path / "cut", resume="latest", **run)).run()
    resumed = load_file(str(tmp_path / "cut" / "transformer" / "diffusion_pytorch_model.safetensors"))
    for name in expected:
        torch.testing.assert_close(resumed[name], exported[name], rtol=0, atol=1e-6)


def test_ema_decay_outside_0_1_or_with_fsdp_is_refused(data, tmp_path):
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=f"ema_decay={bad}"):
            Trainer(_settings(data, tmp_path / "a", ema_decay=bad))
    with pytest.raises(ValueError, match="ema_decay=0.9.*--fsdp"):
        Trainer(_settings(data, tmp_path / "b", ema_decay=0.9, fsdp=True))
