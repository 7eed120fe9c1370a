"""Training data: the folder formats users already have, clips cut to a model's frame rule and bucket, and the cache
of precomputed latents and text embeddings.

A data folder holds one of:

- ``prompts.txt`` and ``videos.txt`` (diffusers' CogVideoX scripts): line ``i`` of each is the caption and the video
  path (relative to the folder) of sample ``i``;
- ``metadata.jsonl`` (one JSON object a line) or ``metadata.csv`` (a header row): ``file_name`` (the video the model
  learns to produce) and ``caption`` (or ``instruction``) per row, plus the columns of the family:
  DaS ``tracking_video`` (the tracking video, same frame count) and ``image`` (the first frame; the video's first
  frame when absent); LGVI ``input_video`` (the video before the edit), ``instruction`` and ``mask`` (a mask video,
  white where the edit is; optional). Other columns are kept as text.

Every path is relative to the folder and stays inside it. A clip is ``num_frames`` frames taken every
``frame_stride`` frames from the first, resized to cover the bucket and centre-cropped to it; the bucket is the
``height`` x ``width`` asked for, or each video's own size rounded down to the family's size multiple. Videos are
read with the pack's ``video_io`` (decoding only the frames used). :meth:`TrainingData.check` reads one frame of
every video and names, in one error, every file that is unreadable or too short, before a model is loaded.

Building the index and checking it import neither torch nor diffusers; :func:`collate` and the cache do.
"""

import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..video_io import SUPPORTED_EXTENSIONS, MediaReadError, read_image, read_video

__all__ = ["ClipSettings", "DataError", "TrainingData", "cache_key", "collate", "folder_identity",
           "read_cache_sample", "write_cache"]

VIDEO_COLUMNS = ("file_name", "tracking_video", "input_video", "mask")
IMAGE_COLUMNS = ("image",)
TEXT_COLUMNS = ("caption", "instruction")
#: the batch key of a column where it differs from the column's name
BATCH_KEYS = {"file_name": "video"}
#: what a cache file holds: ``latents/<name>`` and ``conditions/<name>`` tensors of one sample (batch dimension 1)
CACHE_FORMAT = 1
# lines of an error that lists bad files
_MAX_LISTED = 10


class DataError(ValueError):
    """The data folder, one of its index files or one of its videos is missing, malformed, unreadable or too short;
    the message names the file and what was expected."""


@dataclasses.dataclass(frozen=True)
class ClipSettings:
    """How clips are cut from the videos.

    Args:
        num_frames (`int`): frames of a clip; must satisfy the family's frame rule.
        height, width (`int`, *optional*): the bucket every clip is cropped to; ``None``: each video's own size rounded
            down to ``size_multiple``.
        frame_stride (`int`, defaults to 1): take every ``frame_stride``-th frame from the first.
        frame_multiple, frame_remainder, size_multiple (`int`): the family's rules (``FamilyRules``).
    """

    num_frames: int
    height: Optional[int] = None
    width: Optional[int] = None
    frame_stride: int = 1
    frame_multiple: int = 1
    frame_remainder: int = 0
    size_multiple: int = 8

    def __post_init__(self):
        if self.num_frames < 1 or self.num_frames % self.frame_multiple != self.frame_remainder:
            rule = ("any number >= 1" if self.frame_multiple == 1 else
                    f"{self.frame_multiple}k+{self.frame_remainder} frames")
            raise ValueError(f"num_frames={self.num_frames} is not allowed by the model; it needs {rule}")
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride={self.frame_stride} must be >= 1")
        if (self.height is None) != (self.width is None):
            raise ValueError(f"height={self.height} and width={self.width}: give both or neither")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and (value < self.size_multiple or value % self.size_multiple):
                raise ValueError(f"{name}={value} is not allowed by the model; it must be a positive multiple of "
                                 f"{self.size_multiple}")

    @property
    def frames_read(self) -> int:
        """Frames of the file a clip spans (the file must have at least this many)."""
        return (self.num_frames - 1) * self.frame_stride + 1

    def bucket(self, stored_size: Tuple[int, int]) -> Tuple[int, int]:
        """The (height, width) a video of ``stored_size`` is cropped to."""
        if self.height is not None:
            return self.height, self.width
        return tuple(side // self.size_multiple * self.size_multiple for side in stored_size)


def _resolve(folder: Path, value: str, where: str) -> Path:
    """The file ``value`` names, relative to the data folder; refused when absolute or outside the folder."""
    relative = Path(value)
    if relative.is_absolute() or not value.strip():
        raise DataError(f"{where}: path {value!r} must be a non-empty path relative to the data folder '{folder}'")
    path = (folder / relative).resolve()
    if folder.resolve() not in path.parents:
        raise DataError(f"{where}: path {value!r} names a file outside the data folder '{folder}'")
    return path


def _read_lines(path: Path) -> List[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"'{path}' is not UTF-8 text ({error})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def read_rows(folder) -> Tuple[List[Dict[str, str]], str]:
    """The rows of the data folder as dicts of strings, and the index file they came from.

    Raises:
        DataError: no data folder, no index file, a malformed line, counts that differ, no ``file_name`` or no text
            column.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder '{folder}' does not exist (or is not a folder)")
    jsonl, csv_path = folder / "metadata.jsonl", folder / "metadata.csv"
    prompts, videos = folder / "prompts.txt", folder / "videos.txt"
    if jsonl.is_file():
        rows = []
        for number, line in enumerate(_read_lines(jsonl), 1):
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(f"'{jsonl}' line {number} is not JSON ({error})") from None
            if not isinstance(row, dict):
                raise DataError(f"'{jsonl}' line {number} is a {type(row).__name__}; expected a JSON object")
            rows.append({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in row.items()})
        source = jsonl
    elif csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [dict(row) for row in reader]
            for number, row in enumerate(rows, 2):
                if None in row or None in row.values():
                    raise DataError(f"'{csv_path}' line {number} has {len(row)} fields; the header has "
                                    f"{len(reader.fieldnames or ())}")
        source = csv_path
    elif prompts.is_file() or videos.is_file():
        for needed in (prompts, videos):
            if not needed.is_file():
                raise DataError(f"data folder '{folder}' has {(videos if needed is prompts else prompts).name} but "
                                f"no {needed.name}; the two-file format needs both")
        captions, files = _read_lines(prompts), _read_lines(videos)
        if len(captions) != len(files):
            raise DataError(f"'{prompts}' has {len(captions)} prompts and '{videos}' {len(files)} videos; "
                            "line i of each describes sample i, so the counts must be equal")
        rows = [{"file_name": f, "caption": c} for f, c in zip(files, captions)]
        source = videos
    else:
        raise DataError(f"data folder '{folder}' has no metadata.jsonl, metadata.csv or prompts.txt + videos.txt")
    if not rows:
        raise DataError(f"'{source}' lists no samples")
    return rows, str(source)


@dataclasses.dataclass(frozen=True)
class _Sample:
    files: Dict[str, Path]
    texts: Dict[str, str]
    bucket: Tuple[int, int]


class TrainingData:
    """The samples of a data folder, checked, as a map-style dataset of numpy clips (``len``, ``[i]``).

    Args:
        folder (`str` or `os.PathLike`): the data folder (see the module docstring for its formats).
        clip (`ClipSettings`): frames, bucket and stride of a clip.
        required_columns (`sequence of str`): columns every row must have besides ``file_name`` and a text column.
        text_column (`str`, defaults to ``"caption"``): the text column of the family; ``caption`` is accepted too.
    """

    def __init__(self, folder, clip: ClipSettings, required_columns: Sequence[str] = (),
                 text_column: str = "caption"):
        self.folder = Path(folder)
        self.clip = clip
        rows, self.index_file = read_rows(self.folder)
        texts = {text_column, "caption"}
        missing = []
        for number, row in enumerate(rows, 1):
            absent = [c for c in ("file_name", *required_columns) if not row.get(c)]
            if not any(row.get(c) for c in texts):
                absent.append(" or ".join(sorted(texts, key=lambda c: c != text_column)))
            if absent:
                missing.append(f"row {number}: {', '.join(absent)}")
        if missing:
            raise DataError(f"'{self.index_file}': rows without a needed column ({'; '.join(missing[:_MAX_LISTED])}"
                            f"{'; ...' if len(missing) > _MAX_LISTED else ''}); every row needs file_name, "
                            f"{text_column} (or caption){''.join(', ' + c for c in required_columns)}")
        self._rows = rows
        self._samples: Optional[List[_Sample]] = None

    def __len__(self) -> int:
        return len(self._rows)

    def check(self) -> "TrainingData":
        """Read one frame of every video (the last one a clip uses) and every image; one error names each bad file.

        Returns ``self``; afterwards every sample has its bucket.
        """
        samples, problems = [], []
        for number, row in enumerate(self._rows, 1):
            where = f"'{self.index_file}' row {number}"
            files, texts, size = {}, {}, None
            for column, value in row.items():
                if column in VIDEO_COLUMNS or column in IMAGE_COLUMNS:
                    if not value:
                        continue
                    try:
                        path = _resolve(self.folder, value, f"{where} column {column!r}")
                    except DataError as error:
                        problems.append(str(error))
                        continue
                    files[column] = path
                    try:
                        stored = self._probe(path, column)
                    except (OSError, ValueError) as error:
                        problems.append(f"{column} {error}")
                        continue
                    if column == "file_name":
                        size = stored
                elif value is not None:
                    texts[column] = value
            if size is not None:
                bucket = self.clip.bucket(size)
                if min(bucket) < self.clip.size_multiple:
                    problems.append(f"file_name '{files['file_name']}': {size[0]}x{size[1]} is smaller than the "
                                    f"model's size multiple {self.clip.size_multiple}")
                samples.append(_Sample(files=files, texts=texts, bucket=bucket))
        if problems:
            listed = "\n  ".join(problems[:_MAX_LISTED])
            more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
            raise DataError(f"{len(problems)} problem(s) in the data folder '{self.folder}' (clips of "
                            f"{self.clip.num_frames} frames, stride {self.clip.frame_stride}):\n  {listed}{more}")
        self._samples = samples
        return self

    def _probe(self, path: Path, column: str) -> Tuple[int, int]:
        """The stored (height, width) of a file, after checking it holds the frames a clip needs."""
        if column in IMAGE_COLUMNS:
            with read_image(path) as image:
                return image.height, image.width
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise DataError(f"'{path}': extension '{path.suffix}' is not a video the pack reads "
                            f"({', '.join(SUPPORTED_EXTENSIONS)})")
        needed = self.clip.frames_read
        try:
            frames = read_video(path, start=needed - 1, max_frames=1).frames
        except MediaReadError:
            raise
        except ValueError as error:
            if "past the last frame" not in str(error):
                raise
            raise DataError(f"'{path}' is too short: a clip of {self.clip.num_frames} frames at stride "
                            f"{self.clip.frame_stride} needs {needed} frames ({error})") from None
        return frames.shape[1], frames.shape[2]

    @property
    def buckets(self) -> List[Tuple[int, int]]:
        """The (height, width) bucket of each sample (after :meth:`check`)."""
        return [s.bucket for s in self._checked()]

    def _checked(self) -> List[_Sample]:
        if self._samples is None:
            self.check()
        return self._samples

    def describe(self) -> List[Dict[str, Any]]:
        """What identifies each sample for the cache key: its files (with size and time of change) and texts."""
        described = []
        for sample in self._checked():
            files = {c: [str(p), p.stat().st_size, p.stat().st_mtime_ns] for c, p in sorted(sample.files.items())}
            described.append({"files": files, "texts": dict(sorted(sample.texts.items())), "bucket": sample.bucket})
        return described

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """Sample ``index``: videos ``[F, 3, H, W]`` float32 in [-1, 1], masks ``[F, 1, H, W]`` in 0..1, images
        ``[3, H, W]`` in [-1, 1] (numpy), texts as strings; keys are the batch keys (``file_name`` -> ``video``)."""
        sample = self._checked()[index]
        height, width = sample.bucket
        item: Dict[str, Any] = dict(sample.texts)
        for column, path in sample.files.items():
            key = BATCH_KEYS.get(column, column)
            if column in IMAGE_COLUMNS:
                with read_image(path) as image:
                    pixels = _cover_and_crop(np.asarray(image)[None], height, width)[0]
                item[key] = pixels.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1
                continue
            stored = read_video(path, max_frames=1).frames.shape[1:3]
            frames = read_video(path, max_frames=self.clip.num_frames, stride=self.clip.frame_stride,
                                size=_cover_size(stored, height, width)).frames
            frames = _cover_and_crop(frames, height, width).transpose(0, 3, 1, 2).astype(np.float32)
            item[key] = frames.mean(axis=1, keepdims=True) / 255 if column == "mask" else frames / 127.5 - 1
        return item


def _cover_size(stored: Tuple[int, int], height: int, width: int) -> Tuple[int, int]:
    """The smallest size of the stored aspect ratio that covers (height, width)."""
    scale = max(height / stored[0], width / stored[1])
    return max(height, math.ceil(stored[0] * scale - 1e-6)), max(width, math.ceil(stored[1] * scale - 1e-6))


def _cover_and_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """[F, h, w, 3] uint8 -> [F, height, width, 3]: resized (bicubic) to cover the bucket, then centre-cropped."""
    cover = _cover_size(frames.shape[1:3], height, width)
    if tuple(frames.shape[1:3]) != cover:
        frames = np.stack([np.asarray(Image.fromarray(f).resize(cover[::-1], Image.BICUBIC)) for f in frames])
    top, left = (cover[0] - height) // 2, (cover[1] - width) // 2
    return frames[:, top:top + height, left:left + width]


def collate(items: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """A batch of samples: arrays stacked into torch tensors ``[B, ...]``, texts into lists."""
    import torch

    keys = set(items[0])
    for item in items[1:]:
        if set(item) != keys:
            raise DataError(f"samples of one batch have different columns: {sorted(keys)} and {sorted(item)}")
    batch = {}
    for key in sorted(keys):
        values = [item[key] for item in items]
        if isinstance(values[0], np.ndarray):
            batch[key] = torch.from_numpy(np.stack(values))
        else:
            batch[key] = list(values)
    return batch


# -- the precomputation cache ---------------------------------------------------------------------------------------

#: files of a model folder that document it (model cards, pictures): editing them does not change the model
DOCUMENT_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".gif", ".webp")


def folder_identity(folder: Optional[str]) -> Dict[str, Any]:
    """What identifies the model a run starts from: the embedded one, or a folder's JSON files (by content) and its
    other files (by size and time of change), its documents (``DOCUMENT_SUFFIXES``) left out, so that editing a
    model card neither refuses a resume nor discards the precomputed cache."""
    if folder is None:
        from .. import __version__

        return {"embedded": __version__}
    root = Path(folder).resolve()
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in DOCUMENT_SUFFIXES):
        name = str(path.relative_to(root))
        if path.suffix == ".json":
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            files[name] = [path.stat().st_size, path.stat().st_mtime_ns]
    return {"folder": str(root), "files": files}


def cache_key(data: TrainingData, model: str, pretrained: Optional[str], settings: Mapping[str, Any]) -> str:
    """The cache's key: a hash of the data (files, texts, buckets), the model (family and weights) and the settings
    that change latents or embeddings (clip geometry, seed)."""
    payload = {"format": CACHE_FORMAT, "model": model, "pretrained": folder_identity(pretrained),
               "data": data.describe(), "clip": dataclasses.asdict(data.clip), "settings": dict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cache_file(cache_dir, index: int) -> Path:
    return Path(cache_dir) / f"sample-{index:06d}.safetensors"


def cache_complete(cache_dir, count: int) -> bool:
    """Whether ``cache_dir`` is a finished cache of ``count`` samples (it is renamed into place when complete)."""
    manifest = Path(cache_dir) / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        described = json.loads(manifest.read_text())
    except ValueError:
        return False
    return described.get("count") == count and all(cache_file(cache_dir, i).is_file() for i in range(count))


def write_cache(staging_dir, index: int, latents: Mapping[str, Any], conditions: Mapping[str, Any]) -> None:
    """Write one sample's latents and conditions (batch dimension 1) into the cache being built."""
    from safetensors.torch import save_file

    tensors = {f"latents/{k}": v[0].detach().cpu().contiguous() for k, v in latents.items()}
    tensors.update({f"conditions/{k}": v[0].detach().cpu().contiguous() for k, v in conditions.items()})
    save_file(tensors, str(cache_file(staging_dir, index)))


def finish_cache(staging_dir, cache_dir, count: int, key: str) -> None:
    """Mark the staging folder complete and rename it onto ``cache_dir``."""
    Path(staging_dir, "manifest.json").write_text(json.dumps({"format": CACHE_FORMAT, "key": key, "count": count}))
    if Path(cache_dir).exists():
        shutil.rmtree(cache_dir)
    os.replace(staging_dir, cache_dir)


def read_cache_sample(cache_dir, index: int) -> Dict[str, Any]:
    """One cached sample: ``{"latents": {...}, "conditions": {...}}`` of tensors with a batch dimension of 1."""
    from safetensors.torch import load_file

    path = cache_file(cache_dir, index)
    try:
        tensors = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for truncated or foreign files
        raise DataError(f"cache file '{path}' cannot be read ({error}); delete the folder to recompute it") from None
    sample: Dict[str, Dict[str, Any]] = {"latents": {}, "conditions": {}}
    for name, tensor in tensors.items():
        part, key = name.split("/", 1)
        sample[part][key] = tensor[None]
    return sample


class CachedData:
    """The cached samples of a data folder as a dataset: item ``i`` is :func:`read_cache_sample` of sample ``i``."""

    def __init__(self, cache_dir, count: int):
        self.cache_dir, self.count = Path(cache_dir), count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return read_cache_sample(self.cache_dir, index)


def collate_cached(items: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """A batch of cached samples: each tensor concatenated along the batch dimension."""
    import torch

    return {part: {k: torch.cat([item[part][k] for item in items]) for k in items[0][part]}
            for part in ("latents", "conditions")}
