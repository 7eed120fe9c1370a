"""The `vdp dataset` command: write procedural training data (`vdp dataset shapes`: the shapes world).

Arguments are checked before anything is written; a bad one exits with status 2 and a one-line message naming it.
Nothing here imports torch: the shapes world is drawn with numpy and written with the pack's video writer.
"""

import functools
import sys

from ..evaluation.shapes import dataset as shapes_dataset
from ..evaluation.shapes.world import (
    COLORS,
    MAX_OBJECTS,
    MOTIONS,
    ROTATION_SPREAD,
    SHAPES,
    SIZE_RANGE,
    START_SPREAD,
    TWO_TONE_PROBABILITY,
)


def add_commands(commands) -> None:
    """Adds `dataset` (with its `shapes` subcommand) to the `vdp` subcommands."""
    dataset = commands.add_parser("dataset", help="write procedural training data (the shapes world)",
                                  description=__doc__.splitlines()[0])
    kinds = dataset.add_subparsers(dest="kind", required=True, parser_class=type(dataset))
    shapes = kinds.add_parser(
        "shapes",
        help="videos of moving shapes with exact captions, DaS tracking videos and LGVI removal pairs",
        description=(
            "Write videos of one to three shapes moving, growing, shrinking or rotating on plain or two-tone "
            "backgrounds, with captions from the world's grammar, DaS tracking videos and first frames, LGVI "
            "removal pairs (input, target without one object, mask, instruction) and per-frame ground truth, as "
            "metadata.jsonl folders `vdp train --data` reads (the LGVI rows in DIR/inpainting). The same --seed "
            "writes the same frames."
        ),
    )
    shapes.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to create (new or empty)")
    shapes.add_argument("--videos", "--count", dest="count", type=int, default=100, metavar="N",
                        help="number of videos (default: 100)")
    shapes.add_argument("--frames", type=int, default=9, metavar="F", help="frames a video (default: 9)")
    shapes.add_argument("--size", default="64x64", metavar="HxW",
                        help="height x width, multiples of 16 in 32..512 (default: 64x64)")
    shapes.add_argument("--seed", type=int, default=0, help="video i is drawn from the seed and i (default: 0)")
    shapes.add_argument("--fps", type=float, default=8.0, help="frame rate of the videos (default: 8)")
    shapes.add_argument("--colors", default=",".join(COLORS), metavar="LIST",
                        help=f"comma-separated colours to draw from (default: all: {','.join(COLORS)})")
    shapes.add_argument("--shapes", default=",".join(SHAPES), metavar="LIST",
                        help=f"comma-separated shapes (default: all: {','.join(SHAPES)})")
    shapes.add_argument("--motions", default=",".join(MOTIONS), metavar="LIST",
                        help=f"comma-separated motions (default: all: {','.join(MOTIONS)})")
    shapes.add_argument("--max-objects", type=int, default=MAX_OBJECTS, choices=range(1, MAX_OBJECTS + 1),
                        help=f"at most this many objects a video (default: {MAX_OBJECTS})")
    shapes.add_argument("--object-size", default=f"{SIZE_RANGE[0]},{SIZE_RANGE[1]}", metavar="MIN,MAX",
                        help="range of an object's radius at the first frame, as fractions of the shorter side, "
                             f"within 0.05..0.3 (default: {SIZE_RANGE[0]},{SIZE_RANGE[1]})")
    shapes.add_argument("--two-tone", type=float, default=TWO_TONE_PROBABILITY, metavar="P",
                        help=f"probability of a two-tone background (default: {TWO_TONE_PROBABILITY})")
    shapes.add_argument("--start-spread", type=float, default=START_SPREAD, metavar="F",
                        help="where objects start, as a centred fraction of the range they may start in: 1 anywhere "
                             f"(default: {START_SPREAD}), 0 always the middle, so a motion crosses the same part of "
                             "the frame")
    shapes.add_argument("--rotation-spread", type=float, default=ROTATION_SPREAD, metavar="F",
                        help="orientations at the first frame, as a fraction of a full turn from upright: 1 any "
                             f"(default: {ROTATION_SPREAD}), 0 upright, so each shape always shows the same outline")
    shapes.add_argument("--hold-out", default="", metavar="LIST",
                        help="comma-separated colour-shape pairs never drawn, e.g. green-star,blue-triangle, so that "
                             "prompts naming them test unseen combinations (default: none)")
    shapes.set_defaults(run=functools.partial(_write_shapes, parser=shapes))


def _size(parser, text: str):
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        parser.error(f"argument --size: size={text!r} must be HEIGHTxWIDTH, e.g. 64x64")
    return int(parts[0]), int(parts[1])


def _list(text: str):
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _draw_options(args) -> dict:
    """--object-size, --two-tone and --hold-out, checked (a ValueError names the option's value)."""
    size = _list(args.object_size)
    try:
        size = tuple(float(value) for value in size)
    except ValueError:
        size = ()
    if len(size) != 2:
        raise ValueError(f"object_size={args.object_size!r}: must be MIN,MAX, two numbers, e.g. 0.17,0.21")
    pairs = []
    for item in _list(args.hold_out):
        parts = item.split("-")
        if len(parts) != 2:
            raise ValueError(f"hold_out={args.hold_out!r}: {item!r} is not <colour>-<shape>, e.g. green-star")
        pairs.append((parts[0], parts[1]))
    object_size, two_tone, hold_out = shapes_dataset.check_draw_options(size, args.two_tone, pairs)
    start_spread = shapes_dataset.check_start_spread(args.start_spread)
    rotation_spread = shapes_dataset.check_rotation_spread(args.rotation_spread)
    return dict(object_size=object_size, two_tone=two_tone, hold_out=tuple(sorted(hold_out)), start_spread=start_spread,
                rotation_spread=rotation_spread)


def _write_shapes(args, parser) -> int:
    height, width = _size(parser, args.size)
    options = {"count": "--videos", "num_frames": "--frames", "height": "--size", "width": "--size",
               "seed": "--seed", "fps": "--fps", "colors": "--colors", "shapes": "--shapes", "motions": "--motions",
               "output": "-o/--output", "object_size": "--object-size", "two_tone": "--two-tone",
               "hold_out": "--hold-out", "start_spread": "--start-spread",
               "rotation_spread": "--rotation-spread"}
    settings = dict(count=args.count, num_frames=args.frames, height=height, width=width, seed=args.seed,
                    fps=args.fps)
    try:
        shapes_dataset.check_settings(**settings)
        for name in ("colors", "shapes", "motions"):
            settings[name] = shapes_dataset.check_choices(name, _list(getattr(args, name)),
                                                          {"colors": tuple(COLORS), "shapes": SHAPES,
                                                           "motions": MOTIONS}[name])
        draw = _draw_options(args)
        shapes_dataset.check_output_folder(args.output)
        # a scene must fit the size with these choices: drawn once here so the error comes before any file
        shapes_dataset.first_scene(max_objects=args.max_objects, **draw, **settings)
    except ValueError as error:
        name = str(error).split("=", 1)[0]
        parser.error(f"argument {options.get(name, '--max-objects')}: {error}")

    def progress(done: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done}/{args.count} videos", end="", file=sys.stderr, flush=True)

    folder = shapes_dataset.write_shapes_dataset(args.output, max_objects=args.max_objects, progress=progress,
                                                 **draw, **settings)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"wrote {args.count} videos of the shapes world to {folder} (metadata.jsonl; LGVI pairs in "
          f"{folder / 'inpainting'}; preview {folder / 'preview.png'})")
    return 0
