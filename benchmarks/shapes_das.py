"""Control accuracy of the embedded Diffusion as Shader model (trained on the shapes world), scored by the shapes
quality bed on a fixed set of scenes and seeds (``evaluation/shapes/das_bed.py``), side by side in one process.

    python benchmarks/shapes_das.py [--count 24] [--model FOLDER] [--steps N] [--guidance G] [--save DIR]

Rows (centroid error in pixels between the generated object and the tracking video's points, median and mean over
the scenes, and the fraction of scenes whose object the bed found):

- ``matched``: the video generated with the scene's own tracking video, against that tracking video;
- ``other trajectory``: the same videos against the tracking video of another trajectory of the same object (the
  error of a video that does not follow it: control works only if ``matched`` is much smaller);
- ``followed``: videos generated with the other trajectory's tracking video (the caption still names the scene's
  own motion), against the tracking video they were given;
- ``ground truth``: the world's own rendered videos against their tracking videos (the bed's floor).

Each error by the bed's detector (the caption's object, found by its colour) and colour-free (the centroid of every
pixel that is not the scene's background; see ``das_bed.foreground_centroid_error``).
"""

import argparse
import datetime
import platform
import time

import torch


def load(model):
    if model is None:
        from video_diffusion_pack.diffusers_pipelines.das.embedded import load_embedded_das_pipeline

        return load_embedded_das_pipeline()
    from video_diffusion_pack.diffusers_pipelines.das import DaSPipeline

    return DaSPipeline.from_pretrained(model)


def main() -> None:
    from video_diffusion_pack.diffusers_pipelines.das.defaults import EMBEDDED
    from video_diffusion_pack.evaluation.shapes import das_bed
    from video_diffusion_pack.evaluation.shapes.world import render_scene

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--model", help="a DaSPipeline folder (default: the embedded model)")
    parser.add_argument("--steps", type=int, default=EMBEDDED.num_inference_steps)
    parser.add_argument("--guidance", type=float, default=EMBEDDED.guidance_scale)
    parser.add_argument("--save", help="write the generated videos to this folder")
    args = parser.parse_args()

    pipe = load(args.model)
    pipe.set_progress_bar_config(disable=True)
    cases = das_bed.das_cases(args.count, EMBEDDED.height, EMBEDDED.width, EMBEDDED.num_frames)
    scores, truth, began = [], [], time.perf_counter()
    for case in cases:
        video = das_bed.generate(pipe, case, case.tracking, args.steps, args.guidance)
        followed = das_bed.generate(pipe, case, case.other_tracking, args.steps, args.guidance)
        scores.append(das_bed.score_case(case, video, followed))
        truth.append(das_bed.score_case(case, render_scene(case.scene).frames))
        if args.save:
            from video_diffusion_pack.video_io import write_video

            write_video(f"{args.save}/{case.seed:03d}-matched.mp4", video, EMBEDDED.fps)
            write_video(f"{args.save}/{case.seed:03d}-followed.mp4", followed, EMBEDDED.fps)
    seconds = (time.perf_counter() - began) / (2 * len(cases))
    summary, floor = das_bed.summarise_cases(scores), das_bed.summarise_cases(truth)

    print(f"# {datetime.date.today()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); {args.count} scenes, {args.steps} steps, guidance {args.guidance:g}, "
          f"{seconds:.2f} s a video")
    print("| videos | scored against | median error (px) | mean error (px) | found | colour-free median (px) | "
          "colour-free mean (px) |")
    print("|---|---|---|---|---|---|---|")
    rows = (("generated with the matching tracking video", "that tracking video", summary, "matched"),
            ("generated with the matching tracking video", "another trajectory's tracking video", summary, "other"),
            ("generated with another trajectory's tracking video", "that tracking video", summary, "followed"),
            ("the world's own videos (ground truth)", "their tracking videos", floor, "matched"),
            ("the world's own videos (ground truth)", "another trajectory's tracking video", floor, "other"))
    for videos, against, values, key in rows:
        print(f"| {videos} | {against} | {values[key + '_median_px']:.2f} | {values[key + '_mean_px']:.2f} | "
              f"{values[key + '_found']:.2f} | {values[key + '_any_median_px']:.2f} | {values[key + '_any_mean_px']:.2f} |")
    for suffix, name in (("", "bed detector"), ("_any", "colour-free")):
        ratio = summary[f"other{suffix}_median_px"] / max(summary[f"matched{suffix}_median_px"], 1e-9)
        print(f"other / matched (median, {name}): {ratio:.2f}x")
    print("per scene (matched, other, followed; colour-free):",
          [tuple(round(v, 2) for v in (s.matched, s.other, s.followed, s.matched_any, s.other_any, s.followed_any))
           for s in scores])


if __name__ == "__main__":
    main()
