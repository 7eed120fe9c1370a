"""Prompt following of the embedded text-to-video model (Vchitect-2.0 trained on the shapes world), scored by the
shapes quality bed on the fixed prompt set, and what FreeInit changes, side by side in one process.

    python benchmarks/shapes_quality.py [--count 24] [--model FOLDER] [--steps N] [--guidance G]
                                        [--compare freeinit] [--save DIR] [--list]

Rows: the default settings (colour, shape, direction, background, temporal IoU, colour drift, seconds a video);
with ``--compare freeinit`` the same prompts and seeds with FreeInit (3 iterations, equal steps; and at about equal
time: 3 iterations of a third of the steps each).
"""

import argparse
import datetime
import platform
import time

import numpy as np
import torch


def load(model):
    if model is None:
        from video_diffusion_pack.diffusers_pipelines.vchitect.embedded import load_embedded_vchitect_pipeline

        return load_embedded_vchitect_pipeline()
    from video_diffusion_pack.diffusers_pipelines.vchitect import VchitectRepVideoPipeline

    return VchitectRepVideoPipeline.from_pretrained(model)


def sample(pipe, prompt, seed, settings, steps=None):
    output = pipe(prompt=prompt, height=settings.height, width=settings.width, num_frames=settings.num_frames,
                  num_inference_steps=steps or settings.num_inference_steps, guidance_scale=settings.guidance_scale,
                  generator=torch.Generator().manual_seed(seed), output_type="np")
    return np.round(output.frames[0] * 255).astype(np.uint8)


def run_set(pipe, prompts, settings, steps=None, save=None, tag="plain"):
    from video_diffusion_pack.evaluation.shapes import quality

    scores, videos, began = [], [], time.perf_counter()
    for prompt, seed in prompts:
        frames = sample(pipe, prompt, seed, settings, steps)
        videos.append(frames)
        scores.append(quality.score_prompt(frames, prompt))
        if save:
            from video_diffusion_pack.video_io import write_video

            write_video(f"{save}/{tag}-{seed:03d}.mp4", frames, settings.fps)
    seconds = (time.perf_counter() - began) / len(prompts)
    return quality.summarise(scores), scores, videos, seconds


def row(name, summary, seconds, videos):
    from video_diffusion_pack.evaluation.vbench.dimensions.temporal_flickering import video_score

    flicker = float(np.mean([video_score(frames) for frames in videos]))
    print(f"| {name} | {summary['color']:.3f} | {summary['shape']:.3f} | {summary['motion']:.3f} | "
          f"{summary['background']:.3f} | {summary['temporal_iou']:.3f} | {summary['color_drift']:.4f} | "
          f"{flicker:.4f} | {seconds:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--model", help="a VchitectRepVideoPipeline folder (default: the embedded model)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--compare", nargs="*", default=(), choices=("freeinit",))
    parser.add_argument("--save", help="write every video to this folder")
    parser.add_argument("--list", action="store_true", help="print each prompt's detection")
    args = parser.parse_args()
    import dataclasses

    from video_diffusion_pack.diffusers_pipelines.vchitect.defaults import EMBEDDED
    from video_diffusion_pack.evaluation.shapes.prompts import fixed_prompt_set

    settings = dataclasses.replace(EMBEDDED, **{k: v for k, v in (("num_inference_steps", args.steps),
                                                                  ("guidance_scale", args.guidance)) if v})
    pipe = load(args.model)
    pipe.set_progress_bar_config(disable=True)
    prompts = fixed_prompt_set(args.count)
    print(f"# shapes quality, {len(prompts)} prompts, {settings.num_inference_steps} steps, guidance "
          f"{settings.guidance_scale}, {settings.height}x{settings.width}x{settings.num_frames}; "
          f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"{datetime.date.today()}")
    print("| run | colour | shape | direction | background | temporal IoU | colour drift | VBench temporal flickering "
          "| s/video |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary, scores, plain, seconds = run_set(pipe, prompts, settings, save=args.save)
    row("default", summary, seconds, plain)
    if args.list:
        for (prompt, _), score in zip(prompts, scores):
            print(f"  {prompt}: {score.detected} colour {score.color} shape {score.shape} motion {score.motion}")
    if "freeinit" in args.compare:
        from video_diffusion_pack.hooks.free_init import FreeInitConfig, apply_free_init, remove_free_init

        apply_free_init(pipe, FreeInitConfig(num_iters=3))
        summary, _, videos, seconds = run_set(pipe, prompts, settings, save=args.save, tag="freeinit")
        row("FreeInit 3 iterations, equal steps", summary, seconds, videos)
        summary, _, videos, seconds = run_set(pipe, prompts, settings, steps=max(1, settings.num_inference_steps // 3),
                                              save=args.save, tag="freeinit-fast")
        row("FreeInit 3 iterations, a third of the steps each (about equal time)", summary, seconds, videos)
        remove_free_init(pipe)


if __name__ == "__main__":
    main()
