"""Checks a model folder's weights against a model class before loading: key set, shapes, readable files."""

import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from accelerate import init_empty_weights
from safetensors import SafetensorError, safe_open

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
MAX_LISTED_KEYS = 20


def listed_keys(keys) -> str:
    """The first MAX_LISTED_KEYS of `keys`, sorted and comma-separated, with a count of the rest."""
    keys = sorted(keys)
    more = f" ... and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else ""
    return ", ".join(keys[:MAX_LISTED_KEYS]) + more


def key_table_problems(
    expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]
) -> List[str]:
    """The missing, unexpected and mis-shaped keys of `found` against `expected` (key -> shape), one line per kind."""
    expected = {key: tuple(shape) for key, shape in expected.items()}
    found = {key: tuple(shape) for key, shape in found.items()}
    missing = expected.keys() - found.keys()
    unexpected = found.keys() - expected.keys()
    common = expected.keys() & found.keys()
    mis_shaped = [f"{k} {found[k]} != {expected[k]}" for k in common if found[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {listed_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {listed_keys(unexpected)}")
    if mis_shaped:
        problems.append(f"shape mismatches ({len(mis_shaped)}): {listed_keys(mis_shaped)}")
    return problems


def read_checkpoint_shapes(folder: str) -> Tuple[Dict[str, Tuple[int, ...]], str]:
    """Key -> shape of the safetensors weights in `folder` (single file or sharded index), without loading them."""
    index_path = os.path.join(folder, WEIGHTS_INDEX_NAME)
    single_path = os.path.join(folder, WEIGHTS_NAME)
    if os.path.isfile(index_path):
        with open(index_path, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        paths = [os.path.join(folder, name) for name in files]
        described = index_path
    elif os.path.isfile(single_path):
        paths = [single_path]
        described = single_path
    else:
        raise FileNotFoundError(f"no weights in {folder!r}: expected {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME}")
    shapes: Dict[str, Tuple[int, ...]] = {}
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights shard {path!r} listed in {index_path!r} is missing")
        try:
            with safe_open(path, framework="pt") as f:
                for key in f.keys():
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        except (SafetensorError, OSError, ValueError) as error:
            raise ValueError(f"corrupt weights file {path!r}: {error}") from None
    return shapes, described


def check_checkpoint(model_cls, folder: str, config: Optional[dict] = None) -> None:
    """Raises ValueError naming the file and the missing / unexpected / mis-shaped keys, if any.

    The expected keys come from an instance of `model_cls` built on the meta device from the folder's config.
    """
    found, described = read_checkpoint_shapes(folder)
    config = config if config is not None else model_cls.load_config(folder)
    with init_empty_weights():
        model = model_cls.from_config(config)
    problems = key_table_problems({k: v.shape for k, v in model.state_dict().items()}, found)
    if problems:
        raise ValueError(
            f"{described} does not match {model_cls.__name__} with config {folder}/config.json: " + "; ".join(problems)
        )


def weights_file_of(folder: str, key: str) -> str:
    """The weights file of `folder` that holds `key` (the single file, or the shard its index names); else `folder`."""
    index_path = os.path.join(folder, WEIGHTS_INDEX_NAME)
    if os.path.isfile(index_path):
        with open(index_path, encoding="utf-8") as f:
            shard = json.load(f)["weight_map"].get(key)
        return os.path.join(folder, shard) if shard else folder
    single_path = os.path.join(folder, WEIGHTS_NAME)
    return single_path if os.path.isfile(single_path) else folder
