"""VBench dimensions: the pack against the official vbench==0.1.5 in its own environment, on the same clips and the
same seeded random weights (the parity fixtures' clips and checkpoints): seconds and peak memory of each side, and
whether the scores are identical.

Each side runs in a fresh subprocess (so its peak resident memory is its own): the official one with the official
environment's Python and the unpacked package on its path, ours with this interpreter. Timed: building the model
from the checkpoint file, decoding the videos and scoring them (imports not timed), as wall seconds and as the
process's CPU seconds (all its threads), which depend much less on what else a shared machine runs.

    python benchmarks/vbench.py --official-python ENV/bin/python --vbench-src DIR [--dimensions dynamic_degree ...]
        [--threads 2] [--copies 1] [--every-pair]

Our dynamic_degree stops scoring a video's frame pairs once its verdict is settled; the seeded random RAFT sees motion
in every clip, so `--every-pair` times the worst case (a verdict that needs every pair) as well.

The seven quality dimensions: RAFT is the full-size network (seeded, as the parity fixtures); DINO, the two CLIPs,
MUSIQ and the LAION head are the parity fixtures' small configurations of the official architectures, AMT-S its
full configuration. The official VBench runs the dimensions one after the other, each loading its model and
decoding its videos, so its "together" time is the sum of its rows; ours is one `evaluate()` call over all of
them (each video decoded once). The official environment needs pyiqa 0.1.10 and omegaconf beside vbench's own
needs (pyiqa's unused `imgaug` import is stubbed: imgaug does not import under numpy 2).
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
QUALITY = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
           "dynamic_degree", "aesthetic_quality", "imaging_quality")
# clips every quality dimension takes (RAFT and AMT-S need 128 px a side)
# still.mp4 (written here: moving_gradient's first frame held for 9 frames) is a video that does not move, for which
# dynamic_degree needs nearly all its frame pairs to settle the verdict (7 of 8), where a moving one needs a few
QUALITY_CLIPS = ["moving_gradient.mp4", "pan_24fps.mp4", "still.mp4"]
CLIPS = {name: QUALITY_CLIPS for name in QUALITY}
TOGETHER = "quality (7 together)"
# the small MUSIQ's configuration, which the pack's imaging_quality reads from its options
OPTIONS = {"imaging_quality": {"musiq_architecture": json.loads(
    (FIXTURES / "imaging_quality.json").read_text())["checkpoints"]["musiq_spaq"]["architecture"]}}
# checkpoint key -> (fixture dimension, file name, the entry nests its state dict under this key or None)
CHECKPOINT_FILES = {
    "dino_vitb16": ("subject_consistency", "dino_vitbase16_pretrain.pth", None),
    "clip_vit_b_32": ("background_consistency", "ViT-B-32.pt", None),
    "clip_vit_l_14": ("aesthetic_quality", "ViT-L-14.pt", None),
    "aesthetic_head": ("aesthetic_quality", "sa_0_4_vit_l_14_linear.pth", None),
    "musiq_spaq": ("imaging_quality", "musiq_spaq_ckpt-358bb6af.pth", None),
    "amt_s": ("motion_smoothness", "amt-s.pth", "state_dict"),
}

OFFICIAL = r"""
import importlib.util, json, os, resource, sys, time, types
from functools import partial
for name in ("imgaug", "imgaug.augmenters"):  # pyiqa's data transforms import it; scoring does not use it
    sys.modules.setdefault(name, types.ModuleType(name))
sys.path.insert(0, sys.argv[1])
dimension, checkpoints, videos = sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
arch = json.loads(sys.argv[5])
import torch
if dimension == "dynamic_degree":
    from easydict import EasyDict
    from vbench import dynamic_degree as official
    start, cpu_start = time.perf_counter(), time.process_time()
    scorer = official.DynamicDegree(EasyDict(model=checkpoints["raft_things"], small=False, mixed_precision=False,
                                             alternate_corr=False), "cpu")
    aggregate, per_video = official.dynamic_degree(scorer, videos)
elif dimension == "temporal_flickering":
    from vbench import temporal_flickering as official
    start, cpu_start = time.perf_counter(), time.process_time()
    aggregate, per_video = official.temporal_flickering(videos)
elif dimension == "subject_consistency":
    from vbench import subject_consistency as official
    # DINO's vision_transformer.py (torch.hub's file, as dreamsim ships it), read by path
    spec = importlib.util.find_spec("dreamsim")
    path = os.path.join(spec.submodule_search_locations[0], "feature_extraction", "vision_transformer.py")
    spec = importlib.util.spec_from_file_location("dino_vision_transformer", path)
    dino = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dino)
    start, cpu_start = time.perf_counter(), time.process_time()
    model = dino.VisionTransformer(**arch, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    model.load_state_dict(torch.load(checkpoints["dino_vitb16"]), strict=True)
    aggregate, per_video = official.subject_consistency(model.eval(), videos, "cpu", False)
elif dimension == "background_consistency":
    from clip.model import build_model
    from vbench import background_consistency as official
    start, cpu_start = time.perf_counter(), time.process_time()
    model = build_model(torch.load(checkpoints["clip_vit_b_32"])).float().eval()
    with torch.no_grad():
        aggregate, per_video = official.background_consistency(model, None, videos, "cpu", False)
elif dimension == "aesthetic_quality":
    from clip.model import build_model
    from vbench import aesthetic_quality as official
    start, cpu_start = time.perf_counter(), time.process_time()
    model = build_model(torch.load(checkpoints["clip_vit_l_14"])).float().eval()
    head = official.get_aesthetic_model(os.path.dirname(checkpoints["aesthetic_head"]))
    aggregate, per_video = official.laion_aesthetic(head, model, videos, "cpu")
elif dimension == "imaging_quality":
    from pyiqa.archs.musiq_arch import MUSIQ
    from vbench import imaging_quality as official
    start, cpu_start = time.perf_counter(), time.process_time()
    model = MUSIQ(pretrained_model_path=checkpoints["musiq_spaq"], **arch)
    model.training = False
    with torch.no_grad():
        aggregate, per_video = official.technical_quality(model, videos, "cpu")
else:
    from vbench import motion_smoothness as official
    config = os.path.join(os.path.dirname(official.__file__), "third_party", "amt", "cfgs", "AMT-S.yaml")
    start, cpu_start = time.perf_counter(), time.process_time()
    scorer = official.MotionSmoothness(config, checkpoints["amt_s"], torch.device("cpu"))
    aggregate, per_video = official.motion_smoothness(scorer, videos)
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "aggregate": {dimension: float(aggregate)},
                  "per_video": {dimension: [float(r["video_results"]) for r in per_video]}}))
"""

OURS = r"""
import json, resource, sys, time
dimensions, checkpoints, videos = json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
options = {name: value for name, value in json.loads(sys.argv[5]).items() if name in dimensions}
from video_diffusion_pack.evaluation.vbench import evaluate
from video_diffusion_pack.evaluation.vbench.registry import dimension_module
from video_diffusion_pack import video_io  # noqa: F401
import av  # noqa: F401  (the video reader imports it at its first call; the official side imports cv2 before timing)
import torch, torchvision, transformers  # imported before timing, as the official side's imports are
from transformers.models.clip import modeling_clip  # noqa: F401  (the CLIP ports)
from transformers.models.vit import modeling_vit  # noqa: F401  (the DINO port)
from torchvision.models.optical_flow import raft  # noqa: F401
from video_diffusion_pack.evaluation.vbench.dimensions import _amt, _musiq  # noqa: F401
for name in dimensions:
    dimension_module(name)
if sys.argv[6] == "every-pair":  # the worst case of dynamic_degree: a verdict that needs every frame pair
    from video_diffusion_pack.evaluation.vbench.dimensions import dynamic_degree
    dynamic_degree.settled_verdict = lambda score_pairs, count, threshold, needed, batch_size: count > 0 and sum(
        score > threshold for score in score_pairs(0, count)) >= needed
start, cpu_start = time.perf_counter(), time.process_time()
needed = {key for name in dimensions for key in dimension_module(name).CHECKPOINTS}
results = evaluate(videos, dimensions, mode="custom", batch_size=16, dimension_options=options,
                   checkpoints={key: value for key, value in checkpoints.items() if key in needed})
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "aggregate": {name: float(results[name][0]) for name in dimensions},
                  "per_video": {name: [float(r["video_results"]) for r in results[name][1]] for name in dimensions}}))
"""


STILL = "still.mp4"


def write_still(path: Path) -> None:
    """moving_gradient.mp4's first frame held for its 9 frames, at its 8 fps."""
    import numpy as np

    from video_diffusion_pack.video_io import read_video, write_video

    first = read_video(FIXTURES / "moving_gradient.mp4").frames[0]
    write_video(path, np.repeat(first[None], 9, axis=0), fps=8)


def raft_checkpoint(folder: Path) -> str:
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.helpers.vbench_weights import raft_official_arrays

    entry = json.loads((FIXTURES / "dynamic_degree.json").read_text())["checkpoints"]["raft_things"]
    arrays = raft_official_arrays(entry["keys"], entry["seed"], entry["gain"], entry.get("key_gains"))
    path = folder / "raft-things.pth"
    torch.save({"module." + key: torch.from_numpy(value) for key, value in arrays.items()}, path)
    return str(path)


def small_checkpoints(folder: Path) -> dict:
    """checkpoint key -> file: the parity fixtures' seeded checkpoints in the official layouts."""
    sys.path.insert(0, str(ROOT))
    from tests.vbench.dimension_fixtures import official_result, write_seeded_checkpoint

    files = {}
    for key, (dimension, name, wrap) in CHECKPOINT_FILES.items():
        files[key] = str(write_seeded_checkpoint(official_result(dimension)["checkpoints"][key], folder / name, wrap))
    return files


def architecture(dimension: str) -> dict:
    """The small official architecture a fixture's checkpoint has (DINO, MUSIQ), or {}."""
    if dimension not in ("subject_consistency", "imaging_quality"):
        return {}
    entries = json.loads((FIXTURES / f"{dimension}.json").read_text())["checkpoints"]
    return next(iter(entries.values()))["architecture"]


def compare(official, ours, dimension):
    """'identical', or the largest relative difference of the per-video and aggregate scores."""
    a = official["per_video"][dimension] + [official["aggregate"][dimension]]
    b = ours["per_video"][dimension] + [ours["aggregate"][dimension]]
    if a == b:
        return "identical"
    worst = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b))
    return f"max rel. diff {worst:.1e}"


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
    parser.add_argument("--dimensions", nargs="+", default=list(QUALITY), choices=list(QUALITY))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--copies", type=int, default=1, help="score each clip this many times (as more videos)")
    parser.add_argument("--every-pair", action="store_true",
                        help="our dynamic_degree scores every frame pair, as for videos whose verdict needs them all "
                             "(random RAFT weights see motion in every clip, so the verdicts settle after a few pairs)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"{datetime.date.today()}")
    rows = []
    mode = "every-pair" if args.every_pair else "settled"
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        checkpoints = {"raft_things": raft_checkpoint(work), **small_checkpoints(work)}
        videos_of, officials = {}, {}
        for dimension in args.dimensions:
            videos = []
            for copy in range(args.copies):
                for name in CLIPS[dimension]:
                    target = work / f"{Path(name).stem}-{copy}.mp4"
                    if not target.exists() and name == STILL:
                        write_still(target)
                    elif not target.exists():
                        shutil.copyfile(FIXTURES / name, target)
                    videos.append(str(target))
            videos_of[dimension] = videos
            common = [json.dumps(checkpoints), json.dumps(videos)]
            official = run(args.official_python, OFFICIAL,
                           [args.vbench_src, dimension, *common, json.dumps(architecture(dimension))], args.threads)
            ours = run(sys.executable, OURS, ["", json.dumps([dimension]), *common, json.dumps(OPTIONS), mode], args.threads)
            officials[dimension] = official
            rows.append((dimension, len(videos), official, ours, compare(official, ours, dimension)))
            print(f"{dimension}: official {official['seconds']:.2f} s ({official['cpu_seconds']:.2f} CPU s), "
                  f"{official['peak_mib']:.0f} MiB; ours {ours['seconds']:.2f} s ({ours['cpu_seconds']:.2f} CPU s), "
                  f"{ours['peak_mib']:.0f} MiB; scores {rows[-1][-1]}", flush=True)
        if set(args.dimensions) == set(QUALITY):
            # one evaluate() over the seven (each on the clips every quality dimension takes)
            shared = list(videos_of["dynamic_degree"])
            together = run(sys.executable, OURS, ["", json.dumps(list(QUALITY)), json.dumps(checkpoints),
                                                  json.dumps(shared), json.dumps(OPTIONS), mode], args.threads)
            official_total = {key: sum(row[2][key] for row in rows) for key in ("seconds", "cpu_seconds")}
            official_total["peak_mib"] = max(row[2]["peak_mib"] for row in rows)
            verdicts = {compare(officials[name], together, name) for name in QUALITY}
            rows.append((TOGETHER, len(shared), official_total, together, ", ".join(sorted(verdicts))))
    # wall seconds depend on what else the machine runs; CPU seconds (all threads of the process) much less so
    print("\n| dimension | videos | official s | ours s | speed-up | official CPU s | ours CPU s | CPU speed-up | "
          "official peak MiB | ours peak MiB | scores |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dimension, count, official, ours, scores in rows:
        print(f"| {dimension} | {count} | {official['seconds']:.2f} | {ours['seconds']:.2f} | "
              f"{official['seconds'] / ours['seconds']:.2f}x | {official['cpu_seconds']:.2f} | "
              f"{ours['cpu_seconds']:.2f} | {official['cpu_seconds'] / ours['cpu_seconds']:.2f}x | "
              f"{official['peak_mib']:.0f} | {ours['peak_mib']:.0f} | {scores} |")


if __name__ == "__main__":
    main()
