"""Seeded random weights and small file writers shared by the tiny pipeline builders, and their choice between the
shipped trained weights and random ones."""

import json
import math
import pathlib
from typing import Callable, Dict, Optional, Tuple, Union

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


def edit_config(path: Union[str, pathlib.Path], **updates) -> None:
    """Rewrites the JSON config file `path` with `updates` (a value of None removes the key)."""
    path = pathlib.Path(path)
    saved = json.loads(path.read_text())
    for key, value in updates.items():
        if value is None:
            saved.pop(key, None)
        else:
            saved[key] = value
    write_json(path, saved)


def save_embedded(pipeline, destination: Union[str, pathlib.Path], dtype: torch.dtype) -> pathlib.Path:
    """Saves a trained pipeline as a shipped embedded model: weights in `dtype`, and no config naming the folder the
    model was trained in (`_name_or_path` removed from model_index.json and every component's config.json)."""
    destination = pathlib.Path(destination)
    pipeline.to(dtype=dtype)
    pipeline.save_pretrained(str(destination), safe_serialization=True)
    for path in [destination / "model_index.json", *destination.glob("*/config.json")]:
        if path.is_file() and "_name_or_path" in json.loads(path.read_text()):
            edit_config(path, _name_or_path=None)
    return destination


def load_embedded(pipeline_class, folder: pathlib.Path, title: str, device, dtype: torch.dtype):
    """The embedded model shipped in `folder` (fp16 files, loaded in `dtype` on `device`); a missing folder is named."""
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"the embedded {title} model is missing from the package ({folder}); reinstall the pack")
    return pipeline_class.from_pretrained(str(folder), dtype=dtype).to(device)


#: the weights a ``build_tiny_*`` builder can build: "trained" for the families with a shipped embedded model
TINY_WEIGHTS = ("trained", "random")


def build_tiny(weights: str, seed, device, build_random: Callable, load_trained: Optional[Callable] = None):
    """What a ``build_tiny_*`` builder returns: ``load_trained(device)`` (the shipped shapes-world model) for
    ``weights="trained"``, ``build_random(seed, device)`` (random weights in the tiny official layout, seed 0 unless
    given) for ``weights="random"``. A family without a trained model (``load_trained`` None) builds "random" only;
    a seed with ``weights="trained"`` is refused: it would be ignored."""
    allowed = TINY_WEIGHTS if load_trained is not None else ("random",)
    if weights not in allowed:
        what = ("'trained' loads the embedded shapes-world model, 'random' builds random weights in the tiny layout"
                if load_trained is not None else "this family has no trained embedded model")
        raise ValueError(f"weights={weights!r} is not one of {allowed}: {what}")
    if weights == "trained":
        if seed is not None:
            raise ValueError(f"seed={seed!r} applies to weights='random' only (it seeds the random weights); "
                             "weights='trained' loads the shipped model")
        return load_trained(device)
    seed = 0 if seed is None else seed
    check_seed(seed)
    return build_random(seed, device)
