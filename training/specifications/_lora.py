"""The specifications' LoRA helpers: peft adapter configs, target checks, the trainable split, and writing a
denoiser's adapters in diffusers' format with the adapter config stored beside the weights."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import nn

from ._folders import write_folder


def lora_layers_and_metadata(model, adapter_name: str = "default") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(state dict, adapter metadata) of ``adapter_name`` for a loader mixin's ``save_lora_weights``.

    The metadata (peft's ``LoraConfig`` as a dict) carries ``lora_alpha``, ``rank_pattern`` and the target modules,
    so a loader rebuilds the adapter with the scale it trained with instead of guessing ``alpha = rank``.
    """
    from peft.utils import get_peft_model_state_dict

    if adapter_name not in getattr(model, "peft_config", {}):
        adapters = sorted(getattr(model, "peft_config", {}))
        raise ValueError(f"adapter_name={adapter_name!r} is not an adapter of the model; it has {adapters or 'none'}")
    layers = get_peft_model_state_dict(model, adapter_name=adapter_name)
    return layers, model.peft_config[adapter_name].to_dict()


def check_lora_rank(rank: int) -> None:
    """ValueError for a LoRA rank < 1 (checked before the targets, which may take longer to resolve)."""
    if rank < 1:
        raise ValueError(f"rank={rank!r}; the LoRA rank must be an integer >= 1")


def lora_config(rank: int, alpha: Optional[float], dropout: float, target_modules: Sequence[str]):
    """peft's ``LoraConfig`` the specifications add: ``lora_alpha`` defaults to the rank; ValueError for a rank < 1."""
    from peft import LoraConfig

    check_lora_rank(rank)
    return LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, lora_dropout=dropout,
                      init_lora_weights=True, target_modules=list(target_modules))


def check_lora_targets(model, targets: Sequence[str], model_name: str) -> List[str]:
    """`targets` as a list; ValueError when they name no linear layer of `model` (by name or name suffix)."""
    targets = list(targets)
    if not any(isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)
               for name, module in model.named_modules()):
        raise ValueError(f"lora targets {targets} match no linear layer of the {model_name}")
    return targets


def split_trainable(model, training_type: str) -> List[Tuple[str, nn.Parameter]]:
    """``lora``: `model`'s LoRA adapter parameters; ``full``: all the others. ValueError for another type."""
    if training_type not in ("full", "lora"):
        raise ValueError(f"training_type={training_type!r}; allowed: full, lora")
    lora = training_type == "lora"
    return [(name, p) for name, p in model.named_parameters() if ("lora_" in name) == lora]


def write_transformer_lora(pipeline_class, transformer, output_dir: str) -> None:
    """Writes `transformer`'s default adapter as `pipeline_class`'s ``pytorch_lora_weights.safetensors`` (diffusers'
    format, the adapter config beside it) into `output_dir`, without leaving a half-written folder."""
    layers, metadata = lora_layers_and_metadata(transformer)
    write_folder(output_dir, lambda folder: pipeline_class.save_lora_weights(
        folder, transformer_lora_layers=layers, transformer_lora_adapter_metadata=metadata))
