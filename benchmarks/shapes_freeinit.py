"""FreeInit on vs off on a text-to-video model trained on the shapes world, side by side in one process.

    python benchmarks/shapes_freeinit.py [MODEL_FOLDER] [--count 24] [--steps N] [--iterations 3] [--threads 1]

MODEL_FOLDER is a `VchitectRepVideoPipeline` folder (default: the shipped embedded model). Same prompts (the bed's
fixed set) and seeds for every row:

- off: plain sampling, N steps (the model's default);
- FreeInit, equal steps: K iterations of N steps each (K times the time);
- FreeInit, equal time: K iterations of round(N / K) steps each, and coarse-to-fine (`use_fast_sampling`) with
  the step count N' = round(2 N / (K + 1)) whose iterations add up to about N steps.

Scores: temporal consistency by the quality bed (centroid-aligned mask IoU of the named object between consecutive
frames, change of its mean colour; over all videos, where a missing object counts IoU 0 and drift 1, and over the
videos where the object was found), VBench temporal flickering (the pack's `evaluation.vbench` dimension, no model),
and, for context, the bed's colour / shape / direction. Time: process CPU seconds per video (other jobs on a shared
machine stretch wall time; run with `--threads 1`) and the ratio to the off row.
"""

import argparse

import numpy as np
import torch
from shapes_common import fmt, header, load, run_set, settings, summary  # benchmarks/ is on the path


def detected_consistency(run):
    """(videos with the object found, mean temporal IoU and colour drift over those)."""
    found = [score for score in run.scores if score.color == 1.0]
    if not found:
        return 0, None, None
    return len(found), float(np.mean([s.temporal_iou for s in found])), float(np.mean([s.color_drift for s in found]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="VchitectRepVideoPipeline folder (default: the embedded model)")
    parser.add_argument("--count", type=int, default=24, help="prompts of the fixed set (default 24)")
    parser.add_argument("--steps", type=int, help="steps of the off row (default: the model's default)")
    parser.add_argument("--iterations", type=int, default=3, help="FreeInit iterations K (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    for name in ("count", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name}: {getattr(args, name)} must be >= 1")
    torch.set_num_threads(args.threads)
    from video_diffusion_pack.evaluation.shapes.prompts import fixed_prompt_set
    from video_diffusion_pack.hooks.free_init import FreeInitConfig, apply_free_init, remove_free_init

    pipe, folder = load(args.model)
    config = settings(args.steps)
    prompts = fixed_prompt_set(args.count)
    steps, k = config.num_inference_steps, args.iterations
    header("FreeInit on vs off, shapes bed", folder, config, len(prompts))

    rows = [("off", None, steps, run_set(pipe, prompts, config))]
    variants = [
        (f"FreeInit {k} iterations x {steps} steps (equal steps)", FreeInitConfig(num_iters=k), steps),
        (f"FreeInit {k} iterations x {max(1, round(steps / k))} steps (equal time)", FreeInitConfig(num_iters=k),
         max(1, round(steps / k))),
    ]
    fast_steps = max(1, round(2 * steps / (k + 1)))
    fast = FreeInitConfig(num_iters=k, use_fast_sampling=True)
    variants.append((f"FreeInit {k} iterations coarse-to-fine, {'+'.join(map(str, fast.planned_steps(fast_steps)))} "
                     "steps (equal time)", fast, fast_steps))
    for name, free_init, run_steps in variants:
        apply_free_init(pipe, free_init)
        try:
            rows.append((name, free_init, run_steps, run_set(pipe, prompts, config, steps=run_steps)))
        finally:
            remove_free_init(pipe)

    base = rows[0][3].cpu_seconds
    print("| run | temporal IoU | colour drift | found | IoU (found) | drift (found) | VBench temporal flickering "
          "| colour | shape | direction | CPU s/video | time vs off |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, _, _, run in rows:
        scores = summary(run)
        found, iou, drift = detected_consistency(run)
        print(f"| {name} | {fmt(scores['temporal_iou'])} | {fmt(scores['color_drift'], 4)} | {found}/{len(run.prompts)} "
              f"| {fmt(iou)} | {fmt(drift, 4)} | {fmt(scores['flickering'], 4)} | {fmt(scores['color'])} "
              f"| {fmt(scores['shape'])} | {fmt(scores['motion'])} | {run.cpu_seconds / len(run.prompts):.2f} "
              f"| {run.cpu_seconds / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
