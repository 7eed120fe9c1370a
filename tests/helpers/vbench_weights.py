"""Seeded random weights for VBench's evaluator checkpoints, from a key table (key -> shape) in the official layout.

The same function makes the weights in the official package's environment (fixture script) and in the tests:
numpy PCG64 from one seed, key by key in sorted order, float32. Matrices get N(0, 1/fan_in), 1-d `weight`s (norms,
PReLU slopes) 1 + 0.1 N(0, 1), other 1-d tensors 0.1 N(0, 1).
"""

import hashlib
import json
from pathlib import Path
from typing import Optional

import numpy as np


def seeded_arrays(key_table: dict, seed: int, gain: float = 1.0, key_gains: Optional[dict] = None) -> dict:
    """key -> float32 numpy array for every key of `key_table` (key -> shape list); matrices times `gain`, the
    keys of `key_gains` times their own factor instead (e.g. a position table made as large as the features)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for key in sorted(key_table):
        shape = tuple(key_table[key])
        values = rng.standard_normal(shape).astype(np.float32)
        if len(shape) >= 2:
            factor = (key_gains or {}).get(key, gain)
            values *= np.float32(factor / np.sqrt(int(np.prod(shape[1:]))))
        elif key.endswith("weight"):
            values = np.float32(1.0) + np.float32(0.1) * values
        else:
            values *= np.float32(0.1)
        arrays[key] = values
    return arrays


def arrays_sha256(arrays: dict) -> str:
    """SHA-256 over the keys and bytes of `arrays` in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def read_key_table(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def raft_float_table(key_table: dict) -> dict:
    """The keys of a RAFT key table that are seeded: all but the batch-norm step counters (int64)."""
    return {key: shape for key, shape in key_table.items() if not key.endswith("num_batches_tracked")}


def raft_official_arrays(key_table: dict, seed: int, gain: float = 1.0, key_gains: Optional[dict] = None) -> dict:
    """The seeded RAFT state as the official RAFT's state dict holds it: seeded floats, running variances
    |value| + 0.5 (positive), step counters 0, and each `norm3` equal to its block's `downsample.1` (the official
    ResidualBlock registers that one batch norm under both names, so a saved file repeats it)."""
    arrays = seeded_arrays(raft_float_table(key_table), seed, gain, key_gains)
    for key in key_table:
        if key.endswith("running_var"):
            arrays[key] = np.abs(arrays[key]) + np.float32(0.5)
        elif key.endswith("num_batches_tracked"):
            arrays[key] = np.zeros((), np.int64)
    for key in key_table:
        if ".norm3." in key:
            arrays[key] = arrays[key.replace(".norm3.", ".downsample.1.")].copy()
    return arrays
