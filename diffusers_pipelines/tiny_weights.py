"""Seeded random weights and small file writers shared by the tiny (smoke-test) pipeline builders."""

import json
import math
import pathlib
from typing import Callable, Dict, Tuple, Union

import torch


def check_seed(seed) -> None:
    """Raises ValueError unless `seed` is a non-negative int."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative int")


def random_tensor(name: str, shape: Tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Seeded values that keep activations of order one in a tiny network.

    Matrices and kernels get N(0, 1/fan_in) (so attention logits and AdaLN gates are neither
    vanishing nor saturated); norm scales 1 + N(0, 0.1^2); biases N(0, 0.05^2).
    """
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(shape) >= 2:
        return noise / math.sqrt(math.prod(shape[1:]))
    if name.endswith("weight"):
        return 1.0 + 0.1 * noise
    return 0.05 * noise


def seed_state_dict(
    module: torch.nn.Module,
    seed: int,
    offset: int,
    draw: Callable[[str, Tuple[int, ...], torch.Generator], torch.Tensor] = random_tensor,
) -> torch.nn.Module:
    """Overwrites every floating tensor of the state dict, in name order, from `torch.Generator(1000 * seed + offset)`
    (independent of the global RNG); returns the module in eval mode."""
    generator = torch.Generator().manual_seed(1000 * int(seed) + offset)
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            if tensor.is_floating_point():
                tensor.copy_(draw(name, tuple(tensor.shape), generator))
    return module.eval()


def write_json(path: pathlib.Path, payload: dict) -> None:
    """Writes `payload` as sorted, indented JSON, creating the parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def component_seeder(offsets: Dict[str, int]) -> Callable[[torch.nn.Module, int, str], torch.nn.Module]:
    """``seed_component(module, seed, component)``: `seed_state_dict` with the offset of ``component`` in ``offsets``."""

    def seed_component(module: torch.nn.Module, seed: int, component: str) -> torch.nn.Module:
        return seed_state_dict(module, seed, offsets[component])

    return seed_component


def start_layout(path: Union[str, pathlib.Path], seed, diffusers_version: str, files: Dict[str, dict]) -> pathlib.Path:
    """Checks ``seed``, creates the folder ``path`` and writes its JSON ``files`` (relative path -> payload; a payload
    with a ``_class_name`` gets ``_diffusers_version``); returns the folder."""
    check_seed(seed)
    root = pathlib.Path(path)
    root.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        if "_class_name" in payload:
            payload = {**payload, "_diffusers_version": diffusers_version}
        write_json(root / name, payload)
    return root
