"""The embedded DaS model: a small ``DaSPipeline`` (CogVideoX image-to-video base + the tracking branch) trained on the
shapes world, shipped inside the package (``embedded_models/das``), the default of ``vdp das`` without ``--model``,
of the tiny ComfyUI loader and of :func:`load_embedded_das_pipeline`.

It keeps the released ``EXCAI/Diffusion-As-Shader`` layout (``model_index.json`` naming the official pipeline and
transformer classes, ``AutoencoderKLCogVideoX``, a T5 encoder, ``CogVideoXDDIMScheduler``) at 32x32, 5 frames:

- VAE: ``AutoencoderKLCogVideoX`` at its smallest, 4x spatial compression (blocks 16/16/32, 8 latent channels) and
  no temporal compression; trained first as an autoencoder on the world's frames
  (``python -m video_diffusion_pack.training.autoencoder --family cogvideox``), frame by frame: each causal
  convolution keeps only the tap of the current frame (the group norms' statistics still span a video's frames).
  Then frozen.
- text encoder: a tiny T5 with random, frozen weights whose vocabulary holds the shapes grammar's words whole.
- transformer: ``DaSTransformer3DModel`` (4 blocks, 2 of them copied as the tracking branch), trained from scratch
  with the base (``vdp train --model das --train-base``): a random base cannot draw anything.

``save_embedded_das_start`` writes the folder the training starts from; ``export_embedded_das`` stores a trained run
in float16.
"""

import pathlib
from typing import Union

import torch

__all__ = ["EMBEDDED_DAS_TRANSFORMER_CONFIG", "EMBEDDED_DAS_VAE_CONFIG", "EMBEDDED_HEIGHT", "EMBEDDED_NUM_FRAMES",
           "EMBEDDED_WIDTH", "collapse_time_taps", "export_embedded_das", "load_embedded_das_pipeline",
           "save_embedded_das_start"]

EMBEDDED_HEIGHT, EMBEDDED_WIDTH, EMBEDDED_NUM_FRAMES = 32, 32, 5
# caption tokens (a one-object caption of the world takes at most 14 with its end token)
EMBEDDED_TEXT_TOKENS = 16

# CogVideoX's VAE family at 4x spatial compression and none in time: 32x32 frames -> 8x8x8 latents a frame
EMBEDDED_DAS_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("CogVideoXDownBlock3D",) * 3,
    up_block_types=("CogVideoXUpBlock3D",) * 3,
    block_out_channels=(16, 16, 32),
    latent_channels=8,
    layers_per_block=1,
    norm_num_groups=4,
    temporal_compression_ratio=1,
    sample_height=EMBEDDED_HEIGHT,
    sample_width=EMBEDDED_WIDTH,
    scaling_factor=1.0,
)

EMBEDDED_DAS_TRANSFORMER_CONFIG = {
    "num_tracking_blocks": 2,
    "num_attention_heads": 4,
    "attention_head_dim": 16,
    "in_channels": 2 * EMBEDDED_DAS_VAE_CONFIG["latent_channels"],
    "out_channels": EMBEDDED_DAS_VAE_CONFIG["latent_channels"],
    "time_embed_dim": 64,
    "text_embed_dim": 32,
    "num_layers": 4,
    "sample_width": EMBEDDED_WIDTH // 4,
    "sample_height": EMBEDDED_HEIGHT // 4,
    "sample_frames": EMBEDDED_NUM_FRAMES,
    "temporal_compression_ratio": 1,
    "patch_size": 2,
    "max_text_seq_length": EMBEDDED_TEXT_TOKENS,
    "use_rotary_positional_embeddings": True,
    "use_learned_positional_embeddings": True,
}


def collapse_time_taps(vae) -> None:
    """Moves the weights of every causal 3-D convolution of ``vae`` onto its current-frame tap (the sum of its time
    taps, the others zeroed): on a single frame (whose history is that frame repeated) the convolution computes the
    same, and on a video no convolution mixes frames (the group norms' statistics still span them)."""
    from diffusers.models.autoencoders.autoencoder_kl_cogvideox import CogVideoXCausalConv3d

    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, CogVideoXCausalConv3d) and module.conv.weight.shape[2] > 1:
                weight = module.conv.weight
                weight[:, :, -1] = weight.sum(dim=2)
                weight[:, :, :-1] = 0.0


# the class name the released transformer config.json gives
OFFICIAL_TRANSFORMER_CLASS = "CogVideoXTransformer3DModelTracking"


def save_embedded_das_start(path: Union[str, pathlib.Path], seed: int = 0, vae=None,
                            transformer_config: dict = None) -> pathlib.Path:
    """Writes the ``DaSPipeline`` folder the embedded model's training starts from (see the module docstring).

    Args:
        path: folder to create.
        seed: seed of the random text encoder and of the transformer's initialisation.
        vae: a trained ``AutoencoderKLCogVideoX`` (default: a random one of ``EMBEDDED_DAS_VAE_CONFIG``).
        transformer_config: overrides of ``EMBEDDED_DAS_TRANSFORMER_CONFIG``.
    """
    import diffusers
    from diffusers import AutoencoderKLCogVideoX
    from transformers import T5Config, T5EncoderModel

    from ...models.das_transformer import DaSTransformer3DModel
    from ..tiny_weights import edit_config, start_layout
    from ..vchitect.embedded import EMBEDDED_WORDS
    from ..vchitect.tiny import _write_t5_tokenizer
    from . import tiny

    root = start_layout(path, seed, diffusers.__version__,
                        {"model_index.json": tiny._MODEL_INDEX,
                         "scheduler/scheduler_config.json": tiny._SCHEDULER_CONFIG})
    config = {**EMBEDDED_DAS_TRANSFORMER_CONFIG, **(transformer_config or {})}
    vocab_size = _write_t5_tokenizer(root / "tokenizer", EMBEDDED_WORDS, EMBEDDED_TEXT_TOKENS)
    text_config = T5Config(
        vocab_size=vocab_size, d_model=config["text_embed_dim"], d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    T5EncoderModel(text_config).save_pretrained(root / "text_encoder", safe_serialization=True)
    if vae is None:
        vae = AutoencoderKLCogVideoX(**EMBEDDED_DAS_VAE_CONFIG)
        collapse_time_taps(vae)
    vae.save_pretrained(root / "vae", safe_serialization=True)
    torch.manual_seed(seed)
    DaSTransformer3DModel(**config).save_pretrained(root / "transformer", safe_serialization=True)
    # the released config.json names the official class
    edit_config(root / "transformer" / "config.json", _class_name=OFFICIAL_TRANSFORMER_CLASS)
    return root


def _embedded_folder() -> pathlib.Path:
    from ..vchitect.embedded import embedded_folder

    return embedded_folder("das")


def load_embedded_das_pipeline(device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32):
    """The trained embedded DaS model (fp16 files, loaded in ``dtype``), from the package's ``embedded_models``:
    32x32, 5 frames, one shape of the shapes world following its tracking video."""
    from ..tiny_weights import load_embedded
    from .pipeline import DaSPipeline

    return load_embedded(DaSPipeline, _embedded_folder(), "DaS", device, dtype)


def export_embedded_das(run_folder: Union[str, pathlib.Path], destination: Union[str, pathlib.Path],
                        dtype: torch.dtype = torch.float16) -> pathlib.Path:
    """Writes the pipeline folder ``vdp train`` exported into ``run_folder`` to ``destination`` with its weights in
    ``dtype`` (the shipped files; :func:`load_embedded_das_pipeline` loads them back in float32)."""
    import diffusers

    from ..tiny_weights import edit_config, save_embedded, write_json
    from . import tiny
    from .pipeline import DaSPipeline

    destination = save_embedded(DaSPipeline.from_pretrained(str(run_folder)), destination, dtype)
    # the released model_index.json and transformer config name the official classes
    write_json(destination / "model_index.json", {**tiny._MODEL_INDEX, "_diffusers_version": diffusers.__version__})
    edit_config(destination / "transformer" / "config.json", _class_name=OFFICIAL_TRANSFORMER_CLASS)
    return destination
