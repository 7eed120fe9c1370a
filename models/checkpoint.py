"""Checks a model folder's weights against a model class before loading: key set, shapes, readable files."""

import json
import os
import pickle
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from accelerate import init_empty_weights
from diffusers.utils import WEIGHTS_INDEX_NAME as BIN_WEIGHTS_INDEX_NAME
from diffusers.utils import WEIGHTS_NAME as BIN_WEIGHTS_NAME
from diffusers.utils import _add_variant
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


def weights_files(folder: str, variant: Optional[str] = None, use_safetensors: Optional[bool] = None):
    """(index file or None, weight files) of `folder`: safetensors first (unless `use_safetensors` is False), then
    PyTorch `.bin` (unless it is True), single file or sharded index, with `variant` (e.g. "fp16") in the names as
    `save_pretrained(variant=...)` writes them; FileNotFoundError naming the names looked for when there is none."""
    formats = [(WEIGHTS_INDEX_NAME, WEIGHTS_NAME), (BIN_WEIGHTS_INDEX_NAME, BIN_WEIGHTS_NAME)]
    if use_safetensors is not None:
        formats = formats[:1] if use_safetensors else formats[1:]
    names = []
    for index_name, single_name in formats:
        index_name, single_name = _add_variant(index_name, variant), _add_variant(single_name, variant)
        names += [single_name, index_name]
        index_path = os.path.join(folder, index_name)
        if os.path.isfile(index_path):
            with open(index_path, encoding="utf-8") as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            return index_path, [os.path.join(folder, name) for name in files]
        single_path = os.path.join(folder, single_name)
        if os.path.isfile(single_path):
            return None, [single_path]
    raise FileNotFoundError(f"no weights in {folder!r}: expected {' or '.join(names)}")


def read_checkpoint_shapes(
    folder: str, variant: Optional[str] = None, use_safetensors: Optional[bool] = None
) -> Tuple[Dict[str, Tuple[int, ...]], str]:
    """Key -> shape of the weights in `folder` (see `weights_files`), without loading them."""
    index_path, paths = weights_files(folder, variant, use_safetensors)
    described = index_path or paths[0]
    shapes: Dict[str, Tuple[int, ...]] = {}
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights shard {path!r} listed in {index_path!r} is missing")
        try:
            if path.endswith(".bin"):
                state = torch.load(path, map_location="meta", weights_only=True)
                shapes.update((key, tuple(tensor.shape)) for key, tensor in state.items())
                continue
            with safe_open(path, framework="pt") as f:
                for key in f.keys():
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        except (SafetensorError, OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
            raise ValueError(f"corrupt weights file {path!r}: {error}") from None
    return shapes, described


def check_checkpoint(
    model_cls, folder: str, config: Optional[dict] = None, variant: Optional[str] = None,
    use_safetensors: Optional[bool] = None,
) -> None:
    """Raises ValueError naming the file and the missing / unexpected / mis-shaped keys, if any.

    The expected keys come from an instance of `model_cls` built on the meta device from the folder's config.
    """
    found, described = read_checkpoint_shapes(folder, variant, use_safetensors)
    config = config if config is not None else model_cls.load_config(folder)
    with init_empty_weights():
        model = model_cls.from_config(config)
    problems = key_table_problems({k: v.shape for k, v in model.state_dict().items()}, found)
    if problems:
        raise ValueError(
            f"{described} does not match {model_cls.__name__} with config {folder}/config.json: " + "; ".join(problems)
        )


def weights_file_of(folder: str, key: str, variant: Optional[str] = None) -> str:
    """The weights file of `folder` that holds `key` (the single file, or the shard its index names); else `folder`."""
    try:
        index_path, paths = weights_files(folder, variant)
    except FileNotFoundError:
        return folder
    if index_path is None:
        return paths[0]
    with open(index_path, encoding="utf-8") as f:
        shard = json.load(f)["weight_map"].get(key)
    return os.path.join(folder, shard) if shard else folder
