"""Fits the latent-to-RGB preview projections of the pack's embedded tiny VAEs on shapes-world videos, measures them
on held-out scenes against a constant-colour baseline, and (with ``--write``) stores them in
``diffusers_pipelines/latent_rgb_factors.json``.

For each tiny pipeline family (Vchitect-2.0's SD3-style VAE, the CogVideoX VAE of RepVideo and DaS, LGVI's SD-1.5-style
VAE), the VAE of the tiny loader's default seed encodes shapes-world videos (``world.sample_scene`` /
``render_scene``); its latents, scaled and shifted as the sampler holds them, are regressed by least squares on the
videos' colours averaged over each latent pixel (space by the VAE's 8x8, time by the causal VAE's grouping). The
released VAEs' entries are published factors (see ``diffusers_pipelines/latent_preview.py``) and are left as they are.

The table gives, on scenes not used in the fit, the PSNR (0..1 colour scale) of the projected latents against the
averaged colours, for the fitted projection and for the best constant colour (the training mean), and R^2.

With ``--overhead`` it times one preview (projection of 4 frames on the CPU, then ComfyUI's scaling to 512 and JPEG) on
latents of the released geometries, the cost a sampler step pays for its preview.

    python benchmarks/latent_preview_factors.py [--fit-scenes 24] [--test-scenes 8] [--write]
    python benchmarks/latent_preview_factors.py --overhead [--repeats 20]
"""

import argparse
import datetime
import json
import platform

import numpy as np
import torch

from video_diffusion_pack.diffusers_pipelines.latent_preview import (
    LATENT_RGB_FACTORS_FILE,
    downsample_to_latent_grid,
    fit_latent_rgb_projection,
    projection_to_entry,
)
from video_diffusion_pack.evaluation.shapes.world import render_scene, sample_scene

HEIGHT = WIDTH = 64
SPATIAL_FACTOR = 8
# (entry name, tiny builder, frames per video, temporal grouping of the VAE)
FAMILIES = (
    ("tiny-sd3", "build_tiny_vchitect_pipeline", 8, 1),
    ("tiny-cogvideox", "build_tiny_cogvideox_repvideo_pipeline", 9, 4),
    ("tiny-sd15", "build_tiny_inpaint_pipeline", 8, 1),
)
TINY_SEED = 0
SCENE_SEED = 2026


def shapes_videos(count: int, num_frames: int, rng: np.random.Generator) -> torch.Tensor:
    """``count`` shapes-world videos [count, F, H, W, 3] in 0..1."""
    videos = [render_scene(sample_scene(rng, HEIGHT, WIDTH, num_frames)).frames for _ in range(count)]
    return torch.from_numpy(np.stack(videos)).float() / 255.0


@torch.no_grad()
def sampler_latents(vae, videos: torch.Tensor, temporal_factor: int) -> torch.Tensor:
    """Latents of ``videos`` [N, F, H, W, 3] as the sampler holds them, channels last: [N, F', h, w, C]."""
    pixels = videos * 2.0 - 1.0
    if temporal_factor == 1:
        frames = pixels.flatten(0, 1).permute(0, 3, 1, 2)
        latents = vae.encode(frames).latent_dist.mode()
        latents = latents.unflatten(0, videos.shape[:2]).permute(0, 1, 3, 4, 2)
    else:
        latents = vae.encode(pixels.permute(0, 4, 1, 2, 3)).latent_dist.mode().permute(0, 2, 3, 4, 1)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * vae.config.scaling_factor


def targets(videos: torch.Tensor, temporal_factor: int) -> torch.Tensor:
    return torch.stack([downsample_to_latent_grid(video, SPATIAL_FACTOR, temporal_factor) for video in videos])


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    # colours in -1..1: the 0..1 scale halves the error
    mse = (((prediction.clamp(-1, 1) - target) / 2.0) ** 2).mean().item()
    return 10.0 * np.log10(1.0 / mse)


def fit_family(name, builder, num_frames, temporal_factor, fit_scenes, test_scenes):
    import video_diffusion_pack

    vae = getattr(video_diffusion_pack, builder)(seed=TINY_SEED, weights="random").vae.float().eval()
    rng = np.random.default_rng(SCENE_SEED)
    fit_videos = shapes_videos(fit_scenes, num_frames, rng)
    test_videos = shapes_videos(test_scenes, num_frames, rng)
    fit_latents = sampler_latents(vae, fit_videos, temporal_factor)
    channels = fit_latents.shape[-1]
    fit_rgb = targets(fit_videos, temporal_factor)
    projection = fit_latent_rgb_projection(
        fit_latents.reshape(-1, channels), fit_rgb.reshape(-1, 3), name=name,
        source=f"fitted: the VAE of {builder}(seed={TINY_SEED}) on {fit_scenes} shapes-world videos of {num_frames} "
               f"frames at {HEIGHT}x{WIDTH} (benchmarks/latent_preview_factors.py)")
    test_latents = sampler_latents(vae, test_videos, temporal_factor)
    test_rgb = targets(test_videos, temporal_factor)
    predicted = projection(test_latents)
    constant = fit_rgb.reshape(-1, 3).mean(0).expand_as(test_rgb)
    residual = ((predicted - test_rgb) ** 2).sum().item()
    total = ((test_rgb - test_rgb.reshape(-1, 3).mean(0)) ** 2).sum().item()
    measured = {"psnr_db": round(psnr(predicted, test_rgb), 2), "baseline_psnr_db": round(psnr(constant, test_rgb), 2),
                "r2": round(1.0 - residual / total, 3), "test_scenes": test_scenes}
    match = {"vae_class": type(vae).__name__, "latent_channels": channels,
             "block_out_channels": [int(value) for value in vae.config.block_out_channels]}
    return projection_to_entry(projection, match, held_out=measured), measured


def write_factors(entries):
    """Rewrites the coefficient file: its published entries as they are, then the fitted ones (one row a line)."""
    document = json.loads(LATENT_RGB_FACTORS_FILE.read_text())
    fitted_names = {entry["name"] for entry in entries}
    document["layouts"] = [entry for entry in document["layouts"] if entry["name"] not in fitted_names] + entries
    text = json.dumps(document, indent=1)
    # one weight row per line keeps the file readable
    text = text.replace("[\n     ", "[").replace(",\n     ", ", ").replace("\n    ]", "]")
    tmp = LATENT_RGB_FACTORS_FILE.with_suffix(".json.tmp")
    tmp.write_text(text + "\n")
    json.loads(tmp.read_text())
    tmp.replace(LATENT_RGB_FACTORS_FILE)


# (entry, latents layout, latent shape of one video at the released default size)
RELEASED_LATENTS = (
    ("sd3", "b f c h w", (1, 40, 16, 54, 96)),        # Vchitect-2.0: 40 frames of 432x768
    ("cogvideox", "b f c h w", (1, 13, 16, 60, 90)),  # RepVideo / DaS: 49 frames of 480x720
    ("sd15", "b c f h w", (1, 4, 24, 40, 64)),        # LGVI: 24 frames of 320x512
)


def preview_overhead(repeats: int):
    import io
    import time

    from PIL import Image, ImageOps

    from video_diffusion_pack.diffusers_pipelines.latent_preview import LatentPreviewer, latent_rgb_projections

    projections = {name: projection for name, (_, projection) in latent_rgb_projections().items()}
    print("| entry | latents | ms per preview (projection, scaling, JPEG) |")
    print("|---|---|---:|")
    for name, layout, shape in RELEASED_LATENTS:
        previewer = LatentPreviewer(projections[name], layout)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            # ComfyUI scales the preview to 512 on its long side and encodes it as JPEG, quality 95
            ImageOps.contain(previewer(latents), (512, 512), Image.Resampling.BILINEAR).save(
                io.BytesIO(), format="JPEG", quality=95)
            times.append(time.perf_counter() - start)
        print(f"| {name} | {list(shape)} bf16 | {1000 * float(np.median(times)):.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit-scenes", type=int, default=24)
    parser.add_argument("--test-scenes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="store the fitted entries in latent_rgb_factors.json")
    parser.add_argument("--overhead", action="store_true", help="time one preview at the released geometries")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.overhead:
        print(f"# {datetime.date.today()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
              f"{args.threads} threads, median of {args.repeats}")
        preview_overhead(args.repeats)
        return
    print(f"# {datetime.date.today()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.fit_scenes} fit / {args.test_scenes} held-out shapes-world scenes at {HEIGHT}x{WIDTH}")
    print("| entry | VAE | held-out PSNR fitted (dB) | constant colour (dB) | gain (dB) | R^2 |")
    print("|---|---|---|---|---|---|")
    entries = []
    for name, builder, num_frames, temporal_factor in FAMILIES:
        entry, measured = fit_family(name, builder, num_frames, temporal_factor, args.fit_scenes, args.test_scenes)
        entries.append(entry)
        print(f"| {name} | {entry['match']['vae_class']} {entry['match']['latent_channels']} ch | "
              f"{measured['psnr_db']:.2f} | {measured['baseline_psnr_db']:.2f} | "
              f"{measured['psnr_db'] - measured['baseline_psnr_db']:.2f} | {measured['r2']:.3f} |")
    if args.write:
        write_factors(entries)
        print(f"wrote {len(entries)} fitted entries to {LATENT_RGB_FACTORS_FILE.name}")


if __name__ == "__main__":
    main()
