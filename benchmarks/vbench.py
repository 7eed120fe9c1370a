"""VBench dimensions: the pack against the official vbench==0.1.5 in its own environment, on the same clips and the
same seeded random weights (the parity fixtures' clips and checkpoints): seconds and peak memory of each side, and
whether the scores are identical.

Each side runs in a fresh subprocess (so its peak resident memory is its own): the official one with the official
environment's Python and the unpacked package on its path, ours with this interpreter. Timed: building the model
from the checkpoint file, decoding the videos and scoring them (imports not timed).

    python benchmarks/vbench.py --official-python ENV/bin/python --vbench-src DIR [--dimensions dynamic_degree ...]
        [--threads 2] [--copies 1]

Dimensions covered here: dynamic_degree (RAFT) and temporal_flickering (model-free).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "vbench"
CLIPS = {"dynamic_degree": ["moving_gradient.mp4", "pan_24fps.mp4"],
         "temporal_flickering": ["moving_gradient.mp4", "pan_24fps.mp4", "static_flicker.mp4"]}

OFFICIAL = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
dimension, checkpoint, videos = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if dimension == "dynamic_degree":
    from easydict import EasyDict
    from vbench import dynamic_degree as official
    start = time.perf_counter()
    scorer = official.DynamicDegree(EasyDict(model=checkpoint, small=False, mixed_precision=False,
                                             alternate_corr=False), "cpu")
    aggregate, per_video = official.dynamic_degree(scorer, videos)
else:
    from vbench import temporal_flickering as official
    start = time.perf_counter()
    aggregate, per_video = official.temporal_flickering(videos)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "aggregate": float(aggregate), "per_video": [r["video_results"] for r in per_video]}))
"""

OURS = r"""
import json, resource, sys, time
dimension, checkpoint, videos = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
from video_diffusion_pack.evaluation.vbench import evaluate
import torch, torchvision  # imported before timing, as the official side's imports are
start = time.perf_counter()
checkpoints = {"raft_things": checkpoint} if dimension == "dynamic_degree" else None
results = evaluate(videos, [dimension], mode="custom", checkpoints=checkpoints, batch_size=8)
seconds = time.perf_counter() - start
aggregate, per_video = results[dimension]
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "aggregate": float(aggregate), "per_video": [r["video_results"] for r in per_video]}))
"""


def raft_checkpoint(folder: Path) -> str:
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.helpers.vbench_weights import raft_official_arrays

    entry = json.loads((FIXTURES / "dynamic_degree.json").read_text())["checkpoints"]["raft_things"]
    arrays = raft_official_arrays(entry["keys"], entry["seed"], entry["gain"], entry.get("key_gains"))
    path = folder / "raft-things.pth"
    torch.save({"module." + key: torch.from_numpy(value) for key, value in arrays.items()}, path)
    return str(path)


def run(python, code, args, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    result = subprocess.run([python, "-W", "ignore", "-c", code, *args], capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"{python} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-python", required=True, help="Python of an environment with vbench's needs")
    parser.add_argument("--vbench-src", required=True, help="folder holding the official vbench package")
    parser.add_argument("--dimensions", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--copies", type=int, default=1, help="score each clip this many times (as more videos)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"{datetime.date.today()}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        checkpoint = raft_checkpoint(work)
        for dimension in args.dimensions:
            videos = []
            for copy in range(args.copies):
                for name in CLIPS[dimension]:
                    target = work / f"{Path(name).stem}-{copy}.mp4"
                    shutil.copyfile(FIXTURES / name, target)
                    videos.append(str(target))
            common = [dimension, checkpoint, json.dumps(videos)]
            official = run(args.official_python, OFFICIAL, [args.vbench_src, *common], args.threads)
            ours = run(sys.executable, OURS, ["", *common], args.threads)
            identical = official["per_video"] == ours["per_video"] and official["aggregate"] == ours["aggregate"]
            rows.append((dimension, len(videos), official, ours, identical))
            print(f"{dimension}: official {official['seconds']:.2f} s, {official['peak_mib']:.0f} MiB; ours "
                  f"{ours['seconds']:.2f} s, {ours['peak_mib']:.0f} MiB; {official['seconds'] / ours['seconds']:.2f}x "
                  f"faster; scores {'identical' if identical else 'DIFFER'} ({official['per_video']} / "
                  f"{ours['per_video']})", flush=True)
    print("\n| dimension | videos | official s | ours s | speed-up | official peak MiB | ours peak MiB | scores |")
    print("|---|---|---|---|---|---|---|---|")
    for dimension, count, official, ours, identical in rows:
        print(f"| {dimension} | {count} | {official['seconds']:.2f} | {ours['seconds']:.2f} | "
              f"{official['seconds'] / ours['seconds']:.2f}x | {official['peak_mib']:.0f} | {ours['peak_mib']:.0f} | "
              f"{'identical' if identical else 'differ'} |")


if __name__ == "__main__":
    main()
