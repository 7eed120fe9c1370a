"""The `vdp das` and `vdp track-video` commands: Diffusion as Shader from an image and a depth map (or a tracking
video, or tracker output), and the tracking video alone.

Every argument is checked, and the input files are read and checked, before a model is loaded; a bad one exits
with status 2 and a one-line message naming the argument and its value.
"""

import functools
import math
import sys
from pathlib import Path

from ..diffusers_pipelines.das.defaults import EMBEDDED, EMBEDDED_DESCRIPTION, OFFICIAL
from ..video_io import SUPPORTED_EXTENSIONS
from ._common import (
    add_device_arguments,
    call_pipeline,
    check_at_least,
    check_finite,
    check_memory_before_loading,
    check_output,
    check_prompt_argument,
    check_seed,
    check_steps,
    device_and_dtype,
    embedded_notice,
    load_or_embedded,
    place_pipeline,
    run_settings,
    write_output,
)
from .upscale import add_upscale_argument, check_upscale_argument, load_upscaler, upscale_frames, upscaler_settings

DEPTH_FILE_EXTENSIONS = (".npy", ".npz", ".pt")
DEPTH_MEANINGS = ("depth", "disparity")
# the embedded DaS's scheduler (CogVideoX's DDIM: 1000 trained timesteps, no offset) plans at most this many steps
EMBEDDED_MAX_STEPS = 1000
# control.camera.MAX_CAMERA_VALUE (control imports torch, so it is repeated here; a test compares them)
MAX_OBJECT_DISTANCE = 1e6


def _settings_of(defaults) -> dict:
    """The command's settings (option names) from the pipeline's defaults (argument names)."""
    return {"height": defaults.height, "width": defaults.width, "frames": defaults.num_frames,
            "steps": defaults.num_inference_steps, "guidance": defaults.guidance_scale, "seed": defaults.seed}


def add_commands(commands) -> None:
    """Adds `das` and `track-video` to the `vdp` subcommands."""
    das = commands.add_parser(
        "das",
        help="Diffusion as Shader: image + prompt + camera/object motion (or a tracking video) -> video",
        description=(
            "Generate a video from an image and a prompt that follows a 3D tracking video: built from --depth and "
            "--camera (and optional object motion), read from --tracks, or given with --tracking-video. Without "
            f"--model it runs the embedded model, trained on the pack's shapes world ({EMBEDDED.height}x"
            f"{EMBEDDED.width}, {EMBEDDED.num_frames} frames): it moves one flat shape of its first frame along the "
            "tracking video."
        ),
    )
    das.add_argument("--prompt", required=True, help="what the video shows")
    das.add_argument("--model", help="folder of a DaS pipeline (the official EXCAI/Diffusion-As-Shader download), or "
                                     "ComfyUI's models folder / a models root holding das/Diffusion-As-Shader")
    das.add_argument("--tracking-video", help="a tracking video to use as it is (its frames and size must be the model's)")
    das.add_argument("--save-tracking", help="also write the tracking video built here to this file")
    das.add_argument("--steps", type=int, help=f"denoising steps (official: {OFFICIAL.num_inference_steps}; embedded: "
                                                f"{EMBEDDED.num_inference_steps})")
    das.add_argument("--seed", type=int, help=f"seed of the noise (official: {OFFICIAL.seed})")
    das.add_argument("--guidance", type=float, help=f"classifier-free guidance (official: {OFFICIAL.guidance_scale:g}; "
                                                    f"embedded: {EMBEDDED.guidance_scale:g}, none)")
    das.add_argument("--no-dynamic-cfg", action="store_true", help="constant guidance instead of the official ramp")
    das.add_argument("--negative-prompt", help="default: the official negative prompt")
    add_device_arguments(das)
    add_upscale_argument(das)
    _add_tracking_arguments(das, image_required=True)
    das.set_defaults(run=functools.partial(_das, parser=das))

    track = commands.add_parser(
        "track-video",
        help="render only the DaS tracking video of an image + depth + camera/object motion, or of tracker output",
        description="Render the 3D tracking video that `vdp das` would use, to preview or edit it.",
    )
    _add_tracking_arguments(track, image_required=False)
    track.add_argument("--frames", type=int, default=OFFICIAL.num_frames, help=f"frames (default: {OFFICIAL.num_frames})")
    track.add_argument("--height", type=int, default=OFFICIAL.height, help=f"frame height (default: {OFFICIAL.height})")
    track.add_argument("--width", type=int, default=OFFICIAL.width, help=f"frame width (default: {OFFICIAL.width})")
    track.set_defaults(run=functools.partial(_track_video, parser=track))


def _add_tracking_arguments(parser, image_required: bool) -> None:
    parser.add_argument("--image", required=image_required, help="the first frame (png, jpg, ...); resized to the video size")
    parser.add_argument("--depth", help=f"depth map of the image ({', '.join(DEPTH_FILE_EXTENSIONS)} array [H, W]); "
                                        "resized like the image")
    parser.add_argument("--depth-meaning", choices=DEPTH_MEANINGS, default="depth",
                        help="whether --depth holds depth (default) or disparity (larger is nearer)")
    parser.add_argument("--camera", default="", help="camera motion, e.g. 'rot y 30' or 'trans 0 0 0.5; spiral 1' "
                                                     "(+x camera left, +y up, +z back; 'rot y' > 0 pans left)")
    parser.add_argument("--fov", type=float, default=55.0, help="horizontal field of view of the image (default: 55)")
    parser.add_argument("--grid-size", type=int, help="track an N x N grid instead of every pixel")
    parser.add_argument("--object-mask", help="mask image of an object to move (white = object)")
    parser.add_argument("--object-motion", choices=("up", "down", "left", "right", "front", "back", "rot"))
    parser.add_argument("--object-distance", type=float, default=50.0,
                        help="pixels at the object's depth by the last frame, degrees for rot (default: 50)")
    parser.add_argument("--tracks", help="tracker output (.npz/.pt, SpatialTracker or CoTracker layout) instead of --depth")
    parser.add_argument("--point-size", type=int, default=None,
                        help="splat size (default: 2 for every-pixel tracks, 4 for a grid or --tracks)")
    parser.add_argument("-o", "--output", required=True, help=f"video file to write ({', '.join(SUPPORTED_EXTENSIONS)})")
    parser.add_argument("--fps", type=float, default=OFFICIAL.fps,
                        help=f"frame rate of the written video (default: {OFFICIAL.fps:g})")


def _existing_file(parser, option: str, value):
    if value is not None and not Path(value).is_file():
        parser.error(f"argument {option}: {option.lstrip('-').replace('-', '_')}='{value}' is not a file")


def _input_files(args) -> dict:
    """The files `vdp das` / `vdp track-video` read, by option; none of them may be an output."""
    return {"--image": args.image, "--depth": args.depth, "--object-mask": args.object_mask, "--tracks": args.tracks,
            "--tracking-video": getattr(args, "tracking_video", None)}


def _check_common(args, parser) -> None:
    check_output(parser, args.output, args.fps, inputs=_input_files(args))
    for option, value in (("--image", args.image), ("--depth", args.depth), ("--object-mask", args.object_mask),
                          ("--tracks", args.tracks)):
        _existing_file(parser, option, value)
    if args.depth is not None and Path(args.depth).suffix.lower() not in DEPTH_FILE_EXTENSIONS:
        parser.error(f"argument --depth: depth='{args.depth}' must be one of {DEPTH_FILE_EXTENSIONS}")
    if args.depth is not None and args.tracks is not None:
        parser.error("argument --tracks: give either --depth (with --image) or --tracks, not both")
    if args.depth is not None and args.image is None:
        parser.error("argument --image: --depth needs the image it belongs to")
    if (args.object_mask is None) != (args.object_motion is None):
        parser.error("argument --object-motion: --object-mask and --object-motion go together")
    if not math.isfinite(args.object_distance):
        parser.error(f"argument --object-distance: object_distance={args.object_distance} must be finite")
    if abs(args.object_distance) > MAX_OBJECT_DISTANCE:
        parser.error(f"argument --object-distance: object_distance={args.object_distance:g} must lie in "
                     f"-{MAX_OBJECT_DISTANCE:g}..{MAX_OBJECT_DISTANCE:g} (larger moves overflow float32 in the projection)")
    if not 0 < args.fov < 180:
        parser.error(f"argument --fov: fov={args.fov} must be in (0, 180)")
    for name in ("grid_size", "point_size"):
        if getattr(args, name) is not None:
            check_at_least(parser, name, getattr(args, name))


def _load_array(path: str):
    """The one real-valued array of a .npy / .npz / .pt file as float32; ValueError saying what is wrong with it."""
    import pickle
    import zipfile

    import numpy as np
    import torch

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".pt":
            value = torch.load(path, map_location="cpu", weights_only=True)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if len(archive.files) != 1:
                    raise ValueError(f"'{path}' holds {archive.files}; expected a single array")
                value = archive[archive.files[0]]
        else:
            value = np.load(path, allow_pickle=False)
    except pickle.UnpicklingError as error:
        raise ValueError(f"it holds Python objects that the safe loader refuses "
                         f"({str(error).strip().splitlines()[0]}); expected a tensor") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"it is truncated or corrupt, not a readable {suffix} file "
                         f"({str(error).strip().splitlines()[0]})") from None
    except ValueError as error:
        if "pickled" in str(error) or "Object arrays" in str(error):
            raise ValueError(f"it is not a {suffix} array of numbers (numpy finds pickled Python objects, which are "
                             f"refused)") from None
        raise
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu()
        kind_ok = array.is_floating_point() or (not array.is_complex() and array.dtype != torch.bool)
    elif isinstance(value, np.ndarray):
        array = value
        kind_ok = np.issubdtype(value.dtype, np.number) and not np.issubdtype(value.dtype, np.complexfloating)
    else:
        raise ValueError(f"it holds a {type(value).__name__}; expected a single array (tensor)")
    if not kind_ok:
        raise ValueError(f"it holds values of dtype {array.dtype}; expected real numbers (float or integer)")
    return torch.as_tensor(np.asarray(array), dtype=torch.float32)


def _check_depth_values(parser, depth, path: str, meaning: str) -> None:
    """Exit with status 2 when the map read from `path` has non-finite values (or, as depth, values <= 0), naming
    the first one at the file's own row and column."""
    import torch

    bad = ~torch.isfinite(depth) if meaning == "disparity" else ~torch.isfinite(depth) | (depth <= 0)
    if bool(bad.any()):
        row, column = (int(i) for i in bad.nonzero()[0])
        rule = "finite" if meaning == "disparity" else "finite and > 0 everywhere"
        parser.error(f"argument --depth: {meaning} must be {rule}; {int(bad.sum())} of {depth.numel()} pixels of "
                     f"'{path}' are not (first at row {row}, column {column}: {depth[row, column].item()})")


def _model_geometry(model: Path, parser) -> dict:
    """The frames and size a model folder's transformer runs at: those of its learned positional embeddings (the
    released model's are the official 49 x 480x720), else the official ones."""
    import json

    try:
        transformer = json.loads((model / "transformer" / "config.json").read_text(encoding="utf-8"))
        vae = json.loads((model / "vae" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        parser.error(f"argument --model: cannot read the transformer and vae configs of '{model}': {error}")
    if not transformer.get("use_learned_positional_embeddings"):
        return {}
    scale = 2 ** (len(vae["block_out_channels"]) - 1)
    return {"height": transformer["sample_height"] * scale, "width": transformer["sample_width"] * scale,
            "frames": transformer["sample_frames"]}


def build_tracking_video(args, parser, height: int, width: int, frames: int):
    """The tracking video [F, H, W, 3] from the arguments (exits with status 2 on bad input)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from ..control import (
        apply_object_motion,
        default_intrinsics,
        disparity_to_depth,
        load_tracks,
        render_tracking_video,
        tracks_from_depth,
    )
    from ..control.camera import camera_trajectory

    _check_sizes(parser, args, height, width, frames)
    try:
        trajectory = camera_trajectory(args.camera, frames)
    except ValueError as error:
        parser.error(f"argument --camera: {error}")
    if args.tracks is not None:
        try:
            tracks = load_tracks(args.tracks, height, width)
        except ValueError as error:
            parser.error(f"argument --tracks: {error}")
        if tracks.num_frames != frames:
            parser.error(f"argument --tracks: the file has {tracks.num_frames} frames; the video has {frames}")
    else:
        if args.depth is None:
            parser.error("argument --depth: give --depth (with --image) or --tracks to build the tracking video")
        image = _read_image(parser, "--image", args.image, "RGB").resize((width, height), Image.BICUBIC)
        try:
            depth = _load_array(args.depth)
        except (ValueError, OSError, RuntimeError) as error:
            parser.error(f"argument --depth: cannot read '{args.depth}': {error}")
        while depth.ndim > 2 and depth.shape[0] == 1:
            depth = depth[0]
        if depth.ndim != 2:
            parser.error(f"argument --depth: depth has shape {tuple(depth.shape)}; expected [height, width]")
        if depth.numel() == 0:
            parser.error(f"argument --depth: '{args.depth}' is empty (shape {tuple(depth.shape)}); expected a depth "
                         "map [height, width]")
        _check_depth_values(parser, depth, args.depth, args.depth_meaning)
        if args.depth_meaning == "disparity":
            try:
                depth = disparity_to_depth(depth)
            except ValueError as error:
                parser.error(f"argument --depth: {error}")
        depth = F.interpolate(depth[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        picture = torch.from_numpy(np.array(image)).float() / 255
        try:
            intrinsics = default_intrinsics(height, width, args.fov)
        except ValueError as error:
            parser.error(f"argument --fov: {error}")
        try:
            tracks = tracks_from_depth(picture, depth, intrinsics=intrinsics, camera=trajectory,
                                       grid_size=args.grid_size)
        except ValueError as error:
            parser.error(f"argument {_blamed_option(str(error))}: {error}")
    if args.object_mask is not None:
        mask = _read_image(parser, "--object-mask", args.object_mask, "L").resize((width, height), Image.NEAREST)
        try:
            tracks = apply_object_motion(tracks, torch.from_numpy(np.array(mask)),
                                         args.object_motion, args.object_distance)
        except ValueError as error:
            parser.error(f"argument --object-mask: {error}")
    point_size = args.point_size or (4 if args.tracks is not None or args.grid_size else 2)
    import warnings

    from ..control.render import BlankTrackingVideoWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BlankTrackingVideoWarning)
        video = render_tracking_video(tracks, point_size=point_size)
    for warning in caught:
        if issubclass(warning.category, BlankTrackingVideoWarning):
            print(f"{parser.prog}: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return video


def _blamed_option(message: str) -> str:
    """The option a tracks_from_depth error is about: the intrinsics come from --fov, the cameras from --camera."""
    for start, option in (("intrinsics", "--fov"), ("fov", "--fov"), ("world_to_camera", "--camera"),
                          ("camera", "--camera"), ("grid_size", "--grid-size"), ("image", "--image")):
        if message.startswith(start):
            return option
    return "--depth"


def _read_image(parser, option: str, path: str, mode: str):
    from ..video_io import read_image

    try:
        return read_image(path, mode)
    except (ValueError, OSError) as error:
        parser.error(f"argument {option}: cannot read '{path}': {error}")


def _check_sizes(parser, args, height: int, width: int, frames: int) -> None:
    """Exit with status 2 before anything is built when --point-size exceeds the frame or the tracks and the
    tracking video would not fit in memory (estimate against what the process may still allocate)."""
    if args.point_size is not None and args.point_size > max(height, width):
        parser.error(f"argument --point-size: point_size={args.point_size} must be at most {max(height, width)} (a "
                     f"splat that wide already covers the whole {height}x{width} frame)")
    from ..diffusers_pipelines.pipeline_utils import check_memory

    points = height * width if args.grid_size is None else args.grid_size**2
    parts = {"tracks": frames * points * (3 * 4 * 3 + 1), "tracking video": 2 * frames * height * width * 3 * 4}
    try:
        check_memory(f"frames={frames} at {height}x{width}", parts, "cpu", beyond="")
    except ValueError as error:
        parser.error(f"argument --frames/--height/--width: {error}".replace("; lower num_frames,", "; lower --frames,")
                     .replace(" height or width", " --height or --width"))


def _track_video(args, parser) -> int:
    _check_common(args, parser)
    for name in ("frames", "height", "width"):
        check_at_least(parser, name, getattr(args, name), 2 if name == "frames" else 1)
    video = build_tracking_video(args, parser, args.height, args.width, args.frames)
    write_output(args.output, video, args.fps, run_settings(args, "track-video"))
    return 0


def _das(args, parser) -> int:
    _check_common(args, parser)
    if args.save_tracking is not None:
        check_output(parser, args.save_tracking, args.fps, option="--save-tracking",
                     inputs={**_input_files(args), "-o/--output": args.output})
    if args.tracking_video is not None:
        _existing_file(parser, "--tracking-video", args.tracking_video)
        if args.depth is not None or args.tracks is not None:
            parser.error("argument --tracking-video: give a tracking video or --depth/--tracks to build one, not both")
    elif args.depth is None and args.tracks is None:
        parser.error("argument --depth: give --depth and --camera (or --tracks, or --tracking-video)")
    settings = _settings_of(EMBEDDED if args.model is None else OFFICIAL)
    for name in ("steps", "seed", "guidance"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    check_at_least(parser, "steps", settings["steps"])
    check_prompt_argument(parser, "--prompt", args.prompt)
    check_seed(parser, settings["seed"])
    check_finite(parser, "guidance", settings["guidance"])
    check_upscale_argument(args, parser, output=args.output)
    model = None
    if args.model is not None:
        from ..weights.manifest import find_local_folder, load_manifest

        try:
            model = find_local_folder(args.model, load_manifest().entry_for_class("DaSPipeline"))
        except FileNotFoundError as error:
            parser.error(f"argument --model: {error}")
        settings.update(_model_geometry(model, parser))
    check_steps(parser, settings["steps"], model, EMBEDDED_MAX_STEPS)
    image = _read_image(parser, "--image", args.image, "RGB")

    import torch

    from ..video_io import read_video

    height, width, frames = settings["height"], settings["width"], settings["frames"]
    if args.tracking_video is not None:
        try:
            video = torch.from_numpy(read_video(args.tracking_video).frames).float() / 255
        except (ValueError, OSError) as error:
            parser.error(f"argument --tracking-video: cannot read '{args.tracking_video}': {error}")
        if tuple(video.shape[:3]) != (frames, height, width):
            parser.error(
                f"argument --tracking-video: it has {video.shape[0]} frames of {video.shape[1]}x{video.shape[2]}; the "
                f"{'embedded ' if model is None else ''}model needs {frames} frames of {height}x{width} (HxW)"
            )
    else:
        video = build_tracking_video(args, parser, height, width, frames)
        if args.save_tracking is not None:
            write_output(args.save_tracking, video, args.fps)

    device, dtype = device_and_dtype(args, parser)
    upscaler = None if args.upscale is None else load_upscaler(parser, args.upscale, device)
    if model is None:
        embedded_notice(EMBEDDED_DESCRIPTION, "For real videos: vdp download Diffusion-As-Shader, then pass --model "
                                              "with its folder.")
    check_memory_before_loading(parser, model, device, dtype, frames, height, width)
    pipe = load_or_embedded(parser, model, _load_das, _build_das, dtype)
    place_pipeline(pipe, args, parser, device)
    output = call_pipeline(
        parser, pipe, {"prompt": "--prompt"},
        image=image,
        prompt=args.prompt,
        negative_prompt=OFFICIAL.negative_prompt if args.negative_prompt is None else args.negative_prompt,
        tracking_video=video,
        height=height,
        width=width,
        num_frames=frames,
        num_inference_steps=settings["steps"],
        guidance_scale=settings["guidance"],
        use_dynamic_cfg=not args.no_dynamic_cfg and (model is not None or EMBEDDED.use_dynamic_cfg),
        generator=torch.Generator("cpu").manual_seed(settings["seed"]),
        output_type="np",
    )
    frames = output.frames[0]
    if upscaler is not None:
        frames = upscale_frames(frames, upscaler, prog="vdp das")
        settings.update(upscaler_settings(upscaler))
    write_output(args.output, frames, args.fps,
                 run_settings(args, "das", **settings, model=None if model is None else str(model)))
    return 0


def _load_das(folder: str, dtype):
    from ..diffusers_pipelines.das import DaSPipeline

    return DaSPipeline.from_pretrained(folder, dtype=dtype)


def _build_das():
    from ..diffusers_pipelines.das.embedded import load_embedded_das_pipeline

    return load_embedded_das_pipeline()
