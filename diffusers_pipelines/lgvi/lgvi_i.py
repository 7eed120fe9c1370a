"""LGVI-I: the inpainting pipeline with LLaVA-1.5 as its instruction encoder, loaded from the released folders.

``load_lgvi_i_pipeline`` takes the three released folders (``jianzongwu/lgvi-i``, ``liuhaotian/llava-v1.5-7b``,
``openai/clip-vit-large-patch14-336``); ``build_tiny_lgvi_i_pipeline`` is the embedded smoke-test model and
``save_tiny_lgvi_i_official_layout`` writes a tiny random-weight family in those three layouts.
"""

import os
import pathlib
import tempfile
from typing import Optional, Union

import torch

from ...convert.llava import load_official_instruction_encoder
from ...models.lgvi_instruction_encoder import build_tiny_lgvi_instruction_encoder
from ...models.lgvi_instruction_prompt import train_tiny_llama_tokenizer
from ..tiny_weights import write_json

__all__ = ["build_tiny_lgvi_i_pipeline", "load_lgvi_i_pipeline", "save_tiny_lgvi_i_official_layout"]

OVERLAY_PATH = os.path.join("llava", "llava_weights.pth")


def load_lgvi_i_pipeline(lgvi_i_dir: Union[str, os.PathLike], llava_dir: Union[str, os.PathLike],
                         clip_dir: Union[str, os.PathLike], torch_dtype: Optional[torch.dtype] = None,
                         max_new_tokens: int = 1024):
    """The released LGVI-I as an ``InpaintByInstructionPipeline`` whose ``instruction_encoder`` is LLaVA-1.5.

    Args:
        lgvi_i_dir: the ``jianzongwu/lgvi-i`` folder (the LGVI layout plus ``llava/llava_weights.pth``).
        llava_dir: the ``liuhaotian/llava-v1.5-7b`` folder (original LLaVA layout).
        clip_dir: the ``openai/clip-vit-large-patch14-336`` folder.
        torch_dtype (`torch.dtype`, *optional*): dtype of every model (float32 when not given).
        max_new_tokens (`int`, defaults to 1024): the encoder's answer length limit (the official setting).
    """
    from .pipeline import InpaintByInstructionPipeline

    if not isinstance(lgvi_i_dir, (str, os.PathLike)) or not os.path.isdir(lgvi_i_dir):
        raise FileNotFoundError(f"lgvi_i_dir={lgvi_i_dir!r} is not a folder (download it with `vdp download lgvi-i`)")
    overlay = os.path.join(lgvi_i_dir, OVERLAY_PATH)
    if not os.path.isfile(overlay):
        raise FileNotFoundError(
            f"lgvi_i_dir={lgvi_i_dir!r} has no {OVERLAY_PATH}: not the LGVI-I folder (LGVI has none)"
        )
    if torch_dtype is not None and (not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point):
        raise ValueError(f"torch_dtype={torch_dtype!r} must be a floating torch.dtype")
    encoder = load_official_instruction_encoder(
        str(llava_dir), str(clip_dir), overlay, torch_dtype=torch_dtype or torch.float32, max_new_tokens=max_new_tokens
    )
    pipeline = InpaintByInstructionPipeline.from_pretrained(
        str(lgvi_i_dir), instruction_encoder=encoder, **({"dtype": torch_dtype} if torch_dtype else {})
    )
    unet_width = pipeline.unet.config.cross_attention_dim
    if unet_width != encoder.config.cross_attention_dim:
        raise ValueError(
            f"{overlay} transfer head outputs {encoder.config.cross_attention_dim} features but the UNet of "
            f"{lgvi_i_dir} attends to {unet_width}"
        )
    return pipeline


def build_tiny_lgvi_i_pipeline(seed: int = 0, device: Union[str, torch.device] = "cpu", max_new_tokens: int = 8,
                               weights: str = "random"):
    """The embedded smoke-test LGVI-I: the tiny inpainting pipeline with a tiny LLaVA instruction encoder.

    Its answers and frames are noise; it checks wiring, shapes and speed.

    Args:
        seed (`int`, defaults to 0): seed of the weights.
        device (`str` or `torch.device`, defaults to "cpu"): where the pipeline is moved.
        max_new_tokens (`int`, defaults to 8): the encoder's answer length limit.
        weights (`str`, defaults to "random"): "random" only (no LGVI-I is trained on the shapes world).
    """
    from ..tiny_weights import build_tiny

    return build_tiny(weights, seed, device, lambda seed, device: _build_random(seed, device, max_new_tokens))


def _build_random(seed: int, device, max_new_tokens: int):
    from .pipeline import InpaintByInstructionPipeline
    from .tiny import build_tiny_inpaint_pipeline

    base = build_tiny_inpaint_pipeline(seed=seed, weights="random")
    encoder = build_tiny_lgvi_instruction_encoder(
        seed=seed, cross_attention_dim=base.unet.config.cross_attention_dim, max_new_tokens=max_new_tokens
    )
    components = {**base.components, "instruction_encoder": encoder}
    return InpaintByInstructionPipeline(**components).to(device)


def save_tiny_lgvi_i_official_layout(path: Union[str, os.PathLike], seed: int = 0) -> pathlib.Path:
    """Write the tiny LGVI-I family as the three released folders: ``lgvi-i/`` (the tiny LGVI layout plus
    ``llava/llava_weights.pth``), ``llava-v1.5-7b/`` (original LLaVA keys, sentencepiece tokenizer) and
    ``clip-vit-large-patch14-336/``. ``load_lgvi_i_pipeline(..., max_new_tokens=8)`` on them gives the models of
    ``build_tiny_lgvi_i_pipeline(seed)``.

    Args:
        path: folder to create (files in it are overwritten).
        seed (`int`, defaults to 0): seed of the weights.
    """
    from transformers import CLIPVisionConfig

    from .tiny import save_tiny_lgvi_official_layout, tiny_rovi_unet_config

    root = pathlib.Path(path)
    save_tiny_lgvi_official_layout(root / "lgvi-i", seed=seed)
    encoder = build_tiny_lgvi_instruction_encoder(
        seed=seed, cross_attention_dim=tiny_rovi_unet_config()["cross_attention_dim"]
    )
    state = encoder.state_dict()
    llava_dir, clip_dir = root / "llava-v1.5-7b", root / "clip-vit-large-patch14-336"
    train_tiny_llama_tokenizer(llava_dir)
    text_config = dict(encoder.config.text_config)
    write_json(llava_dir / "config.json", {
        **text_config, "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava",
        "mm_hidden_size": encoder.config.vision_config["hidden_size"], "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": encoder.config.vision_feature_layer, "mm_vision_select_feature": "patch",
        "mm_vision_tower": "openai/clip-vit-large-patch14-336", "image_aspect_ratio": "pad",
        "mm_use_im_start_end": False, "mm_use_im_patch_token": False, "use_mm_proj": True,
    })
    llava_state, vision_state = {}, {}
    projector = {"mllm.model.multi_modal_projector.linear_1.": "model.mm_projector.0.",
                 "mllm.model.multi_modal_projector.linear_2.": "model.mm_projector.2."}
    for key, tensor in state.items():
        if key.startswith("mllm.model.language_model."):
            llava_state["model." + key[len("mllm.model.language_model."):]] = tensor
        elif key.startswith("mllm.lm_head."):
            llava_state[key[len("mllm."):]] = tensor
        elif key.startswith("mllm.model.vision_tower."):
            vision_state[key[len("mllm.model.vision_tower."):].removeprefix("vision_model.")] = tensor
        else:
            for ours, official in projector.items():
                if key.startswith(ours):
                    llava_state[official + key[len(ours):]] = tensor
    torch.save(llava_state, llava_dir / "pytorch_model.bin")
    # the released CLIP folder keeps the "vision_model." level in its keys
    clip_dir.mkdir(parents=True, exist_ok=True)
    CLIPVisionConfig(**encoder.config.vision_config).save_pretrained(clip_dir)
    torch.save({"vision_model." + key: tensor for key, tensor in vision_state.items()}, clip_dir / "pytorch_model.bin")
    overlay = {
        "language_embedding": {"weight": state["mllm.model.language_model.embed_tokens.weight"]},
        "vision_embedding": {official[len("model.mm_projector."):] + key[len(ours):]: tensor
                             for key, tensor in state.items() for ours, official in projector.items()
                             if key.startswith(ours)},
        "transfer_layer": {key[len("transfer_head."):]: tensor for key, tensor in state.items()
                           if key.startswith("transfer_head.")},
    }
    (root / "lgvi-i" / "llava").mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root / "lgvi-i" / "llava", suffix=".tmp", delete=False) as handle:
        torch.save(overlay, handle)
    os.replace(handle.name, root / "lgvi-i" / OVERLAY_PATH)
    return root
