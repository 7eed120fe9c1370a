"""Tiny random-weight diffusers video pipelines (AnimateDiff, CogVideoX), built in memory without downloads.

The tokenizers and text encoders come from the pack's embedded smoke-test model builders (byte-level CLIP
BPE and a small Unigram T5), written to a temporary folder and loaded with the stock transformers classes.
Weights are drawn under a fixed seed without touching the caller's global RNG state.
"""

import pathlib
import tempfile

import torch

from video_diffusion_pack.diffusers_pipelines.vchitect import tiny

CLIP_HIDDEN_SIZE = 8
T5_WIDTH = 32
COGVIDEOX_TEXT_TOKENS = 16


def _clip_text_model_and_tokenizer(directory: pathlib.Path, seed: int):
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as transformers_logging

    sizes = dict(hidden_size=CLIP_HIDDEN_SIZE, projection_dim=CLIP_HIDDEN_SIZE, num_hidden_layers=1,
                 num_attention_heads=2, hidden_act="quick_gelu")
    vocab = tiny._write_clip_tokenizer(directory / "tokenizer", pad_token="<|endoftext|>")
    tiny._save_clip_text_encoder(directory / "text_encoder", sizes, vocab, "<|endoftext|>", seed, "text_encoder")
    # AnimateDiff reads last_hidden_state: load the CLIPTextModel part of the saved model (its projection is unused,
    # which transformers reports at warning level)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        text_encoder = CLIPTextModel.from_pretrained(directory / "text_encoder").eval()
    finally:
        transformers_logging.set_verbosity(verbosity)
    return text_encoder, CLIPTokenizer.from_pretrained(directory / "tokenizer")


def _t5_text_model_and_tokenizer(directory: pathlib.Path, seed: int):
    from transformers import T5EncoderModel, T5TokenizerFast

    vocab_size = tiny._write_t5_tokenizer(directory / "tokenizer")
    tiny._save_t5_text_encoder(directory / "text_encoder", vocab_size, T5_WIDTH, seed)
    return T5EncoderModel.from_pretrained(directory / "text_encoder").eval(), T5TokenizerFast.from_pretrained(directory / "tokenizer")


def build_tiny_animatediff_pipeline(seed: int = 0):
    """AnimateDiffPipeline with a 2-level UNet + motion adapter, a 2x VAE and DDIM (AnimateDiff's linear betas)."""
    from diffusers import AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel

    with tempfile.TemporaryDirectory(prefix="vdp_tiny_animatediff_") as directory, torch.random.fork_rng():
        text_encoder, tokenizer = _clip_text_model_and_tokenizer(pathlib.Path(directory), seed)
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=CLIP_HIDDEN_SIZE, norm_num_groups=2, attention_head_dim=4,
        )
        motion_adapter = MotionAdapter(
            block_out_channels=(8, 16), motion_layers_per_block=1, motion_norm_num_groups=2,
            motion_num_attention_heads=2, motion_max_seq_length=32,
        )
        vae = AutoencoderKL(
            block_out_channels=(8, 8), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False, steps_offset=1)
    pipe = AnimateDiffPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, motion_adapter=motion_adapter,
        scheduler=scheduler, feature_extractor=None, image_encoder=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_cogvideox_pipeline(seed: int = 0):
    """CogVideoXPipeline with a one-layer transformer, an 8x/4x VAE and CogVideoX-2b's zero-terminal-SNR DDIM."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    with tempfile.TemporaryDirectory(prefix="vdp_tiny_cogvideox_") as directory, torch.random.fork_rng():
        text_encoder, tokenizer = _t5_text_model_and_tokenizer(pathlib.Path(directory), seed)
        torch.manual_seed(seed)
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=8,
            text_embed_dim=T5_WIDTH, num_layers=1, sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
            temporal_compression_ratio=4, max_text_seq_length=COGVIDEOX_TEXT_TOKENS,
        )
        vae = AutoencoderKLCogVideoX(
            in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
            layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
        )
    # the scheduler config of THUDM/CogVideoX-2b
    scheduler = CogVideoXDDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True, snr_shift_scale=3.0,
        steps_offset=0, timestep_spacing="trailing",
    )
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
