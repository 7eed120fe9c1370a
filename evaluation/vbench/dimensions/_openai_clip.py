"""OpenAI CLIP checkpoints (`ViT-L-14.pt`, TorchScript or state dict) as transformers' CLIP vision tower.

The key map is transformers' `convert_clip_original_pytorch_to_hf.py`: `in_proj` split into q/k/v, `c_fc`/`c_proj`
-> `fc1`/`fc2`, `visual.proj` transposed, quick GELU. The architecture is read from the shapes, as `clip.load`
does; the text tower's keys are not used.
"""

import re
from typing import Dict

VISION_PREFIX = "visual."


def vision_config_from_state_dict(state_dict: Dict):
    """transformers' CLIPVisionConfig of the OpenAI vision tower in `state_dict`."""
    from transformers import CLIPVisionConfig

    width, _, patch, _ = state_dict["visual.conv1.weight"].shape
    layers = {
        int(m.group(1)) for key in state_dict if (m := re.match(r"visual\.transformer\.resblocks\.(\d+)\.", key))
    }
    grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    return CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=state_dict["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        projection_dim=state_dict["visual.proj"].shape[1],
        num_hidden_layers=len(layers),
        num_attention_heads=width // 64,
        image_size=patch * grid,
        patch_size=patch,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


def vision_state_dict_to_transformers(state_dict: Dict, num_layers: int) -> Dict:
    """The OpenAI `visual.*` tensors under CLIPVisionModelWithProjection's names."""
    out = {
        "vision_model.embeddings.class_embedding": state_dict["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state_dict["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state_dict["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": state_dict["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state_dict["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state_dict["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state_dict["visual.ln_post.bias"],
        "visual_projection.weight": state_dict["visual.proj"].t().contiguous(),
    }
    out.update(resblocks_to_transformers(state_dict, num_layers, "visual.transformer.resblocks.",
                                         "vision_model.encoder.layers."))
    return out


def resblocks_to_transformers(state_dict: Dict, num_layers: int, source: str, target: str) -> Dict:
    """The residual blocks `<source>N.*` of an OpenAI CLIP tower under transformers' `<target>N.*` names (`in_proj`
    split into q/k/v, `ln_1`/`ln_2` -> `layer_norm1`/`layer_norm2`, `c_fc`/`c_proj` -> `fc1`/`fc2`)."""
    out = {}
    for i in range(num_layers):
        src, dst = f"{source}{i}.", f"{target}{i}."
        for part in ("weight", "bias"):
            for name, chunk in zip(("q", "k", "v"), state_dict[src + f"attn.in_proj_{part}"].chunk(3, dim=0)):
                out[dst + f"self_attn.{name}_proj.{part}"] = chunk.contiguous()
            out[dst + f"self_attn.out_proj.{part}"] = state_dict[src + f"attn.out_proj.{part}"]
            out[dst + f"layer_norm1.{part}"] = state_dict[src + f"ln_1.{part}"]
            out[dst + f"layer_norm2.{part}"] = state_dict[src + f"ln_2.{part}"]
            out[dst + f"mlp.fc1.{part}"] = state_dict[src + f"mlp.c_fc.{part}"]
            out[dst + f"mlp.fc2.{part}"] = state_dict[src + f"mlp.c_proj.{part}"]
    return out


def load_openai_clip_vision(path: str, name: str, device="cpu"):
    """transformers' CLIPVisionModelWithProjection (fp32, eval) holding the vision tower of the OpenAI CLIP file
    `path`; ValueError naming the file when keys are missing or shaped otherwise."""
    import torch
    from transformers import CLIPVisionModelWithProjection

    from ._common import check_keys, load_torch_checkpoint

    state_dict = load_torch_checkpoint(path, name)
    needed = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj",
              "visual.transformer.resblocks.0.mlp.c_fc.weight")
    missing = [key for key in needed if key not in state_dict]
    if missing:
        raise ValueError(f"{name}: {path!r} is not an OpenAI CLIP ViT checkpoint (no {', '.join(missing)})")
    config = vision_config_from_state_dict(state_dict)
    model = CLIPVisionModelWithProjection(config)
    visual = {key: value.float() for key, value in state_dict.items() if key.startswith(VISION_PREFIX)}
    converted = vision_state_dict_to_transformers(visual, config.num_hidden_layers)
    check_keys(model.state_dict(), converted, path, name)
    model.load_state_dict(converted, strict=True)
    return model.to(device=device, dtype=torch.float32).eval()
