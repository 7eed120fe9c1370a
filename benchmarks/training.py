"""The trainer's step time and memory against a loop written like diffusers' `train_cogvideox_lora.py`, gradient
checkpointing on/off, precomputed vs on-the-fly latents and text embeddings.

One CogVideoX-RepVideo model (the embedded model's T5 and VAE with a mid-size transformer: 8 layers, 8 heads of 64,
random weights, written once as a pipeline folder), one data folder of shapes-world videos, one batch size, LoRA
rank 64 on `to_q/to_k/to_v/to_out.0` (the diffusers script's targets), AdamW (0.9, 0.95), lr 1e-4, clip 1.0.
Each variant runs in a fresh process so that its memory is its own:

- `diffusers loop`: the loop of `examples/cogvideo/train_cogvideox_lora.py` as that script runs it: every video
  VAE-encoded once before training (its `latent_dist` kept, sampled and scaled in the collate), the prompts
  T5-encoded every step, `add_noise` / `get_velocity` / `1 / (1 - alphas_cumprod)` weighting, `accelerator.backward`,
  `clip_grad_norm_` over the transformer's parameters, `optimizer.step`, `zero_grad`, `lr_scheduler.step`;
- `vdp trainer, precomputed`: `Trainer` with `--precompute` (latents and T5 embeddings cached, encoders not loaded);
- `vdp trainer, on the fly`: `Trainer` encoding video and text every step;
- `vdp trainer, precomputed, gradient checkpointing`: all blocks recomputed in the backward.

Step time: the median time between the starts of consecutive micro-batches (data, forward, backward, optimiser,
logging), the first two dropped; on a shared machine the load of other processes moves these, so the step-time ratio
of the trainer and the diffusers loop is also measured in one process taking one step of each in turn
(`interleaved`). Memory: on cuda `torch.cuda.max_memory_allocated` during the steps; on the cpu the
growth of the resident set during the steps over its size before the first (sampled every millisecond), i.e. the
training memory (gradients, optimiser states, activations), not the weights loaded before.

    python benchmarks/training.py [--steps 8] [--batch-size 1] [--frames 9] [--size 64] [--device cpu]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

VARIANTS = {
    "diffusers loop": dict(kind="diffusers"),
    "vdp trainer, precomputed": dict(kind="vdp", precompute=True),
    "vdp trainer, on the fly": dict(kind="vdp", precompute=False),
    "vdp trainer, precomputed, gradient checkpointing": dict(kind="vdp", precompute=True, gradient_checkpointing=1.0),
    "diffusers loop, gradient checkpointing": dict(kind="diffusers", gradient_checkpointing=True),
    "interleaved": dict(kind="interleaved"),
}
RANK, LEARNING_RATE, BETAS, WEIGHT_DECAY = 64, 1e-4, (0.9, 0.95), 1e-4
TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
MID_TRANSFORMER = dict(num_attention_heads=8, attention_head_dim=64, time_embed_dim=256, num_layers=8,
                       repvideo_aggregation=True, repvideo_window_size=6)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Meter:
    """Micro-batch start times and the memory peak over the steps (cuda allocator, or sampled resident set)."""

    def __init__(self, device: str):
        import torch

        self.device, self.starts, self._stop = device, [], threading.Event()
        self.base = self.peak = 0
        self._torch = torch

    def tick(self) -> None:
        if not self.starts:
            self._begin()
        if self.device == "cuda":
            self._torch.cuda.synchronize()
        self.starts.append(time.perf_counter())

    def _begin(self) -> None:
        if self.device == "cuda":
            self._torch.cuda.synchronize()
            self._torch.cuda.reset_peak_memory_stats()
            self.base = self._torch.cuda.memory_allocated()
            return
        self.base = self.peak = _rss_bytes()

        def sample():
            while not self._stop.wait(0.001):
                self.peak = max(self.peak, _rss_bytes())

        threading.Thread(target=sample, daemon=True).start()

    def result(self):
        self.tick()
        self._stop.set()
        if self.device == "cuda":
            self.peak = self._torch.cuda.max_memory_allocated()
        else:
            self.peak = max(self.peak, _rss_bytes())
        steps = [b - a for a, b in zip(self.starts, self.starts[1:])][2:]
        return {"step_s": statistics.median(steps) if steps else None, "steps_timed": len(steps),
                "memory_bytes": self.peak - self.base}


def _vdp(args, variant, meter, step=None):
    from video_diffusion_pack.training.settings import TrainingSettings
    from video_diffusion_pack.training.trainer import Trainer, TrainingStep

    class Timed(TrainingStep):
        def __call__(self, trainer, latents, conditions, generator):
            meter.tick()
            return super().__call__(trainer, latents, conditions, generator)

    with tempfile.TemporaryDirectory(prefix="vdp-bench-run-") as output:
        Trainer(TrainingSettings(
            model="repvideo", training_type="lora", pretrained=args.pretrained, data=args.data,
            output=str(Path(output) / "run"), steps=args.steps, batch_size=args.batch_size, num_frames=args.frames,
            height=args.size, width=args.size, lora_rank=RANK, lora_alpha=RANK, learning_rate=LEARNING_RATE,
            adam_beta1=BETAS[0], adam_beta2=BETAS[1], weight_decay=WEIGHT_DECAY, max_grad_norm=1.0,
            lr_scheduler="constant", report_to="none", precompute=variant.get("precompute", False),
            gradient_checkpointing=variant.get("gradient_checkpointing", 0.0)), step=step or Timed()).run()


def _diffusers(args, variant, meter):
    for _ in _diffusers_steps(args, variant):
        meter.tick()


def _interleaved(args, variant, meter):
    """The vdp trainer (precomputed) and the diffusers loop in one process, one step of each in turn, so that both
    see the same machine load; prints the two medians."""
    from video_diffusion_pack.training.trainer import TrainingStep

    baseline = _diffusers_steps(args, variant)
    next(baseline)  # the setup and the loop's first step
    times = {"vdp": [], "diffusers": []}

    class Alternate(TrainingStep):
        last_end = None

        def __call__(self, trainer, latents, conditions, generator):
            start = time.perf_counter()
            if self.last_end is not None:
                times["vdp"].append(start - self.last_end)
            next(baseline, None)
            times["diffusers"].append(time.perf_counter() - start)
            self.last_end = time.perf_counter()
            return super().__call__(trainer, latents, conditions, generator)

    _vdp(args, {"precompute": True}, meter, step=Alternate())
    meter.extra = {name: statistics.median(values[2:]) for name, values in times.items()}


def _diffusers_steps(args, variant):
    """The training loop of diffusers' examples/cogvideo/train_cogvideox_lora.py (read, not copied), on the same
    pipeline folder and data; yields before each iteration."""
    import torch
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig
    from torch.utils.data import DataLoader

    from video_diffusion_pack.diffusers_pipelines.repvideo import CogVideoXRepVideoPipeline
    from video_diffusion_pack.training.data import ClipSettings, TrainingData

    accelerator = Accelerator(cpu=args.device == "cpu")
    pipe = CogVideoXRepVideoPipeline.from_pretrained(args.pretrained)
    tokenizer, text_encoder, vae, transformer = pipe.tokenizer, pipe.text_encoder, pipe.vae, pipe.transformer
    from diffusers import CogVideoXDPMScheduler

    scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config)
    for module in (text_encoder, vae, transformer):
        module.requires_grad_(False)
        module.to(accelerator.device)
    if variant.get("gradient_checkpointing"):
        transformer.enable_gradient_checkpointing()
    transformer.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights=True, target_modules=TARGETS))
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, betas=BETAS, weight_decay=WEIGHT_DECAY)
    lr_scheduler = get_scheduler("constant", optimizer, num_warmup_steps=0, num_training_steps=args.steps)

    # the script encodes every video once before training and keeps the posterior
    data = TrainingData(args.data, ClipSettings(args.frames, args.size, args.size, frame_multiple=4, frame_remainder=1,
                                                size_multiple=16)).check()
    examples = []
    with torch.no_grad():
        for index in range(len(data)):
            item = data[index]
            video = torch.from_numpy(item["video"])[None].to(accelerator.device)
            examples.append({"latent_dist": vae.encode(video.permute(0, 2, 1, 3, 4)).latent_dist,
                             "prompt": item["caption"]})

    def collate_fn(batch):
        videos = torch.cat([e["latent_dist"].sample() * vae.config.scaling_factor for e in batch])
        return {"videos": videos.permute(0, 2, 1, 3, 4).contiguous().float(), "prompts": [e["prompt"] for e in batch]}

    loader = DataLoader(examples, batch_size=args.batch_size, shuffle=True, collate_fn=collate_fn)
    transformer, optimizer, loader, lr_scheduler = accelerator.prepare(transformer, optimizer, loader, lr_scheduler)
    max_length = accelerator.unwrap_model(transformer).config.max_text_seq_length
    transformer.train()
    step = 0
    while step < args.steps:
        for batch in loader:
            if step == args.steps:
                break
            yield
            with accelerator.accumulate([transformer]):
                model_input = batch["videos"]
                with torch.no_grad():
                    ids = tokenizer(batch["prompts"], padding="max_length", max_length=max_length, truncation=True,
                                    add_special_tokens=True, return_tensors="pt").input_ids
                    prompt_embeds = text_encoder(ids.to(accelerator.device))[0]
                noise = torch.randn_like(model_input)
                batch_size = model_input.shape[0]
                timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,),
                                          device=model_input.device).long()
                noisy_model_input = scheduler.add_noise(model_input, noise, timesteps)
                model_output = transformer(hidden_states=noisy_model_input, encoder_hidden_states=prompt_embeds,
                                           timestep=timesteps, image_rotary_emb=None, return_dict=False)[0]
                model_pred = scheduler.get_velocity(model_output, noisy_model_input, timesteps)
                weights = 1 / (1 - scheduler.alphas_cumprod.to(model_input.device)[timesteps])
                while weights.ndim < model_pred.ndim:
                    weights = weights.unsqueeze(-1)
                loss = torch.mean((weights * (model_pred - model_input) ** 2).reshape(batch_size, -1), dim=1).mean()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(transformer.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                lr_scheduler.step()
            step += 1


def _child(args) -> None:
    variant = VARIANTS[args.variant]
    meter = _Meter(args.device)
    {"vdp": _vdp, "diffusers": _diffusers, "interleaved": _interleaved}[variant["kind"]](args, variant, meter)
    print("RESULT " + json.dumps({**meter.result(), **getattr(meter, "extra", {})}))


def _prepare(folder: Path, args) -> None:
    """The pipeline folder (embedded T5 and VAE, mid-size transformer) and the data folder."""
    import torch

    from video_diffusion_pack.cli import main
    from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import (
        build_tiny_cogvideox_repvideo_pipeline,
        tiny_cogvideox_repvideo_transformer_config,
    )
    from video_diffusion_pack.models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

    pipe = build_tiny_cogvideox_repvideo_pipeline()
    config = {**tiny_cogvideox_repvideo_transformer_config(), **MID_TRANSFORMER, "sample_width": args.size // 8,
              "sample_height": args.size // 8, "sample_frames": args.frames}
    torch.manual_seed(0)
    pipe.register_modules(transformer=CogVideoXRepVideoTransformer3DModel(**config))
    pipe.save_pretrained(folder / "model")
    main(["dataset", "shapes", "--output", str(folder / "data"), "--videos", "8", "--frames", str(args.frames),
          "--size", f"{args.size}x{args.size}"])
    parameters = sum(p.numel() for p in pipe.transformer.parameters())
    (folder / "model" / "parameters.txt").write_text(str(parameters))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--pretrained", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return _child(args)
    results = {}
    with tempfile.TemporaryDirectory(prefix="vdp-bench-training-") as scratch:
        folder = Path(scratch)
        _prepare(folder, args)
        parameters = int((folder / "model" / "parameters.txt").read_text())
        for name in VARIANTS:
            command = [sys.executable, __file__, "--variant", name, "--pretrained", str(folder / "model"),
                       "--data", str(folder / "data"), "--steps", str(args.steps), "--batch-size",
                       str(args.batch_size), "--frames", str(args.frames), "--size", str(args.size), "--device",
                       args.device]
            done = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(lines[-1][len("RESULT "):])
    both = results.pop("interleaved")
    base = results["diffusers loop"]
    print(f"# training step, CogVideoX-RepVideo transformer of {parameters / 1e6:.1f} M parameters, LoRA rank {RANK}, "
          f"batch {args.batch_size}, {args.frames}x{args.size}x{args.size}, {args.device} "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores), {datetime.date.today()}")
    print("| variant | step time (s) | vs diffusers loop | training memory (MiB) | vs diffusers loop |")
    print("|---|---|---|---|---|")
    for name, result in results.items():
        print(f"| {name} | {result['step_s']:.3f} | {result['step_s'] / base['step_s']:.2f} | "
              f"{result['memory_bytes'] / 2**20:.0f} | {result['memory_bytes'] / max(base['memory_bytes'], 1):.2f} |")
    plain, checkpointed = results["vdp trainer, precomputed"], results["vdp trainer, precomputed, gradient checkpointing"]
    fly = results["vdp trainer, on the fly"]
    print(f"one process, one step of each in turn: vdp trainer (precomputed) {both['vdp']:.3f} s, diffusers loop "
          f"{both['diffusers']:.3f} s, ratio {both['vdp'] / both['diffusers']:.2f}")
    print(f"gradient checkpointing: time x{checkpointed['step_s'] / plain['step_s']:.2f}, training memory "
          f"x{checkpointed['memory_bytes'] / max(plain['memory_bytes'], 1):.2f}; on the fly vs precomputed: time "
          f"x{fly['step_s'] / plain['step_s']:.2f}")


if __name__ == "__main__":
    main()
