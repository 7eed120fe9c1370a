"""A whole OpenAI CLIP checkpoint (`ViT-B-32.pt`: vision and text towers, `logit_scale`) as transformers'
CLIPModel, for the dimensions that compare frames with text.

The vision tower goes through `_openai_clip`'s key map; the text tower's map is the same one of
transformers' `convert_clip_original_pytorch_to_hf.py` (`in_proj` split into q/k/v, `c_fc`/`c_proj` -> `fc1`/`fc2`,
`ln_final` -> `final_layer_norm`, `text_projection` transposed). The text architecture is read from the shapes as
`clip.model.build_model` does (heads = width // 64). Text features are taken at the highest token id of each row
(the official `text.argmax(dim=-1)`, the end-of-text token), whatever the config's `eos_token_id`.
"""

import re
from typing import Dict

from ._openai_clip import (
    VISION_PREFIX,
    resblocks_to_transformers,
    vision_config_from_state_dict,
    vision_state_dict_to_transformers,
)

TEXT_KEYS = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection", "logit_scale")


def text_config_from_state_dict(state_dict: Dict):
    """transformers' CLIPTextConfig of the OpenAI text tower in `state_dict`."""
    from transformers import CLIPTextConfig

    vocab_size, width = state_dict["token_embedding.weight"].shape
    layers = {int(m.group(1)) for key in state_dict if (m := re.match(r"transformer\.resblocks\.(\d+)\.", key))}
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=state_dict["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        projection_dim=state_dict["text_projection"].shape[1],
        num_hidden_layers=len(layers),
        num_attention_heads=max(width // 64, 1),
        max_position_embeddings=state_dict["positional_embedding"].shape[0],
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


def text_state_dict_to_transformers(state_dict: Dict, num_layers: int) -> Dict:
    """The OpenAI text-tower tensors (and `logit_scale`) under CLIPModel's names."""
    out = {
        "text_model.embeddings.token_embedding.weight": state_dict["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state_dict["positional_embedding"],
        "text_model.final_layer_norm.weight": state_dict["ln_final.weight"],
        "text_model.final_layer_norm.bias": state_dict["ln_final.bias"],
        "text_projection.weight": state_dict["text_projection"].t().contiguous(),
        "logit_scale": state_dict["logit_scale"],
    }
    out.update(resblocks_to_transformers(state_dict, num_layers, "transformer.resblocks.", "text_model.encoder.layers."))
    return out


def load_openai_clip(path: str, name: str, device="cpu"):
    """transformers' CLIPModel (fp32, eval) holding both towers and `logit_scale` of the OpenAI CLIP file `path`;
    ValueError naming the file when keys are missing, unexpected or shaped otherwise."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from ._common import check_keys, load_torch_checkpoint

    state_dict = load_torch_checkpoint(path, name)
    needed = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj",
              "visual.transformer.resblocks.0.mlp.c_fc.weight", "transformer.resblocks.0.mlp.c_fc.weight") + TEXT_KEYS
    missing = [key for key in needed if key not in state_dict]
    if missing:
        raise ValueError(f"{name}: {path!r} is not an OpenAI CLIP checkpoint with both towers (no {', '.join(missing)})")
    vision_config = vision_config_from_state_dict(state_dict)
    text_config = text_config_from_state_dict(state_dict)
    if text_config.projection_dim != vision_config.projection_dim:
        raise ValueError(
            f"{name}: {path!r} projects text to {text_config.projection_dim} and images to "
            f"{vision_config.projection_dim} dimensions; CLIP needs one joint space"
        )
    config = CLIPConfig(
        text_config=text_config.to_dict(), vision_config=vision_config.to_dict(),
        projection_dim=vision_config.projection_dim,
    )
    model = CLIPModel(config)
    state_dict = {key: value.float() for key, value in state_dict.items()}
    visual = {key: value for key, value in state_dict.items() if key.startswith(VISION_PREFIX)}
    # the text tower and the scalars (`input_resolution`, `context_length`, `vocab_size` of JIT archives are not
    # weights and are left out)
    text = {key: value for key, value in state_dict.items()
            if not key.startswith(VISION_PREFIX) and key not in ("input_resolution", "context_length", "vocab_size")}
    try:
        converted = vision_state_dict_to_transformers(visual, vision_config.num_hidden_layers)
        converted.update(text_state_dict_to_transformers(text, text_config.num_hidden_layers))
    except KeyError as error:
        raise ValueError(f"{name}: checkpoint {path!r} does not fit: missing key {error.args[0]!r}") from None
    check_keys(model.state_dict(), converted, path, name)
    stray = sorted(key for key in text if not _is_mapped_text_key(key, text_config.num_hidden_layers))
    if stray:
        raise ValueError(f"{name}: checkpoint {path!r} does not fit: unexpected keys {stray[:10]}")
    model.load_state_dict(converted, strict=True)
    return model.to(device=device, dtype=torch.float32).eval()


def _is_mapped_text_key(key: str, num_layers: int) -> bool:
    if key in TEXT_KEYS or key == "ln_final.bias":
        return True
    match = re.match(r"transformer\.resblocks\.(\d+)\.(attn\.in_proj_|attn\.out_proj\.|ln_1\.|ln_2\.|mlp\.c_fc\.|"
                     r"mlp\.c_proj\.)(weight|bias)$", key)
    return bool(match) and int(match.group(1)) < num_layers


def text_features(model, ids):
    """L2-normalised fp32 text features of token rows `ids` [N, L], read at each row's highest id (end of text)."""
    import torch.nn.functional as F

    hidden = model.text_model(input_ids=ids).last_hidden_state
    pooled = hidden[range(ids.shape[0]), ids.argmax(dim=-1)]
    return F.normalize(model.text_projection(pooled).float(), dim=-1)


def image_features(model, pixel_values):
    """L2-normalised fp32 image features of CLIP-preprocessed images [N, 3, S, S]."""
    import torch.nn.functional as F

    pooled = model.vision_model(pixel_values=pixel_values).pooler_output
    return F.normalize(model.visual_projection(pooled).float(), dim=-1)
