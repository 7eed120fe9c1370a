"""VBench's static filter (`vbench static_filter`): which generated videos temporal_flickering scores.

As the official command with its default scope: the `*.mp4` files of a folder in sorted order whose prompt (the
file name minus `-<number>`) is a temporal_flickering prompt of the suite, each judged by RAFT until 5 static ones
per prompt are found (`dimensions.dynamic_degree.video_is_static`); the static ones copied to
`<output>/filtered_videos/{prompt}-{i}.mp4` (i from 0 per prompt) and the summary written to
`<output>/filtered_static_video.json` ({prompt: {"static_count", "static_path"}}). Generate 25 samples a prompt
(`suite.FLICKER_SAMPLES_PER_PROMPT`) so that 5 static ones are likely.
"""

import glob
import json
import os
import shutil
import tempfile
from typing import Dict, Mapping, Optional

from . import suite

KEEP_PER_PROMPT = 5
INFO_FILE = "filtered_static_video.json"
FILTERED_FOLDER = "filtered_videos"


def static_filter(videos, output_dir, weights_dir=None, checkpoints: Optional[Mapping] = None, *, device="cpu",
                  batch_size: int = 8, progress: bool = False) -> Dict[str, Dict]:
    """Runs the official static filter on the folder `videos`; returns {prompt: {"static_count", "static_path"}}
    for every temporal_flickering prompt, as written to `<output_dir>/filtered_static_video.json`.

    The RAFT checkpoint is found as `evaluate` finds dynamic_degree's (`weights_dir` or `checkpoints`); a file that
    cannot be decoded is named. `filtered_videos` is written through a temporary folder and replaced whole.
    """
    from . import _check_output_dir, _decode, resolve_checkpoints
    from .dimensions import dynamic_degree

    videos = os.fspath(videos)
    if not os.path.isdir(videos):
        raise ValueError(f"videos={videos!r} is not a folder")
    output_dir = _check_output_dir(output_dir)
    found = resolve_checkpoints("dynamic_degree", weights_dir, checkpoints)
    prompts = suite.prompts("temporal_flickering")
    results = {prompt: {"static_count": 0, "static_path": []} for prompt in prompts}
    paths = sorted(glob.glob(os.path.join(glob.escape(videos), "*.mp4")))
    candidates = [path for path in paths if suite.prompt_from_filename(path) in results]
    if not candidates:
        raise FileNotFoundError(f"videos={videos!r} holds no {{prompt}}-{{i}}.mp4 file of a temporal_flickering prompt")
    model = dynamic_degree.load_raft(found["raft_things"], device)
    if progress:
        from tqdm import tqdm

        candidates = tqdm(candidates, desc="static filter", unit="video")
    for path in candidates:
        entry = results[suite.prompt_from_filename(path)]
        if entry["static_count"] >= KEEP_PER_PROMPT:
            continue
        frames = _decode(path).frames
        try:
            dynamic_degree._check_sizes([frames], "static_filter")
        except ValueError as error:
            raise ValueError(str(error).replace("videos[0]", repr(path))) from None
        if dynamic_degree.video_static(model, frames, device, batch_size):
            entry["static_count"] += 1
            entry["static_path"].append(path)

    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".filtered_videos-", dir=output_dir)
    try:
        for prompt, entry in results.items():
            for index, path in enumerate(entry["static_path"]):
                shutil.copyfile(path, os.path.join(staging, f"{prompt}-{index}.mp4"))
        target = os.path.join(output_dir, FILTERED_FOLDER)
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info = os.path.join(output_dir, INFO_FILE)
    with open(info + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(results, handle)
    os.replace(info + ".tmp", info)
    return results
