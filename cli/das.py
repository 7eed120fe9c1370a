"""The `vdp das` and `vdp track-video` commands: Diffusion as Shader from an image and a depth map (or a tracking
video, or tracker output), and the tracking video alone.

Every argument is checked, and the input files are read and checked, before a model is loaded; a bad one exits
with status 2 and a one-line message naming the argument and its value.
"""

import functools
import math
from pathlib import Path

from ..diffusers_pipelines.das.defaults import OFFICIAL, SMOKE_TEST
from ..video_io import SUPPORTED_EXTENSIONS
from ._common import (
    add_device_arguments,
    check_at_least,
    check_finite,
    check_output,
    check_seed,
    device_and_dtype,
    load_or_embedded,
    place_pipeline,
    run_settings,
    smoke_test_notice,
    write_output,
)
from .upscale import add_upscale_argument, check_upscale_argument, load_upscaler, upscale_frames, upscaler_settings

DEPTH_FILE_EXTENSIONS = (".npy", ".npz", ".pt")
DEPTH_MEANINGS = ("depth", "disparity")


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
            f"--model it runs the embedded random-weight smoke-test model ({SMOKE_TEST.height}x{SMOKE_TEST.width}, "
            f"{SMOKE_TEST.num_frames} frames), whose output is noise."
        ),
    )
    das.add_argument("--prompt", required=True, help="what the video shows")
    das.add_argument("--model", help="folder of a DaS pipeline (the official EXCAI/Diffusion-As-Shader download), or "
                                     "ComfyUI's models folder / a models root holding das/Diffusion-As-Shader")
    das.add_argument("--tracking-video", help="a tracking video to use as it is (its frames and size must be the model's)")
    das.add_argument("--save-tracking", help="also write the tracking video built here to this file")
    das.add_argument("--steps", type=int, help=f"denoising steps (official: {OFFICIAL.num_inference_steps}; smoke "
                                                f"test: {SMOKE_TEST.num_inference_steps})")
    das.add_argument("--seed", type=int, help=f"seed of the noise (official: {OFFICIAL.seed})")
    das.add_argument("--guidance", type=float, help=f"classifier-free guidance (official: {OFFICIAL.guidance_scale:g})")
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
    if not 0 < args.fov < 180:
        parser.error(f"argument --fov: fov={args.fov} must be in (0, 180)")
    for name in ("grid_size", "point_size"):
        if getattr(args, name) is not None:
            check_at_least(parser, name, getattr(args, name))


def _load_array(path: str):
    import numpy as np
    import torch

    suffix = Path(path).suffix.lower()
    if suffix == ".pt":
        value = torch.load(path, map_location="cpu", weights_only=True)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if len(archive.files) != 1:
                raise ValueError(f"'{path}' holds {archive.files}; expected a single array")
            value = archive[archive.files[0]]
    else:
        value = np.load(path, allow_pickle=False)
    return torch.as_tensor(np.asarray(value), dtype=torch.float32)


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
        image = Image.open(args.image).convert("RGB").resize((width, height), Image.BICUBIC)
        try:
            depth = _load_array(args.depth)
        except (ValueError, OSError, RuntimeError) as error:
            parser.error(f"argument --depth: cannot read '{args.depth}': {error}")
        depth = depth.squeeze()
        if depth.ndim != 2:
            parser.error(f"argument --depth: depth has shape {tuple(depth.shape)}; expected [height, width]")
        if args.depth_meaning == "disparity":
            try:
                depth = disparity_to_depth(depth)
            except ValueError as error:
                parser.error(f"argument --depth: {error}")
        depth = F.interpolate(depth[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        picture = torch.from_numpy(np.array(image)).float() / 255
        try:
            tracks = tracks_from_depth(picture, depth, intrinsics=default_intrinsics(height, width, args.fov),
                                       camera=trajectory, grid_size=args.grid_size)
        except ValueError as error:
            parser.error(f"argument --depth: {error}")
    if args.object_mask is not None:
        mask = Image.open(args.object_mask).convert("L").resize((width, height), Image.NEAREST)
        try:
            tracks = apply_object_motion(tracks, torch.from_numpy(np.array(mask)),
                                         args.object_motion, args.object_distance)
        except ValueError as error:
            parser.error(f"argument --object-mask: {error}")
    point_size = args.point_size or (4 if args.tracks is not None or args.grid_size else 2)
    return render_tracking_video(tracks, point_size=point_size)


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
    settings = _settings_of(SMOKE_TEST if args.model is None else OFFICIAL)
    for name in ("steps", "seed", "guidance"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    check_at_least(parser, "steps", settings["steps"])
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

    import torch
    from PIL import Image

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
                f"{'smoke-test ' if model is None else ''}model needs {frames} frames of {height}x{width} (HxW)"
            )
    else:
        video = build_tracking_video(args, parser, height, width, frames)
        if args.save_tracking is not None:
            write_output(args.save_tracking, video, args.fps)

    device, dtype = device_and_dtype(args, parser)
    upscaler = None if args.upscale is None else load_upscaler(parser, args.upscale, device)
    if model is None:
        smoke_test_notice(f"a tiny DaS ({SMOKE_TEST.height}x{SMOKE_TEST.width}, {SMOKE_TEST.num_frames} frames)",
                          "Its output is noise, not a real video. For real videos: vdp download Diffusion-As-Shader, "
                          "then pass --model with its folder.")
    pipe = load_or_embedded(parser, model, _load_das, _build_das, dtype)
    place_pipeline(pipe, args, parser, device)
    image = Image.open(args.image).convert("RGB")
    output = pipe(
        image=image,
        prompt=args.prompt,
        negative_prompt=OFFICIAL.negative_prompt if args.negative_prompt is None else args.negative_prompt,
        tracking_video=video,
        height=height,
        width=width,
        num_frames=frames,
        num_inference_steps=settings["steps"],
        guidance_scale=settings["guidance"],
        use_dynamic_cfg=not args.no_dynamic_cfg,
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

    return DaSPipeline.from_pretrained(folder, torch_dtype=dtype)


def _build_das():
    from ..diffusers_pipelines.das.tiny import build_tiny_das_pipeline

    return build_tiny_das_pipeline()
