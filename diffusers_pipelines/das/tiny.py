"""Embedded smoke-test model: a deterministic tiny random-weight DaS family in the released `EXCAI/Diffusion-As-Shader` layout.

``save_tiny_das_layout`` writes a folder shaped like the released repository: ``model_index.json`` naming the
official ``CogVideoXImageToVideoPipelineTracking`` with the transformer from the official ``models.cogvideox_tracking``
module and a ``CogVideoXDDIMScheduler``, a T5 tokenizer and encoder, ``AutoencoderKLCogVideoX`` and the transformer
with the official config name ``CogVideoXTransformer3DModelTracking``. Every model is a few kilobytes and every
weight comes from a seeded ``torch.Generator``; nothing is downloaded. The combine linears are random (not zero)
so that the tracking branch changes the output.
"""

import json
import pathlib
import tempfile
from typing import Dict, Optional, Union

import torch

from ..tiny_weights import component_seeder, start_layout, write_json

# the tiny T5 tokenizer and the seeded initialisation of the Vchitect smoke-test model, shared on purpose
from ..vchitect.tiny import _write_t5_tokenizer

__all__ = ["TINY_DAS_PROMPT", "build_tiny_das_pipeline", "save_tiny_das_layout", "tiny_das_transformer_config"]

TINY_DAS_PROMPT = "a red panda rolling down a hill"
# frame size and length the tiny model generates (its learned positional embeddings fix them)
TINY_HEIGHT, TINY_WIDTH, TINY_NUM_FRAMES = 32, 32, 9

_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("CogVideoXDownBlock3D",) * 4,
    up_block_types=("CogVideoXUpBlock3D",) * 4,
    block_out_channels=(8, 8, 8, 8),
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=2,
    temporal_compression_ratio=4,
    scaling_factor=0.7,
)

# CogVideoX-5B-I2V's scheduler_config.json (the released DaS folder carries the same)
_SCHEDULER_CONFIG = {
    "_class_name": "CogVideoXDDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0,
    "set_alpha_to_one": True,
    "snr_shift_scale": 1.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
    "trained_betas": None,
}

# the released model_index.json (the transformer entry names the official code's own module)
_MODEL_INDEX = {
    "_class_name": "CogVideoXImageToVideoPipelineTracking",
    "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "transformer": ["models.cogvideox_tracking", "CogVideoXTransformer3DModelTracking"],
    "vae": ["diffusers", "AutoencoderKLCogVideoX"],
}
_SEED_OFFSETS = {"text_encoder": 1, "vae": 2, "transformer": 3}


def tiny_das_transformer_config() -> Dict[str, Union[int, bool]]:
    """Config of the tiny DaS transformer: the released structure (learned positions + RoPE) at 32x32, 9 frames."""
    return {
        "num_tracking_blocks": 1,
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "in_channels": 2 * _VAE_CONFIG["latent_channels"],
        "out_channels": _VAE_CONFIG["latent_channels"],
        "time_embed_dim": 16,
        "text_embed_dim": 32,
        "num_layers": 2,
        "sample_width": TINY_WIDTH // 8,
        "sample_height": TINY_HEIGHT // 8,
        "sample_frames": TINY_NUM_FRAMES,
        "patch_size": 2,
        "max_text_seq_length": 16,
        "use_rotary_positional_embeddings": True,
        "use_learned_positional_embeddings": True,
    }


_seeded = component_seeder(_SEED_OFFSETS)


def save_tiny_das_layout(path: Union[str, pathlib.Path], seed: int = 0) -> pathlib.Path:
    """Write the tiny DaS family in the released ``EXCAI/Diffusion-As-Shader`` folder layout (about 1 MB, fp32).

    Args:
        path (`str` or `pathlib.Path`): folder to create (files in it are overwritten).
        seed (`int`, defaults to 0): seed of the weights.
    """
    import diffusers
    from diffusers import AutoencoderKLCogVideoX
    from transformers import T5Config, T5EncoderModel

    from ...models.das_transformer import DaSTransformer3DModel

    root = start_layout(path, seed, "0.32.2", {"model_index.json": _MODEL_INDEX,
                                               "scheduler/scheduler_config.json": _SCHEDULER_CONFIG})
    vocab_size = _write_t5_tokenizer(root / "tokenizer")

    config = tiny_das_transformer_config()
    text_config = T5Config(
        vocab_size=vocab_size, d_model=config["text_embed_dim"], d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )
    _seeded(T5EncoderModel(text_config), seed, "text_encoder").save_pretrained(root / "text_encoder")
    _seeded(AutoencoderKLCogVideoX(**_VAE_CONFIG), seed, "vae").save_pretrained(root / "vae")
    transformer = _seeded(DaSTransformer3DModel(**config), seed, "transformer")
    transformer.save_pretrained(root / "transformer")
    # the released config.json names the official class
    config_path = root / "transformer" / "config.json"
    saved = json.loads(config_path.read_text())
    saved.update(_class_name="CogVideoXTransformer3DModelTracking", _diffusers_version=diffusers.__version__)
    write_json(config_path, saved)
    return root


def build_tiny_das_pipeline(seed: Optional[int] = None, device: Union[str, torch.device] = "cpu",
                            weights: str = "trained"):
    """A tiny ``DaSPipeline``, with no download.

    ``weights="trained"`` (the default): the embedded model trained on the shapes world
    (:func:`load_embedded_das_pipeline`: 32x32, 5 frames; it moves the first frame's object along the tracking video
    and keeps its colour). ``weights="random"``: random weights from ``seed`` in the tiny layout
    (``save_tiny_das_layout``: 32x32, 9 frames), loaded with ``DaSPipeline.from_pretrained`` like the released
    weights; its outputs are noise, for tests of wiring, shapes and exact layouts.

    Args:
        seed (`int`, *optional*): seed of the random weights (default 0); refused with ``weights="trained"``.
        device (`str` or `torch.device`, defaults to "cpu"): where the pipeline is moved.
        weights (`str`, defaults to "trained"): "trained" or "random".
    """
    from ..tiny_weights import build_tiny
    from .embedded import load_embedded_das_pipeline

    return build_tiny(weights, seed, device, _build_random, load_embedded_das_pipeline)


def _build_random(seed: int, device):
    from .pipeline import DaSPipeline

    with tempfile.TemporaryDirectory(prefix="vdp_tiny_das_") as folder:
        save_tiny_das_layout(folder, seed=seed)
        pipeline = DaSPipeline.from_pretrained(folder)
    return pipeline.to(device)
