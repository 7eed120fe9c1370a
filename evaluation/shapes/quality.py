"""The shapes world's quality bed: scores a generated video against its prompt by the world's semantics, no network.

The detector is deterministic and knows the world: every pixel within ``COLOR_TOLERANCE`` of one of the named colours
is given that colour, the background is the colour of the frame's border (top and bottom half apart, for two-tone
backgrounds), and every other colour whose pixels survive a 3x3 opening and cover at least ``MIN_AREA_FRACTION`` of
the frame in half the frames is an object. From those masks:

- prompt following: colour (the named object's colour is there), shape (template IoU against the world's outlines at
  the mask's centroid and area, over rotations), motion (centroid displacement in one of eight directions, else the
  area ratio for growing / shrinking, else the centroid-aligned IoU of the first and last masks for rotating),
  background, object count and the spatial relation of the first two objects at frame 0;
- temporal consistency: centroid-aligned mask IoU and change of the object's mean colour between consecutive frames;
- control accuracy (DaS): distance between each generated object's centroid and the centroid of its points in the
  tracking video (segmented by the tracking video's depth colour, matched to the object by overlap at frame 0);
- inpainting accuracy (LGVI): PSNR and SSIM of the edited region against the true background and of the untouched
  region against the input (SSIM there only where its 7x7 window does not reach the edited region).
"""

import dataclasses
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .world import (
    COLORS,
    DIRECTIONS,
    GROW_FACTOR,
    OUTLINES,
    ROTATION_DEGREES,
    SHAPES,
    SHRINK_FACTOR,
    TRAVEL_FRACTION,
    ParsedCaption,
    inside_outline,
    parse_caption,
    relation_between,
)

# a pixel farther than this (RGB distance) from every named colour has none
COLOR_TOLERANCE = 70.0
# an object covers at least this fraction of the frame (a shrunk object of the world covers about 0.6%)
MIN_AREA_FRACTION = 0.002
MIN_AREA_PIXELS = 6
BORDER_PIXELS = 2
# a move is detected when the centroid travels at least this fraction of the world's travel
MOVE_DETECTION_FRACTION = 0.5
# area ratios (last / first) geometrically halfway between still (1) and the world's growing / shrinking (the
# square of the size factor): the size factor itself
GROW_RATIO = GROW_FACTOR
SHRINK_RATIO = SHRINK_FACTOR
# a still-sized, unmoved object whose first and last masks overlap less than this (aligned) has rotated
ROTATION_IOU = 0.8
SHAPE_ANGLE_STEPS = 12
# the tracking video's blue channel: above this the point belongs to an object (the background's blue is 0)
TRACKING_FOREGROUND_BLUE = 0.06
# blue levels of different objects are at least this far apart (the world's depths: about 0.25)
TRACKING_LEVEL_GAP = 0.06
# a depth level of the tracking video holds at least this fraction of frame 0 (an object of the world: 2% or more)
TRACKING_LEVEL_FRACTION = 0.006
SSIM_WINDOW = 7
PSNR_CAP_DB = 100.0

_PALETTE_NAMES = tuple(COLORS)
_PALETTE = np.array([COLORS[name] for name in _PALETTE_NAMES], dtype=np.float32)
_MOTION_CLASSES = len(DIRECTIONS) + 3


def check_video(frames, name: str = "video") -> np.ndarray:
    """``frames`` as a uint8 array [F, H, W, 3] (F >= 2, H and W >= 16); a float video in 0..1 is converted."""
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"{name} has shape {tuple(array.shape)}; expected [frames, height, width, 3] (channels last)")
    if array.shape[0] < 2 or min(array.shape[1:3]) < 16:
        raise ValueError(f"{name} has shape {tuple(array.shape)}; the bed needs at least 2 frames of 16x16 pixels")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"{name} is a float video with values outside 0..1 (or not finite)")
        return np.round(array * 255).astype(np.uint8)
    raise ValueError(f"{name} has dtype {array.dtype}; expected uint8 (0..255) or float (0..1)")


def color_labels(frames: np.ndarray) -> np.ndarray:
    """Index into ``COLORS`` of each pixel's named colour, -1 where none is within ``COLOR_TOLERANCE``: [F, H, W]."""
    pixels = frames.astype(np.float32)
    distance = np.linalg.norm(pixels[..., None, :] - _PALETTE, axis=-1)
    nearest = distance.argmin(axis=-1)
    return np.where(distance.min(axis=-1) <= COLOR_TOLERANCE, nearest, -1)


def _shifted_and(mask: np.ndarray, reducer) -> np.ndarray:
    """3x3 erosion (``np.logical_and``) or dilation (``np.logical_or``) of [F, H, W] masks, the border padded off."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)), constant_values=reducer is np.logical_and)
    height, width = mask.shape[1:]
    result = padded[:, 1:1 + height, 1:1 + width].copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            result = reducer(result, padded[:, dy:dy + height, dx:dx + width])
    return result


def opened(mask: np.ndarray) -> np.ndarray:
    """Morphological opening (3x3): removes the one-pixel rims a blurred edge leaves in other colours."""
    return _shifted_and(_shifted_and(mask, np.logical_and), np.logical_or)


def detect_background(labels: np.ndarray) -> Tuple[str, ...]:
    """The background colours: the most common named colour of the top and of the bottom half of the border."""
    height = labels.shape[1]
    border = np.zeros(labels.shape[1:], dtype=bool)
    border[:BORDER_PIXELS] = border[-BORDER_PIXELS:] = True
    border[:, :BORDER_PIXELS] = border[:, -BORDER_PIXELS:] = True
    halves = []
    for rows in (slice(0, height // 2), slice(height // 2, height)):
        values = labels[:, rows][:, border[rows]]
        values = values[values >= 0]
        halves.append(_PALETTE_NAMES[np.bincount(values, minlength=len(_PALETTE_NAMES)).argmax()] if values.size
                      else None)
    top, bottom = halves
    if top is None or bottom is None:
        return tuple(name for name in halves if name is not None)
    return (top,) if top == bottom else (top, bottom)


@dataclasses.dataclass(frozen=True)
class DetectedObject:
    """One detected object: its colour, masks [F, H, W], areas [F], centroids [F, 2] (NaN where absent)."""

    color: str
    masks: np.ndarray
    areas: np.ndarray
    centroids: np.ndarray
    #: the colour's pixels within two pixels of ``masks`` (before the opening: thin tips of stars kept), for shapes
    outline_masks: Optional[np.ndarray] = None

    @property
    def present(self) -> np.ndarray:
        return self.areas >= _min_area(self.masks.shape[1:])


def _min_area(size: Tuple[int, int]) -> float:
    return max(MIN_AREA_PIXELS, MIN_AREA_FRACTION * size[0] * size[1])


def _centroids(masks: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    areas = masks.sum(axis=(1, 2)).astype(np.float64)
    ys, xs = np.mgrid[0:masks.shape[1], 0:masks.shape[2]] + 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = np.stack([(masks * xs).sum(axis=(1, 2)) / areas, (masks * ys).sum(axis=(1, 2)) / areas], axis=1)
    centres[areas == 0] = np.nan
    return areas, centres


@dataclasses.dataclass(frozen=True)
class Detection:
    """What the detector sees in a video: the background colours and the objects of the other colours."""

    background: Tuple[str, ...]
    objects: Dict[str, DetectedObject]


def detect(frames) -> Detection:
    """Background and objects of a video [F, H, W, 3] (see the module docstring)."""
    frames = check_video(frames)
    labels = color_labels(frames)
    background = detect_background(labels)
    objects = {}
    minimum = _min_area(frames.shape[1:3])
    for index, name in enumerate(_PALETTE_NAMES):
        if name in background:
            continue
        raw = labels == index
        masks = opened(raw)
        areas, centres = _centroids(masks)
        if np.count_nonzero(areas >= minimum) * 2 >= len(areas):
            near = _shifted_and(_shifted_and(masks, np.logical_or), np.logical_or)
            objects[name] = DetectedObject(name, masks, areas, centres, raw & near)
    return Detection(background, objects)


def _unit_area(shape: str) -> float:
    if shape == "circle":
        return math.pi
    x, y = OUTLINES[shape][:, 0], OUTLINES[shape][:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


_UNIT_AREAS = {shape: _unit_area(shape) for shape in SHAPES}


def shape_scores(mask: np.ndarray) -> Dict[str, float]:
    """Best IoU of the mask [H, W] with each shape's outline of the same area at its centroid, over rotations."""
    area, centre = _centroids(mask[None])
    area, (cx, cy) = float(area[0]), centre[0]
    if area == 0:
        return {shape: 0.0 for shape in SHAPES}
    scores = {}
    largest = math.sqrt(area / min(_UNIT_AREAS.values())) * 1.5
    top, bottom = max(0, int(cy - largest) - 1), min(mask.shape[0], int(cy + largest) + 2)
    left, right = max(0, int(cx - largest) - 1), min(mask.shape[1], int(cx + largest) + 2)
    window = mask[top:bottom, left:right]
    outside = area - window.sum()  # pixels of the mask beyond the window count against every template
    ys, xs = np.mgrid[top:bottom, left:right] + 0.5
    for shape in SHAPES:
        radius = math.sqrt(area / _UNIT_AREAS[shape])
        period = 2.0 * ROTATION_DEGREES.get(shape, 0.0) if shape != "circle" else 0.0
        angles = np.arange(SHAPE_ANGLE_STEPS) * period / SHAPE_ANGLE_STEPS if period else [0.0]
        best = 0.0
        for angle in angles:
            theta = math.radians(angle)
            dx, dy = xs - cx, ys - cy
            lx = (math.cos(theta) * dx + math.sin(theta) * dy) / radius
            ly = (-math.sin(theta) * dx + math.cos(theta) * dy) / radius
            template = inside_outline(shape, lx, ly)
            union = np.count_nonzero(template | window) + outside
            best = max(best, np.count_nonzero(template & window) / union if union else 0.0)
        scores[shape] = best
    return scores


def classify_shape(item: DetectedObject, frames_used: int = 3) -> str:
    """The shape whose template fits best, voted over the ``frames_used`` frames where the object is largest."""
    order = np.argsort(-item.areas, kind="stable")[:frames_used]
    masks = item.masks if item.outline_masks is None else item.outline_masks
    totals = {shape: 0.0 for shape in SHAPES}
    for frame in order:
        for shape, score in shape_scores(masks[frame]).items():
            totals[shape] += score
    return max(SHAPES, key=lambda shape: totals[shape])


def _aligned_iou(first: np.ndarray, second: np.ndarray, shift: np.ndarray) -> float:
    """IoU of ``first`` moved by ``shift`` (x, y, rounded to pixels) with ``second``."""
    moved = np.roll(first, (int(round(shift[1])), int(round(shift[0]))), axis=(0, 1))
    union = np.count_nonzero(moved | second)
    return np.count_nonzero(moved & second) / union if union else 0.0


def classify_motion(item: DetectedObject) -> Optional[str]:
    """One of ``world.MOTIONS`` from the first and last frames where the object is seen, or None (no motion seen)."""
    present = np.flatnonzero(item.present)
    if present.size < 2:
        return None
    first, last = present[0], present[-1]
    shift = item.centroids[last] - item.centroids[first]
    height, width = item.masks.shape[1:]
    if np.linalg.norm(shift) >= MOVE_DETECTION_FRACTION * TRAVEL_FRACTION * min(height, width):
        angle = math.degrees(math.atan2(shift[1], shift[0]))
        return min(DIRECTIONS, key=lambda name: abs((math.degrees(math.atan2(DIRECTIONS[name][1],
                                                                              DIRECTIONS[name][0])) - angle + 180)
                                                     % 360 - 180))
    ratio = item.areas[last] / item.areas[first]
    if ratio >= GROW_RATIO:
        return "grow"
    if ratio <= SHRINK_RATIO:
        return "shrink"
    masks = item.masks if item.outline_masks is None else item.outline_masks
    if _aligned_iou(masks[first], masks[last], shift) < ROTATION_IOU:
        return "rotate"
    return None


def temporal_consistency(item: DetectedObject, frames: np.ndarray) -> Tuple[float, float]:
    """(mean centroid-aligned IoU of consecutive masks, mean change of the object's mean colour / 255)."""
    ious, drifts = [], []
    means = [frames[index][item.masks[index]].mean(axis=0) if item.present[index] else None
             for index in range(len(frames))]
    for index in range(len(frames) - 1):
        if not (item.present[index] and item.present[index + 1]):
            ious.append(0.0)
            continue
        shift = item.centroids[index + 1] - item.centroids[index]
        ious.append(_aligned_iou(item.masks[index], item.masks[index + 1], shift))
        drifts.append(float(np.abs(means[index + 1] - means[index]).mean()) / 255)
    return float(np.mean(ious)), float(np.mean(drifts)) if drifts else 1.0


@dataclasses.dataclass(frozen=True)
class PromptScores:
    """Prompt following of one video: fractions of the prompt's objects with the right colour, shape and motion;
    background, count and relation as 1 or 0 (relation None for a one-object prompt); temporal consistency."""

    color: float
    shape: float
    motion: float
    background: float
    count: float
    relation: Optional[float]
    temporal_iou: float
    color_drift: float
    detected: Dict[str, Tuple[Optional[str], Optional[str]]]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_prompt(frames, prompt) -> PromptScores:
    """Scores a video [F, H, W, 3] (uint8, or float in 0..1) against a prompt of the shapes grammar.

    Raises:
        ValueError: a prompt outside the grammar (naming the unparsed words) or a video of the wrong shape.
    """
    parsed = prompt if isinstance(prompt, ParsedCaption) else parse_caption(prompt)
    frames = check_video(frames)
    detection = detect(frames)
    colors, shapes, motions, ious, drifts, detected = [], [], [], [], [], {}
    for color, shape, motion in parsed.objects:
        item = detection.objects.get(color)
        if item is None:
            colors.append(0.0)
            shapes.append(0.0)
            motions.append(0.0)
            ious.append(0.0)
            drifts.append(1.0)
            continue
        found_shape, found_motion = classify_shape(item), classify_motion(item)
        detected[color] = (found_shape, found_motion)
        colors.append(1.0)
        shapes.append(float(found_shape == shape))
        motions.append(float(found_motion == motion))
        iou, drift = temporal_consistency(item, frames)
        ious.append(iou)
        drifts.append(drift)
    relation = None
    if parsed.relation is not None:
        first, second = (detection.objects.get(color) for color, _, _ in parsed.objects[:2])
        relation = 0.0
        if first is not None and second is not None:
            both = np.flatnonzero(first.present & second.present)
            if both.size:
                relation = float(relation_between(first.centroids[both[0]], second.centroids[both[0]])
                                 == parsed.relation)
    return PromptScores(
        color=float(np.mean(colors)), shape=float(np.mean(shapes)), motion=float(np.mean(motions)),
        background=float(detection.background == parsed.background),
        count=float(len(detection.objects) == len(parsed.objects)), relation=relation,
        temporal_iou=float(np.mean(ious)), color_drift=float(np.mean(drifts)), detected=detected)


def chance_levels() -> Dict[str, float]:
    """Accuracy of a uniform guess per object: colour among the named colours, shape, motion."""
    return {"color": 1 / len(COLORS), "shape": 1 / len(SHAPES), "motion": 1 / _MOTION_CLASSES}


def summarise(scores: Sequence[PromptScores]) -> Dict[str, float]:
    """Mean of every score over the videos (relation over the videos whose prompt has one)."""
    if not scores:
        raise ValueError("scores is empty; give the scores of at least one video")
    summary = {}
    for field in ("color", "shape", "motion", "background", "count", "relation", "temporal_iou", "color_drift"):
        values = [getattr(item, field) for item in scores if getattr(item, field) is not None]
        summary[field] = float(np.mean(values)) if values else None
    return summary


def tracking_regions(tracking) -> np.ndarray:
    """Object index (0, 1, ...) of each pixel of a tracking video, -1 for the background: [F, H, W].

    Objects are the depth levels of the blue channel at frame 0 (each object of the world has its own depth), so a
    point keeps its object through the video whatever its screen position; pixels between levels (a codec's smear
    at edges) belong to none.
    """
    tracking = check_video(tracking, "tracking_video")
    blue = tracking[..., 2].astype(np.float64) / 255
    foreground = blue > TRACKING_FOREGROUND_BLUE
    values = blue[0][foreground[0]]
    # a lossy codec smears the levels into each other at edges: take the levels as the modes of frame 0's blue
    # values (the densest value, the median of what lies within the tolerance around it, removed, and again) while a
    # mode holds an object's worth of pixels, and give a pixel to a level only when it lies within the tolerance
    minimum = max(MIN_AREA_PIXELS, TRACKING_LEVEL_FRACTION * tracking.shape[1] * tracking.shape[2])
    levels = []
    while values.size >= minimum:
        counts = np.array([np.count_nonzero(np.abs(values - value) <= TRACKING_LEVEL_GAP / 2) for value in values])
        around = np.abs(values - values[counts.argmax()]) <= TRACKING_LEVEL_GAP
        if counts.max() < minimum:
            break
        levels.append(float(np.median(values[around])))
        values = values[~around]
    if not levels:
        return np.full(blue.shape, -1)
    levels = np.sort(np.array(levels))
    distance = np.abs(blue[..., None] - levels)
    nearest = distance.argmin(axis=-1)
    return np.where(foreground & (distance.min(axis=-1) <= TRACKING_LEVEL_GAP), nearest, -1)


@dataclasses.dataclass(frozen=True)
class ControlScores:
    """DaS control accuracy: mean distance (pixels, and as a fraction of the shorter side) between each prompt
    object's centroid in the video and its points' centroid in the tracking video; ``matched`` the fraction of the
    prompt's objects found in both."""

    centroid_error_pixels: float
    centroid_error_fraction: float
    matched: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_control(frames, tracking, prompt) -> ControlScores:
    """How closely the video's objects follow the tracking video (both [F, H, W, 3], the same shape)."""
    parsed = prompt if isinstance(prompt, ParsedCaption) else parse_caption(prompt)
    frames = check_video(frames)
    tracking = check_video(tracking, "tracking_video")
    if tracking.shape != frames.shape:
        raise ValueError(f"tracking_video has shape {tuple(tracking.shape)} and video {tuple(frames.shape)}; "
                         "they must match")
    regions = tracking_regions(tracking)
    detection = detect(frames)
    errors, matched = [], 0
    short_side = min(frames.shape[1:3])
    for color, _, _ in parsed.objects:
        item = detection.objects.get(color)
        if item is None:
            continue
        first = np.flatnonzero(item.present)[0]
        overlaps = [np.count_nonzero(item.masks[first] & (regions[first] == level))
                    for level in range(int(regions.max()) + 1)]
        if not overlaps or max(overlaps) == 0:
            continue
        _, track_centres = _centroids(regions == int(np.argmax(overlaps)))
        distance = np.linalg.norm(item.centroids - track_centres, axis=1)
        distance = distance[item.present & np.isfinite(distance)]
        if distance.size:
            matched += 1
            errors.append(float(distance.mean()))
    if not errors:
        return ControlScores(float("inf"), float("inf"), 0.0)
    error = float(np.mean(errors))
    return ControlScores(error, error / short_side, matched / len(parsed.objects))


def _box_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size x size window around each pixel (edges reflected), [..., H, W]."""
    half = size // 2
    padded = np.pad(image, [(0, 0)] * (image.ndim - 2) + [(half, half), (half, half)], mode="reflect")
    summed = padded.cumsum(axis=-1).cumsum(axis=-2)
    summed = np.pad(summed, [(0, 0)] * (image.ndim - 2) + [(1, 0), (1, 0)])
    height, width = image.shape[-2:]
    total = (summed[..., size:size + height, size:size + width] - summed[..., :height, size:size + width]
             - summed[..., size:size + height, :width] + summed[..., :height, :width])
    return total / (size * size)


def ssim_map(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """SSIM of each pixel's 7x7 window (uniform, on the mean of the channels, 0..255 constants): [F, H, W]."""
    x = first.astype(np.float64).mean(axis=-1)
    y = second.astype(np.float64).mean(axis=-1)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box_mean(x, SSIM_WINDOW), _box_mean(y, SSIM_WINDOW)
    vx = _box_mean(x * x, SSIM_WINDOW) - mx * mx
    vy = _box_mean(y * y, SSIM_WINDOW) - my * my
    cov = _box_mean(x * y, SSIM_WINDOW) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def _psnr(first: np.ndarray, second: np.ndarray, region: np.ndarray) -> Optional[float]:
    if not region.any():
        return None
    error = ((first.astype(np.float64) - second.astype(np.float64)) ** 2)[region].mean()
    return PSNR_CAP_DB if error == 0 else min(PSNR_CAP_DB, 10 * math.log10(255.0 ** 2 / error))


@dataclasses.dataclass(frozen=True)
class InpaintingScores:
    """LGVI accuracy: PSNR (dB, capped at 100) and SSIM of the edited region against the true background, and of
    the untouched region against the input video (None for an empty region)."""

    edited_psnr: Optional[float]
    edited_ssim: Optional[float]
    untouched_psnr: Optional[float]
    untouched_ssim: Optional[float]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_inpainting(output, target, input_video, mask) -> InpaintingScores:
    """Scores an edited video against the world's truth.

    Args:
        output, target, input_video: videos [F, H, W, 3] of one shape: the edit, the scene without the object, the
            video that was edited.
        mask: [F, H, W] (bool, or a video whose pixels above half are the edited region).
    """
    output = check_video(output, "output")
    target = check_video(target, "target")
    input_video = check_video(input_video, "input_video")
    for name, video in (("target", target), ("input_video", input_video)):
        if video.shape != output.shape:
            raise ValueError(f"{name} has shape {tuple(video.shape)} and output {tuple(output.shape)}; they must match")
    mask = np.asarray(mask)
    if mask.ndim == 4:
        mask = check_video(mask, "mask").mean(axis=-1) > 127
    if mask.shape != output.shape[:3]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}; expected {tuple(output.shape[:3])} (frames, height, "
                         "width) or that video's shape")
    mask = mask.astype(bool)
    # SSIM windows that reach into the edited region measure the edit: the untouched SSIM skips them
    near_edit = mask
    for _ in range(SSIM_WINDOW // 2):
        near_edit = _shifted_and(near_edit, np.logical_or)
    edited_ssim = ssim_map(output, target)
    untouched_ssim = ssim_map(output, input_video)
    return InpaintingScores(
        edited_psnr=_psnr(output, target, np.broadcast_to(mask[..., None], output.shape)),
        edited_ssim=float(edited_ssim[mask].mean()) if mask.any() else None,
        untouched_psnr=_psnr(output, input_video, np.broadcast_to(~mask[..., None], output.shape)),
        untouched_ssim=float(untouched_ssim[~near_edit].mean()) if (~near_edit).any() else None)

