"""VBench dimension name -> the module of `dimensions/` that computes it, imported only when asked for.

A dimension module exposes `NAME`, `CHECKPOINTS` (checkpoint key -> (official file name, weights manifest entry))
and `compute(videos, *, checkpoints, device, batch_size, **info) -> (aggregate, per-video scores)`."""

import importlib
import importlib.util
from typing import Dict, List

from .totals import DIMENSIONS, I2V_DIMENSIONS

_PACKAGE = __package__ + ".dimensions"


def known_dimensions() -> List[str]:
    """Every VBench and VBench-I2V dimension name."""
    return list(DIMENSIONS + I2V_DIMENSIONS)


def available_dimensions() -> List[str]:
    """The dimensions the pack computes (a module of `dimensions/` exists for them), in the official order."""
    return [name for name in known_dimensions() if importlib.util.find_spec(f"{_PACKAGE}.{name}") is not None]


def check_dimensions(dimensions) -> List[str]:
    """The names as a list; ValueError naming a name that is not a dimension or that the pack does not compute."""
    if isinstance(dimensions, str):
        dimensions = [dimensions]
    names = list(dimensions)
    if not names:
        raise ValueError(f"dimensions must name at least one of: {', '.join(available_dimensions())}")
    for name in names:
        if name not in known_dimensions():
            raise ValueError(f"dimension {name!r} is not a VBench dimension; allowed: {', '.join(known_dimensions())}")
        if name not in available_dimensions():
            raise ValueError(
                f"dimension {name!r} is not computed by this version of the pack; available: "
                f"{', '.join(available_dimensions())}"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"dimensions lists {duplicates} more than once")
    return names


def dimension_module(name: str):
    """The module computing dimension `name` (imported now)."""
    check_dimensions([name])
    return importlib.import_module(f"{_PACKAGE}.{name}")


def checkpoint_files(name: str) -> Dict[str, tuple]:
    """checkpoint key -> (official file name, weights manifest entry) of dimension `name`."""
    return dict(dimension_module(name).CHECKPOINTS)
