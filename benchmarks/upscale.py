"""Peak memory and time of tiled against untiled upscaling (upscale.py), and how far the tiled frames are from the
untiled ones, at a few frame sizes.

The models have random weights and are built from spandrel's own classes: `compact` is Real-ESRGAN's SRVGGNetCompact
at the geometry of the released realesr-animevideov3 x4 (64 features, 16 body convolutions); `esrgan` is the RRDBNet
of ESRGAN / RealESRGAN_x4plus (64 filters, x4) with 2 RRDB blocks instead of 23, which keeps the CPU time short and
the memory the same: the peak is set by the 64-channel upsampling convolutions at 2x and 4x the input size. Each (size, mode) runs in a fresh process:
"peak" is the growth of the process's peak resident set (ru_maxrss) during the call over its size before it, on cuda
`torch.cuda.max_memory_allocated`. The untiled and tiled outputs of one size are compared in a third process.

    python benchmarks/upscale.py [--model compact] [--sizes 128 256 512] [--frames 2] [--tile 128] [--overlap 16]
                                 [--device cpu]
"""

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time

MODELS = {
    "compact": "SRVGGNetCompact x4 (64 features, 16 convolutions)",
    "esrgan": "ESRGAN RRDBNet x4 (64 filters, 2 RRDB blocks)",
}


def _build(name: str, device: str):
    import torch
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN

    from video_diffusion_pack.upscale import load_upscale_model

    torch.manual_seed(0)
    network = Compact(num_feat=64, num_conv=16, upscale=4) if name == "compact" else ESRGAN(num_blocks=2, scale=4)
    state_dict = network.state_dict()
    if name == "esrgan":  # random weights put the output near 0, where clamping hides differences: centre it on grey
        last_bias = [key for key in state_dict if key.endswith(".bias")][-1]
        state_dict[last_bias] = torch.full_like(state_dict[last_bias], 0.5)
    return load_upscale_model(state_dict, device=device)


def _frames(size: int, count: int):
    import torch

    return torch.rand(count, size, size, 3, generator=torch.Generator().manual_seed(size))


def child(spec: dict) -> dict:
    import torch

    from video_diffusion_pack.upscale import upscale_video

    model = _build(spec["model"], spec["device"])
    frames = _frames(spec["size"], spec["frames"])
    tile = spec["tile"] if spec["mode"] == "tiled" else None
    upscale_video(frames[:1, :16, :16], model, tile=None)  # first-call effects out of the measurement
    if spec["device"] == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    output = upscale_video(frames, model, tile=tile, overlap=spec["overlap"], batch=spec["frames"])
    if spec["device"] == "cuda":
        torch.cuda.synchronize()
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    seconds = time.perf_counter() - start
    if spec.get("save"):
        torch.save(output, spec["save"])
    return {"peak_mib": peak_mib, "seconds": seconds}


def _run_child(spec: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=tuple(MODELS), default="compact")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    import torch

    print(f"{datetime.date.today()}, {platform.machine()}, python {platform.python_version()}, torch "
          f"{torch.__version__}, device {args.device}; {MODELS[args.model]}, "
          f"{args.frames} frames a call, tile {args.tile}, overlap {args.overlap}")
    print("| frame (input) | untiled peak (MiB) | tiled peak (MiB) | peak ratio | untiled s | tiled s | time ratio "
          "| max abs diff (0..1) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            common = dict(model=args.model, size=size, frames=args.frames, tile=args.tile, overlap=args.overlap, device=args.device)
            untiled = _run_child(dict(common, mode="untiled", save=f"{folder}/untiled.pt"))
            tiled = _run_child(dict(common, mode="tiled", save=f"{folder}/tiled.pt"))
            difference = (torch.load(f"{folder}/untiled.pt") - torch.load(f"{folder}/tiled.pt")).abs().max().item()
            print(f"| {size}x{size} | {untiled['peak_mib']:.0f} | {tiled['peak_mib']:.0f} | "
                  f"{tiled['peak_mib'] / max(untiled['peak_mib'], 1e-9):.2f} | {untiled['seconds']:.2f} | "
                  f"{tiled['seconds']:.2f} | {tiled['seconds'] / untiled['seconds']:.2f} | {difference:.2g} |")


if __name__ == "__main__":
    main()
