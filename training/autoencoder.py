"""Trains an ``AutoencoderKL`` as an autoencoder on the frames of a video folder (the first stage of the embedded
models: their VAE is trained on the shapes world's frames, then frozen while the denoiser trains with ``vdp train``).

``python -m video_diffusion_pack.training.autoencoder --data DIR --output DIR [--steps N] [--batch-size B]``: reads
``metadata.jsonl`` (``file_name`` column) of DIR, decodes every frame, trains it as a deterministic autoencoder
(the posterior mean decoded, mean squared error, on random crops), fixes the posterior's variance near zero, sets ``shift_factor`` and ``scaling_factor`` of the VAE's config to
the mean and inverse standard deviation of the posterior means (SD3's convention: ``(z - shift) * scale`` has unit
variance; ``--family lgvi`` trains the embedded LGVI's VAE (Stable Diffusion's layout: 4 latent channels, quant
convs), whose pipeline scales latents without a shift, so only ``scaling_factor`` is set, to the inverse root mean
square of the posterior means; ``--family cogvideox`` the embedded DaS's ``AutoencoderKLCogVideoX`` frame by
frame, ``scaling_factor`` only, 1 / std, as CogVideoX's pipelines use) and saves the VAE with ``save_pretrained``.
"""

import argparse
import json
import math
import time
from pathlib import Path


def read_frames(data: Path, column: str = "file_name", limit: int = 0):
    """Every frame of the videos named in ``data/metadata.jsonl`` as a uint8 array [N, H, W, 3]."""
    import numpy as np

    from ..video_io import read_video

    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines() if line.strip()]
    if limit:
        rows = rows[:limit]
    return np.concatenate([read_video(data / row[column]).frames for row in rows])


def train_autoencoder(vae, frames, *, steps: int, batch_size: int = 32, learning_rate: float = 1e-3,
                      crop: int = 24, seed: int = 0, decoder_only: bool = False, log=print):
    """Trains ``vae`` in place on ``frames`` [N, H, W, 3] uint8 as a deterministic autoencoder (the posterior mean
    decoded, mean squared error) on random ``crop`` x ``crop`` crops (aligned to the latent grid; the VAE is
    convolutional, so it then runs on whole frames); returns the final reconstruction loss. Afterwards
    :func:`make_deterministic` fixes the posterior's variance near zero."""
    import torch

    video_vae = vae.__class__.__name__ == "AutoencoderKLCogVideoX"
    if video_vae:  # frame by frame: each frame is a one-frame video, the causal convolutions keep their current tap
        from ..diffusers_pipelines.das.embedded import collapse_time_taps

        collapse_time_taps(vae)
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    height, width = pixels.shape[2:]
    crop = min(crop, height, width)
    parameters = list(vae.decoder.parameters()) if decoder_only else list(vae.parameters())
    vae.requires_grad_(False)
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps)))
    vae.train()
    began, recent, final = time.time(), [], float("nan")
    for step in range(steps):
        index = torch.randint(0, len(pixels), (batch_size,), generator=generator)
        top = int(torch.randint(0, (height - crop) // factor + 1, (1,), generator=generator)) * factor
        left = int(torch.randint(0, (width - crop) // factor + 1, (1,), generator=generator)) * factor
        batch = pixels[index, :, top:top + crop, left:left + crop].float() / 127.5 - 1.0
        if video_vae:
            batch = batch[:, :, None]
        with torch.set_grad_enabled(not decoder_only):
            latents = vae.encode(batch).latent_dist.mean
        reconstruction = vae.decode(latents).sample
        loss = torch.nn.functional.mse_loss(reconstruction, batch)
        if decoder_only:  # L1 on top of the squared error sharpens the edges the squared error leaves soft
            loss = loss + torch.nn.functional.l1_loss(reconstruction, batch)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        schedule.step()
        if video_vae:
            collapse_time_taps(vae)
        recent.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == steps:
            final = sum(recent) / len(recent)
            log(json.dumps({"step": step + 1, "mse": final, "seconds": time.time() - began}), flush=True)
            recent = []
    vae.eval()
    return final


def make_deterministic(vae, log_variance: float = -30.0) -> None:
    """Sets the encoder's log-variance outputs to a constant ``log_variance`` (std about 3e-7 at -30), so that a
    posterior sample is its mean: the latents the denoiser trains on are those the autoencoder was trained on."""
    import torch

    channels = vae.config.latent_channels
    # the posterior's moments are the output of quant_conv where the VAE has one (Stable Diffusion's layout), else of
    # the encoder's last convolution (CogVideoX wraps it in a causal convolution)
    if getattr(vae, "quant_conv", None) is not None:
        last = vae.quant_conv
    else:
        last = getattr(vae.encoder.conv_out, "conv", vae.encoder.conv_out)
    with torch.no_grad():
        last.weight[channels:] = 0.0
        last.bias[channels:] = log_variance


def set_latent_statistics(vae, frames, count: int = 512, shift: bool = True) -> None:
    """``shift_factor`` / ``scaling_factor``: mean and 1 / std of the posterior means of ``count`` frames; with
    ``shift=False`` only ``scaling_factor``, 1 / root mean square (for pipelines that scale without a shift)."""
    import torch

    pixels = torch.from_numpy(frames[:: max(1, len(frames) // count)][:count]).permute(0, 3, 1, 2).float()
    video_vae = vae.__class__.__name__ == "AutoencoderKLCogVideoX"
    with torch.no_grad():
        means = vae.encode(pixels[:, :, None] / 127.5 - 1.0 if video_vae else pixels / 127.5 - 1.0).latent_dist.mean
    if video_vae:  # CogVideoX's pipelines scale the latents only
        vae.register_to_config(scaling_factor=float(1.0 / means.std()))
    elif shift:
        vae.register_to_config(shift_factor=float(means.mean()), scaling_factor=float(1.0 / means.std()))
    else:
        vae.register_to_config(scaling_factor=float(1.0 / means.pow(2).mean().sqrt()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m video_diffusion_pack.training.autoencoder",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--crop", type=int, default=24, help="square crop side of the training frames")
    parser.add_argument("--videos", type=int, default=0, help="use only the first N videos (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=("vchitect", "lgvi", "cogvideox"), default="vchitect",
                        help="whose embedded VAE layout to train: vchitect (SD3's AutoencoderKL, default), lgvi "
                             "(Stable Diffusion's AutoencoderKL) or cogvideox (the embedded DaS's "
                             "AutoencoderKLCogVideoX, trained frame by frame)")
    parser.add_argument("--decoder-only", metavar="VAE", help="fine-tune only the decoder of this trained VAE "
                        "folder (squared error + L1); the encoder, and so the latents, stay as they are")
    args = parser.parse_args(argv)
    import torch
    from diffusers import AutoencoderKL, AutoencoderKLCogVideoX

    from ..diffusers_pipelines.das.embedded import EMBEDDED_DAS_VAE_CONFIG
    from ..diffusers_pipelines.lgvi.embedded import EMBEDDED_VAE_CONFIG as EMBEDDED_LGVI_VAE_CONFIG
    from ..diffusers_pipelines.vchitect.embedded import EMBEDDED_VAE_CONFIG

    frames = read_frames(Path(args.data), limit=args.videos)
    torch.manual_seed(args.seed)
    family, config = {"vchitect": (AutoencoderKL, EMBEDDED_VAE_CONFIG),
                      "lgvi": (AutoencoderKL, EMBEDDED_LGVI_VAE_CONFIG),
                      "cogvideox": (AutoencoderKLCogVideoX, EMBEDDED_DAS_VAE_CONFIG)}[args.family]
    vae = family.from_pretrained(args.decoder_only) if args.decoder_only else family(**config)
    began = time.time()
    final = train_autoencoder(vae, frames, steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                              crop=args.crop, seed=args.seed, decoder_only=bool(args.decoder_only))
    if not args.decoder_only:
        make_deterministic(vae)
        set_latent_statistics(vae, frames, shift=args.family != "lgvi")
    vae.save_pretrained(args.output, safe_serialization=True)
    summary = {"frames": int(len(frames)), "family": args.family, "decoder_only": bool(args.decoder_only),
               "steps": args.steps, "batch_size": args.batch_size, "final_mse": final,
               "seconds": time.time() - began, "shift_factor": vae.config.shift_factor,
               "scaling_factor": vae.config.scaling_factor}
    Path(args.output, "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
