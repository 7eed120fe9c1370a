"""What the VBench dimension modules share: frame checks, checkpoint files and the official CLIP preprocessing."""

import os
from typing import Dict, Iterable, Iterator, List, Mapping, Sequence, Tuple

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_videos(videos: Sequence, name: str, min_frames: int = 1) -> List[np.ndarray]:
    """The decoded videos as uint8 [F,H,W,3] arrays; ValueError naming the video and what is allowed otherwise."""
    if isinstance(videos, np.ndarray) or not isinstance(videos, (list, tuple)) or not videos:
        raise ValueError(f"{name}: videos must be a non-empty list of uint8 arrays [F,H,W,3], got {type(videos)}")
    checked = []
    for index, video in enumerate(videos):
        if not isinstance(video, np.ndarray) or video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            shape = getattr(video, "shape", None)
            dtype = getattr(video, "dtype", type(video).__name__)
            raise ValueError(f"{name}: videos[{index}] must be a uint8 array [F,H,W,3], got {dtype} {shape}")
        if video.shape[0] < min_frames:
            raise ValueError(
                f"{name}: videos[{index}] has {video.shape[0]} frames; this dimension needs at least {min_frames}"
            )
        checked.append(video)
    return checked


def checkpoint_file(checkpoints: Mapping[str, str], key: str, name: str, manifest_entry: str) -> str:
    """The local file of checkpoint `key`; FileNotFoundError naming the manifest entry that provides it."""
    if key not in checkpoints:
        raise KeyError(
            f"{name}: checkpoints[{key!r}] is missing (given: {sorted(checkpoints)}); "
            f"`vdp download {manifest_entry}` fetches it"
        )
    path = os.fspath(checkpoints[key])
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{name}: checkpoint {key!r} file {path!r} does not exist; `vdp download {manifest_entry}` fetches it"
        )
    return path


def load_torch_checkpoint(path: str, name: str) -> Dict:
    """A PyTorch checkpoint file read as plain tensors (TorchScript archives give their state dict), one line on
    a file that is neither."""
    import torch

    try:
        return torch.jit.load(path, map_location="cpu").state_dict()
    except (RuntimeError, ValueError):
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{name}: checkpoint file {path!r} is not a readable PyTorch file: {error}") from None


MAX_LISTED_KEYS = 20


def _listed(keys) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else ""
    return ", ".join(keys[:MAX_LISTED_KEYS]) + more


def key_problems(expected: Mapping, found: Mapping) -> List[str]:
    """The missing, unexpected and mis-shaped keys of `found` against `expected` (key -> tensor), one line per kind,
    worded as the pipelines' strict loading words them (`models.checkpoint`, which is not imported here: it brings
    diffusers, which no scorer needs)."""
    expected = {key: tuple(value.shape) for key, value in expected.items()}
    found = {key: tuple(value.shape) for key, value in found.items()}
    common = expected.keys() & found.keys()
    parts = [
        ("missing keys", sorted(expected.keys() - found.keys())),
        ("unexpected keys", sorted(found.keys() - expected.keys())),
        ("shape mismatches", [f"{key} {found[key]} != {expected[key]}" for key in common if found[key] != expected[key]]),
    ]
    return [f"{label} ({len(items)}): {_listed(items)}" for label, items in parts if items]


def check_batch_size(batch_size, name: str) -> None:
    """ValueError naming the dimension unless `batch_size` is a positive integer."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{name}: batch_size={batch_size!r} must be a positive integer")


def check_keys(expected: Mapping, found: Mapping, path: str, name: str) -> None:
    """ValueError naming the file with its missing, unexpected and mis-shaped keys, when there are any."""
    problems = key_problems(expected, found)
    if problems:
        raise ValueError(f"{name}: checkpoint {path!r} does not fit: " + "; ".join(problems))
    import torch

    bad = [key for key, value in found.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f"{name}: checkpoint {path!r} has non-finite values in {sorted(bad)[:5]}")


def clip_transform(frames, n_px: int = 224):
    """VBench's `clip_transform`: float frames 0..255 [T,3,H,W] -> shorter side n_px (bicubic, no antialias, not
    re-quantised) -> centre crop -> /255 -> CLIP mean/std."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    frames = TF.resize(frames, n_px, interpolation=InterpolationMode.BICUBIC, antialias=False)
    frames = TF.center_crop(frames, n_px)
    return TF.normalize(frames.float().div(255.0), CLIP_MEAN, CLIP_STD)


def consistency_sums(features) -> Tuple[float, int]:
    """(sum over t >= 1 of (max(0, cos(f_t-1, f_t)) + max(0, cos(f_0, f_t))) / 2, number of terms) of the
    L2-normalised features [T, D] of one video (subject and background consistency), summed in float64 as the
    official Python floats are."""
    import torch.nn.functional as F

    previous = F.cosine_similarity(features[:-1], features[1:]).double().clamp(min=0.0)
    first = F.cosine_similarity(features[:1].expand_as(features[1:]), features[1:]).double().clamp(min=0.0)
    return float(((previous + first) / 2).sum()), len(features) - 1


def scores_from_sums(sums: Sequence[Tuple[float, int]]) -> Tuple[float, List[float]]:
    """(sum of all terms / number of all terms, per-video mean) from each video's `consistency_sums`."""
    per_video = [total / count for total, count in sums]
    return sum(total for total, _ in sums) / sum(count for _, count in sums), per_video


def row_batches(groups: Iterable, batch_size: int) -> Iterator[tuple]:
    """(rows [<= batch_size, ...], owners: the index in `groups` of each row) over the rows of `groups` (tensors
    [N_i, ...], e.g. each video's preprocessed frames; an iterator is read one group at a time) in order. Rows of
    consecutive groups share a batch while their trailing shapes agree, so the frames of many short videos of one
    size go through a model together."""
    import torch

    pending, owners, size, shape = [], [], 0, None
    for owner, rows in enumerate(groups):
        if pending and tuple(rows.shape[1:]) != shape:
            yield torch.cat(pending), owners
            pending, owners, size = [], [], 0
        shape = tuple(rows.shape[1:])
        start = 0
        while start < len(rows):
            take = min(batch_size - size, len(rows) - start)
            pending.append(rows[start:start + take])
            owners += [owner] * take
            size, start = size + take, start + take
            if size == batch_size:
                yield torch.cat(pending), owners
                pending, owners, size = [], [], 0
    if pending:
        yield torch.cat(pending), owners


def rows_by_owner(outputs, owners: Sequence[int], count: int) -> List:
    """The rows of `outputs` (concatenated batch outputs, in `row_batches` order) grouped by owner: a list of
    `count` tensors (empty where an owner had no rows). `row_batches` yields each owner's rows together and in
    owner order, so this is one split by the owners' row counts."""
    import torch

    counts = torch.bincount(torch.as_tensor(list(owners), dtype=torch.long), minlength=count)
    return list(outputs.split(counts.tolist()))
