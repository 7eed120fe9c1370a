"""Speed and peak memory of VchitectXLTransformer3DModel against the official VchitectXLTransformerModel.

Both models get the same random weights and inputs in one process; forwards alternate, and the table reports
median times, peak tensor memory and the ratios ours / official, plus the relative error of our output.

    python benchmarks/vchitect_transformer.py --official-src PATH/TO/Vchitect-2.0 [--geometry mid|2b] [--device cuda]

`--official-src` is a checkout of github.com/Vchitect/Vchitect-2.0 (not shipped with the pack). The `mid`
geometry fits a CPU (8 layers, 8 heads x 64, 8 frames, 32x32 latent, 333 text tokens at width 4096); `2b` is
the released model (24 layers, 24 heads x 64, 40 frames, 432x768 video = 54x96 latent) in bf16 and needs a GPU.
"""

import argparse
import datetime
import importlib
import platform
import statistics
import sys
import time
from contextlib import contextmanager

import torch

GEOMETRIES = {
    "mid": dict(
        config=dict(num_layers=8, num_attention_heads=8, attention_head_dim=64, caption_projection_dim=512,
                    joint_attention_dim=4096, pooled_projection_dim=2048, sample_size=128, pos_embed_max_size=96),
        frames=8, latent=(32, 32), text_tokens=333, dtype=torch.float32,
    ),
    "2b": dict(
        config=dict(num_layers=24, num_attention_heads=24, attention_head_dim=64, caption_projection_dim=1536,
                    joint_attention_dim=4096, pooled_projection_dim=2048, sample_size=128, pos_embed_max_size=192),
        frames=40, latent=(54, 96), text_tokens=333, dtype=torch.bfloat16,
    ),
}


def load_official_class(official_src: str):
    """Imports the official model class from a source checkout, keeping its `models` package out of our way."""
    sys.path.insert(0, official_src)
    try:
        module = importlib.import_module("models.VchitectXL")
    finally:
        sys.path.remove(official_src)
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        sys.modules["vchitect_official." + name] = sys.modules.pop(name)
    return module.VchitectXLTransformerModel


@contextmanager
def peak_memory(device: torch.device, result: dict):
    """Peak bytes of tensors allocated inside the block (CUDA allocator stats, or the CPU profiler's memory events)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        yield
        torch.cuda.synchronize()
        result["peak"] = torch.cuda.max_memory_allocated() - base
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        yield
    # allocations and frees are attributed to the innermost op ("self" memory); replay them in time order
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    result["peak"] = peak


def run(args):
    from video_diffusion_pack import VchitectXLTransformer3DModel

    if args.threads:
        torch.set_num_threads(args.threads)
    geometry = GEOMETRIES[args.geometry]
    device = torch.device(args.device)
    dtype = geometry["dtype"]
    torch.manual_seed(0)
    official_cls = load_official_class(args.official_src)
    official = official_cls(**geometry["config"]).eval()
    with torch.no_grad():
        for param in official.parameters():
            param.normal_(0, 0.02)
    ours = VchitectXLTransformer3DModel(**geometry["config"]).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    official.to(device, dtype)
    ours.to(device, dtype)

    height, width = geometry["latent"]
    frames = geometry["frames"]
    cfg = geometry["config"]
    inputs = dict(
        hidden_states=torch.randn(1, frames, 16, height, width, device=device, dtype=dtype),
        encoder_hidden_states=torch.randn(1, geometry["text_tokens"], cfg["joint_attention_dim"], device=device, dtype=dtype),
        pooled_projections=torch.randn(1, cfg["pooled_projection_dim"], device=device, dtype=dtype),
        timestep=torch.tensor([500.0], device=device),
    )

    def forward(model):
        with torch.no_grad():
            out = model(**inputs, return_dict=False)[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    ref = forward(official)
    out = forward(ours)
    rel_err = ((out.flatten(0, 1).float() - ref.float()).norm() / ref.float().norm()).item()
    times = {"official": [], "ours": []}
    for _ in range(args.repeats):
        for name, model in (("official", official), ("ours", ours)):
            start = time.perf_counter()
            forward(model)
            times[name].append(time.perf_counter() - start)
    peaks = {}
    for name, model in (("official", official), ("ours", ours)):
        result = {}
        with peak_memory(device, result):
            forward(model)
        peaks[name] = result["peak"]

    median = {k: statistics.median(v) for k, v in times.items()}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# Vchitect transformer, geometry {args.geometry}: {cfg['num_layers']} layers, "
          f"{cfg['num_attention_heads']}x{cfg['attention_head_dim']}, {frames} frames, latent {height}x{width}, "
          f"{geometry['text_tokens']} text tokens, {str(dtype).replace('torch.', '')}, {args.device} ({device_name}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}, {datetime.date.today()}")
    best = {k: min(v) for k, v in times.items()}
    print("| model | median s / forward | best s / forward | peak tensor memory MiB |")
    print("|---|---|---|---|")
    for name in ("official", "ours"):
        print(f"| {name} | {median[name]:.3f} | {best[name]:.3f} | {peaks[name] / 2**20:.1f} |")
    print(f"| ratio ours/official | {median['ours'] / median['official']:.3f} | {best['ours'] / best['official']:.3f} "
          f"| {peaks['ours'] / peaks['official']:.3f} |")
    print(f"relative L2 error ours vs official: {rel_err:.2e} ({args.repeats} alternating repeats)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-src", required=True, help="checkout of github.com/Vchitect/Vchitect-2.0")
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="mid")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
