"""Shared by the VBench dimension tests: the official scores and clips, and seeded checkpoints rebuilt in the
official file layouts."""

import functools
import json
from pathlib import Path

import torch

from tests.helpers.vbench_weights import arrays_sha256, seeded_arrays

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vbench"


def official_result(dimension: str) -> dict:
    return json.loads((FIXTURES / f"{dimension}.json").read_text(encoding="utf-8"))


def write_seeded_checkpoint(entry: dict, path: Path, wrap=None) -> Path:
    """The checkpoint of a fixture entry written as the official file (a torch.save of the state dict, under `wrap`
    when the official file nests it; `float16_keys` stored in fp16 as in the released file), after checking the seeded weights against the recorded hash."""
    arrays = seeded_arrays(entry["keys"], entry["seed"], entry.get("gain", 1.0), entry.get("key_gains"))
    assert arrays_sha256(arrays) == entry["sha256"]
    half = set(entry.get("float16_keys", ()))
    state = {key: torch.from_numpy(value) for key, value in arrays.items()}
    state = {key: value.half() if key in half else value for key, value in state.items()}
    torch.save({wrap: state} if wrap else state, path)
    return path


@functools.lru_cache(maxsize=None)
def fixture_clips():
    """name -> uint8 [F,H,W,3] frames of the committed clips, decoded by the pack's reader."""
    from video_diffusion_pack.video_io import read_video

    return {path.name: read_video(path).frames for path in sorted(FIXTURES.glob("*.mp4"))}
