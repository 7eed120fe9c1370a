"""Writing a denoiser's peft LoRA adapters in diffusers' format, with the adapter config stored beside the weights."""

from typing import Any, Dict, Tuple


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
