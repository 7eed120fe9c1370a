"""The official VBench prompt suite (`VBench_full_info.json` of vbench 0.1.5, shipped as package data), its file
naming and the two ways of finding the videos to score.

Standard mode: for every prompt of the suite that belongs to a requested dimension, the files
`{prompt}{special_str}-{i}{ext}` with i in 0..4 (0..24 for temporal_flickering before the static filter), `ext` the
extension of the folder's videos. Unlike the official code, which prints a warning, missing files are an error that
lists them. Custom-input mode: every video of the folder, its prompt the file stem without a trailing `-<number>`;
the six dimensions that need the suite's auxiliary info are refused there. The I2V dimensions take their prompts
(and input images) from the VBench-I2V suite (`i2v_suite.py`).
"""

import functools
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .i2v_suite import I2V_SUITE_DIMENSIONS, i2v_entries

SUITE_VERSION = "vbench-0.1.5"
SAMPLES_PER_PROMPT = 5
FLICKER_SAMPLES_PER_PROMPT = 25  # temporal_flickering: 25 samples, of which the static filter keeps at most 5
VIDEO_SUFFIXES = (".mp4", ".webp", ".gif")  # what the pack's video reader decodes
# dimensions whose scoring needs the suite's auxiliary info, so no custom input
NEEDS_AUXILIARY_INFO = ("object_class", "multiple_objects", "scene", "appearance_style", "color", "spatial_relationship")

_DATA = Path(__file__).resolve().parent / "data"


@functools.lru_cache(maxsize=1)
def _full_info() -> tuple:
    with open(_DATA / "VBench_full_info.json", encoding="utf-8") as handle:
        return tuple(json.load(handle))


def full_info() -> List[Dict]:
    """The official suite: a list of {'prompt_en', 'dimension': [...], 'auxiliary_info'?: {...}} (a fresh copy)."""
    return json.loads(json.dumps(list(_full_info())))


def suite_dimensions() -> List[str]:
    """Every dimension of the suite, in the order it first appears."""
    names = []
    for entry in _full_info():
        for name in entry["dimension"]:
            if name not in names:
                names.append(name)
    return names


def _entries(dimension: str) -> tuple:
    """The suite entries of `dimension`: the I2V suite's for the I2V dimensions, else the T2V suite's."""
    return i2v_entries() if dimension in I2V_SUITE_DIMENSIONS else _full_info()


def check_dimension(dimension: str) -> str:
    if dimension not in suite_dimensions() and dimension not in I2V_SUITE_DIMENSIONS:
        raise ValueError(
            f"dimension {dimension!r} is not a VBench dimension; allowed: {', '.join(sorted(suite_dimensions()))}"
        )
    return dimension


def prompts(dimension: str) -> List[str]:
    """The suite's prompts of `dimension`, in the suite's order (the official prompts_per_dimension list)."""
    check_dimension(dimension)
    return [entry["prompt_en"] for entry in _entries(dimension) if dimension in entry["dimension"]]


def auxiliary_info(dimension: str) -> Dict[str, Dict]:
    """prompt -> the auxiliary info of `dimension` (e.g. {'color': 'red'}), for the prompts that have one."""
    check_dimension(dimension)
    info = {}
    for entry in _entries(dimension):
        if dimension in entry["dimension"] and dimension in entry.get("auxiliary_info", {}):
            info[entry["prompt_en"]] = entry["auxiliary_info"][dimension]
    return info


def samples_per_prompt(dimension: str, filtered: bool = True) -> int:
    """5, or 25 for temporal_flickering videos before the static filter (`filtered=False`)."""
    return FLICKER_SAMPLES_PER_PROMPT if dimension == "temporal_flickering" and not filtered else SAMPLES_PER_PROMPT


def video_name(prompt: str, index: int, ext: str = ".mp4", special_str: str = "") -> str:
    """The official file name `{prompt}{special_str}-{index}{ext}`."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index must be an integer >= 0, got {index!r}")
    if not ext.startswith("."):
        raise ValueError(f"ext must start with '.', got {ext!r}")
    return f"{prompt}{special_str}-{index}{ext}"


def prompt_from_filename(path: str) -> str:
    """The prompt of a custom-input file: the stem without a trailing `-<number>`."""
    return re.sub(r"-\d+$", "", Path(path).stem)


def _folder_videos(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"videos folder {folder!r} does not exist or is not a folder")
    names = sorted(name for name in os.listdir(folder) if Path(name).suffix.lower() in VIDEO_SUFFIXES)
    if not names:
        raise ValueError(f"videos folder {folder!r} holds no video ({', '.join(VIDEO_SUFFIXES)})")
    return names


def standard_videos(
    folder: str, dimensions: Sequence[str], special_str: str = "", ext: Optional[str] = None, filtered: bool = True
) -> Dict[str, List[Dict]]:
    """dimension -> [{'prompt_en', 'video_list', 'auxiliary_info'?}] of the suite's files in `folder`.

    FileNotFoundError listing every missing file (at most 20 named, with the count)."""
    for dimension in dimensions:
        check_dimension(dimension)
    names = _folder_videos(folder)
    if ext is None:
        ext = Path(names[0]).suffix
    present = set(names)
    found, missing = {}, []
    for dimension in dimensions:
        found[dimension] = []
        for entry in _entries(dimension):
            if dimension not in entry["dimension"]:
                continue
            videos = []
            for index in range(samples_per_prompt(dimension, filtered)):
                name = video_name(entry["prompt_en"], index, ext, special_str)
                if name in present:
                    videos.append(os.path.join(folder, name))
                elif name not in missing:
                    missing.append(name)
            item = {"prompt_en": entry["prompt_en"], "video_list": videos}
            if dimension in entry.get("auxiliary_info", {}):
                item["auxiliary_info"] = entry["auxiliary_info"][dimension]
            found[dimension].append(item)
    if missing:
        shown = "\n  ".join(missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise FileNotFoundError(
            f"{len(missing)} video(s) of the VBench suite are missing in {folder!r} (dimensions "
            f"{', '.join(dimensions)}; naming {{prompt}}{special_str}-{{i}}{ext}):\n  {shown}{more}"
        )
    return found


def custom_videos(folder_or_file: str, dimensions: Sequence[str]) -> Dict[str, List[Dict]]:
    """dimension -> [{'prompt_en', 'video_list'}] for every video of a folder (or one file), prompt from the name."""
    for dimension in dimensions:
        check_dimension(dimension)
    refused = [dimension for dimension in dimensions if dimension in NEEDS_AUXILIARY_INFO]
    if refused:
        raise ValueError(
            f"dimensions {refused} need the suite's auxiliary info and cannot score custom input; "
            f"use the standard mode for them"
        )
    if os.path.isfile(folder_or_file):
        paths = [folder_or_file]
    else:
        paths = [os.path.join(folder_or_file, name) for name in _folder_videos(folder_or_file)]
    items = [{"prompt_en": prompt_from_filename(path), "video_list": [path]} for path in paths]
    return {dimension: json.loads(json.dumps(items)) for dimension in dimensions}
