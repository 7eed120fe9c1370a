"""Results in the official `<name>_eval_results.json` layout: {dimension: [aggregate, [{'video_path',
'video_results', ...extras}, ...]]}, indent 4 as the official `save_json`, so the official scripts and leaderboard
tooling read them. Files are written to a temporary name and renamed; a partial file is read back to resume."""

import json
import math
import os
import tempfile
from typing import Dict, List, Optional

from .registry import known_dimensions
from .suite import SUITE_VERSION


def results_path(output_dir: str, name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"name must be a non-empty file name without path separators, got {name!r}")
    return os.path.join(output_dir, f"{name}_eval_results.json")


def _to_json(value):
    """numpy scalars and arrays as plain Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return value


def write_results(results: Dict, path: str) -> str:
    """Write `results` ({dimension: (aggregate, per_video)}) atomically to `path`; returns `path`."""
    data = {dimension: _to_json(list(entry)) for dimension, entry in results.items()}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".eval_results.", suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=4)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def read_results(path: str, videos: Optional[Dict[str, List[str]]] = None) -> Dict:
    """The results of a `<name>_eval_results.json` file, checked to be in the official layout.

    A dimension that is not one of the suite's, or (with `videos`: dimension -> video paths about to be scored)
    whose per-video file names differ from them (another suite version, other videos), is a ValueError naming the
    file and the dimension."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(f"results file {path!r} is not JSON: {error}") from None
    known = set(known_dimensions())
    if not isinstance(data, dict):
        raise ValueError(f"results file {path!r} must hold {{dimension: [aggregate, per_video]}}, got a list")
    for dimension, entry in data.items():
        if (
            not isinstance(entry, list)
            or len(entry) < 2
            or not isinstance(entry[0], (int, float))
            or isinstance(entry[0], bool)
            or not isinstance(entry[-1], list)
        ):
            raise ValueError(
                f"results file {path!r}: {dimension!r} must be [aggregate number, per-video list], got {entry!r:.80}"
            )
        if not math.isfinite(entry[0]):
            raise ValueError(f"results file {path!r}: {dimension!r} has a non-finite aggregate {entry[0]!r}")
        if dimension not in known:
            raise ValueError(
                f"results file {path!r} holds {dimension!r}, which is not a dimension of the {SUITE_VERSION} suite; "
                f"it belongs to another suite version: remove it or choose another name"
            )
        if videos is not None and dimension in videos:
            stored = sorted(os.path.basename(str(item.get("video_path"))) for item in entry[-1] if isinstance(item, dict))
            expected = sorted(os.path.basename(video) for video in videos[dimension])
            # color lists only the videos in which it found the object
            if stored != expected and not (dimension == "color" and set(stored) <= set(expected)):
                differing = sorted(set(stored) ^ set(expected))[:3]
                raise ValueError(
                    f"results file {path!r}: {dimension!r} was scored on other videos ({len(stored)} stored, "
                    f"{len(expected)} now; e.g. {differing}); it belongs to another suite version or folder: remove "
                    f"it or choose another name"
                )
    return data
