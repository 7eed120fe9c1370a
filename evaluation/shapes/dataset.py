"""Writes the shapes world as training data: videos, captions, DaS tracking videos, LGVI removal pairs, ground truth.

The folder is in the trainer's format (a ``metadata.jsonl`` of rows with ``file_name`` and ``caption``, paths relative
to the folder that holds the file)::

    DIR/metadata.jsonl           text-to-video and DaS rows: file_name (video), caption, tracking_video, image
                                 (first frame), ground_truth (.npz), referring_expressions, scene, seed
    DIR/videos/*.mp4, tracking_videos/*.mp4, first_frames/*.png, ground_truth/*.npz
    DIR/inpainting/metadata.jsonl  LGVI rows: file_name (the target: the video with one object removed), input_video,
                                 mask (the removed object's pixels, white on black), instruction ("remove the red
                                 circle"), referring_expression ("the red circle"), caption (of the target)
    DIR/inpainting/targets/*.mp4, inputs/*.mp4, masks/*.mp4
    DIR/preview.png              first, middle and last frame of the first videos, one row each
    DIR/world.json               the settings the folder was written with

Each ground-truth ``.npz`` holds ``labels`` [F, H, W] (0 background, 1 + k object k), ``masks`` [K, F, H, W] (full
silhouettes), ``centroids`` [K, F, 2], ``depth`` [F, H, W], ``object_depths`` [K, F], ``depth_order`` (nearest
first) and the 3-D point tracks ``tracks`` [F, N, 3] / ``visibility`` [F, N] that ``control.load_tracks`` reads.

Video ``i`` is drawn from ``numpy.random.default_rng([seed, i])``: the same seed gives the same frames whatever the
count. The folder is written under a temporary name next to ``DIR`` and renamed when complete.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ...video_io import _sigterm_raises_system_exit, write_video
from .world import (
    COLORS,
    MAX_OBJECTS,
    MOTIONS,
    ROTATION_SPREAD,
    SHAPES,
    START_SPREAD,
    TWO_TONE_PROBABILITY,
    Scene,
    article,
    caption,
    check_choices,
    check_draw_options,
    check_rotation_spread,
    check_start_spread,
    point_tracks,
    render_scene,
    sample_scene,
    tracking_video,
)
from .world import SIZE_RANGE as OBJECT_SIZE_RANGE

FORMAT_VERSION = 1
# the models' VAE (8x) and patch (2x) size: heights and widths are multiples of 16
SIZE_MULTIPLE = 16
SIZE_RANGE = (32, 512)
FRAMES_RANGE = (2, 128)
MAX_VIDEOS = 1_000_000
# x264 quality of the written videos (CRF 3): flat colours come back within a few levels
VIDEO_QUALITY = 95
PREVIEW_ROWS = 8


def check_settings(count: int, num_frames: int, height: int, width: int, seed: int, fps: float) -> None:
    """ValueError naming the setting unless every one is in range (torch-free; the CLI calls it before writing)."""
    for name, value in (("count", count), ("num_frames", num_frames), ("height", height), ("width", width),
                        ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}={value!r} must be an integer")
    if not 1 <= count <= MAX_VIDEOS:
        raise ValueError(f"count={count} must be in 1..{MAX_VIDEOS}")
    if not FRAMES_RANGE[0] <= num_frames <= FRAMES_RANGE[1]:
        raise ValueError(f"num_frames={num_frames} must be in {FRAMES_RANGE[0]}..{FRAMES_RANGE[1]} (a motion needs "
                         "two frames at least)")
    for name, value in (("height", height), ("width", width)):
        if not SIZE_RANGE[0] <= value <= SIZE_RANGE[1] or value % SIZE_MULTIPLE:
            raise ValueError(f"{name}={value} must be a multiple of {SIZE_MULTIPLE} in {SIZE_RANGE[0]}..{SIZE_RANGE[1]} "
                             "(the models' VAE and patch sizes)")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed={seed} must be in 0..2**63-1")
    if not (isinstance(fps, (int, float)) and 1 <= fps <= 60):
        raise ValueError(f"fps={fps!r} must be a number in 1..60")


def check_output_folder(output) -> Path:
    """The output folder as a Path; ValueError if it exists and is not empty, or its parent is missing."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ValueError(f"output='{output}' already exists and is not an empty folder; give a new or empty folder")
    parent = output.absolute().parent
    if not parent.is_dir():
        raise ValueError(f"output='{output}': its parent folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"output='{output}': its parent folder '{parent}' is not writable")
    return output


def referring_expression(scene: Scene, index: int) -> str:
    """The expression naming object ``index``: colours are distinct within a scene, so colour and shape suffice."""
    return f"the {scene.objects[index].name}"


def first_scene(num_frames: int, height: int, width: int, seed: int, colors: Sequence[str], shapes: Sequence[str],
                motions: Sequence[str], max_objects: int, object_size=OBJECT_SIZE_RANGE, two_tone=TWO_TONE_PROBABILITY,
                hold_out=(), start_spread=START_SPREAD, rotation_spread=ROTATION_SPREAD, **_) -> Scene:
    """Video 0's scene: drawing it checks, before anything is written, that scenes fit these settings."""
    return sample_scene(np.random.default_rng([seed, 0]), height, width, num_frames, colors, shapes, motions,
                        max_objects, object_size, two_tone, hold_out, start_spread, rotation_spread)


def write_shapes_dataset(
    output,
    count: int,
    num_frames: int = 9,
    height: int = 64,
    width: int = 64,
    seed: int = 0,
    fps: float = 8,
    colors: Sequence[str] = tuple(COLORS),
    shapes: Sequence[str] = SHAPES,
    motions: Sequence[str] = MOTIONS,
    max_objects: int = MAX_OBJECTS,
    progress: Optional[callable] = None,
    object_size: Tuple[float, float] = OBJECT_SIZE_RANGE,
    two_tone: float = TWO_TONE_PROBABILITY,
    hold_out: Sequence[Tuple[str, str]] = (),
    start_spread: float = START_SPREAD,
    rotation_spread: float = ROTATION_SPREAD,
) -> Path:
    """Writes ``count`` videos of the shapes world to the folder ``output`` (see the module docstring).

    Args:
        output (`str` or `os.PathLike`): a new or empty folder.
        count (`int`): number of videos, >= 1.
        num_frames (`int`, defaults to 9), height (`int`, defaults to 64), width (`int`, defaults to 64): geometry;
            sizes are multiples of 16.
        seed (`int`, defaults to 0): video ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
        fps (`float`, defaults to 8): frame rate stored in the videos.
        colors, shapes, motions (sequences of `str`): what may be drawn (the world's ``COLORS``, ``SHAPES``,
            ``MOTIONS``).
        max_objects (`int`, defaults to 3): 1 to 3 objects a video.
        progress (`callable`, *optional*): called with the number of videos written so far.
        object_size (pair of `float`), two_tone (`float`), hold_out (pairs of `str`): object radius range (fractions
            of the shorter side), probability of a two-tone background and (colour, shape) pairs never drawn; see
            :func:`~.world.sample_scene`.
        start_spread (`float`, defaults to 1): where objects start, as a centred fraction of the range they may
            start in (see :func:`~.world.sample_scene`).
        rotation_spread (`float`, defaults to 1): orientations at the first frame span this fraction of a full
            turn from upright: 1 any, 0 upright (see :func:`~.world.sample_scene`).

    Returns:
        `pathlib.Path`: the folder.
    """
    check_settings(count, num_frames, height, width, seed, fps)
    colors = check_choices("colors", colors, tuple(COLORS))
    shapes = check_choices("shapes", shapes, SHAPES)
    motions = check_choices("motions", motions, MOTIONS)
    object_size, two_tone, hold_out = check_draw_options(object_size, two_tone, hold_out, colors, shapes)
    start_spread = check_start_spread(start_spread)
    rotation_spread = check_rotation_spread(rotation_spread)
    output = check_output_folder(output)
    draw = dict(max_objects=max_objects, object_size=object_size, two_tone=two_tone, hold_out=hold_out,
                start_spread=start_spread, rotation_spread=rotation_spread)
    first_scene(num_frames=num_frames, height=height, width=width, seed=seed, colors=colors, shapes=shapes,
                motions=motions, **draw)

    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.absolute().parent))
    with _sigterm_raises_system_exit():  # SIGTERM unwinds through the cleanup below instead of killing the process
        try:
            _write(staging, count, num_frames, height, width, seed, fps, colors, shapes, motions, draw, progress)
            if output.exists():
                output.rmdir()
            os.replace(staging, output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return output


def _write(folder: Path, count, num_frames, height, width, seed, fps, colors, shapes, motions, draw, progress):
    for sub in ("videos", "tracking_videos", "first_frames", "ground_truth", "inpainting/targets",
                "inpainting/inputs", "inpainting/masks"):
        (folder / sub).mkdir(parents=True)
    preview = []
    with open(folder / "metadata.jsonl", "w") as rows, open(folder / "inpainting" / "metadata.jsonl", "w") as pairs:
        for index in range(count):
            rng = np.random.default_rng([seed, index])
            scene = sample_scene(rng, height, width, num_frames, colors, shapes, motions, **draw)
            removed = int(rng.integers(len(scene.objects)))
            name = f"{index:06d}"
            rendered = render_scene(scene)
            tracks, visibility = point_tracks(scene, rendered.labels)
            write_video(folder / "videos" / f"{name}.mp4", rendered.frames, fps, quality=VIDEO_QUALITY)
            write_video(folder / "tracking_videos" / f"{name}.mp4", tracking_video(scene, rendered.labels), fps,
                        quality=VIDEO_QUALITY)
            Image.fromarray(rendered.frames[0]).save(folder / "first_frames" / f"{name}.png")
            np.savez_compressed(
                folder / "ground_truth" / f"{name}.npz", labels=rendered.labels, masks=rendered.masks,
                centroids=rendered.centroids, depth=rendered.depth, object_depths=rendered.object_depths,
                depth_order=np.array(scene.depth_order, dtype=np.int64), tracks=tracks, visibility=visibility)
            expressions = [referring_expression(scene, k) for k in range(len(scene.objects))]
            rows.write(json.dumps({
                "file_name": f"videos/{name}.mp4", "caption": caption(scene),
                "tracking_video": f"tracking_videos/{name}.mp4", "image": f"first_frames/{name}.png",
                "ground_truth": f"ground_truth/{name}.npz", "referring_expressions": expressions,
                "scene": scene.to_dict(), "seed": [seed, index]}) + "\n")

            target_scene = scene.without(removed)
            target = render_scene(target_scene)
            mask = np.repeat((rendered.labels == removed + 1)[..., None] * np.uint8(255), 3, axis=-1)
            write_video(folder / "inpainting" / "targets" / f"{name}.mp4", target.frames, fps, quality=VIDEO_QUALITY)
            write_video(folder / "inpainting" / "inputs" / f"{name}.mp4", rendered.frames, fps, quality=VIDEO_QUALITY)
            write_video(folder / "inpainting" / "masks" / f"{name}.mp4", mask, fps, quality=VIDEO_QUALITY)
            pairs.write(json.dumps({
                "file_name": f"targets/{name}.mp4", "input_video": f"inputs/{name}.mp4", "mask": f"masks/{name}.mp4",
                "instruction": f"remove {expressions[removed]}", "referring_expression": expressions[removed],
                "caption": _target_caption(target_scene), "removed_object": removed, "source": f"videos/{name}.mp4",
                "seed": [seed, index]}) + "\n")
            if index < PREVIEW_ROWS:
                preview.append(rendered.frames[[0, num_frames // 2, num_frames - 1]])
            if progress is not None:
                progress(index + 1)
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in preview], axis=0)
    Image.fromarray(grid).save(folder / "preview.png")
    settings = {"format_version": FORMAT_VERSION, "count": count, "num_frames": num_frames, "height": height,
                "width": width, "seed": seed, "fps": fps, "colors": list(colors), "shapes": list(shapes),
                "motions": list(motions), "max_objects": draw["max_objects"],
                "object_size": list(draw["object_size"]), "two_tone": draw["two_tone"],
                "hold_out": sorted(f"{color}-{shape}" for color, shape in draw["hold_out"]),
                "start_spread": draw["start_spread"], "rotation_spread": draw["rotation_spread"]}
    (folder / "world.json").write_text(json.dumps(settings, indent=2) + "\n")


def _target_caption(scene: Scene) -> str:
    """The caption of an inpainting target; a scene left without objects is described by its background alone."""
    if scene.objects:
        return caption(scene)
    return f"{article(scene.background[0])} {' and '.join(scene.background)} background"
