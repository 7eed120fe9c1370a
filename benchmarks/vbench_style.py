"""VBench appearance_style, temporal_style and overall_consistency: the pack against the official vbench==0.1.5 in
its own environment, on the same clips, the same seeded tiny models as the parity fixtures (CLIP in the ViT-B/32
layout; ViCLIP at the released patch 14, 224 px, 8 frames, at a small width) and the full official BPE vocabulary:
seconds (wall and process CPU), peak memory, and the largest difference of the per-video scores.

Each side runs in a fresh subprocess (so its peak resident memory is its own): the official one with the official
environment's Python (torch, torchvision, openai-clip, ftfy, timm, einops, decord) and the unpacked package on its
path, ours with this interpreter. Timed: building the model from the checkpoint file, decoding the videos and
scoring them (imports not timed). The official code scores one frame (appearance_style) or one video (ViCLIP) per
forward pass; the pack batches frames across videos.

    python benchmarks/vbench_style.py --official-python ENV/bin/python --vbench-src DIR [--copies 4] [--threads 2]
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
CLIPS = ["moving_gradient.mp4", "pan_24fps.mp4", "static_flicker.mp4", "wide_noise.mp4"]
STYLES = ["Van Gogh style", "oil painting", "by Hokusai, in the style of Ukiyo", "pixel art"]
PROMPTS = ["A beautiful coastal beach in spring, waves lapping on sand, in super slow motion",
           "a cute happy Corgi playing in park, sunset", "an astronaut flying in space, oil painting",
           "The bund Shanghai, zoom out"]
DIMENSIONS = ("appearance_style", "temporal_style", "overall_consistency")

OFFICIAL = r"""
import importlib, importlib.util, json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
dimension, checkpoint, items, fixture_script, cache = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5], sys.argv[6]
os.environ["VBENCH_CACHE_DIR"] = cache
import torch
spec = importlib.util.spec_from_file_location("fixtures", fixture_script)
fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixtures)
official = importlib.import_module(f"vbench.{dimension}")
if dimension == "appearance_style":
    from clip.model import build_model
    start, cpu_start = time.perf_counter(), time.process_time()
    model = build_model(torch.load(checkpoint)).float().eval()
    video_dict = [{"prompt": "", "video_list": [path], "auxiliary_info": {"appearance_style": text}}
                  for path, text in items]
    aggregate, per_video = official.appearance_style(model, video_dict, "cpu")
else:
    from vbench.third_party.ViCLIP.simple_tokenizer import SimpleTokenizer
    vocab = os.path.join(cache, "ViCLIP", "bpe_simple_vocab_16e6.txt.gz")
    start, cpu_start = time.perf_counter(), time.process_time()
    tokenizer = SimpleTokenizer(vocab)
    model = fixtures.tiny_viclip_class(vocab)(tokenizer=tokenizer, pretrain=checkpoint).to("cpu")
    video_dict = [{"prompt": text, "video_list": [path]} for path, text in items]
    aggregate, per_video = getattr(official, dimension)(model, video_dict, tokenizer, "cpu")
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "aggregate": float(aggregate), "per_video": [float(r["video_results"]) for r in per_video]}))
"""

OURS = r"""
import importlib, json, resource, sys, time
dimension, checkpoint, items = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
import torch, torchvision  # imported before timing, as the official side's imports are
from transformers import CLIPModel, CLIPTokenizer
from video_diffusion_pack.models.checkpoint import key_table_problems
from video_diffusion_pack.video_io import read_video
module = importlib.import_module(f"video_diffusion_pack.evaluation.vbench.dimensions.{dimension}")
importlib.import_module("video_diffusion_pack.evaluation.vbench.dimensions._openai_clip_text")
importlib.import_module("video_diffusion_pack.evaluation.vbench.dimensions._viclip")
start, cpu_start = time.perf_counter(), time.process_time()
frames = [read_video(path).frames for path, _ in items]
texts = [text for _, text in items]
key = "clip_vit_b_32" if dimension == "appearance_style" else "viclip"
if dimension == "appearance_style":
    extra = {"auxiliary_info": [{"appearance_style": text} for text in texts]}
else:
    extra = {"prompts": texts}
aggregate, per_video = module.compute(frames, checkpoints={key: checkpoint}, batch_size=32, **extra)
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
scores = [r["video_results"] if isinstance(r, dict) else r for r in per_video]
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "aggregate": float(aggregate), "per_video": scores}))
"""


def checkpoints(folder: Path) -> dict:
    """The seeded tiny checkpoints of the parity fixtures, written in the official file layouts."""
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.helpers.vbench_weights import seeded_arrays

    paths = {}
    entry = json.loads((FIXTURES / "appearance_style.json").read_text())["checkpoints"]["clip_vit_b_32"]
    arrays = seeded_arrays(entry["keys"], entry["seed"])
    half = set(entry["float16_keys"])
    paths["appearance_style"] = folder / "ViT-B-32.pt"
    torch.save({k: torch.from_numpy(v).half() if k in half else torch.from_numpy(v) for k, v in arrays.items()},
               paths["appearance_style"])
    entry = json.loads((FIXTURES / "temporal_style.json").read_text())["checkpoints"]["viclip"]
    paths["temporal_style"] = paths["overall_consistency"] = folder / "ViClip-InternVid-10M-FLT.pth"
    torch.save({"model": {k: torch.from_numpy(v) for k, v in seeded_arrays(entry["keys"], entry["seed"]).items()}},
               paths["temporal_style"])
    return {key: str(value) for key, value in paths.items()}


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
    parser.add_argument("--dimensions", nargs="+", default=list(DIMENSIONS), choices=DIMENSIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--copies", type=int, default=4, help="score each of the 4 clips this many times")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from video_diffusion_pack.evaluation.vbench.dimensions._clip_tokenizer import OFFICIAL_BPE

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"{datetime.date.today()}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        paths = checkpoints(work)
        (work / "cache" / "ViCLIP").mkdir(parents=True)
        shutil.copyfile(OFFICIAL_BPE, work / "cache" / "ViCLIP" / "bpe_simple_vocab_16e6.txt.gz")
        for dimension in args.dimensions:
            texts = STYLES if dimension == "appearance_style" else PROMPTS
            items = []
            for copy in range(args.copies):
                for index, name in enumerate(CLIPS):
                    target = work / f"{Path(name).stem}-{copy}.mp4"
                    if not target.exists():
                        shutil.copyfile(FIXTURES / name, target)
                    items.append((str(target), texts[(index + copy) % len(texts)]))
            common = [dimension, paths[dimension], json.dumps(items)]
            script = str(ROOT / "tests" / "fixtures" / "make_vbench_style_fixtures.py")
            official = run(args.official_python, OFFICIAL, [args.vbench_src, *common, script, str(work / "cache")],
                           args.threads)
            ours = run(sys.executable, OURS, ["", *common], args.threads)
            difference = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(official["per_video"], ours["per_video"]))
            rows.append((dimension, len(items), official, ours, difference))
            print(f"{dimension}: official {official['seconds']:.2f} s ({official['cpu_seconds']:.2f} CPU s), "
                  f"{official['peak_mib']:.0f} MiB; ours {ours['seconds']:.2f} s ({ours['cpu_seconds']:.2f} CPU s), "
                  f"{ours['peak_mib']:.0f} MiB; largest relative difference per video {difference:.1e}", flush=True)
    print("\n| dimension | videos | official s (CPU s) | ours s (CPU s) | speed-up wall (CPU) | official peak MiB | "
          "ours peak MiB | max rel. diff. per video |")
    print("|---|---|---|---|---|---|---|---|")
    for dimension, count, official, ours, difference in rows:
        print(f"| {dimension} | {count} | {official['seconds']:.2f} ({official['cpu_seconds']:.2f}) | "
              f"{ours['seconds']:.2f} ({ours['cpu_seconds']:.2f}) | {official['seconds'] / ours['seconds']:.2f}x "
              f"({official['cpu_seconds'] / ours['cpu_seconds']:.2f}x) | {official['peak_mib']:.0f} | "
              f"{ours['peak_mib']:.0f} | {difference:.1e} |")


if __name__ == "__main__":
    main()
