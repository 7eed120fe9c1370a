"""Batch surgery on the nested outputs of denoisers and attention modules: split, join and select guidance branches."""

import copy
from typing import Any, Callable, List, Sequence, Tuple

import torch


def _tensors_of(value: Any) -> List[torch.Tensor]:
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors_of(item)]
    return []


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if torch.is_tensor(value):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(item, fn) for item in value)
    return value


def _zip_tensors(fn: Callable, first: Any, second: Any) -> Any:
    if torch.is_tensor(first):
        return fn(first, second)
    if isinstance(first, (tuple, list)):
        return type(first)(_zip_tensors(fn, a, b) for a, b in zip(first, second))
    return first


def _split_batch(value: Any, parts: int) -> List[Any]:
    """Splits every tensor of a (possibly nested) output into `parts` equal batch chunks: one structure per part."""
    if torch.is_tensor(value):
        return list(value.chunk(parts, dim=0))
    if isinstance(value, (tuple, list)):
        columns = [_split_batch(item, parts) for item in value]
        return [type(value)(column[k] for column in columns) for k in range(parts)]
    return [value] * parts


def _concat_batch(parts: Sequence[Any]) -> Any:
    first = parts[0]
    if torch.is_tensor(first):
        return torch.cat(list(parts), dim=0) if len(parts) > 1 else first
    if isinstance(first, (tuple, list)):
        return type(first)(_concat_batch([part[k] for part in parts]) for k in range(len(first)))
    return first


def _take_branches(args: tuple, kwargs: dict, parts: int, keep: Sequence[int]) -> Tuple[tuple, dict]:
    """Keeps the batch chunks `keep` of every tensor argument batched like the first one (dim 0)."""
    batch = next(t for t in (*args, *kwargs.values()) if torch.is_tensor(t)).shape[0]
    if batch % parts:
        raise ValueError(f"FasterCache: a batch of {batch} cannot hold {parts} guidance branches")

    def take(value):
        if torch.is_tensor(value) and value.ndim > 0 and value.shape[0] == batch:
            chunks = value.chunk(parts, dim=0)
            return torch.cat([chunks[k] for k in keep], dim=0) if len(keep) > 1 else chunks[keep[0]]
        return value

    return tuple(take(a) for a in args), {k: take(v) for k, v in kwargs.items()}


def _sample_of(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output.sample if hasattr(output, "sample") else output


def _with_sample(output: Any, sample: torch.Tensor) -> Any:
    if isinstance(output, tuple):
        return (sample, *output[1:])
    if torch.is_tensor(output):
        return sample
    output = copy.copy(output)  # never alter an output object the pipeline still holds
    output.sample = sample
    return output
