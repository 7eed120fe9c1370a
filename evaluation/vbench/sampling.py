"""Generating the official VBench file set of a dimension with any pipeline: `{prompt}-{i}.mp4` for the suite's
prompts of the dimension, `samples` per prompt (5, or 25 for temporal_flickering before the static filter), sample
`i` from seed `seed + i`. Each video is written to a temporary name and renamed, files already there are kept (a run
continues where an interrupted one stopped), and `vbench_samples.json` in the folder records the prompt, index and
seed of every file with the settings of the run. Torch is not imported here: the caller's `sample(prompt, seed)`
makes the frames."""

import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from .suite import FLICKER_SAMPLES_PER_PROMPT, check_dimension, prompts, samples_per_prompt, video_name

RECORD_NAME = "vbench_samples.json"
MAX_SEED = 2**64


@dataclass(frozen=True)
class PlannedVideo:
    prompt: str
    index: int
    seed: int
    file_name: str


def default_samples(dimension: str) -> int:
    """The official number of samples a prompt: 5, or 25 for temporal_flickering (before the static filter)."""
    return samples_per_prompt(check_dimension(dimension), filtered=False)


def plan(dimension: str, samples: Optional[int] = None, seed: int = 0, max_prompts: Optional[int] = None,
         ext: str = ".mp4") -> List[PlannedVideo]:
    """The videos of `dimension`'s suite prompts (the first `max_prompts` of them when given), `samples` each,
    sample i from seed `seed + i`."""
    check_dimension(dimension)
    samples = default_samples(dimension) if samples is None else samples
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= FLICKER_SAMPLES_PER_PROMPT:
        raise ValueError(f"samples={samples!r} must be an integer in 1..{FLICKER_SAMPLES_PER_PROMPT}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed or seed + samples > MAX_SEED:
        raise ValueError(f"seed={seed!r} must be an integer with seed + samples <= 2**64")
    names = prompts(dimension)
    if max_prompts is not None:
        if isinstance(max_prompts, bool) or not isinstance(max_prompts, int) or not 1 <= max_prompts:
            raise ValueError(f"max_prompts={max_prompts!r} must be a positive integer (the suite has {len(names)})")
        names = names[:max_prompts]
    return [PlannedVideo(prompt, index, seed + index, video_name(prompt, index, ext))
            for prompt in names for index in range(samples)]


def _write_record(folder: str, record: Dict) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".vbench_samples.", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=1, ensure_ascii=False)
        os.replace(temporary, os.path.join(folder, RECORD_NAME))
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def read_record(folder: str) -> Dict:
    """The folder's `vbench_samples.json` ({'settings': ..., 'videos': {file: {prompt, index, seed}}}), or an empty
    record when there is none; ValueError naming the file when it is not such a record."""
    path = os.path.join(folder, RECORD_NAME)
    if not os.path.isfile(path):
        return {"settings": None, "videos": {}}
    try:
        with open(path, encoding="utf-8") as stream:
            record = json.load(stream)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r} is not a VBench samples record: {error}") from None
    if not isinstance(record, dict) or not isinstance(record.get("videos"), dict):
        raise ValueError(f"{path!r} is not a VBench samples record (no 'videos' mapping)")
    return record


def check_folder(planned: List[PlannedVideo], output_dir, settings: Optional[Dict] = None) -> Dict:
    """The folder's record, after checking that a run with `settings` may continue it: ValueError when its videos
    come from a run with other settings or a kept file was sampled from another seed."""
    output_dir = os.fspath(output_dir)
    record = read_record(output_dir) if os.path.isdir(output_dir) else {"settings": None, "videos": {}}
    settings = dict(settings or {})
    if record["videos"] and record.get("settings") not in (None, settings):
        changed = sorted(key for key in set(settings) | set(record["settings"] or {})
                         if settings.get(key) != (record["settings"] or {}).get(key))
        raise ValueError(
            f"{output_dir!r} holds videos of a run with other settings ({', '.join(changed)} differ, see "
            f"{RECORD_NAME}); choose another folder or remove them"
        )
    for video in planned:
        known = record["videos"].get(video.file_name)
        if known is not None and known.get("seed") != video.seed and os.path.isfile(
                os.path.join(output_dir, video.file_name)):
            raise ValueError(f"{video.file_name!r} in {output_dir!r} was sampled from seed {known.get('seed')}, this "
                             f"run samples it from seed {video.seed}; choose another folder or remove it")
    return record


def generate(
    planned: List[PlannedVideo],
    output_dir,
    sample: Callable[[str, int], object],
    *,
    fps: float,
    settings: Optional[Dict] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, List[str]]:
    """Writes every planned video missing from `output_dir` (frames from `sample(prompt, seed)`, [F,H,W,3] in 0..1
    or uint8) and returns {'written': [...], 'kept': [...], 'seconds': sampling time of the written ones}; the
    record keeps each video's sampling seconds.

    A file kept from an earlier run whose record names another seed, or a record of a run with other `settings`,
    is a ValueError (a folder mixes runs only knowingly: remove the files or choose another folder)."""
    from ...video_io import check_video_output, write_video

    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    for video in planned[:1]:
        check_video_output(os.path.join(output_dir, video.file_name), fps)
    record = check_folder(planned, output_dir, settings)
    settings = dict(settings or {})
    record["settings"] = settings
    written, kept, seconds = [], [], 0.0
    for count, video in enumerate(planned, 1):
        path = os.path.join(output_dir, video.file_name)
        if os.path.isfile(path):
            kept.append(path)
            record["videos"].setdefault(video.file_name, {"prompt": video.prompt, "index": video.index,
                                                          "seed": video.seed})
            continue
        if progress is not None:
            progress(f"[{count}/{len(planned)}] {video.file_name} (seed {video.seed})")
        start = time.perf_counter()
        frames = sample(video.prompt, video.seed)
        took = time.perf_counter() - start
        seconds += took
        write_video(path, frames, fps=fps, metadata={**settings, "prompt": video.prompt, "seed": video.seed,
                                                     "vbench_index": video.index})
        record["videos"][video.file_name] = {"prompt": video.prompt, "index": video.index, "seed": video.seed,
                                             "seconds": round(took, 4)}
        _write_record(output_dir, record)
        written.append(path)
    _write_record(output_dir, record)
    return {"written": written, "kept": kept, "seconds": seconds}
