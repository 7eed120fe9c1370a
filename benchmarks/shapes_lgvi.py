"""Removal accuracy of the embedded LGVI (trained on the shapes world's removal pairs), scored by the shapes quality
bed on its fixed removal set, side by side in one process with doing nothing (the input video itself) and with the
VAE's round trip of the input (what the model's latent space can give back at best outside the edit).

    python benchmarks/shapes_lgvi.py [--count 24] [--objects 1] [--model FOLDER] [--steps N] [--gs G] [--igs G]
                                     [--save DIR]

Rows: PSNR (dB) and SSIM of the edited region against the true background (the scene without the object) and of
the untouched region against the input, averaged over the videos, and seconds a video. ``--objects 2`` draws two
objects a scene, so the instruction must pick the one to remove; the rows then add the PSNR against the input over
the pixels of the object that must stay (high when it is kept).
"""

import argparse
import datetime
import platform
import time

import numpy as np
import torch


def load(model):
    if model is None:
        from video_diffusion_pack.diffusers_pipelines.lgvi.embedded import load_embedded_lgvi_pipeline

        return load_embedded_lgvi_pipeline()
    from video_diffusion_pack.diffusers_pipelines.lgvi import InpaintByInstructionPipeline

    return InpaintByInstructionPipeline.from_pretrained(model)


def edit(pipe, case, settings):
    output = pipe(video=case.input_video, prompt=case.instruction, height=settings.height, width=settings.width,
                  num_inference_steps=settings.num_inference_steps, guidance_scale=settings.guidance_scale,
                  image_guidance_scale=settings.image_guidance_scale,
                  generator=torch.Generator().manual_seed(case.seed), output_type="np")
    return np.round(output.frames[0] * 255).astype(np.uint8)


def round_trip(pipe, case):
    video = torch.from_numpy(case.input_video).float().div(255).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        latents = pipe.encode_video(video, torch.Generator().manual_seed(case.seed))
        frames = pipe.decode_latents(latents)[0].permute(1, 2, 3, 0)
    return np.round(((frames + 1) / 2).clamp(0, 1).numpy() * 255).astype(np.uint8)


def mean_scores(scores):
    fields = ("edited_psnr", "edited_ssim", "untouched_psnr", "untouched_ssim")
    return {field: float(np.mean([getattr(s, field) for s in scores if getattr(s, field) is not None]))
            for field in fields}


def kept_psnr(outputs, cases):
    """Mean PSNR (dB, capped at 100) against the input over the pixels of the objects that must stay; None if none."""
    values = []
    for frames, case in zip(outputs, cases):
        if case.kept.any():
            error = ((frames.astype(np.float64) - case.input_video) ** 2)[case.kept].mean()
            values.append(100.0 if error == 0 else min(100.0, 10 * np.log10(255.0 ** 2 / error)))
    return float(np.mean(values)) if values else None


def row(name, summary, seconds, kept=None):
    print(f"| {name} | {summary['edited_psnr']:.2f} | {summary['edited_ssim']:.3f} | {summary['untouched_psnr']:.2f} | "
          f"{summary['untouched_ssim']:.3f} | " + ("" if kept is None else f"{kept:.2f} | ") + f"{seconds:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--objects", type=int, default=1, choices=(1, 2, 3), help="at most this many objects a scene")
    parser.add_argument("--model", help="an LGVI pipeline folder (default: the embedded model)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--gs", type=float, help="text guidance scale")
    parser.add_argument("--igs", type=float, help="video guidance scale")
    parser.add_argument("--save", help="write input, edit and target of every case side by side to this folder")
    args = parser.parse_args()
    import dataclasses

    from video_diffusion_pack.diffusers_pipelines.lgvi.defaults import EMBEDDED
    from video_diffusion_pack.evaluation.shapes import quality
    from video_diffusion_pack.evaluation.shapes.removal import REMOVAL_SEED, fixed_removal_set

    settings = dataclasses.replace(EMBEDDED, **{k: v for k, v in (
        ("num_inference_steps", args.steps), ("guidance_scale", args.gs), ("image_guidance_scale", args.igs))
        if v is not None})
    cases = fixed_removal_set(args.count, num_frames=EMBEDDED.max_frames, height=settings.height,
                              width=settings.width, max_objects=args.objects)
    pipe = load(args.model)
    pipe.set_progress_bar_config(disable=True)
    nothing = [quality.score_inpainting(c.input_video, c.target, c.input_video, c.mask) for c in cases]
    began = time.perf_counter()
    trips = [round_trip(pipe, c) for c in cases]
    trip_seconds = (time.perf_counter() - began) / len(cases)
    trip_scores = [quality.score_inpainting(t, c.target, c.input_video, c.mask) for t, c in zip(trips, cases)]
    began = time.perf_counter()
    edits = [edit(pipe, c, settings) for c in cases]
    edit_seconds = (time.perf_counter() - began) / len(cases)
    edit_scores = [quality.score_inpainting(e, c.target, c.input_video, c.mask) for e, c in zip(edits, cases)]
    if args.save:
        from pathlib import Path

        from video_diffusion_pack.video_io import write_video

        Path(args.save).mkdir(parents=True, exist_ok=True)
        for case, frames in zip(cases, edits):
            strip = np.concatenate([case.input_video, frames, case.target], axis=2)
            write_video(f"{args.save}/removal-{case.seed:03d}.mp4", strip, EMBEDDED.fps)
    print(f"# {args.count} removals (at most {args.objects} object(s) a scene, seed {REMOVAL_SEED}), "
          f"{settings.width}x{settings.height}, {EMBEDDED.max_frames} frames, {settings.num_inference_steps} steps, "
          f"text guidance {settings.guidance_scale:g}, video guidance {settings.image_guidance_scale:g}; "
          f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"{datetime.date.today()}")
    kept = [kept_psnr([c.input_video for c in cases], cases), kept_psnr(trips, cases), kept_psnr(edits, cases)]
    print("| run | edited PSNR (dB) | edited SSIM | untouched PSNR (dB) | untouched SSIM | "
          + ("" if kept[0] is None else "other object kept: PSNR (dB) | ") + "s/video |")
    print("|---|---|---|---|---|" + ("" if kept[0] is None else "---|") + "---|")
    baseline, trip, ours = mean_scores(nothing), mean_scores(trip_scores), mean_scores(edit_scores)
    row("doing nothing (the input)", baseline, 0.0, kept[0])
    row("VAE round trip of the input", trip, trip_seconds, kept[1])
    row("embedded LGVI" if args.model is None else args.model, ours, edit_seconds, kept[2])
    wins = sum(e.edited_psnr > n.edited_psnr for e, n in zip(edit_scores, nothing))
    print(f"edited PSNR gain over doing nothing: {ours['edited_psnr'] - baseline['edited_psnr']:+.2f} dB "
          f"(better on {wins} of {len(cases)} videos; smallest gain "
          f"{min(e.edited_psnr - n.edited_psnr for e, n in zip(edit_scores, nothing)):+.2f} dB)")


if __name__ == "__main__":
    main()
