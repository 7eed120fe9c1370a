"""Local learning against end-to-end backprop and gradient checkpointing: peak training memory, step time and the
validation loss after the same number of steps and after the same compute time.

One model (a mid-size Vchitect-2.0 transformer, random weights, 12 blocks by default), one batch size, one data set:
shapes-world videos (``vdp dataset shapes``) encoded once by the embedded Vchitect-2.0 pipeline's VAE and text
encoders (the specification's ``prepare_latents`` / ``prepare_conditions``), split into training and validation
videos. Each configuration trains in a fresh process from the same seeded weights, on the same batches and noise,
through the code the trainer runs: ``VchitectSpecification.forward`` + loss + backward (backprop; with
``enable_gradient_checkpointing`` on every block for checkpointing) or ``LocalLearner.step`` on the specification's
``denoiser_stages`` (local modes); AdamW, one optimiser step per batch.

- peak memory: the growth of the process's peak resident set (``ru_maxrss``) from before the model is built to the
  end of training: weights, auxiliary networks, gradients, AdamW state and the activations at the peak, as the CPU
  allocator holds them. Also the saved activations autograd held at the peak of one step (``SavedActivationMeter``;
  for checkpointing it sees only what is saved outside the recomputed blocks, so its figure there is a lower bound);
- accounted peak: 4 x (weights + auxiliary weights) (weights, gradients, AdamW's two moments) plus the saved
  activations at the peak, i.e. what training holds without the allocator's workspace and retention;
- time: CPU seconds of one thread per optimiser step (median after two warm-up steps): the machine is shared, so CPU
  time is steadier than wall time;
- quality: the main network's validation loss (the specification's loss on every validation video at fixed noise
  levels and noise, no text dropout, no auxiliary network) after ``--steps`` steps and after the compute time that
  backprop took for those steps (faster modes run more steps in it, slower ones fewer).

    python benchmarks/local_learning.py [--blocks 12] [--steps 12] [--groups 2,4,6] [--modes auglocal,man,hpff,infopro]
        [--json rows.json]; python benchmarks/local_learning.py --table rows.json
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("auglocal", "man", "hpff", "infopro")


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def model_config(blocks: int) -> dict:
    """The benchmark's transformer: the embedded model's text widths (its encoders make the conditions), wider
    and deeper blocks."""
    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import tiny_transformer_config

    return {**tiny_transformer_config(), "num_layers": blocks, "attention_head_dim": 32, "num_attention_heads": 2,
            "caption_projection_dim": 64, "sample_size": 32, "pos_embed_max_size": 32}


def prepare_data(folder: str, videos: int, validation: int, frames: int, size: int, path: str) -> dict:
    """Write the shapes world with ``vdp dataset shapes`` and encode it once; returns the counts."""
    import torch

    from video_diffusion_pack.training.data import ClipSettings, TrainingData, collate
    from video_diffusion_pack.training.specifications import get_specification

    subprocess.run([os.path.join(os.path.dirname(sys.executable), "vdp"), "dataset", "shapes", "-o", folder,
                    "--videos", str(videos + validation), "--frames", str(frames), "--size", f"{size}x{size}",
                    "--seed", "0"], check=True, capture_output=True)
    spec = get_specification("vchitect")
    components = spec.load_components(None)
    data = TrainingData(folder, ClipSettings(num_frames=frames, height=size, width=size, size_multiple=16)).check()
    torch.manual_seed(0)
    latents, conditions = [], []
    with torch.no_grad():
        for index in range(len(data)):
            batch = collate([data[index]])
            latents.append(spec.prepare_latents(components, batch)["latents"])
            conditions.append(spec.prepare_conditions(components, batch))
    encoded = {"latents": torch.cat(latents),
               **{key: torch.cat([c[key] for c in conditions]) for key in conditions[0]},
               "train": videos, "scheduler": dict(components["scheduler"].config)}
    torch.save(encoded, path)
    return {"train": videos, "validation": len(data) - videos}


def child(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from diffusers import FlowMatchEulerDiscreteScheduler

    from video_diffusion_pack.models.vchitect_transformer import VchitectXLTransformer3DModel
    from video_diffusion_pack.training.local_learning import LocalLearner, LocalLearningConfig, SavedActivationMeter
    from video_diffusion_pack.training.specification import ForwardOutput
    from video_diffusion_pack.training.specifications import get_specification
    from video_diffusion_pack.training.trainer import enable_gradient_checkpointing

    encoded = torch.load(job["data"])
    train, batch_size = encoded["train"], job["batch_size"]
    condition_keys = [k for k in encoded if k.endswith("embeds")]

    def take(indices):
        return ({"latents": encoded["latents"][indices]}, {k: encoded[k][indices] for k in condition_keys})

    spec = get_specification("vchitect")
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(encoded["scheduler"])
    before_kib = _rss_kib()
    torch.manual_seed(0)
    model = VchitectXLTransformer3DModel(**model_config(job["blocks"])).train()
    components = {"transformer": model, "scheduler": scheduler}
    learner = None
    if job["mode"] == "gc":
        enable_gradient_checkpointing(model, 1.0)
    elif job["mode"] != "e2e":
        config = LocalLearningConfig(job["mode"], groups=job["groups"])
        blocks, head = spec.denoiser_modules(components)
        torch.manual_seed(1)
        learner = LocalLearner(config, blocks, head)
    parameters = list(model.parameters()) + (learner.trainable_parameters() if learner else [])
    optimiser = torch.optim.AdamW(parameters, lr=job["lr"], weight_decay=1e-4)

    def validation_loss() -> float:
        model.eval()
        losses = []
        with torch.no_grad():
            for index in range(train, len(encoded["latents"])):
                latents, conditions = take([index])
                for draw in range(job["validation_draws"]):
                    generator = torch.Generator().manual_seed(10_000 + 97 * index + draw)
                    output = spec.forward(components, latents, conditions, generator=generator, training=False)
                    losses.append(spec.loss(output).item())
        model.train()
        return sum(losses) / len(losses)

    def loss_fn(prediction, target, weights):
        return spec.loss(ForwardOutput(prediction=prediction, target=target, weights=weights))

    def train_step(step: int):
        order = torch.Generator().manual_seed(step // (train // batch_size))
        permutation = torch.randperm(train, generator=order).tolist()
        start = (step % (train // batch_size)) * batch_size
        latents, conditions = take(permutation[start:start + batch_size])
        generator = torch.Generator().manual_seed(step)
        if learner is None:
            loss = spec.loss(spec.forward(components, latents, conditions, generator=generator))
            loss.backward()
        else:
            stages = spec.denoiser_stages(components, latents, conditions, generator=generator)
            learner.step(stages, loss_fn)
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    results = {"config": job["label"], "step_cpu_s": []}
    budget = job.get("budget_cpu_s")
    clock, step = 0.0, 0
    while step < job["steps"] or (budget is not None and clock < budget):
        began = time.process_time()
        train_step(step)
        spent = time.process_time() - began
        clock += spent
        results["step_cpu_s"].append(spent)
        step += 1
        if step == job["steps"]:
            results["validation_at_steps"] = validation_loss()
            results["cpu_s_at_steps"] = clock
        if budget is not None and clock >= budget and "validation_at_budget" not in results:
            results["validation_at_budget"] = validation_loss()
            results["steps_in_budget"] = step
    results["peak_growth_mib"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024
    # after the resident-set peak is read: the meter's bookkeeping adds a little memory of its own
    with SavedActivationMeter() as meter:
        train_step(step)
    results["saved_activations_mib"] = meter.peak_bytes / 2**20
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    auxiliary = sum(p.numel() * p.element_size() for p in learner.parameters()) if learner else 0
    results.update(weights_mib=weights / 2**20, auxiliary_mib=auxiliary / 2**20,
                   median_step_cpu_s=statistics.median(results["step_cpu_s"][2:]))
    results.pop("step_cpu_s")
    return results


def _run(job: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode != 0:
        raise RuntimeError(f"{job['label']}: {result.stderr.strip().splitlines()[-1] if result.stderr else 'failed'}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def accounted_mib(row: dict) -> float:
    """Weights, gradients and the two AdamW moments of the main and auxiliary networks (4x their bytes; MAN's
    frozen EMA copies are counted as trained, a small overcount) plus the saved activations at the peak."""
    return 4 * (row["weights_mib"] + row["auxiliary_mib"]) + row["saved_activations_mib"]


def print_table(rows: list, counts: dict, settings: dict) -> None:
    reference = rows[0]
    print(f"# local learning, Vchitect-2.0 {settings['blocks']} blocks (random weights), batch {settings['batch_size']}"
          f" x {settings['frames']} frames x {settings['size']}x{settings['size']} px, shapes world {counts['train']} "
          f"training / {counts['validation']} validation videos, {settings['steps']} steps, lr {settings['lr']}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, one thread, "
          f"{datetime.date.today().isoformat()}")
    print("| configuration | peak RSS growth MiB (vs backprop) | accounted peak MiB (vs backprop) | saved activations "
          "at peak MiB | auxiliary weights MiB | CPU s / step (vs backprop) | val loss @ same steps (vs backprop) | "
          "steps in backprop's time | val loss @ same time (vs backprop) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base_loss = reference["validation_at_steps"]
    for row in rows:
        at_budget = row.get("validation_at_budget", base_loss)
        print(f"| {row['config']} | {row['peak_growth_mib']:.0f} ({row['peak_growth_mib'] / reference['peak_growth_mib']:.2f}) | "
              f"{accounted_mib(row):.0f} ({accounted_mib(row) / accounted_mib(reference):.2f}) | "
              f"{row['saved_activations_mib']:.0f} | {row['auxiliary_mib']:.1f} | "
              f"{row['median_step_cpu_s']:.2f} ({row['median_step_cpu_s'] / reference['median_step_cpu_s']:.2f}) | "
              f"{row['validation_at_steps']:.4f} ({row['validation_at_steps'] / base_loss:.4f}) | "
              f"{row.get('steps_in_budget', settings['steps'])} | {at_budget:.4f} ({at_budget / base_loss:.4f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps of the same-steps comparison")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--groups", default="2,4,6")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--videos", type=int, default=12, help="training videos (and a third as many for validation)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="video height and width in pixels")
    parser.add_argument("--validation-draws", type=int, default=2, help="noise levels per validation video")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--table", metavar="JSON", help="print the table of a --json file again, without running")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.table:
        with open(args.table) as handle:
            saved = json.load(handle)
        print_table(saved["rows"], saved["counts"], saved["settings"])
        return

    with tempfile.TemporaryDirectory(prefix="vdp_local_learning_") as folder:
        data_path = os.path.join(folder, "encoded.pt")
        counts = prepare_data(os.path.join(folder, "shapes"), args.videos, max(1, args.videos // 3), args.frames,
                              args.size, data_path)
        base = dict(data=data_path, blocks=args.blocks, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                    validation_draws=args.validation_draws)
        rows = [_run({**base, "mode": "e2e", "label": "backprop"})]
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        budget = rows[0]["cpu_s_at_steps"]
        jobs = [{"mode": "gc", "label": "backprop + checkpointing"}]
        jobs += [{"mode": mode, "groups": groups, "label": f"{mode} K={groups}"}
                 for mode in args.modes.split(",") for groups in (int(g) for g in args.groups.split(","))]
        for job in jobs:
            rows.append(_run({**base, **job, "budget_cpu_s": budget}))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print_table(rows, counts, vars(args))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"settings": {k: v for k, v in vars(args).items() if k not in ("child", "table")},
                       "counts": counts, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
