"""Embedded smoke-test model: a deterministic tiny random-weight RepVideo (CogVideoX-2B) pipeline.

A tiny T5 encoder and tokenizer, a tiny CogVideoX 3D VAE and a 7-layer `CogVideoXRepVideoTransformer3DModel`
(random gates, so the aggregation window restart after layer 6 is exercised), with the official
`CogVideoXDPMScheduler` config. Every weight comes from a seeded `torch.Generator`; nothing is downloaded.
"""

import pathlib
import tempfile
from typing import Dict, Union

import torch

# the tiny VAE of the DaS smoke-test model and the seeded initialisation and T5 tokenizer of the Vchitect one,
# shared on purpose
from ..das.tiny import _VAE_CONFIG
from ..tiny_weights import check_seed, random_tensor, seed_state_dict
from ..vchitect.tiny import _write_t5_tokenizer

__all__ = [
    "TINY_REPVIDEO_PROMPT",
    "build_tiny_cogvideox_repvideo_pipeline",
    "save_tiny_cogvideox_repvideo_pipeline",
    "tiny_cogvideox_repvideo_transformer_config",
]

TINY_REPVIDEO_PROMPT = "a corgi running on a beach"
# frame size and length the tiny model is built for (its sin-cos table; other sizes work too)
TINY_HEIGHT, TINY_WIDTH, TINY_NUM_FRAMES = 32, 32, 9
_SEED_OFFSETS = {"text_encoder": 1, "vae": 2, "transformer": 3}


def tiny_cogvideox_repvideo_transformer_config() -> Dict[str, Union[int, bool]]:
    """Config of the tiny transformer: the CogVideoX-2B structure (sin-cos positions, no RoPE) at 32x32, 9 frames."""
    return {
        "num_attention_heads": 2,
        "attention_head_dim": 8,
        "in_channels": _VAE_CONFIG["latent_channels"],
        "out_channels": _VAE_CONFIG["latent_channels"],
        "time_embed_dim": 16,
        "text_embed_dim": 32,
        "num_layers": 7,
        "sample_width": TINY_WIDTH // 8,
        "sample_height": TINY_HEIGHT // 8,
        "sample_frames": TINY_NUM_FRAMES,
        "patch_size": 2,
        "max_text_seq_length": 16,
        "repvideo_aggregation": True,
        "repvideo_window_size": 6,
    }


def _draw(name: str, shape, generator: torch.Generator) -> torch.Tensor:
    """Gates uniform in 0.1..0.9 (trained-like, not the initial 0.5); everything else as the other tiny models."""
    if name.endswith("learnable_gating"):
        return 0.1 + 0.8 * torch.rand(shape, generator=generator)
    return random_tensor(name, shape, generator)


def _seeded(module: torch.nn.Module, seed: int, component: str) -> torch.nn.Module:
    return seed_state_dict(module, seed, _SEED_OFFSETS[component], draw=_draw)


def _build_components(seed: int, folder: pathlib.Path) -> dict:
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    from ...convert.repvideo_sat import SCHEDULER_CONFIG
    from ...models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

    vocab_size = _write_t5_tokenizer(folder / "tokenizer")
    config = tiny_cogvideox_repvideo_transformer_config()
    text_config = T5Config(
        vocab_size=vocab_size, d_model=config["text_embed_dim"], d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )
    scheduler_config = {key: value for key, value in SCHEDULER_CONFIG.items() if not key.startswith("_")}
    return dict(
        tokenizer=T5TokenizerFast.from_pretrained(folder / "tokenizer"),
        text_encoder=_seeded(T5EncoderModel(text_config), seed, "text_encoder"),
        vae=_seeded(AutoencoderKLCogVideoX(**_VAE_CONFIG), seed, "vae"),
        transformer=_seeded(CogVideoXRepVideoTransformer3DModel(**config), seed, "transformer"),
        scheduler=CogVideoXDPMScheduler(**scheduler_config),
    )


def save_tiny_cogvideox_repvideo_pipeline(path: Union[str, pathlib.Path], seed: int = 0) -> pathlib.Path:
    """Writes the tiny pipeline with `save_pretrained` (the layout the converter writes; about 1 MB, fp32).

    Args:
        path (`str` or `pathlib.Path`): folder to create (files in it are overwritten).
        seed (`int`, defaults to 0): seed of the weights.
    """
    from .pipeline import CogVideoXRepVideoPipeline

    check_seed(seed)
    root = pathlib.Path(path)
    with tempfile.TemporaryDirectory(prefix="vdp_tiny_repvideo_tok_") as scratch:
        pipeline = CogVideoXRepVideoPipeline(**_build_components(seed, pathlib.Path(scratch)))
    pipeline.save_pretrained(root)
    return root


def build_tiny_cogvideox_repvideo_pipeline(seed: int = 0, device: Union[str, torch.device] = "cpu",
                                           weights: str = "random"):
    """The embedded smoke-test model: a tiny random-weight `CogVideoXRepVideoPipeline` (32x32, 9 frames).

    Its outputs are noise; it checks wiring, shapes and speed. No model of this family is trained on the shapes world,
    so ``weights`` is "random" only (the argument the other ``build_tiny_*`` builders share).

    Args:
        seed (`int`, defaults to 0): seed of the weights.
        device (`str` or `torch.device`, defaults to "cpu"): where the pipeline is moved.
        weights (`str`, defaults to "random"): "random" only.
    """
    from ..tiny_weights import build_tiny

    return build_tiny(weights, seed, device, _build_random)


def _build_random(seed: int, device):
    from .pipeline import CogVideoXRepVideoPipeline

    with tempfile.TemporaryDirectory(prefix="vdp_tiny_repvideo_tok_") as scratch:
        pipeline = CogVideoXRepVideoPipeline(**_build_components(seed, pathlib.Path(scratch)))
    return pipeline.to(device)
