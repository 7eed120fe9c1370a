"""FreeInit against diffusers' FreeInitMixin (filters, noise re-initialisation) and against plain sampling (cost).

Three tables, each measured side by side in one process:

1. Filter construction for a latent of shape (1, 16, 13, 60, 90) (CogVideoX-2B at 49 frames 480x720): diffusers'
   per-voxel loop against our vectorised build (uncached) and a cache hit, with the values compared.
   For ``ideal`` both sides build the same filter: diffusers' ``d_s * 2`` radius at d_s = 0.125, d_t = 0.25 is our
   paper-radius filter at d_s = 0.5, d_t = 1.0.
2. One noise re-initialisation (filter + re-noise + FFT mix) as each implementation runs it between iterations.
3. A tiny Vchitect-2.0 pipeline (random weights) sampled plainly, with FreeInit (3 iterations) and with FreeInit
   plus coarse-to-fine sampling: transformer calls and wall time, as ratios to the plain run.

    python benchmarks/free_init.py [--repeats 5] [--threads 2] [--device cpu|cuda]
"""

import argparse
import datetime
import functools
import platform
import statistics
import time

import torch

SHAPE = (1, 16, 13, 60, 90)
# (method, diffusers d_s, d_t, our d_s, d_t): the same filter on both sides
FILTERS = (
    ("butterworth", 0.25, 0.25, 0.25, 0.25),
    ("gaussian", 0.25, 0.25, 0.25, 0.25),
    ("ideal", 0.125, 0.25, 0.5, 1.0),
)
PIPELINE_CALL = dict(height=64, width=64, num_frames=8, num_inference_steps=8, guidance_scale=7.5, output_type="latent")


def timed(fn, device: torch.device, repeats: int):
    """(result of the last call, median seconds, best seconds) over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times), min(times)


def filter_table(device: torch.device, repeats: int) -> None:
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    from video_diffusion_pack.hooks.free_init import build_frequency_filter, frequency_filter

    mixin = FreeInitMixin()
    print(f"\n## Filter construction, shape {SHAPE}")
    print("| filter | diffusers s | ours uncached s | ours cached s | ratio diffusers/ours (uncached) | "
          "ratio (cached) | values identical |")
    print("|---|---|---|---|---|---|---|")
    for method, their_s, their_t, our_s, our_t in FILTERS:
        theirs, their_time, _ = timed(
            functools.partial(mixin._get_free_init_freq_filter, SHAPE, device, method, 4, their_s, their_t),
            device,
            max(1, repeats // 2),
        )
        ours, our_time, _ = timed(lambda m=method, s=our_s, t=our_t: build_frequency_filter(SHAPE[2:], m, 4, s, t).to(device), device,
                                  10 * repeats)
        frequency_filter(SHAPE[2:], method, 4, our_s, our_t, device=device)
        _, cached_time, _ = timed(functools.partial(frequency_filter, SHAPE[2:], method, 4, our_s, our_t, device=device), device,
                                  10 * repeats)
        identical = torch.equal(ours.expand(SHAPE), theirs)
        print(f"| {method} | {their_time:.4f} | {our_time:.6f} | {cached_time:.7f} | {their_time / our_time:.0f}x | "
              f"{their_time / cached_time:.0f}x | {identical} |")


def reinitialisation_table(device: torch.device, repeats: int) -> None:
    from diffusers import DDIMScheduler
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    from video_diffusion_pack.hooks.free_init import frequency_filter, mix_frequencies, renoise

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear")
    generator = torch.Generator().manual_seed(0)
    clean, initial_noise, fresh = (torch.randn(SHAPE, generator=generator).to(device) for _ in range(3))
    mixin = FreeInitMixin()

    def diffusers_reinit():
        low_pass = mixin._get_free_init_freq_filter(SHAPE, device, "butterworth", 4, 0.25, 0.25)
        z_t = scheduler.add_noise(clean, initial_noise, torch.full((1,), 999, device=device).long())
        return mixin._apply_freq_filter(z_t, fresh, low_pass)

    def our_reinit():
        low_pass = frequency_filter(SHAPE[2:], "butterworth", 4, 0.25, 0.25, device=device)
        return mix_frequencies(renoise(scheduler, clean, initial_noise, 1.0), fresh, low_pass)

    theirs, their_time, _ = timed(diffusers_reinit, device, max(1, repeats // 2))
    ours, our_time, _ = timed(our_reinit, device, 10 * repeats)
    print(f"\n## One noise re-initialisation (butterworth filter, re-noise to t=999, FFT mix), shape {SHAPE}")
    print("| diffusers s | ours s | ratio diffusers/ours | max abs difference |")
    print("|---|---|---|---|")
    difference = (ours - theirs).abs().max().item()
    print(f"| {their_time:.4f} | {our_time:.5f} | {their_time / our_time:.0f}x | {difference:.1e} |")


def pipeline_table(device: torch.device, repeats: int) -> None:
    from video_diffusion_pack import FreeInitConfig, build_tiny_vchitect_pipeline, free_init_applied
    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import TINY_TEXT_PROMPT

    pipe = build_tiny_vchitect_pipeline(device=device, weights="random")
    pipe.set_progress_bar_config(disable=True)
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    runs = {
        "plain": None,
        "FreeInit, 3 iterations": FreeInitConfig(num_iters=3),
        "FreeInit, 3 iterations, fast sampling": FreeInitConfig(num_iters=3, use_fast_sampling=True),
    }
    times = {name: [] for name in runs}
    counts = {}
    for repeat in range(repeats + 1):  # the first round warms up
        for name, config in runs.items():
            calls.clear()
            with free_init_applied(pipe, config):
                start = time.perf_counter()
                pipe(TINY_TEXT_PROMPT, generator=torch.Generator().manual_seed(0), **PIPELINE_CALL)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
            counts[name] = len(calls)
            if repeat:
                times[name].append(elapsed)
    median = {name: statistics.median(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    settings = ", ".join(f"{key}={value}" for key, value in PIPELINE_CALL.items() if key != "output_type")
    print(f"\n## Tiny Vchitect-2.0 pipeline ({settings}), {repeats} alternating runs")
    print("| run | transformer calls | calls ratio | median s | time ratio (median) | best s | time ratio (best) |")
    print("|---|---|---|---|---|---|---|")
    for name in runs:
        print(f"| {name} | {counts[name]} | {counts[name] / counts['plain']:.3f} | {median[name]:.3f} | "
              f"{median[name] / median['plain']:.3f} | {best[name]:.3f} | {best[name] / best['plain']:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# FreeInit benchmark: {args.device} ({device_name}, {torch.get_num_threads()} threads), "
          f"torch {torch.__version__}, {datetime.date.today()}")
    filter_table(device, args.repeats)
    reinitialisation_table(device, args.repeats)
    pipeline_table(device, args.repeats)


if __name__ == "__main__":
    main()
