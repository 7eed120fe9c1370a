"""`vdp eval ab`: generate the VBench file set of some dimensions with one switch (RepVideo, FreeInit, FasterCache)
off and on, from the same seeds, score both sides with `evaluate()` and print (and write) the table of scores and
times.

Arguments are checked before torch is imported (the generation options by `vdp generate`'s own checks); a bad one
exits with status 2 and a one-line message naming it.
"""

import functools
import json
import os
import sys
import time

from ._common import DEVICES

SWITCHES = ("repvideo", "freeinit", "fastercache")
SIDES = ("off", "on")
RESULTS_NAME = "ab_results.json"
# `vdp generate` options passed through unchanged: option -> (type, help)
_GENERATE_OPTIONS = {
    "--pipeline": (str, "pipeline to run (as vdp generate; default: vchitect)"),
    "--model": (str, "pipeline folder (as vdp generate; default: the embedded model)"),
    "--steps": (int, "denoising steps"),
    "--frames": (int, "frames a video"),
    "--height": (int, "height in pixels"),
    "--width": (int, "width in pixels"),
    "--guidance": (float, "classifier-free guidance scale"),
    "--negative-prompt": (str, "text to steer away from"),
    "--fps": (float, "frame rate of the written videos"),
    "--dtype": (str, "weights dtype (as vdp generate)"),
}


def add_subcommand(subcommands) -> None:
    from ..evaluation.vbench import PRECISIONS

    ab = subcommands.add_parser(
        "ab",
        help="A/B: generate with one switch off and on from the same seeds, score both on VBench dimensions",
        description=(
            "Generate the VBench file set ({prompt}-{i}.mp4, sample i from seed --seed + i) of each --dimensions "
            "twice, into OUTPUT/off and OUTPUT/on, the second time with --switch turned on, then score both sides "
            "with the pack's VBench evaluate() and print a table of scores, differences and seconds; the table is "
            f"also written to OUTPUT/{RESULTS_NAME}. Videos and scores already in OUTPUT are kept (a stopped run "
            "continues). Videos are scored as custom input per dimension (no static filter for temporal_flickering); "
            "dimensions that need the suite's auxiliary info need every prompt and 5 samples."
        ),
    )
    ab.add_argument("--switch", required=True, choices=SWITCHES, help="what differs between the two sides")
    ab.add_argument("--dimensions", nargs="+", required=True, metavar="DIMENSION", help="VBench dimensions to score")
    ab.add_argument("-o", "--output", required=True, help="folder for off/, on/ and the table")
    ab.add_argument("--samples", type=int, default=5, help="samples a prompt (default: 5)")
    ab.add_argument("--max-prompts", type=int, metavar="K", help="only the first K prompts of each dimension")
    ab.add_argument("--seed", type=int, default=0, help="seed of sample 0 (sample i: seed + i; default 0)")
    ab.add_argument("--freeinit-iters", type=int, default=3,
                    help="FreeInit sampling passes on the 'on' side of --switch freeinit (default: 3)")
    for option, (kind, text) in _GENERATE_OPTIONS.items():
        ab.add_argument(option, type=kind, help=text)
    ab.add_argument("--device", choices=DEVICES, help="default: cuda when available, else cpu")
    ab.add_argument("--weights-dir", help="evaluator checkpoints (as vdp eval vbench; default: the models root)")
    ab.add_argument("--batch-size", type=int, default=16, help="frames per scoring model call (default: 16)")
    ab.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="scoring precision, as vdp eval vbench --precision (default: fp32)")
    ab.set_defaults(run=functools.partial(_run_ab, parser=ab))


def _generate_argv(args, dimension: str, side: str) -> list:
    argv = ["generate", "--vbench", dimension, "-o", os.path.join(args.output, side), "--samples", str(args.samples),
            "--seed", str(args.seed)]
    if args.max_prompts is not None:
        argv += ["--max-prompts", str(args.max_prompts)]
    for option in _GENERATE_OPTIONS:
        value = getattr(args, option[2:].replace("-", "_"))
        if value is not None:
            argv.append(f"{option}={value}")
    if args.device is not None:
        argv += ["--device", args.device]
    if side == "on":
        argv += {"repvideo": ["--repvideo"], "freeinit": [f"--freeinit={args.freeinit_iters}"],
                 "fastercache": ["--fastercache"]}[args.switch]
    return argv


def _generate_parser(parser):
    """(a root parser holding `vdp generate`'s own parser, that parser), errors reported under this command's
    name."""
    from . import generate
    from ._common import ArgumentParser

    root = ArgumentParser(prog=parser.prog)
    commands = root.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    generate.add_commands(commands)
    return root, commands.choices["generate"]


def _check(args, parser) -> list:
    """Every argument (those of the generation through `vdp generate`'s checks); the checked generate arguments
    as [(dimension, side, namespace)]."""
    from ..evaluation.vbench import registry
    from ..evaluation.vbench.suite import NEEDS_AUXILIARY_INFO, SAMPLES_PER_PROMPT
    from . import generate

    try:
        dimensions = registry.check_dimensions(args.dimensions)
    except ValueError as error:
        parser.error(f"argument --dimensions: {error}")
    if args.batch_size < 1:
        parser.error(f"argument --batch-size: batch_size={args.batch_size} must be at least 1")
    if args.weights_dir is not None and not os.path.isdir(args.weights_dir):
        parser.error(f"argument --weights-dir: weights_dir='{args.weights_dir}' is not a folder")
    if not 1 <= args.freeinit_iters <= generate.MAX_FREEINIT_ITERS:
        parser.error(f"argument --freeinit-iters: freeinit_iters={args.freeinit_iters} must be in "
                     f"1..{generate.MAX_FREEINIT_ITERS}")
    if args.switch == "repvideo" and args.pipeline == "repvideo":
        parser.error("argument --switch: the repvideo pipeline always aggregates (RepVideo as released); switch "
                     "repvideo compares Vchitect-2.0 without and with it")
    needing = [name for name in dimensions if name in NEEDS_AUXILIARY_INFO]
    if needing and (args.max_prompts is not None or args.samples != SAMPLES_PER_PROMPT):
        parser.error(f"argument --dimensions: {needing} need the suite's auxiliary info, so every prompt and "
                     f"{SAMPLES_PER_PROMPT} samples (no --max-prompts, --samples {SAMPLES_PER_PROMPT})")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"argument -o/--output: output='{args.output}' exists and is not a folder")
    root, generate_parser = _generate_parser(parser)
    checked = []
    for dimension in dimensions:
        for side in SIDES:
            namespace = root.parse_args(_generate_argv(args, dimension, side))
            generate.check_generate_arguments(namespace, generate_parser)
            checked.append((dimension, side, namespace))
    return checked


def _run_ab(args, parser) -> int:
    checked = _check(args, parser)
    from ..evaluation.vbench import evaluate
    from ..evaluation.vbench.sampling import plan, read_record
    from ..evaluation.vbench.suite import NEEDS_AUXILIARY_INFO
    from ..weights.manifest import default_models_root
    from . import generate

    _, generate_parser = _generate_parser(parser)
    weights_dir = args.weights_dir if args.weights_dir is not None else str(default_models_root())
    for _, _, namespace in checked:  # folders another run began are refused before a pipeline loads
        generate._check_vbench_folder(namespace, generate_parser)
    device = _device(args)  # imports torch (and the video reader below) before anything is timed
    from .. import video_io  # noqa: F401

    previous = _read_table(args.output)
    table = {"switch": args.switch, "samples": args.samples, "max_prompts": args.max_prompts, "seed": args.seed,
             "sides": {}}
    for side in SIDES:
        runs = [(dimension, namespace) for dimension, which, namespace in checked if which == side]
        pipe, preset, upscaler = None, generate.fastercache_preset(runs[0][1]), None
        if not all(generate.vbench_complete(namespace) for _, namespace in runs):  # else no model loads
            pipe, preset, upscaler = generate.prepare_pipeline(runs[0][1], generate_parser)
        for _, namespace in runs:
            generate._generate_vbench(namespace, generate_parser, pipe, preset, upscaler)
        del pipe
        folder = os.path.join(args.output, side)
        record = read_record(folder)
        side_table = {"folder": folder, "dimensions": {}}
        for dimension, _ in runs:
            planned = plan(dimension, args.samples, args.seed, args.max_prompts)
            files = [os.path.join(folder, video.file_name) for video in planned]
            seconds = sum(record["videos"].get(video.file_name, {}).get("seconds") or 0.0 for video in planned)
            results_file = os.path.join(folder, f"{dimension}_eval_results.json")
            resumed = os.path.isfile(results_file)
            start = time.perf_counter()
            try:
                if dimension in NEEDS_AUXILIARY_INFO:
                    results = evaluate(folder, [dimension], weights_dir, mode="standard", name=dimension,
                                       output_dir=folder, device=device, batch_size=args.batch_size,
                                       precision=args.precision)
                else:
                    results = evaluate(files, [dimension], weights_dir, mode="custom", name=dimension,
                                       output_dir=folder, device=device, batch_size=args.batch_size,
                                       precision=args.precision)
            except (ValueError, FileNotFoundError, KeyError) as error:
                print(f"vdp eval ab: error: {error}", file=sys.stderr)
                return 1
            scoring = round(time.perf_counter() - start, 3)
            if resumed:  # the scores were read back: keep the time of the run that computed them
                scoring = previous.get("sides", {}).get(side, {}).get("dimensions", {}).get(dimension, {}).get(
                    "scoring_seconds", scoring)
            side_table["dimensions"][dimension] = {
                "score": results[dimension][0], "videos": len(files), "sampling_seconds": round(seconds, 3),
                "scoring_seconds": scoring,
            }
        table["sides"][side] = side_table
    _write_table(args.output, table)
    _print_table(table)
    return 0


def _device(args):
    if args.device is not None:
        return args.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_table(folder: str) -> dict:
    try:
        with open(os.path.join(folder, RESULTS_NAME), encoding="utf-8") as stream:
            table = json.load(stream)
        return table if isinstance(table, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_table(folder: str, table: dict) -> None:
    import tempfile

    handle, temporary = tempfile.mkstemp(prefix=".ab_results.", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(table, stream, indent=2)
        os.replace(temporary, os.path.join(folder, RESULTS_NAME))
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _print_table(table: dict) -> None:
    off, on = table["sides"]["off"]["dimensions"], table["sides"]["on"]["dimensions"]
    print(f"switch {table['switch']}: off | on (same seeds, {table['samples']} sample(s) a prompt)")
    print("| dimension | videos | off score | on score | on - off | off sampling s | on sampling s | off scoring s | "
          "on scoring s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dimension in off:
        a, b = off[dimension], on[dimension]
        print(f"| {dimension} | {a['videos']} | {a['score']:.6f} | {b['score']:.6f} | {b['score'] - a['score']:+.6f} "
              f"| {a['sampling_seconds']:.2f} | {b['sampling_seconds']:.2f} | {a['scoring_seconds']:.2f} | "
              f"{b['scoring_seconds']:.2f} |")

