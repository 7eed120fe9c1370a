"""UMT video classifiers (`l16_ptk710_ftk710_ftk400_f16_res224.pth`, the official UMT fine-tuning layout) as
transformers' VideoMAEForVideoClassification.

The key map follows transformers' `convert_videomae_to_pytorch.py` (`blocks.N.attn.qkv` split into query/key/value,
`q_bias`/`v_bias` the query/value biases, `norm1`/`norm2` -> `layernorm_before`/`layernorm_after`, `head` ->
`classifier`). Differences from a plain VideoMAEForVideoClassification, so that it computes UMT's logits:
- the position table is the checkpoint's `pos_embed` (UMT's sine table interpolated from 8 to 16 frames and then
  fine-tuned), set on the embeddings in place of transformers' fixed sine table, which is not a state-dict entry;
- LayerNorm eps 1e-6 everywhere, `fc_norm` included (transformers builds that one with the default 1e-5);
- the input is (B, T, C, H, W); UMT's is (B, C, T, H, W).
The architecture is read from the shapes: width, depth, MLP width, patch and tubelet size from the tensors, frames
from the position table at 224 px, heads width // 64 (16 for ViT-L/16). Loading is strict (the official code loads
with strict=False, which would hide a wrong file).
"""

import re
from typing import Dict

IMAGE_SIZE = 224  # the official preprocessing crops 224 x 224
OFFICIAL_NEEDED = ("pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "fc_norm.weight", "head.weight")


def videomae_config_from_state_dict(state_dict: Dict):
    """transformers' VideoMAEConfig of the UMT classifier in `state_dict`."""
    from transformers import VideoMAEConfig

    width, channels, tubelet, patch, _ = state_dict["patch_embed.proj.weight"].shape
    layers = {int(m.group(1)) for key in state_dict if (m := re.match(r"blocks\.(\d+)\.", key))}
    patches_per_frame = (IMAGE_SIZE // patch) ** 2
    num_patches = state_dict["pos_embed"].shape[1]
    if num_patches % patches_per_frame:
        raise ValueError(
            f"pos_embed holds {num_patches} positions, not a multiple of the {patches_per_frame} patches of a "
            f"{IMAGE_SIZE} px frame at patch size {patch}"
        )
    return VideoMAEConfig(
        image_size=IMAGE_SIZE,
        patch_size=patch,
        num_channels=channels,
        num_frames=num_patches // patches_per_frame * tubelet,
        tubelet_size=tubelet,
        hidden_size=width,
        num_hidden_layers=len(layers),
        num_attention_heads=max(1, width // 64),
        intermediate_size=state_dict["blocks.0.mlp.fc1.weight"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        qkv_bias="blocks.0.attn.q_bias" in state_dict,
        use_mean_pooling=True,
        num_labels=state_dict["head.weight"].shape[0],
    )


def key_pairs(num_layers: int, model_keys) -> list:
    """(official UMT key, VideoMAEForVideoClassification keys) for every tensor but `pos_embed`; `attn.qkv.weight`
    is the three query/key/value weights stacked along dim 0. Covers transformers 5 (query/value biases) and 4
    (`attention.attention.q_bias` / `v_bias` parameters)."""
    pairs = [
        ("patch_embed.proj.weight", ["videomae.embeddings.patch_embeddings.projection.weight"]),
        ("patch_embed.proj.bias", ["videomae.embeddings.patch_embeddings.projection.bias"]),
        ("fc_norm.weight", ["fc_norm.weight"]),
        ("fc_norm.bias", ["fc_norm.bias"]),
        ("head.weight", ["classifier.weight"]),
        ("head.bias", ["classifier.bias"]),
    ]
    separate_biases = "videomae.encoder.layer.0.attention.attention.q_bias" in model_keys
    for i in range(num_layers):
        block, layer = f"blocks.{i}.", f"videomae.encoder.layer.{i}."
        attention = layer + "attention.attention."
        pairs.append((block + "attn.qkv.weight", [attention + f"{name}.weight" for name in ("query", "key", "value")]))
        if separate_biases:
            pairs += [(block + "attn.q_bias", [attention + "q_bias"]), (block + "attn.v_bias", [attention + "v_bias"])]
        else:
            pairs += [(block + "attn.q_bias", [attention + "query.bias"]), (block + "attn.v_bias", [attention + "value.bias"])]
        for part in ("weight", "bias"):
            pairs += [
                (block + f"attn.proj.{part}", [layer + f"attention.output.dense.{part}"]),
                (block + f"norm1.{part}", [layer + f"layernorm_before.{part}"]),
                (block + f"norm2.{part}", [layer + f"layernorm_after.{part}"]),
                (block + f"mlp.fc1.{part}", [layer + f"intermediate.dense.{part}"]),
                (block + f"mlp.fc2.{part}", [layer + f"output.dense.{part}"]),
            ]
    return pairs


def build_classifier(config):
    """VideoMAEForVideoClassification of `config` with a zero position table of the right size, to be overwritten
    by the checkpoint's. transformers computes its sine table for every position in Python loops at construction
    (about 4 s for ViT-L/16's 3136 x 1024 on one core, thrown away here), so the model is built for one tubelet of
    frames and then given the full frame count; the patch embedding does not depend on it."""
    import torch
    from transformers import VideoMAEForVideoClassification

    frames = config.num_frames
    config.num_frames = config.tubelet_size
    try:
        model = VideoMAEForVideoClassification(config)
    finally:
        config.num_frames = frames
    model.config.num_frames = frames
    positions = (config.image_size // config.patch_size) ** 2 * (frames // config.tubelet_size)
    embeddings = model.videomae.embeddings
    embeddings.num_patches = embeddings.patch_embeddings.num_patches = positions
    embeddings.position_embeddings = torch.zeros(1, positions, config.hidden_size)
    return model


def load_umt_classifier(path: str, name: str, device="cpu"):
    """transformers' VideoMAEForVideoClassification (fp32, eval) holding the UMT checkpoint `path`, with UMT's
    position table and eps; its logits are `model(pixel_values).logits` for pixel_values (B, T, C, 224, 224).
    ValueError naming the file and its missing, unexpected or mis-shaped keys otherwise."""
    import torch

    from ._common import check_keys, load_torch_checkpoint

    state_dict = load_torch_checkpoint(path, name)
    if not isinstance(state_dict, dict):
        raise ValueError(f"{name}: {path!r} is not a UMT state dict")
    missing = [key for key in OFFICIAL_NEEDED if key not in state_dict]
    if missing:
        raise ValueError(
            f"{name}: {path!r} is not a UMT video classifier checkpoint in the official layout (no "
            f"{', '.join(missing)}); found keys such as {sorted(state_dict)[:5]}"
        )
    try:
        config = videomae_config_from_state_dict(state_dict)
    except ValueError as error:
        raise ValueError(f"{name}: checkpoint {path!r}: {error}") from None
    model = build_classifier(config)
    ours = model.state_dict()
    pairs = key_pairs(config.num_hidden_layers, ours)
    expected = {
        official: torch.cat([ours[key] for key in keys]) if len(keys) > 1 else ours[keys[0]]
        for official, keys in pairs
    }
    expected["pos_embed"] = model.videomae.embeddings.position_embeddings
    check_keys(expected, state_dict, path, name)
    converted = {}
    for official, keys in pairs:
        for key, chunk in zip(keys, state_dict[official].float().chunk(len(keys), dim=0)):
            converted[key] = chunk.contiguous()
    model.load_state_dict(converted, strict=True)
    model.videomae.embeddings.position_embeddings = state_dict["pos_embed"].float().clone()
    model.fc_norm.eps = 1e-6
    return model.to(device=device, dtype=torch.float32).eval()
