"""Weight memory and peak memory of a pipeline run per low-memory option (diffusers_pipelines/memory.py).

Each option runs in a fresh process (one tiny pipeline of the pack, random weights, the geometry given): the
denoiser's weight bytes as stored (fp8 storage shows here), and the peak memory of the run: on cuda
`torch.cuda.max_memory_allocated`, on the cpu the growth of the process's peak resident set (ru_maxrss) over its
size before the run. The video of each option is compared with the plain run's (max absolute difference, in 0..1).
Options that need an accelerator (model and sequential offload) are listed as such on the cpu.

    python benchmarks/memory.py [--pipeline repvideo] [--device cpu] [--height 64] [--width 64] [--frames 9]
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

OPTIONS = {
    "none": {},
    "vae_tiling": dict(vae_tiling=True),
    "vae_slicing": dict(vae_slicing=True),
    "group offload (block)": dict(offload="group"),
    "group offload (leaf)": dict(offload="group", group_offload_type="leaf_level"),
    "fp8 weights, bf16 compute": dict(fp8=True),
    "model offload": dict(offload="model"),
    "sequential offload": dict(offload="sequential"),
    "preset low": dict(memory="low"),
}
PIPELINES = ("vchitect", "das", "repvideo", "lgvi")


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def child(spec: dict) -> dict:
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pipelines"))
    from test_pipelines_common import arguments, build, denoiser

    from video_diffusion_pack.diffusers_pipelines.memory import apply_memory, memory_config

    device = spec["device"]
    switches = dict(spec["switches"])
    memory = switches.pop("memory", None)
    pipe = build(spec["pipeline"])
    config = memory_config(memory, **switches)
    if config.offload == "none":
        pipe.to(device)
    apply_memory(pipe, config, device=device)
    weights = sum(p.numel() * p.element_size() for p in denoiser(pipe).parameters())
    kwargs = dict(arguments(spec["pipeline"]), num_inference_steps=spec["steps"], output_type="np",
                  generator=torch.Generator().manual_seed(0))
    for name in ("height", "width"):
        if spec[name]:
            kwargs[name] = spec[name]
    if spec["frames"] and "num_frames" in kwargs:
        kwargs["num_frames"] = spec["frames"]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _rss_kib()
    start = time.perf_counter()
    video = pipe(**kwargs).frames
    seconds = time.perf_counter() - start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    import numpy as np

    np.save(spec["video"], np.asarray(video, dtype=np.float32))
    return dict(weights_mib=weights / 2**20, peak_mib=peak, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", choices=PIPELINES, default="repvideo")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--frames", type=int, default=0, help="default: the tiny run's")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    import numpy as np

    print(f"# {args.pipeline} (tiny, random weights) {args.height}x{args.width}, {args.steps} steps, {args.device}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"{datetime.date.today().isoformat()}")
    print("| option | denoiser weights (MiB) | peak of the run (MiB) | seconds | max abs diff vs none |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        reference = None
        for label, switches in OPTIONS.items():
            spec = dict(vars(args), switches=switches, video=os.path.join(folder, f"{len(os.listdir(folder))}.npy"))
            spec.pop("child")
            result = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                    text=True)
            if result.returncode != 0:
                reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
                print(f"| {label} | - | - | - | {reason[:110]} |")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            video = np.load(spec["video"])
            reference = video if reference is None else reference
            difference = float(np.abs(video - reference).max())
            print(f"| {label} | {row['weights_mib']:.3f} | {row['peak_mib']:.1f} | {row['seconds']:.2f} | "
                  f"{difference:.2e} |")


if __name__ == "__main__":
    main()
