"""Loads the released LGVI-I instruction encoder from its official layouts into `LGVIInstructionEncoder`.

The release is three folders: ``liuhaotian/llava-v1.5-7b`` (original LLaVA layout: ``model.mm_projector.{0,2}``,
``model.layers.*``), ``openai/clip-vit-large-patch14-336`` (the vision tower) and the fine-tuned overlay
``jianzongwu/lgvi-i/llava/llava_weights.pth`` (token embeddings, projector, transfer head). Their keys are mapped to
``LlavaForConditionalGeneration``'s plus ``transfer_head``, checked against the encoder built on the meta device
(missing, unexpected and mis-shaped keys, non-finite tensors) and assigned.
"""

import json
import os
from typing import Dict, Optional

import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file

from ..models.checkpoint import key_table_problems
from ..models.lgvi_instruction_encoder import LGVIInstructionEncoder

__all__ = ["load_official_instruction_encoder", "split_llava_checkpoint"]

# Original LLaVA checkpoint key prefixes -> LlavaForConditionalGeneration's.
_LLAVA_KEY_PREFIXES = (
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
# Buffers older transformers versions saved with the weights; they are recomputed, never loaded.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")
_OVERLAY_PARTS = {
    "language_embedding": "model.language_model.embed_tokens.",
    "vision_embedding": None,  # mm_projector "0."/"2." -> linear_1/linear_2
    "transfer_layer": "transfer_head.",
}


def split_llava_checkpoint(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Original LLaVA keys (``model.layers.*``, ``model.embed_tokens``, ``model.mm_projector.{0,2}``, ``lm_head``)
    -> ``LlavaForConditionalGeneration`` keys; saved rotary / position-id buffers are dropped."""
    mapped = {}
    for key, tensor in state_dict.items():
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        for old, new in _LLAVA_KEY_PREFIXES:
            if key.startswith(old):
                mapped[new + key[len(old):]] = tensor
                break
        else:
            mapped[key] = tensor
    return mapped


def _read_weight_files(folder: str, stem: str) -> Dict[str, torch.Tensor]:
    """All tensors of a transformers checkpoint folder: ``{stem}.safetensors`` / ``pytorch_model.bin`` or an index."""
    candidates = [
        ("model.safetensors.index.json", True), ("model.safetensors", False),
        ("pytorch_model.bin.index.json", True), ("pytorch_model.bin", False),
    ]
    for name, is_index in candidates:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if is_index:
            with open(path, encoding="utf-8") as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            paths = [os.path.join(folder, file) for file in files]
        else:
            paths = [path]
        tensors: Dict[str, torch.Tensor] = {}
        for shard in paths:
            if not os.path.isfile(shard):
                raise FileNotFoundError(f"{stem} weights shard {shard!r} listed in {path!r} is missing")
            try:
                if shard.endswith(".safetensors"):
                    tensors.update(load_file(shard))
                else:
                    tensors.update(torch.load(shard, map_location="cpu", weights_only=True, mmap=True))
            except Exception as error:  # noqa: BLE001 - any read failure is reported with the file
                raise ValueError(f"corrupt {stem} weights file {shard!r}: {error}") from None
            _check_finite(tensors, shard)
        return tensors
    raise FileNotFoundError(
        f"no {stem} weights in {folder!r}: expected one of {[name for name, _ in candidates]}"
    )


def _read_json(path: str, what: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_keys(found: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor], source: str) -> None:
    problems = key_table_problems({k: v.shape for k, v in expected.items()}, {k: v.shape for k, v in found.items()})
    if problems:
        raise ValueError(f"{source} does not match LGVIInstructionEncoder: " + "; ".join(problems))


def _check_finite(tensors: Dict[str, torch.Tensor], source: str) -> None:
    """Raises ValueError naming `source` and its first NaN or infinite floating tensor."""
    bad = [
        key for key, t in tensors.items()
        if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if bad:
        raise ValueError(
            f"{source} holds non-finite weights (NaN or infinity): first {bad[0]!r}, {len(bad)} tensor(s) in all; "
            "the checkpoint is damaged"
        )


def load_official_instruction_encoder(
    llava_dir: str, clip_dir: str, lgvi_i_llava_weights: str, torch_dtype: torch.dtype = torch.float32,
    cross_attention_dim: Optional[int] = None, max_new_tokens: int = 1024,
) -> LGVIInstructionEncoder:
    """Load the released LGVI-I instruction encoder.

    Args:
        llava_dir (`str`): ``liuhaotian/llava-v1.5-7b`` (original LLaVA layout: config.json with mm_* fields,
            tokenizer.model, pytorch_model*.bin or safetensors).
        clip_dir (`str`): ``openai/clip-vit-large-patch14-336`` (a CLIP or CLIP-vision folder).
        lgvi_i_llava_weights (`str`): ``jianzongwu/lgvi-i/llava/llava_weights.pth``.
        torch_dtype (`torch.dtype`, defaults to float32): dtype of the weights.
        cross_attention_dim (`int`, *optional*): expected transfer-head output width (read from the overlay).
        max_new_tokens (`int`, defaults to 1024): the answer length limit (the official setting).
    """
    from transformers import CLIPVisionConfig, LlamaConfig, LlamaTokenizer

    for name, folder in (("llava_dir", llava_dir), ("clip_dir", clip_dir)):
        if not isinstance(folder, (str, os.PathLike)) or not os.path.isdir(folder):
            raise FileNotFoundError(f"{name}={folder!r} is not a folder")
    if not isinstance(lgvi_i_llava_weights, (str, os.PathLike)) or not os.path.isfile(lgvi_i_llava_weights):
        raise FileNotFoundError(
            f"lgvi_i_llava_weights={lgvi_i_llava_weights!r} is not a file (expected lgvi-i/llava/llava_weights.pth)"
        )
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ValueError(f"torch_dtype={torch_dtype!r} must be a floating torch.dtype")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a positive int")

    llava_config = _read_json(os.path.join(llava_dir, "config.json"), "llava_dir config")
    for field in ("mm_hidden_size", "mm_projector_type", "hidden_size", "vocab_size"):
        if field not in llava_config:
            raise ValueError(f"{llava_dir}/config.json has no {field!r}: not an original-layout LLaVA config")
    if llava_config["mm_projector_type"] != "mlp2x_gelu":
        raise ValueError(
            f"{llava_dir}/config.json mm_projector_type={llava_config['mm_projector_type']!r}: "
            "only 'mlp2x_gelu' (LLaVA-1.5) is supported"
        )
    if llava_config.get("mm_vision_select_feature", "patch") != "patch":
        raise ValueError(f"{llava_dir}/config.json mm_vision_select_feature must be 'patch'")
    clip_config = _read_json(os.path.join(clip_dir, "config.json"), "clip_dir config")
    vision_config = clip_config.get("vision_config", clip_config)
    if vision_config.get("hidden_size") != llava_config["mm_hidden_size"]:
        raise ValueError(
            f"{clip_dir}/config.json vision hidden_size={vision_config.get('hidden_size')} != "
            f"mm_hidden_size={llava_config['mm_hidden_size']} of {llava_dir}/config.json"
        )
    text_fields = set(LlamaConfig().to_dict())
    text_config = {k: v for k, v in llava_config.items() if k in text_fields and not k.startswith("_")}
    for key in ("architectures", "transformers_version", "torch_dtype", "dtype", "model_type"):
        text_config.pop(key, None)
    vision_fields = set(CLIPVisionConfig().to_dict())
    vision_config = {k: v for k, v in vision_config.items() if k in vision_fields and not k.startswith("_")}
    for key in ("architectures", "transformers_version", "torch_dtype", "dtype", "model_type"):
        vision_config.pop(key, None)

    try:
        overlay = torch.load(lgvi_i_llava_weights, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any read failure is reported with the file
        raise ValueError(f"corrupt LGVI-I overlay {lgvi_i_llava_weights!r}: {error}") from None
    if not isinstance(overlay, dict) or set(overlay) != set(_OVERLAY_PARTS):
        found = sorted(overlay) if isinstance(overlay, dict) else type(overlay).__name__
        raise ValueError(f"{lgvi_i_llava_weights!r} holds {found}; expected the parts {sorted(_OVERLAY_PARTS)}")
    _check_finite({f"{part}.{key}": t for part, tensors in overlay.items() for key, t in tensors.items()},
                  os.fspath(lgvi_i_llava_weights))
    head_out = overlay["transfer_layer"].get("2.weight")
    if head_out is None:
        raise ValueError(
            f"{lgvi_i_llava_weights!r} transfer_layer has no '2.weight': {sorted(overlay['transfer_layer'])}"
        )
    if cross_attention_dim is not None and cross_attention_dim != head_out.shape[0]:
        raise ValueError(
            f"cross_attention_dim={cross_attention_dim} but the transfer head of {lgvi_i_llava_weights!r} "
            f"outputs {head_out.shape[0]}"
        )

    with init_empty_weights():
        encoder = LGVIInstructionEncoder(
            text_config=text_config,
            vision_config=vision_config,
            vision_feature_layer=llava_config.get("mm_vision_select_layer", -2),
            cross_attention_dim=head_out.shape[0],
            max_new_tokens=max_new_tokens,
            eos_token_id=llava_config.get("eos_token_id", 2),
        )
    expected = encoder.state_dict()
    # transformers versions differ in whether the Llava vision tower keeps CLIP's "vision_model." level
    vision_prefix = "model.vision_tower.vision_model."
    if not any(key.startswith("mllm." + vision_prefix) for key in expected):
        vision_prefix = "model.vision_tower."
    state = split_llava_checkpoint(_read_weight_files(llava_dir, "LLaVA"))
    clip_state = _read_weight_files(clip_dir, "CLIP")
    # a CLIP checkpoint keeps its vision tower under "vision_model."; a vision-only one may have no prefix
    has_level = any(key.startswith("vision_model.") for key in clip_state)
    for key, tensor in clip_state.items():
        if key.endswith(_IGNORED_SUFFIXES) or (has_level and not key.startswith("vision_model.")):
            continue
        state[vision_prefix + key.removeprefix("vision_model.")] = tensor
    for part, tensors in overlay.items():
        for key, tensor in tensors.items():
            if part == "vision_embedding":
                layer = {"0.": "linear_1.", "2.": "linear_2."}.get(key[:2])
                if layer is None:
                    raise ValueError(f"{lgvi_i_llava_weights!r} vision_embedding has an unexpected key {key!r}")
                state["model.multi_modal_projector." + layer + key[2:]] = tensor
            else:
                state[_OVERLAY_PARTS[part] + key] = tensor
    state = {("mllm." + k if not k.startswith("transfer_head.") else k): v for k, v in state.items()}

    _check_keys(state, expected, f"{llava_dir} + {clip_dir} + {lgvi_i_llava_weights}")
    encoder.load_state_dict({k: v.to(torch_dtype) for k, v in state.items()}, strict=True, assign=True)
    # LlamaTokenizer by name: AutoTokenizer would follow config.json's model_type "llava" to a generic tokenizer
    encoder.tokenizer = LlamaTokenizer.from_pretrained(llava_dir)
    return encoder.eval()
