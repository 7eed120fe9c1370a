"""`vdp eval shapes`: scores a generated video against its prompt by the shapes world's semantics (no network).

Prompt following (colour, shape, motion, background, count, relation) and temporal consistency of every video; with
`--tracking-video`, DaS control accuracy (centroid error); with `--target`, `--input` and `--mask`, LGVI removal
accuracy (PSNR / SSIM of the edited and the untouched regions). Prints one JSON object a video (or `-o FILE`).
Arguments are checked before a video is decoded; a bad one exits with status 2 naming it.
"""

import functools
import json
import os
import sys


def add_subcommand(subcommands) -> None:
    """Adds `shapes` to the `vdp eval` subcommands."""
    shapes = subcommands.add_parser(
        "shapes", help="score videos against shapes-world prompts (colour, shape, motion, control, removal)",
        description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[1].replace("\n", " "))
    shapes.add_argument("videos", nargs="+", help="generated videos (.mp4, .webp, .gif)")
    shapes.add_argument("--prompt", required=True, help="the prompt of the videos, in the shapes grammar")
    shapes.add_argument("--tracking-video", help="the DaS tracking video the videos were made with")
    shapes.add_argument("--target", help="LGVI: the true video without the removed object")
    shapes.add_argument("--input", dest="input_video", help="LGVI: the video that was edited")
    shapes.add_argument("--mask", help="LGVI: the mask video of the edited region")
    shapes.add_argument("-o", "--output", help="write the scores to this JSON file (default: print them)")
    shapes.set_defaults(run=functools.partial(_run_shapes, parser=shapes))


def _run_shapes(args, parser) -> int:
    from ..evaluation.shapes.world import parse_caption

    try:
        parsed = parse_caption(args.prompt)
    except ValueError as error:
        parser.error(f"argument --prompt: {error}")
    named = {"videos": args.videos, "--tracking-video": [args.tracking_video], "--target": [args.target],
             "--input": [args.input_video], "--mask": [args.mask]}
    for option, paths in named.items():
        for path in paths:
            if path is not None and not os.path.isfile(path):
                parser.error(f"argument {option}: '{path}' is not a file")
    lgvi = [args.target, args.input_video, args.mask]
    if any(value is not None for value in lgvi) and None in lgvi:
        parser.error("arguments --target, --input and --mask go together (LGVI removal scores need all three)")
    if args.output is not None and os.path.isdir(args.output):
        parser.error(f"argument -o/--output: output='{args.output}' is a folder; give a JSON file name")

    from ..evaluation.shapes import quality
    from ..video_io import read_video

    def frames(path):
        return read_video(path).frames

    results = []
    for path in args.videos:
        video = frames(path)
        try:
            row = {"video": path, "prompt": quality.score_prompt(video, parsed).as_dict()}
            if args.tracking_video:
                row["control"] = quality.score_control(video, frames(args.tracking_video), parsed).as_dict()
            if args.target:
                row["inpainting"] = quality.score_inpainting(video, frames(args.target), frames(args.input_video),
                                                             frames(args.mask)).as_dict()
        except ValueError as error:
            print(f"vdp eval shapes: {path}: {error}", file=sys.stderr)
            return 1
        results.append(row)
    text = json.dumps(results if len(results) > 1 else results[0], indent=2, default=str)
    if args.output:
        staging = args.output + ".partial"
        with open(staging, "w") as handle:
            handle.write(text + "\n")
        os.replace(staging, args.output)
    else:
        print(text)
    return 0
