"""LoRA loading for every pipeline of the pack: diffusers' loader mixins, plus the checks they leave out.

Each pipeline takes the diffusers loader mixin of its denoiser (the CogVideoX one for DaS and RepVideo, SD3's for
Vchitect-2.0, Stable Diffusion's for the LGVI UNet), so ``load_lora_weights``, ``set_adapters``, ``fuse_lora``,
``unfuse_lora``, ``unload_lora_weights`` and ``get_active_adapters`` are diffusers' own. :class:`CheckedLoraLoaderMixin`
goes before that mixin and adds what diffusers does not check:

- a missing file is named (diffusers would try it as a Hub id);
- a file with no key for any LoRA-loadable component of the pipeline (say a UNet LoRA given to a transformer
  pipeline) is refused, naming the file and the prefixes expected; diffusers only logs a warning and loads nothing,
  so the LoRA would silently do nothing;
- keys that name a layer the model does not have, or a layer of another shape, and non-finite tensors are refused;
- adapter weights and fuse scales must be finite numbers.

:func:`loras_applied` applies LoRA files with strengths for one run and removes them afterwards (the ComfyUI node's
way to leave a cached pipeline as it was).
"""

import contextlib
import logging
import math
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch

# the part of a peft-format LoRA key that follows the name of the layer it adapts
_PEFT_KEY_MARKERS = (".lora_A.", ".lora_B.")
_WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def _describe(source) -> str:
    return "the LoRA state dict given" if isinstance(source, Mapping) else f"LoRA {os.fspath(source)!r}"


def _looks_like_local_path(path: str) -> bool:
    """True for what cannot be a Hub id (``owner/name``): absolute or relative paths, names of weight files."""
    return (os.path.isabs(path) or path.startswith(".") or path.lower().endswith(_WEIGHT_FILE_SUFFIXES)
            or path.count("/") != 1 or "\\" in path)


def check_lora_source(source, weight_name: Optional[str] = None) -> None:
    """FileNotFoundError for a LoRA path that does not exist (a directory without ``weight_name`` in it included)."""
    if isinstance(source, Mapping):
        return
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"pretrained_model_name_or_path_or_dict={source!r} must be a LoRA file, a folder holding "
                         "one, a Hub id or a state dict")
    path = os.fspath(source)
    if os.path.isdir(path) and weight_name is not None and not os.path.isfile(os.path.join(path, weight_name)):
        raise FileNotFoundError(f"LoRA file {os.path.join(path, weight_name)!r} does not exist")
    if not os.path.exists(path) and _looks_like_local_path(path):
        raise FileNotFoundError(f"LoRA file {path!r} does not exist")


def check_adapter_weight(name: str, weight) -> None:
    """ValueError unless ``weight`` is None, a finite number, or a dict (diffusers' per-block weights) of them."""
    if weight is None:
        return
    if isinstance(weight, Mapping):
        for key, value in weight.items():
            check_adapter_weight(f"{name}[{key!r}]", value)
        return
    if isinstance(weight, (list, tuple)):
        for index, value in enumerate(weight):
            check_adapter_weight(f"{name}[{index}]", value)
        return
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ValueError(f"{name}={weight!r} must be a finite number")


def _layer_shapes(module: torch.nn.Module) -> Optional[Tuple[int, int]]:
    """(input, output) features of a layer LoRA can adapt, or None for another kind of module."""
    base = getattr(module, "base_layer", module)
    if isinstance(base, torch.nn.Linear):
        return base.in_features, base.out_features
    if isinstance(base, torch.nn.modules.conv._ConvNd):
        return base.in_channels, base.out_channels
    return None


def check_lora_state_dict(state_dict: Mapping[str, Any], components: Mapping[str, Optional[torch.nn.Module]],
                          source_text: str, pipeline_name: str) -> None:
    """Refuses a LoRA state dict that would load nothing, or something else than what its keys say.

    Args:
        state_dict: the LoRA state dict as diffusers' ``lora_state_dict`` returns it (``"<component>.<layer>.lora_A.
            weight"`` keys).
        components: the LoRA-loadable components of the pipeline by name (None for an absent one).
        source_text: how the error names the LoRA (``"LoRA 'style.safetensors'"``).
        pipeline_name: the pipeline class name, for the error.
    """
    present = [name for name, module in components.items() if module is not None]
    expected = " or ".join(repr(f"{name}.") for name in present)
    if not state_dict:
        raise ValueError(f"{source_text} holds no tensors; {pipeline_name} expects keys starting with {expected}")
    by_component: Dict[str, List[str]] = {name: [] for name in present}
    foreign = []
    for key in state_dict:
        owner = next((name for name in present if key.startswith(name + ".")), None)
        (by_component[owner] if owner is not None else foreign).append(key)
    if not any(by_component.values()):
        prefixes = sorted({key.split(".", 1)[0] + "." for key in state_dict})
        raise ValueError(
            f"{source_text} has no keys for {pipeline_name}: it loads LoRAs into {present} and expects keys starting "
            f"with {expected} (diffusers' format, as `vdp train --type lora` writes it); the file's keys start with "
            f"{prefixes[:8]}, so it was made for another model")
    if foreign:
        raise ValueError(
            f"{source_text} has {len(foreign)} key(s) for no LoRA-loadable part of {pipeline_name} (expected keys "
            f"starting with {expected}), e.g. {sorted(foreign)[:3]}")
    for key, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{source_text} holds non-finite values (NaN or infinity) in {key!r}; the file is damaged")
    for component, keys in by_component.items():
        modules = dict(components[component].named_modules())
        for key in keys:
            marker = next((m for m in _PEFT_KEY_MARKERS if m in key), None)
            if marker is None or not key.endswith(".weight"):
                continue  # other formats (kohya, old diffusers) are converted by diffusers; it checks those itself
            layer = key[len(component) + 1: key.index(marker)]
            if layer not in modules:
                raise ValueError(f"{source_text} adapts {component}.{layer}, which {pipeline_name}'s {component} does "
                                 f"not have (key {key!r}): the LoRA was trained on another architecture or size")
            shapes = _layer_shapes(modules[layer])
            tensor = state_dict[key]
            if shapes is None or not isinstance(tensor, torch.Tensor) or tensor.ndim < 2:
                continue
            expected_size, axis = (shapes[0], 1) if marker == ".lora_A." else (shapes[1], 0)
            if tensor.shape[axis] != expected_size:
                raise ValueError(
                    f"{source_text}: {key!r} has shape {tuple(tensor.shape)} but {component}.{layer} has "
                    f"{'input' if axis == 1 else 'output'} size {expected_size}: the LoRA was trained on another "
                    "model size")


def _adapters_to_compute_dtype(model: torch.nn.Module) -> None:
    """Keeps LoRA weights out of fp8 storage: peft gives the adapters their base layer's dtype, which under diffusers'
    layerwise casting (the fp8 memory presets) is the float8 storage dtype, in which nothing computes. The adapters
    are small; they take the layer's compute dtype instead."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        registry = getattr(module.get_base_layer(), "_diffusers_hook", None)
        hook = registry.get_hook("layerwise_casting") if registry is not None else None
        if hook is None:
            continue
        for name in module.adapter_layer_names:
            getattr(module, name).to(dtype=hook.compute_dtype)


class _EmptyComponentFilter(logging.Filter):
    """Drops diffusers' "No LoRA keys associated to <component>" warning: the keys were checked before loading, and a
    LoRA of the denoiser alone has none for the text encoders, which is no reason to warn."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No LoRA keys associated to")


@contextlib.contextmanager
def _without_empty_component_warnings():
    loggers = [logging.getLogger(name) for name in ("diffusers.loaders.peft", "diffusers.loaders.lora_base")]
    quiet = _EmptyComponentFilter()
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


class CheckedLoraLoaderMixin:
    """Checks for diffusers' LoRA loader mixins: put it before the mixin in a pipeline's bases.

    ``load_lora_weights`` refuses a missing file, a LoRA without keys for this pipeline (diffusers would load nothing
    and only warn), keys naming layers the model does not have and non-finite tensors, before anything is injected;
    ``set_adapters`` and ``fuse_lora`` refuse weights that are not finite numbers.
    """

    def _lora_components(self) -> Dict[str, Optional[torch.nn.Module]]:
        return {name: getattr(self, name, None) for name in self._lora_loadable_modules}

    def load_lora_weights(self, pretrained_model_name_or_path_or_dict: Union[str, os.PathLike, Dict[str, Any]],
                          adapter_name: Optional[str] = None, **kwargs):
        """diffusers' ``load_lora_weights`` (every keyword it documents), after checking the LoRA fits this pipeline.

        Args:
            pretrained_model_name_or_path_or_dict: a LoRA ``.safetensors`` file, a folder holding
                ``pytorch_lora_weights.safetensors`` (what `vdp train --type lora` writes), a Hub id, or a state dict.
            adapter_name (`str`, *optional*): the adapter's name for ``set_adapters`` (``default_<i>`` when not given).

        Raises:
            FileNotFoundError: the file or folder does not exist.
            ValueError: the LoRA has no key for this pipeline's model (naming the prefix expected), names layers the
                model does not have or of another size, holds non-finite values, or is not a readable LoRA file.
        """
        source = pretrained_model_name_or_path_or_dict
        check_lora_source(source, kwargs.get("weight_name"))
        source_text = _describe(pretrained_model_name_or_path_or_dict)
        if adapter_name is not None and not isinstance(adapter_name, str):
            raise ValueError(f"adapter_name={adapter_name!r} must be a string")
        read_kwargs = {k: v for k, v in kwargs.items() if k not in ("low_cpu_mem_usage", "hotswap")}
        try:
            state_dict = self.lora_state_dict(dict(source) if isinstance(source, Mapping) else source, **read_kwargs)
        except FileNotFoundError:
            raise
        except Exception as error:  # a corrupt or foreign file: one line that names it
            raise ValueError(f"{source_text} cannot be read as a LoRA: {type(error).__name__}: {error}") from error
        if isinstance(state_dict, tuple):  # (state dict, network alphas) of Stable Diffusion's loader
            state_dict = state_dict[0]
        check_lora_state_dict(state_dict, self._lora_components(), source_text, type(self).__name__)
        with _without_empty_component_warnings():
            result = super().load_lora_weights(source, adapter_name=adapter_name, **kwargs)
        for component in self._lora_components().values():
            if isinstance(component, torch.nn.Module):
                _adapters_to_compute_dtype(component)
        return result

    def set_adapters(self, adapter_names: Union[List[str], str], adapter_weights=None):
        """diffusers' ``set_adapters``; each weight must be a finite number (or None, or per-block dict of them)."""
        check_adapter_weight("adapter_weights", adapter_weights)
        return super().set_adapters(adapter_names, adapter_weights)

    def fuse_lora(self, *args, lora_scale: float = 1.0, **kwargs):
        """diffusers' ``fuse_lora``; ``lora_scale`` must be a finite number."""
        check_adapter_weight("lora_scale", lora_scale)
        return super().fuse_lora(*args, lora_scale=lora_scale, **kwargs)


def _check_lora_entries(loras: Iterable[Tuple[Any, float]]) -> List[Tuple[Any, float]]:
    entries = []
    for index, entry in enumerate(loras):
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"loras[{index}]={entry!r} must be a (LoRA file, strength) pair")
        source, strength = entry
        check_adapter_weight(f"strength of {_describe(source)}", strength)
        check_lora_source(source)
        entries.append((source, float(strength)))
    return entries


@contextlib.contextmanager
def loras_applied(pipeline, loras: Sequence[Tuple[Any, float]]) -> Iterator[Any]:
    """Loads ``loras`` (LoRA file or state dict, strength) into ``pipeline`` for the ``with`` block, then removes them.

    A strength of 0 loads nothing (the output is bit-identical to the pipeline's own); several LoRAs add up, each at
    its strength. On leaving the block, even after an error or an interrupt, every adapter is unloaded and the layers
    are the pipeline's own again. The pipeline must hold no adapters when the block starts (its own adapters would
    be unloaded too); with no LoRA of non-zero strength nothing is touched.

    Args:
        pipeline: a pack pipeline (any with diffusers' LoRA loader).
        loras: ``(source, strength)`` pairs; strengths must be finite numbers.
    """
    entries = [(source, strength) for source, strength in _check_lora_entries(loras) if strength != 0]
    if not entries:
        yield pipeline
        return
    held = {part: names for part, names in pipeline.get_list_adapters().items() if names}
    if held:
        raise ValueError(f"the pipeline already holds LoRA adapters {held}; call unload_lora_weights() first (or "
                         "load them yourself with load_lora_weights and set_adapters)")
    names = [f"vdp_lora_{index}" for index in range(len(entries))]
    try:
        for name, (source, _) in zip(names, entries):
            pipeline.load_lora_weights(source, adapter_name=name)
        pipeline.set_adapters(names, [strength for _, strength in entries])
        yield pipeline
    finally:
        pipeline.unload_lora_weights()
