"""Shared parts of the shapes-world benchmarks (`shapes_freeinit.py`, `shapes_fastercache.py`, `shapes_repvideo.py`):
loading a model folder, sampling the fixed prompts, scoring with the quality bed and VBench's temporal flickering,
and the header line every table carries.

Every script takes the model folder as an argument (a `VchitectRepVideoPipeline` folder in the released layout; the
default is the shipped `embedded_models/vchitect`), so the rows can be re-run on a retrained model in minutes.
"""

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

SCORE_FIELDS = ("color", "shape", "motion", "background", "relation", "temporal_iou", "color_drift")


def load(folder: Optional[str]):
    """The pipeline of a model folder (None: the shipped embedded model), float32, on the CPU, no progress bar."""
    from video_diffusion_pack.diffusers_pipelines.vchitect import VchitectRepVideoPipeline
    from video_diffusion_pack.diffusers_pipelines.vchitect.embedded import embedded_folder

    folder = str(embedded_folder("vchitect")) if folder is None else folder
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise SystemExit(f"model folder {folder!r} has no model_index.json; give a VchitectRepVideoPipeline folder")
    pipe = VchitectRepVideoPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe, folder


def settings(steps: Optional[int] = None, guidance: Optional[float] = None):
    """The embedded model's default sampling settings, with the step count and guidance scale overridable."""
    from video_diffusion_pack.diffusers_pipelines.vchitect.defaults import EMBEDDED

    overrides = {k: v for k, v in (("num_inference_steps", steps), ("guidance_scale", guidance)) if v is not None}
    return dataclasses.replace(EMBEDDED, **overrides)


def sample(pipe, prompt: str, seed: int, config, steps: Optional[int] = None, **call) -> np.ndarray:
    """One video [F, H, W, 3] uint8 of a prompt and seed."""
    output = pipe(prompt=prompt, height=config.height, width=config.width, num_frames=config.num_frames,
                  num_inference_steps=steps or config.num_inference_steps, guidance_scale=config.guidance_scale,
                  generator=torch.Generator().manual_seed(seed), output_type="np", **call)
    return np.round(output.frames[0] * 255).astype(np.uint8)


@dataclasses.dataclass
class SetRun:
    """Videos of a prompt set, their bed scores and the time they took (process CPU and wall seconds in all)."""

    prompts: List[Tuple[str, int]]
    videos: List[np.ndarray]
    scores: list
    cpu_seconds: float
    wall_seconds: float

    def subset(self, keep: Sequence[int]) -> "SetRun":
        share = len(keep) / max(1, len(self.prompts))
        return SetRun([self.prompts[i] for i in keep], [self.videos[i] for i in keep], [self.scores[i] for i in keep],
                      self.cpu_seconds * share, self.wall_seconds * share)


def run_set(pipe, prompts, config, steps: Optional[int] = None, **call) -> SetRun:
    """Samples and scores every (prompt, seed) of `prompts`."""
    from video_diffusion_pack.evaluation.shapes import quality

    videos, scores = [], []
    cpu, wall = time.process_time(), time.perf_counter()
    for prompt, seed in prompts:
        videos.append(sample(pipe, prompt, seed, config, steps, **call))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for frames, (prompt, _) in zip(videos, prompts):
        scores.append(quality.score_prompt(frames, prompt))
    return SetRun(list(prompts), videos, scores, cpu, wall)


def flickering(videos: Sequence[np.ndarray]) -> float:
    """VBench temporal flickering (the pack's `evaluation.vbench` dimension), mean over the videos."""
    from video_diffusion_pack.evaluation.vbench.dimensions.temporal_flickering import video_score

    return float(np.mean([video_score(frames) for frames in videos]))


def summary(run: SetRun) -> Dict[str, Optional[float]]:
    from video_diffusion_pack.evaluation.shapes import quality

    result = quality.summarise(run.scores)
    result["flickering"] = flickering(run.videos)
    return result


def video_psnr(video: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB, peak 255) of a uint8 video against a reference video."""
    error = np.mean((video.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255.0**2 / error)


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def header(title: str, folder: str, config, count: int) -> None:
    print(f"# {title}: model {folder}; {count} prompts, {config.height}x{config.width}x{config.num_frames}, "
          f"{config.num_inference_steps} steps, guidance {config.guidance_scale}; {platform.machine()} "
          f"({os.cpu_count()} CPUs), torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
          f"{datetime.date.today()}", flush=True)


def training_captions(metadata: Optional[str]) -> Optional[List[str]]:
    """The captions of a training `metadata.jsonl` (None when no file is given)."""
    if metadata is None:
        return None
    path = pathlib.Path(metadata)
    if not path.is_file():
        raise SystemExit(f"--training-metadata {metadata!r} is not a file; give the training data's metadata.jsonl")
    with path.open() as rows:
        return [json.loads(line)["caption"] for line in rows if line.strip()]
