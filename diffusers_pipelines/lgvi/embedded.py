"""The embedded LGVI model: a small ``InpaintByInstructionPipeline`` trained on the shapes world's removal pairs,
shipped inside the package (``embedded_models/lgvi``), the default of ``vdp inpaint`` and of the tiny ComfyUI loader.

The folder keeps the released ``jianzongwu/lgvi`` layout (``model_index.json`` tagged ``StableDiffusionPipeline``
with the UNet entry naming ``RoviModel``, ``feature_extractor/``, a DDIM scheduler on Stable Diffusion 1.5's
schedule, a CLIP tokenizer and text encoder, an ``AutoencoderKL`` and the ROVI UNet with 8 input channels and
temporal attention), at a small size.

``save_embedded_start`` writes the folder the training starts from: a CLIP tokenizer whose vocabulary holds the
shapes grammar's words as whole tokens, a random frozen CLIP text encoder, a 4x-downsampling ``AutoencoderKL`` with
4 latent channels (trained first as an autoencoder on the world's frames, then frozen) and a freshly initialised
ROVI UNet. ``load_embedded_lgvi_pipeline`` loads the trained folder.
"""

import pathlib
from typing import Union

import torch

from ..vchitect.embedded import EMBEDDED_WORDS as _SHAPES_WORDS
from ..vchitect.embedded import SMALL_VAE_BLOCKS

__all__ = ["EMBEDDED_TEXT_TOKENS", "EMBEDDED_UNET_CONFIG", "EMBEDDED_VAE_CONFIG", "EMBEDDED_WORDS",
           "export_embedded", "load_embedded_lgvi_pipeline", "save_embedded_start"]

# the shapes grammar's words (the text-to-video model's) and the instruction verb
EMBEDDED_WORDS = ("remove",) + _SHAPES_WORDS

# tokens of the CLIP tokenizer: "remove the yellow triangle" takes 6 with the start and end tokens
EMBEDDED_TEXT_TOKENS = 16

# Stable Diffusion's VAE family (4 latent channels, quant convs, mid-block attention) at 4x spatial compression:
# 32x32 frames -> 8x8x4 latents
EMBEDDED_VAE_CONFIG = dict(SMALL_VAE_BLOCKS, latent_channels=4, sample_size=32, scaling_factor=1.0)

# the ROVI UNet at two levels (8x8 and 4x4 latents; 0.47 M parameters), InstructPix2Pix input (8 channels), temporal attention
EMBEDDED_UNET_CONFIG = dict(
    sample_size=8,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
    up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    block_out_channels=(24, 48),
    layers_per_block=1,
    norm_num_groups=8,
    cross_attention_dim=32,
    attention_head_dim=8,
    temp_attn=True,
)

# the released scheduler (DDIM on Stable Diffusion 1.5's schedule), predicting the velocity
EMBEDDED_SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}


def embedded_folder() -> pathlib.Path:
    """The shipped folder of the embedded LGVI model (``embedded_models/lgvi`` in the package)."""
    from ..vchitect.embedded import embedded_folder as folder_of

    return folder_of("lgvi")


def save_embedded_start(path: Union[str, pathlib.Path], seed: int = 0, vae=None,
                        unet_config: dict = None) -> pathlib.Path:
    """Writes the pipeline folder the embedded model's training starts from (see the module docstring).

    Args:
        path: folder to create.
        seed: seed of the random text encoder and of the UNet's initialisation.
        vae: a trained ``AutoencoderKL`` (default: a random one of ``EMBEDDED_VAE_CONFIG``).
        unet_config: overrides of ``EMBEDDED_UNET_CONFIG``.
    """
    import diffusers
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from ...models.rovi_unet import OFFICIAL_CLASS_NAME, RoviUNet3DConditionModel
    from ..tiny_weights import edit_config, start_layout
    from ..vchitect.embedded import _word_merges
    from . import tiny

    root = start_layout(path, seed, diffusers.__version__,
                        {"model_index.json": tiny._MODEL_INDEX,
                         "scheduler/scheduler_config.json": EMBEDDED_SCHEDULER_CONFIG,
                         "feature_extractor/preprocessor_config.json": tiny._FEATURE_EXTRACTOR})
    config = {**EMBEDDED_UNET_CONFIG, **(unet_config or {})}
    vocab = tiny._write_clip_tokenizer(root / "tokenizer", tiny._PAD_TOKEN, _word_merges(EMBEDDED_WORDS),
                                       EMBEDDED_TEXT_TOKENS)
    width = config["cross_attention_dim"]
    text_config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width, projection_dim=width,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=EMBEDDED_TEXT_TOKENS,
        hidden_act="quick_gelu", bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab[tiny._PAD_TOKEN], attention_dropout=0.0, dropout=0.0,
    )
    tiny._seeded(CLIPTextModel(text_config), seed, "text_encoder").save_pretrained(root / "text_encoder")
    if vae is None:
        torch.manual_seed(seed)
        vae = AutoencoderKL(**EMBEDDED_VAE_CONFIG)
    vae.save_pretrained(root / "vae", safe_serialization=True)
    torch.manual_seed(seed)
    RoviUNet3DConditionModel(**config).save_pretrained(root / "unet", safe_serialization=True)
    # the released config.json names the official class
    edit_config(root / "unet" / "config.json", _class_name=OFFICIAL_CLASS_NAME)
    return root


def load_embedded_lgvi_pipeline(device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32):
    """The trained embedded LGVI (fp16 files, loaded in ``dtype``), from the package's ``embedded_models``."""
    from ..tiny_weights import load_embedded
    from .pipeline import InpaintByInstructionPipeline

    return load_embedded(InpaintByInstructionPipeline, embedded_folder(), "LGVI", device, dtype)


def export_embedded(run_folder: Union[str, pathlib.Path], destination: Union[str, pathlib.Path],
                    dtype: torch.dtype = torch.float16) -> pathlib.Path:
    """Writes the pipeline folder ``vdp train`` exported into ``run_folder`` to ``destination`` with its weights in
    ``dtype`` (the shipped files; :func:`load_embedded_lgvi_pipeline` loads them back in float32), the UNet's config
    naming the official class as the released folder does."""
    import diffusers

    from ...models.rovi_unet import OFFICIAL_CLASS_NAME
    from ..tiny_weights import edit_config, save_embedded, write_json
    from . import tiny
    from .pipeline import InpaintByInstructionPipeline

    destination = save_embedded(InpaintByInstructionPipeline.from_pretrained(str(run_folder)), destination, dtype)
    # the released layout: Stable Diffusion's model_index.json naming the official UNet class, a feature extractor
    write_json(destination / "model_index.json", {**tiny._MODEL_INDEX, "_diffusers_version": diffusers.__version__})
    write_json(destination / "feature_extractor" / "preprocessor_config.json", tiny._FEATURE_EXTRACTOR)
    edit_config(destination / "unet" / "config.json", _class_name=OFFICIAL_CLASS_NAME)
    return destination
