"""DINO ViT checkpoints (`dino_vitbase16_pretrain.pth`, the official DINO layout) as transformers' ViTModel.

The key map is transformers' `convert_dino_to_pytorch.py` (`blocks.N.attn.qkv` split into query/key/value, `norm1`
/`norm2` -> `layernorm_before`/`layernorm_after`). Differences from a plain ViTModel, so that it gives DINO's
features: LayerNorm eps 1e-6 (DINO's), and DINO's position-table interpolation for frames that are not 224x224,
`F.interpolate(scale_factor=((h // p + 0.1) / g, (w // p + 0.1) / g), mode='bicubic')` instead of
transformers' `size=(h // p, w // p)`: the two tables differ by about 8% on a 224x398 frame. The architecture is
read from the shapes; the number of heads is width // 64 (12 for ViT-B/16).
"""

import math
import re
import types
from typing import Dict

OFFICIAL_NEEDED = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight", "norm.weight")


def vit_config_from_state_dict(state_dict: Dict):
    """transformers' ViTConfig of the DINO ViT in `state_dict`."""
    from transformers import ViTConfig

    width, channels, patch, _ = state_dict["patch_embed.proj.weight"].shape
    layers = {int(m.group(1)) for key in state_dict if (m := re.match(r"blocks\.(\d+)\.", key))}
    grid = round((state_dict["pos_embed"].shape[1] - 1) ** 0.5)
    return ViTConfig(
        hidden_size=width,
        num_hidden_layers=len(layers),
        num_attention_heads=max(1, width // 64),
        intermediate_size=state_dict["blocks.0.mlp.fc1.weight"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        image_size=patch * grid,
        patch_size=patch,
        num_channels=channels,
        qkv_bias="blocks.0.attn.qkv.bias" in state_dict,
    )


# official block part -> ViTModel names: transformers 5 (`layers.N.attention.q_proj`) and 4
# (`encoder.layer.N.attention.attention.query`)
_BLOCK_NAMES = {
    "layers.{}.": {
        "attn.qkv": ("attention.q_proj", "attention.k_proj", "attention.v_proj"),
        "attn.proj": ("attention.o_proj",),
        "mlp.fc1": ("mlp.fc1",),
        "mlp.fc2": ("mlp.fc2",),
    },
    "encoder.layer.{}.": {
        "attn.qkv": ("attention.attention.query", "attention.attention.key", "attention.attention.value"),
        "attn.proj": ("attention.output.dense",),
        "mlp.fc1": ("intermediate.dense",),
        "mlp.fc2": ("output.dense",),
    },
}


def key_pairs(num_layers: int, model_keys) -> list:
    """(official DINO key, ViTModel keys) for every tensor; `attn.qkv` is the three query/key/value tensors
    stacked along dim 0."""
    pairs = [
        ("cls_token", ["embeddings.cls_token"]),
        ("pos_embed", ["embeddings.position_embeddings"]),
        ("patch_embed.proj.weight", ["embeddings.patch_embeddings.projection.weight"]),
        ("patch_embed.proj.bias", ["embeddings.patch_embeddings.projection.bias"]),
        ("norm.weight", ["layernorm.weight"]),
        ("norm.bias", ["layernorm.bias"]),
    ]
    prefix = next(p for p in _BLOCK_NAMES if p.format(0) + "layernorm_before.weight" in model_keys)
    names = {"norm1": ("layernorm_before",), "norm2": ("layernorm_after",), **_BLOCK_NAMES[prefix]}
    for i in range(num_layers):
        for part in ("weight", "bias"):
            for official, ours in names.items():
                pairs.append((f"blocks.{i}.{official}.{part}", [prefix.format(i) + f"{name}.{part}" for name in ours]))
    return pairs


def _dino_interpolate_pos_encoding(self, embeddings, height: int, width: int):
    """DINO's position table for a height x width input (the official `interpolate_pos_encoding`'s arithmetic)."""
    import torch
    import torch.nn.functional as F

    num_patches = embeddings.shape[1] - 1
    num_positions = self.position_embeddings.shape[1] - 1
    if num_patches == num_positions and height == width:
        return self.position_embeddings
    grid = math.sqrt(num_positions)
    dim = embeddings.shape[-1]
    # DINO adds 0.1 so that the scale factor never rounds the output grid down by one
    rows, cols = height // self.patch_size + 0.1, width // self.patch_size + 0.1
    table = self.position_embeddings[:, 1:].reshape(1, int(grid), int(grid), dim).permute(0, 3, 1, 2)
    table = F.interpolate(table, scale_factor=(rows / grid, cols / grid), mode="bicubic")
    table = table.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((self.position_embeddings[:, :1], table), dim=1)


def load_dino_vit(path: str, name: str, device="cpu"):
    """transformers' ViTModel (fp32, eval, DINO's interpolation) holding the DINO checkpoint `path`; its CLS
    feature is `model(pixel_values, interpolate_pos_encoding=True).last_hidden_state[:, 0]`. ValueError naming
    the file and its missing, unexpected or mis-shaped keys otherwise."""
    import torch
    from transformers import ViTModel

    from ._common import check_keys, load_torch_checkpoint

    state_dict = load_torch_checkpoint(path, name)
    if not isinstance(state_dict, dict):
        raise ValueError(f"{name}: {path!r} is not a DINO ViT state dict")
    missing = [key for key in OFFICIAL_NEEDED if key not in state_dict]
    if missing:
        raise ValueError(
            f"{name}: {path!r} is not a DINO ViT checkpoint in the official layout (no {', '.join(missing)}); "
            f"found keys such as {sorted(state_dict)[:5]}"
        )
    config = vit_config_from_state_dict(state_dict)
    model = ViTModel(config, add_pooling_layer=False)
    ours = model.state_dict()
    pairs = key_pairs(config.num_hidden_layers, ours)
    expected = {
        official: torch.cat([ours[key] for key in keys]) if len(keys) > 1 else ours[keys[0]]
        for official, keys in pairs
    }
    check_keys(expected, state_dict, path, name)
    converted = {}
    for official, keys in pairs:
        for key, chunk in zip(keys, state_dict[official].float().chunk(len(keys), dim=0)):
            converted[key] = chunk.contiguous()
    model.load_state_dict(converted, strict=True)
    model.embeddings.interpolate_pos_encoding = types.MethodType(_dino_interpolate_pos_encoding, model.embeddings)
    return model.to(device=device, dtype=torch.float32).eval()
