"""Embedded smoke-test model: a deterministic tiny random-weight LGVI family in the released `jianzongwu/lgvi` layout.

``save_tiny_lgvi_official_layout`` writes a folder shaped like the released repository: ``model_index.json`` tagged
``StableDiffusionPipeline`` with the UNet entry naming the official ``RoviModel``, ``feature_extractor/``, a
``DDIMScheduler`` with Stable Diffusion 1.5's schedule, a CLIP tokenizer and text encoder, an ``AutoencoderKL``
(scaling factor 0.18215, 8x) and the UNet with the official config name ``RoviModel`` (in_channels 8, temporal
attention). Every weight comes from a seeded ``torch.Generator``; nothing is downloaded.
"""

import json
import pathlib
import tempfile
from typing import Dict, Optional, Union

import torch

from ..tiny_weights import component_seeder, start_layout, write_json

# the tiny CLIP tokenizer and the seeded initialisation of the Vchitect smoke-test model, shared on purpose
from ..vchitect.tiny import _write_clip_tokenizer

__all__ = [
    "TINY_LGVI_PROMPT", "build_tiny_inpaint_pipeline", "save_tiny_lgvi_official_layout", "tiny_rovi_unet_config",
]

TINY_LGVI_PROMPT = "remove the red panda"
# frame size the tiny model is exercised at (any multiple of 8 works)
TINY_HEIGHT, TINY_WIDTH, TINY_NUM_FRAMES = 32, 48, 3
_TEXT_WIDTH = 32
_PAD_TOKEN = "<|endoftext|>"

_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 8, 8, 8),
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=4,
    sample_size=64,
    scaling_factor=0.18215,
)

# Stable Diffusion 1.5's noise schedule, as a DDIM scheduler
_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}

# the released model_index.json is Stable Diffusion's; its unet entry names the official class
_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["rovi.models.unet", "RoviModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
_FEATURE_EXTRACTOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
_SEED_OFFSETS = {"text_encoder": 1, "vae": 2, "unet": 3}


def tiny_rovi_unet_config() -> Dict[str, object]:
    """Config of the tiny ROVI UNet: two levels (32, 64 channels), 8 heads, temporal attention, 8 input channels."""
    return dict(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=_TEXT_WIDTH,
        attention_head_dim=8,
        temp_attn=True,
    )


_seeded = component_seeder(_SEED_OFFSETS)


def save_tiny_lgvi_official_layout(path: Union[str, pathlib.Path], seed: int = 0) -> pathlib.Path:
    """Write the tiny LGVI family in the released ``jianzongwu/lgvi`` folder layout (about 3.5 MB, fp32).

    Args:
        path (`str` or `pathlib.Path`): folder to create (files in it are overwritten).
        seed (`int`, defaults to 0): seed of the weights.
    """
    import diffusers
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from ...models.rovi_unet import OFFICIAL_CLASS_NAME, RoviUNet3DConditionModel

    root = start_layout(path, seed, "0.21.4", {"model_index.json": _MODEL_INDEX,
                                               "scheduler/scheduler_config.json": _SCHEDULER_CONFIG,
                                               "feature_extractor/preprocessor_config.json": _FEATURE_EXTRACTOR})
    vocab = _write_clip_tokenizer(root / "tokenizer", _PAD_TOKEN)
    text_config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=_TEXT_WIDTH, intermediate_size=2 * _TEXT_WIDTH, projection_dim=_TEXT_WIDTH,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab[_PAD_TOKEN],
        attention_dropout=0.0, dropout=0.0,
    )
    _seeded(CLIPTextModel(text_config), seed, "text_encoder").save_pretrained(root / "text_encoder")
    _seeded(AutoencoderKL(**_VAE_CONFIG), seed, "vae").save_pretrained(root / "vae")
    _seeded(RoviUNet3DConditionModel(**tiny_rovi_unet_config()), seed, "unet").save_pretrained(root / "unet")
    # the released config.json names the official class
    config_path = root / "unet" / "config.json"
    saved = json.loads(config_path.read_text())
    saved.update(_class_name=OFFICIAL_CLASS_NAME, _diffusers_version=diffusers.__version__)
    write_json(config_path, saved)
    return root


def build_tiny_inpaint_pipeline(seed: Optional[int] = None, device: Union[str, torch.device] = "cpu",
                                weights: str = "trained"):
    """A tiny ``InpaintByInstructionPipeline``, with no download.

    ``weights="trained"`` (the default): the embedded LGVI trained on the shapes world
    (:func:`load_embedded_lgvi_pipeline`: 32x32, 8 frames; it removes the shape its instruction names and keeps the
    others). ``weights="random"``: random weights from ``seed`` in the tiny official layout
    (``save_tiny_lgvi_official_layout``), loaded with ``InpaintByInstructionPipeline.from_pretrained`` like the
    released weights; its outputs are noise, for tests of wiring, shapes and exact layouts (any frame size that is a
    multiple of 8, any number of frames).

    Args:
        seed (`int`, *optional*): seed of the random weights (default 0); refused with ``weights="trained"``.
        device (`str` or `torch.device`, defaults to "cpu"): where the pipeline is moved.
        weights (`str`, defaults to "trained"): "trained" or "random".
    """
    from ..tiny_weights import build_tiny
    from .embedded import load_embedded_lgvi_pipeline

    return build_tiny(weights, seed, device, _build_random, load_embedded_lgvi_pipeline)


def _build_random(seed: int, device):
    from .pipeline import InpaintByInstructionPipeline

    with tempfile.TemporaryDirectory(prefix="vdp_tiny_lgvi_") as folder:
        save_tiny_lgvi_official_layout(folder, seed=seed)
        pipeline = InpaintByInstructionPipeline.from_pretrained(folder)
    return pipeline.to(device)
