"""`vdp eval vbench`, `vdp eval totals`, `vdp eval prompts` and `vdp eval static-filter`: VBench scores of generated
videos, the official totals of a results file, the suite's prompts of a dimension and the official static filter.

Arguments are checked before torch is imported; a bad one exits with status 2 and a one-line message naming it.
"""

import functools
import json
import os
import sys

from ._common import DEVICES


def add_subcommand(subcommands) -> None:
    """Adds `vbench`, `totals`, `prompts` and `static-filter` to the `vdp eval` subcommands."""
    from ..evaluation.vbench import PRECISIONS
    from ..evaluation.vbench.i2v_suite import RESOLUTIONS
    from ..evaluation.vbench.suite import SUITE_VERSION

    vbench = subcommands.add_parser(
        "vbench",
        help="score videos on VBench dimensions (official suite, naming, results JSON)",
        description=(
            f"Score a folder of videos on VBench dimensions as the official code ({SUITE_VERSION}) does. Standard "
            "mode: the suite's files `{prompt}-{i}.mp4`, i in 0..4 (temporal_flickering: the 5 per prompt the "
            "official static filter kept); every missing file is listed. Custom mode: any videos, the prompt "
            "read from the file name. Results go to OUTPUT/<name>_eval_results.json in the official layout, "
            "rewritten after each dimension; a run on the same folder continues that file (dimensions already "
            "in it are not recomputed) unless --no-resume."
        ),
    )
    vbench.add_argument("videos", help="folder of videos (custom mode: a folder or one video file)")
    vbench.add_argument("--dimensions", nargs="+", required=True, metavar="DIMENSION",
                        help="dimensions to score (`vdp eval prompts --list` names them)")
    vbench.add_argument("--weights-dir", help="models root `vdp download` fills (default: $VDP_MODELS_DIR, else "
                                              "models/video_diffusion_pack), its vbench/ folder, or a flat folder "
                                              "of the official checkpoint files")
    vbench.add_argument("--mode", choices=("standard", "custom"), default="standard", help="default: standard")
    vbench.add_argument("-o", "--output", required=True, help="folder for <name>_eval_results.json")
    vbench.add_argument("--name", default="results", help="results file prefix (default: results)")
    vbench.add_argument("--special-str", default="", help="suffix after the prompt in the file names (standard mode)")
    vbench.add_argument("--device", choices=DEVICES, help="default: cuda when available, else cpu")
    vbench.add_argument("--batch-size", type=int, default=16, help="frames per model call (default: 16)")
    vbench.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (default: the official numbers) or autocast to fp16/bf16 (for GPUs; scores move "
                             "by the half type's rounding)")
    vbench.add_argument("--no-resume", action="store_true", help="recompute dimensions already in the results file")
    backend = vbench.add_argument_group(
        "model backend", "object_class, multiple_objects, color, spatial_relationship (GRiT), scene (Tag2Text) and "
        "camera_motion (CoTracker, custom mode) run their model in another environment, or read its outputs")
    backend.add_argument("--detector-python", metavar="PYTHON",
                         help="Python of an environment with the official vbench (and detectron2 for GRiT); the "
                              "pack sends it the frames and scores what it detects")
    backend.add_argument("--detections", metavar="FILE",
                         help="a model-outputs JSON file (from --save-detections) used instead of the backend")
    backend.add_argument("--save-detections", metavar="FILE",
                         help="with --detector-python: add the backend's outputs to FILE, to rescore without it")
    backend.add_argument("--tracker-repo", metavar="DIR",
                         help="camera_motion: a local clone of facebookresearch/co-tracker for torch.hub")
    vbench.add_argument("--i2v-images", help="I2V dimensions: the I2V image suite folder (its data folder holding "
                                             "crop/<ratio>/<image>, or its crop folder); each video's input image "
                                             "is its prompt's in the I2V suite")
    vbench.add_argument("--i2v-resolution", choices=RESOLUTIONS, default="1-1",
                        help="I2V dimensions: the aspect ratio of the input images (default: 1-1, as the official code)")
    vbench.add_argument("--dreamsim-cache", help="i2v_background: the folder holding DreamSim's 'ensemble' weights "
                                                 "(needs the optional dreamsim package; nothing is downloaded)")
    vbench.set_defaults(run=functools.partial(_run_vbench, parser=vbench))

    totals = subcommands.add_parser(
        "totals",
        help="Quality / Semantic / Total (and I2V) scores of a results file",
        description="The official normalisation and weights applied to a <name>_eval_results.json file; a missing "
                    "dimension counts as 0, as in the official script.",
    )
    totals.add_argument("results", help="a <name>_eval_results.json file")
    totals.add_argument("--i2v", action="store_true", help="the VBench-I2V scores instead")
    totals.set_defaults(run=functools.partial(_run_totals, parser=totals))

    prompts = subcommands.add_parser(
        "prompts", help="the suite's prompts of a dimension", description="Print the suite's prompts of a dimension, "
        "one a line, or with --samples N the official file names of N samples each."
    )
    which = prompts.add_mutually_exclusive_group(required=True)
    which.add_argument("--dimension", help="a VBench dimension")
    which.add_argument("--list", action="store_true", help="list the dimensions and whether the pack computes them")
    prompts.add_argument("--samples", type=int, help="print the file names {prompt}-{i}.mp4 for i < SAMPLES")
    prompts.set_defaults(run=functools.partial(_run_prompts, parser=prompts))

    static = subcommands.add_parser(
        "static-filter",
        help="the official static filter: which videos temporal_flickering scores",
        description="Judge the {prompt}-{i}.mp4 files of the temporal_flickering prompts in VIDEOS with RAFT, as "
                    "the official `vbench static_filter` does (sorted, until 5 static ones a prompt), copy the static "
                    "ones to OUTPUT/filtered_videos/{prompt}-{i}.mp4 and write OUTPUT/filtered_static_video.json. "
                    "Generate 25 samples a prompt; then score OUTPUT/filtered_videos on temporal_flickering.",
    )
    static.add_argument("videos", help="folder of the generated videos")
    static.add_argument("-o", "--output", required=True, help="folder for filtered_videos/ and the summary")
    static.add_argument("--weights-dir", help="where raft-things.pth is (as for `vdp eval vbench`)")
    static.add_argument("--device", choices=DEVICES, help="default: cuda when available, else cpu")
    static.add_argument("--batch-size", type=int, default=8, help="frame pairs per RAFT call (default: 8)")
    static.set_defaults(run=functools.partial(_run_static_filter, parser=static))


def _fail(prog: str, error: Exception) -> int:
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 1


def _run_vbench(args, parser) -> int:
    from ..evaluation.vbench import registry
    from ..evaluation.vbench.i2v_suite import IMAGE_DIMENSIONS
    from ..evaluation.vbench.suite import NEEDS_AUXILIARY_INFO
    from ..weights.manifest import default_models_root

    try:
        dimensions = registry.check_dimensions(args.dimensions)
    except ValueError as error:
        parser.error(f"argument --dimensions: {error}")
    if args.mode == "custom":
        refused = [name for name in dimensions if name in NEEDS_AUXILIARY_INFO]
        if refused:
            parser.error(f"argument --mode: custom input cannot score {refused}, which need the suite's auxiliary info")
    if args.mode == "standard" and not os.path.isdir(args.videos):
        parser.error(f"argument videos: videos='{args.videos}' is not a folder")
    if args.mode == "custom" and not os.path.exists(args.videos):
        parser.error(f"argument videos: videos='{args.videos}' does not exist")
    _check_common(args, parser)
    if not args.name or os.sep in args.name or "/" in args.name or args.name in (".", ".."):
        parser.error(f"argument --name: name='{args.name}' must be a file name prefix without path separators")
    if os.path.abspath(args.output) == os.path.abspath(args.videos) and args.mode == "custom":
        parser.error("argument -o/--output: the output folder must not be the videos folder in custom mode")
    weights_dir = args.weights_dir if args.weights_dir is not None else str(default_models_root())
    image_dimensions = [name for name in dimensions if name in IMAGE_DIMENSIONS]
    if image_dimensions and args.i2v_images is None:
        parser.error(f"argument --i2v-images: {image_dimensions} need the I2V image suite folder")
    if args.i2v_images is not None and not os.path.isdir(args.i2v_images):
        parser.error(f"argument --i2v-images: i2v_images='{args.i2v_images}' is not a folder")
    options = {name: {"image_folder": args.i2v_images, "resolution": args.i2v_resolution} for name in image_dimensions}
    if "i2v_background" in options:
        if args.dreamsim_cache is None or not os.path.isdir(args.dreamsim_cache):
            parser.error(f"argument --dreamsim-cache: i2v_background needs DreamSim's weights folder, got "
                         f"{args.dreamsim_cache!r}")
        options["i2v_background"]["dreamsim_cache"] = args.dreamsim_cache

    dimension_options = {**_backend_options(args, parser, dimensions), **options}

    from ..evaluation.vbench import evaluate, i2v_totals, vbench_totals
    from ..evaluation.vbench.backend import BackendError
    from ..evaluation.vbench.i2v_suite import I2V_SUITE_DIMENSIONS
    from ..evaluation.vbench.results import results_path

    device = _device(args, parser)
    try:
        results = evaluate(
            args.videos, dimensions, weights_dir, mode=args.mode, name=args.name, output_dir=args.output,
            special_str=args.special_str, device=device, batch_size=args.batch_size, resume=not args.no_resume,
            progress=True, dimension_options=dimension_options, precision=args.precision,
        )
    except (ValueError, FileNotFoundError, KeyError, BackendError) as error:
        return _fail("vdp eval vbench", error)
    width = max(len(name) for name in results)
    for name, (aggregate, *_, per_video) in results.items():
        print(f"{name:<{width}}  {aggregate:.6f}  ({len(per_video)} videos)")
    totals = vbench_totals(results)
    print(f"wrote {results_path(args.output, args.name)}; with the dimensions not scored counted as 0: "
          f"quality {totals['quality_score']:.4%}, semantic {totals['semantic_score']:.4%}, "
          f"total {totals['total_score']:.4%}")
    if any(name in I2V_SUITE_DIMENSIONS for name in results):
        i2v = i2v_totals(results)
        print(f"VBench-I2V, the same way: i2v {i2v['i2v_score']:.4%}, quality {i2v['quality_score']:.4%}, "
              f"total {i2v['total_score']:.4%}")
    return 0


def _run_totals(args, parser) -> int:
    from ..evaluation.vbench import i2v_totals, vbench_totals
    from ..evaluation.vbench.results import read_results

    if not os.path.isfile(args.results):
        parser.error(f"argument results: results='{args.results}' is not a file")
    try:
        results = read_results(args.results)
        totals = i2v_totals(results) if args.i2v else vbench_totals(results)
    except (ValueError, KeyError) as error:
        return _fail("vdp eval totals", error)
    print(json.dumps({name: round(value, 6) for name, value in totals.items()}, indent=2))
    return 0


def _run_prompts(args, parser) -> int:
    from ..evaluation.vbench import registry, suite

    if args.list:
        available = set(registry.available_dimensions())
        for name in registry.known_dimensions():
            print(f"{name}\t{'computed' if name in available else 'not computed by this version'}")
        return 0
    dimensions = suite.suite_dimensions() + list(suite.I2V_SUITE_DIMENSIONS)
    if args.dimension not in dimensions:
        parser.error(f"argument --dimension: dimension='{args.dimension}' is not a VBench dimension; allowed: "
                     f"{', '.join(dimensions)}")
    if args.samples is not None and not 1 <= args.samples <= suite.FLICKER_SAMPLES_PER_PROMPT:
        parser.error(f"argument --samples: samples={args.samples} must be in 1..{suite.FLICKER_SAMPLES_PER_PROMPT}")
    names = suite.prompts(args.dimension)
    if args.samples is not None:
        names = [suite.video_name(prompt, index) for prompt in names for index in range(args.samples)]
    print("\n".join(names))
    return 0


def _run_static_filter(args, parser) -> int:
    from ..weights.manifest import default_models_root

    if not os.path.isdir(args.videos):
        parser.error(f"argument videos: videos='{args.videos}' is not a folder")
    _check_common(args, parser)
    if os.path.abspath(args.output) == os.path.abspath(args.videos):
        parser.error("argument -o/--output: the output folder must not be the videos folder")
    weights_dir = args.weights_dir if args.weights_dir is not None else str(default_models_root())

    from ..evaluation.vbench.static_filter import static_filter

    device = _device(args, parser)
    try:
        results = static_filter(args.videos, args.output, weights_dir, device=device, batch_size=args.batch_size,
                                progress=True)
    except (ValueError, FileNotFoundError, KeyError) as error:
        return _fail("vdp eval static-filter", error)
    judged = [entry for entry in results.values() if entry["static_count"]]
    short = sum(1 for entry in results.values() if entry["static_count"] < 5)
    print(f"{sum(e['static_count'] for e in judged)} static video(s) for {len(judged)} prompt(s) copied to "
          f"{os.path.join(args.output, 'filtered_videos')}; {short} of {len(results)} prompts have fewer than 5")
    return 0


def _backend_options(args, parser, dimensions) -> dict:
    """{dimension: options} of the backend dimensions from --detector-python / --detections / --save-detections /
    --tracker-repo, checked (torch-free)."""
    from ..evaluation.vbench.backend import BACKEND_DIMENSIONS, backend_options

    chosen = [name for name in dimensions if name in BACKEND_DIMENSIONS]
    given = {flag: value for flag, value in (("--detector-python", args.detector_python),
                                             ("--detections", args.detections),
                                             ("--save-detections", args.save_detections),
                                             ("--tracker-repo", args.tracker_repo)) if value is not None}
    if not chosen:
        if given:
            parser.error(f"argument {next(iter(given))}: only {', '.join(BACKEND_DIMENSIONS)} use a model backend")
        return {}
    if (args.detector_python is None) == (args.detections is None):
        parser.error(f"argument --detector-python: {', '.join(chosen)} need either --detector-python or --detections")
    if args.detector_python is not None and not os.access(args.detector_python, os.X_OK):
        parser.error(f"argument --detector-python: detector_python='{args.detector_python}' is not an executable file")
    if args.detections is not None and not os.path.isfile(args.detections):
        parser.error(f"argument --detections: detections='{args.detections}' is not a file")
    if args.save_detections is not None and args.detector_python is None:
        parser.error("argument --save-detections: needs --detector-python")
    return backend_options(chosen, backend_python=args.detector_python, model_outputs=args.detections,
                           save_model_outputs=args.save_detections, tracker_repo=args.tracker_repo)


def _check_common(args, parser) -> None:
    """The checks `vbench` and `static-filter` share (torch-free): batch size, weights folder, output folder."""
    if args.batch_size < 1:
        parser.error(f"argument --batch-size: batch_size={args.batch_size} must be at least 1")
    if args.weights_dir is not None and not os.path.isdir(args.weights_dir):
        parser.error(f"argument --weights-dir: weights_dir='{args.weights_dir}' is not a folder")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(f"argument -o/--output: output='{args.output}' exists and is not a folder")


def _device(args, parser) -> str:
    """--device, or cuda when torch finds it (else cpu); exit 2 for cuda without a CUDA device."""
    device = args.device
    if device != "cpu":
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif not torch.cuda.is_available():
            parser.error("argument --device: device='cuda' but torch finds no CUDA device")
    return device
