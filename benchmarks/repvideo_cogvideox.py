"""Cost of RepVideo's cross-layer aggregation on CogVideoX-2B: ours against the official loop's list cache.

Three runs of one `CogVideoXRepVideoTransformer3DModel` (same random weights and inputs, random gates), in one
process, alternating:

- `off`: the aggregation switched off (stock CogVideoX), the baseline the overhead is measured from;
- `official loop`: the window kept as the official `sat/transformer_gating.py` keeps it, a list of up to six layer
  outputs per stream averaged with `torch.stack(cache).mean(0)` before every block (written here from its
  description, not copied);
- `ours`: the pack's `RepVideoAggregation`, a running float32 sum and a count per stream.

Printed: median and best seconds per forward, peak tensor memory (CUDA allocator, or the CPU profiler's memory
events replayed in time order), both relative to `off`, and the relative L2 difference of each output from `ours`.
A second table times the two windows alone (mix and record over precomputed layer outputs, no blocks), which
isolates the aggregation's own cost from the blocks' time.

Usage:

    python benchmarks/repvideo_cogvideox.py [--layers 30] [--heads 8] [--latent 16] [--frames 13] [--repeats 5] [--threads 2]
"""

import argparse
import platform
import statistics
import time

import torch
from vchitect_transformer import peak_memory  # benchmarks/ is on the path when a script runs


class OfficialListWindow:
    """The official loop's window: the last layer outputs themselves, averaged by stacking before every block."""

    def __init__(self, aggregation, streams):
        self.aggregation = aggregation
        self.cache = [list(streams)]

    def mix(self, layer_index, streams):
        gate = self.aggregation.learnable_gating[layer_index]
        mixed = []
        for position, stream in enumerate(streams):
            entries = [entry[position] for entry in self.cache]
            mean = entries[0] if len(entries) == 1 else torch.stack(entries, dim=0).mean(dim=0)
            mixed.append(gate * mean + (1 - gate) * stream)
        return mixed

    def record(self, layer_index, outputs):
        if layer_index % self.aggregation.window_size == 0:
            self.cache = [list(outputs)]
        else:
            self.cache = self.cache + [list(outputs)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30, help="transformer blocks (released: 30)")
    parser.add_argument("--heads", type=int, default=8, help="attention heads of 64 channels (released: 30)")
    parser.add_argument("--latent", type=int, default=16, help="latent height and width (released: 60x90)")
    parser.add_argument("--frames", type=int, default=13, help="latent frames (released: 13)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    args = parser.parse_args(argv)
    for name in ("layers", "heads", "latent", "frames", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name}: {name}={getattr(args, name)} must be >= 1")
    if args.latent % 2:
        parser.error(f"argument --latent: latent={args.latent} must be even (2x2 patches)")

    from video_diffusion_pack import CogVideoXRepVideoTransformer3DModel

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    torch.manual_seed(0)
    model = CogVideoXRepVideoTransformer3DModel(
        num_attention_heads=args.heads, num_layers=args.layers, sample_height=args.latent, sample_width=args.latent,
        sample_frames=(args.frames - 1) * 4 + 1,
    ).eval()
    model.repvideo.learnable_gating.uniform_(0.1, 0.9)
    model.to(device=device, dtype=dtype)
    generator = torch.Generator().manual_seed(1)
    inputs = dict(
        hidden_states=torch.randn(1, args.frames, 16, args.latent, args.latent, generator=generator).to(device, dtype),
        encoder_hidden_states=torch.randn(1, 226, 4096, generator=generator).to(device, dtype),
        timestep=torch.tensor([500], device=device),
    )
    aggregation = model.repvideo
    ours_start = aggregation.start

    def run(name):
        if name == "off":
            with model.repvideo_switched(False):
                return model(**inputs).sample
        aggregation.start = ours_start if name == "ours" else (lambda streams: OfficialListWindow(aggregation, streams))
        try:
            return model(**inputs).sample
        finally:
            aggregation.start = ours_start

    names = ("off", "official loop", "ours")
    times = {name: [] for name in names}
    outputs = {name: run(name).float().cpu() for name in names}  # warm-up, and the outputs compared
    for _ in range(args.repeats):
        for name in names:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(name)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    peaks = {}
    for name in names:
        result = {}
        with peak_memory(device, result):
            run(name)
        peaks[name] = result["peak"]

    # the aggregation alone: the window's mix and record over precomputed layer outputs, no blocks run, so the
    # measurement does not drown in the blocks' time on a shared machine
    width = args.heads * 64
    video_tokens = args.frames * (args.latent // 2) ** 2
    layer_outputs = [
        (torch.randn(1, video_tokens, width, generator=generator).to(device, dtype),
         torch.randn(1, 226, width, generator=generator).to(device, dtype))
        for _ in range(min(args.layers, 7))
    ]

    def aggregate_only(name):
        window = ours_start(layer_outputs[0]) if name == "ours" else OfficialListWindow(aggregation, layer_outputs[0])
        streams = layer_outputs[0]
        for index in range(args.layers):
            streams = window.mix(index, streams)
            streams = layer_outputs[index % len(layer_outputs)]
            window.record(index, streams)
        return streams

    window_times = {name: [] for name in names[1:]}
    for _ in range(args.repeats):
        for name in names[1:]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            aggregate_only(name)
            if device.type == "cuda":
                torch.cuda.synchronize()
            window_times[name].append(time.perf_counter() - start)

    print(f"{platform.machine()} {platform.processor() or ''} device={device} threads={torch.get_num_threads()} "
          f"dtype={args.dtype} torch={torch.__version__}")
    print(f"geometry: {args.layers} layers, {args.heads} heads x 64, {args.frames} latent frames of "
          f"{args.latent}x{args.latent} ({video_tokens} video + 226 text tokens)")
    print("| run | median s / forward | best s | time vs off | peak tensor memory MiB | memory vs off | rel. L2 vs ours |")
    print("|---|---|---|---|---|---|---|")
    base_time, base_peak = statistics.median(times["off"]), peaks["off"]
    reference = outputs["ours"]
    for name in names:
        median = statistics.median(times[name])
        error = ((outputs[name] - reference).norm() / reference.norm()).item()
        print(f"| {name} | {median:.3f} | {min(times[name]):.3f} | {median / base_time:.3f} | "
              f"{peaks[name] / 2**20:.1f} | {peaks[name] / base_peak:.3f} | {error:.1e} |")
    print()
    print(f"aggregation alone ({args.layers} layers of mix + record, no blocks):")
    print("| window | median ms / forward | best ms |")
    print("|---|---|---|")
    for name, values in window_times.items():
        print(f"| {name} | {1000 * statistics.median(values):.2f} | {1000 * min(values):.2f} |")


if __name__ == "__main__":
    main()
