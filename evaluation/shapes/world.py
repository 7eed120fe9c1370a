"""The shapes world: scenes of one to three flat shapes, their captions, their frames and their ground truth.

A scene is drawn from a seeded numpy generator, so the same seed gives the same scene, the same frames and the same
ground truth byte for byte; nothing here imports torch. Each object is a circle, square, triangle or star in a named
colour, at its own depth, and does one thing over the video: moves in one of eight directions, grows (comes nearer),
shrinks (goes away) or rotates (by half its symmetry period, so the last frame is its most different orientation).
Objects are painted far to near on a plain or two-tone (top / bottom half) background. Edges are hard (a pixel
belongs to the nearest shape whose outline holds its centre), so every pixel has exactly one of the world's colours
and the masks are exact.

Captions come from a small grammar that ``parse_caption`` reads back::

    caption    := object [relation object] [" and " object] " on a(n) " background " background"
    object     := ("a " | "an ") colour " " shape " " motion    e.g. "a red circle moving up and left"
    relation   := "above" | "below" | "to the left of" | "to the right of"   (first object vs second, frame 0)
    background := colour | colour " and " colour            (top half, bottom half)

The DaS tracking video follows the official colouring (each point keeps the colour of its frame-0 position:
R = u / W, G = v / H, B = normalised inverse depth), with one difference: inverse depth is normalised over the
world's fixed depth range (``NEAREST_DEPTH`` .. ``BACKGROUND_DEPTH``) instead of the 2nd-98th percentiles of the
frame, which are undefined when the background covers more than 98% of the frame.
"""

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# named colours (RGB), far enough apart that the nearest-colour detector cannot confuse two of them
COLORS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 145, 30),
    "yellow": (240, 220, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 225),
    "purple": (140, 60, 190),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
}
SHAPES = ("circle", "square", "triangle", "star")
# image directions (x right, y down) of the moving motions
DIRECTIONS: Dict[str, Tuple[float, float]] = {
    "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up-left": (-1.0, -1.0), "up-right": (1.0, -1.0), "down-left": (-1.0, 1.0), "down-right": (1.0, 1.0),
}
MOTIONS = tuple(DIRECTIONS) + ("grow", "shrink", "rotate")
MOTION_PHRASES: Dict[str, str] = {
    **{name: "moving " + name.replace("-", " and ") for name in DIRECTIONS},
    "grow": "growing", "shrink": "shrinking", "rotate": "rotating",
}
RELATIONS = ("above", "below", "to the left of", "to the right of")

# how far a moving object travels over the video, as a fraction of the shorter side
TRAVEL_FRACTION = 0.35
GROW_FACTOR = 1.5  # size at the last frame / size at frame 0
SHRINK_FACTOR = 0.6
# rotation over the video: half the shape's symmetry period (a circle has none, so it never rotates)
ROTATION_DEGREES = {"square": 45.0, "triangle": 60.0, "star": 36.0}
# object size at frame 0: the radius of its outline, as a fraction of the shorter side
SIZE_RANGE = (0.11, 0.15)
# every object keeps at least this fraction of its pixels visible in every frame (occlusion stays partial)
MIN_VISIBLE_FRACTION = 0.9
BACKGROUND_DEPTH = 8.0
NEAREST_DEPTH = 1.5
# depths of the objects by depth rank (nearest first), jittered by up to +-10%; far apart so the tracking video's
# blue channel separates them
OBJECT_DEPTHS = (2.0, 3.0, 5.0)
TWO_TONE_PROBABILITY = 0.3
# how far a start may lie from the middle of where it can lie, as a fraction of that range (1: anywhere)
START_SPREAD = 1.0
#: orientations at frame 0 span this fraction of a full turn from upright (1: any orientation)
ROTATION_SPREAD = 1.0
MAX_OBJECTS = 3
_MAX_TRIES = 200


def _unit_outline(shape: str) -> np.ndarray:
    """Vertices [V, 2] of the shape's outline at radius 1 (the triangle and star point up)."""
    if shape == "circle":
        angles = np.linspace(0.0, 2.0 * np.pi, 96, endpoint=False)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "square":
        return np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * 0.85
    if shape == "triangle":
        angles = -np.pi / 2 + np.arange(3) * 2.0 * np.pi / 3
        return np.stack([np.cos(angles), np.sin(angles)], axis=1) * 1.3
    if shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.35, 0.6)
        return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    raise ValueError(f"shape={shape!r} is not one of {SHAPES}")


OUTLINES = {shape: _unit_outline(shape) for shape in SHAPES}


def inside_outline(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether the points (x, y), in the shape's own unit coordinates, lie inside its outline (crossing number)."""
    if shape == "circle":
        return x * x + y * y <= 1.0
    outline = OUTLINES[shape]
    x0, y0 = outline[:, 0], outline[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    px, py = x[..., None], y[..., None]
    straddles = (y0 > py) != (y1 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_x = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    crossings = straddles & (px < crossing_x)
    return np.count_nonzero(crossings, axis=-1) % 2 == 1


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    """One object of a scene, as it is at frame 0.

    Args:
        shape (`str`): one of ``SHAPES``.
        color (`str`): one of ``COLORS``.
        motion (`str`): one of ``MOTIONS``.
        center (`tuple[float, float]`): (x, y) in pixels at frame 0.
        radius (`float`): outline radius in pixels at frame 0.
        angle_degrees (`float`): orientation at frame 0 (clockwise on screen).
        depth (`float`): distance from the camera at frame 0 (> 0; smaller is nearer).
    """

    shape: str
    color: str
    motion: str
    center: Tuple[float, float]
    radius: float
    angle_degrees: float
    depth: float

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"


@dataclasses.dataclass(frozen=True)
class Scene:
    """A scene of the shapes world: its objects in caption order, its background and its video geometry."""

    height: int
    width: int
    num_frames: int
    objects: Tuple[ShapeObject, ...]
    background: Tuple[str, ...]
    relation: Optional[str] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        objects = tuple(ShapeObject(**{**item, "center": tuple(item["center"])}) for item in data["objects"])
        return cls(height=data["height"], width=data["width"], num_frames=data["num_frames"], objects=objects,
                   background=tuple(data["background"]), relation=data.get("relation"))

    @property
    def depth_order(self) -> Tuple[int, ...]:
        """Object indices from nearest to farthest."""
        return tuple(sorted(range(len(self.objects)), key=lambda index: self.objects[index].depth))

    def without(self, index: int) -> "Scene":
        """The same scene with object ``index`` removed (the inpainting target)."""
        objects = self.objects[:index] + self.objects[index + 1:]
        relation = relation_between(objects[0].center, objects[1].center) if len(objects) >= 2 else None
        return dataclasses.replace(self, objects=objects, relation=relation)


@dataclasses.dataclass(frozen=True)
class ObjectStates:
    """Per-frame state of every object: centres [K, F, 2] (x, y), radii [K, F], angles [K, F], depths [K, F]."""

    centers: np.ndarray
    radii: np.ndarray
    angles_degrees: np.ndarray
    depths: np.ndarray


def object_states(scene: Scene) -> ObjectStates:
    """Where each object is in each frame: its motion applied over the video (frame 0 to the last frame)."""
    count, frames = len(scene.objects), scene.num_frames
    progress = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    centers = np.zeros((count, frames, 2))
    radii = np.zeros((count, frames))
    angles = np.zeros((count, frames))
    depths = np.zeros((count, frames))
    travel = TRAVEL_FRACTION * min(scene.height, scene.width)
    for index, item in enumerate(scene.objects):
        centers[index] = item.center
        scale = np.ones(frames)
        angles[index] = item.angle_degrees
        if item.motion in DIRECTIONS:
            direction = np.array(DIRECTIONS[item.motion])
            centers[index] += progress[:, None] * travel * direction / np.linalg.norm(direction)
        elif item.motion == "grow":
            scale = 1.0 + (GROW_FACTOR - 1.0) * progress
        elif item.motion == "shrink":
            scale = 1.0 + (SHRINK_FACTOR - 1.0) * progress
        elif item.motion == "rotate":
            angles[index] += ROTATION_DEGREES[item.shape] * progress
        radii[index] = item.radius * scale
        depths[index] = item.depth / scale  # an object grows on screen because it comes nearer
    return ObjectStates(centers, radii, angles, depths)


def _pixel_centres(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    return xs, ys


def _to_local(xs, ys, center, radius, angle_degrees):
    """Pixel coordinates -> the object's unit coordinates (inverse of rotate, scale, translate)."""
    theta = math.radians(angle_degrees)
    dx, dy = xs - center[0], ys - center[1]
    cos, sin = math.cos(theta), math.sin(theta)
    return (cos * dx + sin * dy) / radius, (-sin * dx + cos * dy) / radius


def _to_pixels(lx, ly, center, radius, angle_degrees):
    theta = math.radians(angle_degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    return center[0] + radius * (cos * lx - sin * ly), center[1] + radius * (sin * lx + cos * ly)


def amodal_masks(scene: Scene, states: Optional[ObjectStates] = None) -> np.ndarray:
    """Each object's full silhouette, occluded parts included: bool [K, F, H, W]."""
    states = object_states(scene) if states is None else states
    xs, ys = _pixel_centres(scene.height, scene.width)
    masks = np.zeros((len(scene.objects), scene.num_frames, scene.height, scene.width), dtype=bool)
    for index, item in enumerate(scene.objects):
        for frame in range(scene.num_frames):
            lx, ly = _to_local(xs, ys, states.centers[index, frame], states.radii[index, frame],
                               states.angles_degrees[index, frame])
            masks[index, frame] = inside_outline(item.shape, lx, ly)
    return masks


def visible_labels(scene: Scene, masks: np.ndarray) -> np.ndarray:
    """Which object each pixel shows: uint8 [F, H, W], 0 for the background and 1 + k for object k."""
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for index in reversed(scene.depth_order):  # far to near: nearer objects overwrite
        labels[masks[index]] = index + 1
    return labels


def background_image(scene: Scene) -> np.ndarray:
    """The background [H, W, 3] uint8: one colour, or the first over the top half and the second below."""
    image = np.empty((scene.height, scene.width, 3), dtype=np.uint8)
    image[:] = COLORS[scene.background[0]]
    if len(scene.background) == 2:
        image[scene.height // 2:] = COLORS[scene.background[1]]
    return image


def render_frames(scene: Scene, labels: np.ndarray) -> np.ndarray:
    """The video [F, H, W, 3] uint8 of a scene from its visible labels."""
    palette = np.array([(0, 0, 0)] + [COLORS[item.color] for item in scene.objects], dtype=np.uint8)
    frames = np.broadcast_to(background_image(scene), labels.shape + (3,)).copy()
    objects = labels > 0
    frames[objects] = palette[labels[objects]]
    return frames


def depth_maps(scene: Scene, labels: np.ndarray, states: Optional[ObjectStates] = None) -> np.ndarray:
    """Depth of the visible surface of every pixel: float32 [F, H, W]."""
    states = object_states(scene) if states is None else states
    table = np.concatenate([np.full((1, scene.num_frames), BACKGROUND_DEPTH), states.depths])  # [1 + K, F]
    return table[labels, np.arange(scene.num_frames)[:, None, None]].astype(np.float32)


def normalised_inverse_depth(depth) -> np.ndarray:
    """The tracking video's blue channel: 0 at the background depth, 1 at ``NEAREST_DEPTH``."""
    low, high = 1.0 / BACKGROUND_DEPTH, 1.0 / NEAREST_DEPTH
    return np.clip((1.0 / np.asarray(depth, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def tracking_video(scene: Scene, labels: np.ndarray, states: Optional[ObjectStates] = None) -> np.ndarray:
    """The DaS tracking video [F, H, W, 3] uint8 of every surface point (dense, one point a pixel).

    The background is still, so its points keep their pixel; a pixel of object k at frame t shows the object's
    point that lies there, coloured by where that point was at frame 0 and by the object's frame-0 depth.
    """
    states = object_states(scene) if states is None else states
    xs, ys = _pixel_centres(scene.height, scene.width)
    video = np.zeros(labels.shape + (3,), dtype=np.float64)
    video[..., 0] = xs / scene.width
    video[..., 1] = ys / scene.height
    for index, item in enumerate(scene.objects):
        blue = normalised_inverse_depth(item.depth)
        for frame in range(scene.num_frames):
            where = labels[frame] == index + 1
            lx, ly = _to_local(xs[where], ys[where], states.centers[index, frame], states.radii[index, frame],
                               states.angles_degrees[index, frame])
            x0, y0 = _to_pixels(lx, ly, states.centers[index, 0], states.radii[index, 0],
                                states.angles_degrees[index, 0])
            video[frame, where] = np.stack([x0 / scene.width, y0 / scene.height, np.full(x0.shape, blue)], axis=1)
    return np.round(np.clip(video, 0.0, 1.0) * 255).astype(np.uint8)


def point_tracks(scene: Scene, labels: np.ndarray, states: Optional[ObjectStates] = None,
                 spacing: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """3-D point tracks of the scene's surfaces on a grid of frame-0 pixels, in the layout ``control.load_tracks``
    reads: ``tracks`` float32 [F, N, 3] (x px, y px, depth) and ``visibility`` bool [F, N].

    The grid (every ``spacing`` pixels) holds background points (still, at the background depth) and, for each
    object, its grid points inside its frame-0 silhouette, carried along by its motion.
    """
    states = object_states(scene) if states is None else states
    frames = scene.num_frames
    gy, gx = np.mgrid[spacing // 2:scene.height:spacing, spacing // 2:scene.width:spacing].astype(np.float64) + 0.5
    gx, gy = gx.ravel(), gy.ravel()
    tracks = [np.broadcast_to(np.stack([gx, gy, np.full(gx.shape, BACKGROUND_DEPTH)], axis=1), (frames, gx.size, 3))]
    layers = [np.zeros(gx.size, dtype=int)]
    for index, item in enumerate(scene.objects):
        lx, ly = _to_local(gx, gy, states.centers[index, 0], states.radii[index, 0], states.angles_degrees[index, 0])
        inside = inside_outline(item.shape, lx, ly)
        lx, ly = lx[inside], ly[inside]
        per_frame = []
        for frame in range(frames):
            x, y = _to_pixels(lx, ly, states.centers[index, frame], states.radii[index, frame],
                              states.angles_degrees[index, frame])
            per_frame.append(np.stack([x, y, np.full(x.shape, states.depths[index, frame])], axis=1))
        tracks.append(np.stack(per_frame))
        layers.append(np.full(lx.size, index + 1))
    tracks = np.concatenate(tracks, axis=1).astype(np.float32)
    layers = np.concatenate(layers)
    column = np.floor(tracks[..., 0]).astype(int)
    row = np.floor(tracks[..., 1]).astype(int)
    in_frame = (column >= 0) & (column < scene.width) & (row >= 0) & (row < scene.height)
    shown = labels[np.arange(frames)[:, None], row.clip(0, scene.height - 1), column.clip(0, scene.width - 1)]
    return tracks, in_frame & (shown == layers[None])


def relation_between(first: Tuple[float, float], second: Tuple[float, float]) -> str:
    """Where the first centre is relative to the second, along the axis of their larger offset."""
    dx, dy = first[0] - second[0], first[1] - second[1]
    if abs(dy) >= abs(dx):
        return "above" if dy < 0 else "below"
    return "to the left of" if dx < 0 else "to the right of"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(scene: Scene) -> str:
    """The scene's caption in the world's grammar (see the module docstring)."""
    def phrase(item: ShapeObject) -> str:
        return f"{article(item.color)} {item.color} {item.shape} {MOTION_PHRASES[item.motion]}"

    parts = [phrase(scene.objects[0])]
    if len(scene.objects) >= 2:
        parts += [scene.relation, phrase(scene.objects[1])]
    if len(scene.objects) == 3:
        parts += ["and", phrase(scene.objects[2])]
    parts.append(f"on {article(scene.background[0])} {' and '.join(scene.background)} background")
    return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class ParsedCaption:
    """What a caption says: objects as (colour, shape, motion) in caption order, the relation, the background."""

    objects: Tuple[Tuple[str, str, str], ...]
    relation: Optional[str]
    background: Tuple[str, ...]


def _phrase_table(phrases: Dict[str, str]) -> List[Tuple[List[str], str]]:
    """(words, name) pairs, longest phrase first so "moving up and left" wins over "moving up"."""
    return sorted(((text.split(), name) for name, text in phrases.items()), key=lambda pair: -len(pair[0]))


_MOTION_TABLE = _phrase_table(MOTION_PHRASES)
_RELATION_TABLE = _phrase_table({relation: relation for relation in RELATIONS})


def parse_caption(text: str) -> ParsedCaption:
    """Reads a caption of the world's grammar back into what it says.

    Raises:
        ValueError: naming the words that could not be parsed and what was expected there.
    """
    if not isinstance(text, str):
        raise ValueError(f"prompt={text!r} must be a string in the shapes grammar")
    words = text.lower().replace(",", " ").split()
    position = 0

    def fail(expected: str):
        rest = " ".join(words[position:]) or "<end of prompt>"
        raise ValueError(f"prompt {text!r} is outside the shapes grammar: could not parse {rest!r} "
                         f"(expected {expected})")

    def take(options: Sequence[str], what: str) -> str:
        nonlocal position
        if position < len(words) and words[position] in options:
            position += 1
            return words[position - 1]
        fail(f"{what}: one of {', '.join(options)}")

    def take_phrase(table, what: str) -> Optional[str]:
        nonlocal position
        for phrase, name in table:
            if words[position:position + len(phrase)] == phrase:
                position += len(phrase)
                return name
        return None

    def take_object() -> Tuple[str, str, str]:
        take(("a", "an"), "an object starting with 'a'")
        color = take(tuple(COLORS), "a colour")
        shape = take(SHAPES, "a shape")
        motion = take_phrase(_MOTION_TABLE, "a motion")
        if motion is None:
            fail(f"a motion: one of {', '.join(MOTION_PHRASES.values())}")
        return color, shape, motion

    objects = [take_object()]
    relation = take_phrase(_RELATION_TABLE, "a relation")
    if relation is not None:
        objects.append(take_object())
    if words[position:position + 2] == ["and", "a"] or words[position:position + 2] == ["and", "an"]:
        position += 1
        objects.append(take_object())
    take(("on",), "'on a <colour> background'")
    take(("a", "an"), "'a <colour> background'")
    background = [take(tuple(COLORS), "a background colour")]
    if position < len(words) and words[position] == "and":
        position += 1
        background.append(take(tuple(COLORS), "a second background colour"))
    take(("background",), "the word 'background'")
    if position != len(words):
        fail("the end of the prompt after 'background'")
    return ParsedCaption(objects=tuple(objects), relation=relation, background=tuple(background))


def check_choices(name: str, values: Sequence[str], allowed: Sequence[str]) -> Tuple[str, ...]:
    """``values`` as a tuple, or a ValueError naming the unknown ones and what is allowed."""
    values = tuple(values)
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        what = f"unknown {name} {unknown}" if unknown else f"no {name}"
        raise ValueError(f"{name}={list(values)}: {what}; allowed: {', '.join(allowed)}")
    return values


def sample_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_frames: int,
    colors: Sequence[str] = tuple(COLORS),
    shapes: Sequence[str] = SHAPES,
    motions: Sequence[str] = MOTIONS,
    max_objects: int = MAX_OBJECTS,
    object_size: Tuple[float, float] = SIZE_RANGE,
    two_tone: float = TWO_TONE_PROBABILITY,
    hold_out: Sequence[Tuple[str, str]] = (),
    start_spread: float = START_SPREAD,
    rotation_spread: float = ROTATION_SPREAD,
) -> Scene:
    """Draws a scene: one to ``max_objects`` objects of distinct colours, none sharing a colour with the background,
    each inside the frame over its whole motion and at least ``MIN_VISIBLE_FRACTION`` visible in every frame, the
    first two clearly related (their centres apart by more along one axis than along the other).

    Args:
        rng (`numpy.random.Generator`): the only source of randomness.
        height (`int`), width (`int`), num_frames (`int`): the video geometry.
        colors, shapes, motions (sequences of `str`): what may be drawn (``COLORS``, ``SHAPES``, ``MOTIONS``).
        max_objects (`int`, defaults to 3): 1 to 3.
        object_size (pair of `float`, defaults to ``SIZE_RANGE``): range of an object's radius at frame 0, as
            fractions of the shorter side, within 0.05..0.3.
        two_tone (`float`, defaults to ``TWO_TONE_PROBABILITY``): probability of a two-tone background, 0..1.
        hold_out (pairs of `str`): (colour, shape) combinations never drawn, so that prompts naming them are unseen.
        start_spread (`float`, defaults to 1): where an object starts, as a fraction of the range it may start in
            (the frame less its size and its path), centred: 1 anywhere, 0 always the middle, so a motion always
            crosses the same part of the frame.
        rotation_spread (`float`, defaults to 1): an object's orientation at frame 0 is drawn from 0 to this
            fraction of a full turn: 1 any orientation, 0 upright (the triangle and star point up, the square's
            sides are level), so each shape always shows the same outline.
    """
    colors = check_choices("colors", colors, tuple(COLORS))
    shapes = check_choices("shapes", shapes, SHAPES)
    motions = check_choices("motions", motions, MOTIONS)
    if not 1 <= max_objects <= MAX_OBJECTS:
        raise ValueError(f"max_objects={max_objects} must be in 1..{MAX_OBJECTS}")
    if len(colors) < 2:
        raise ValueError(f"colors={list(colors)}: at least 2 are needed (an object and a background)")
    object_size, two_tone, hold_out = check_draw_options(object_size, two_tone, hold_out, colors, shapes)
    start_spread = check_start_spread(start_spread)
    rotation_spread = check_rotation_spread(rotation_spread)
    if shapes == ("circle",) and motions == ("rotate",):
        raise ValueError("shapes=['circle'] with motions=['rotate']: a circle cannot visibly rotate")
    for _ in range(_MAX_TRIES):
        scene = _draw_scene(rng, height, width, num_frames, colors, shapes, motions, max_objects, object_size,
                            two_tone, hold_out, start_spread, rotation_spread)
        if scene is not None:
            return scene
    raise ValueError(f"no scene of {max_objects} object(s) fits a {height}x{width} frame with these settings after "
                     f"{_MAX_TRIES} tries; use a larger size or fewer objects")


def check_start_spread(start_spread) -> float:
    """``sample_scene``'s start spread as a float in 0..1; ValueError naming the value otherwise."""
    return _check_fraction("start_spread", start_spread, "1: an object starts anywhere it fits, 0: in the middle of "
                                                         "where it may start")


def check_rotation_spread(rotation_spread) -> float:
    """``sample_scene``'s rotation spread as a float in 0..1; ValueError naming the value otherwise."""
    return _check_fraction("rotation_spread", rotation_spread, "1: any orientation at the first frame, 0: upright")


def _check_fraction(name: str, value, meaning: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: must be a number in 0..1 ({meaning})")
    return float(value)


def check_draw_options(object_size, two_tone, hold_out, colors=tuple(COLORS), shapes=SHAPES):
    """Checks ``sample_scene``'s size, two-tone and hold-out options; returns them normalised."""
    low, high = (float(value) for value in object_size)
    if not 0.05 <= low <= high <= 0.3:
        raise ValueError(f"object_size={[low, high]}: must be MIN,MAX with 0.05 <= MIN <= MAX <= 0.3 (fractions of "
                         "the shorter side)")
    if not 0.0 <= float(two_tone) <= 1.0:
        raise ValueError(f"two_tone={two_tone}: must be a probability in 0..1")
    pairs = []
    named = ["-".join(pair) for pair in hold_out]
    for pair in hold_out:
        color, shape = pair
        if color not in COLORS or shape not in SHAPES:
            raise ValueError(f"hold_out={named}: unknown pair {color}-{shape}; each is <colour>-<shape> "
                             f"with a colour of {', '.join(COLORS)} and a shape of {', '.join(SHAPES)}")
        pairs.append((color, shape))
    if all((color, shape) in pairs for color in colors for shape in shapes):
        raise ValueError(f"hold_out={named}: holds out every colour-shape pair of these choices")
    return (low, high), float(two_tone), frozenset(pairs)


def _draw_scene(rng, height, width, num_frames, colors, shapes, motions, max_objects, object_size=SIZE_RANGE,
                two_tone=TWO_TONE_PROBABILITY, hold_out=frozenset(), start_spread=START_SPREAD,
                rotation_spread=ROTATION_SPREAD) -> Optional[Scene]:
    count = int(rng.integers(1, min(max_objects, len(colors) - 1) + 1))
    picked = [str(name) for name in rng.permutation(np.array(colors))]
    object_colors, free = picked[:count], picked[count:]
    background = (free[0],) if len(free) < 2 or rng.random() >= two_tone else (free[0], free[1])
    ranks = rng.permutation(count)
    short_side = min(height, width)
    travel = TRAVEL_FRACTION * short_side
    objects = []
    for index in range(count):
        shape = str(rng.choice(np.array(shapes)))
        if (object_colors[index], shape) in hold_out:
            return None
        allowed = [motion for motion in motions if not (shape == "circle" and motion == "rotate")]
        if not allowed:
            return None
        motion = str(rng.choice(np.array(allowed)))
        radius = float(rng.uniform(*object_size)) * short_side
        extent = 1.4 * radius * (GROW_FACTOR if motion == "grow" else 1.0)
        low_x, high_x, low_y, high_y = extent, width - extent, extent, height - extent
        if motion in DIRECTIONS:
            dx, dy = np.array(DIRECTIONS[motion]) / np.linalg.norm(DIRECTIONS[motion]) * travel
            low_x, high_x = low_x - min(dx, 0.0), high_x - max(dx, 0.0)
            low_y, high_y = low_y - min(dy, 0.0), high_y - max(dy, 0.0)
        if low_x >= high_x or low_y >= high_y:
            return None
        middle_x, middle_y = (low_x + high_x) / 2, (low_y + high_y) / 2
        center = (middle_x + start_spread * (float(rng.uniform(low_x, high_x)) - middle_x),
                  middle_y + start_spread * (float(rng.uniform(low_y, high_y)) - middle_y))
        depth = OBJECT_DEPTHS[int(ranks[index])] * float(rng.uniform(0.9, 1.1))
        objects.append(ShapeObject(shape=shape, color=object_colors[index], motion=motion, center=center,
                                   radius=radius, angle_degrees=rotation_spread * float(rng.uniform(0.0, 360.0)),
                                   depth=depth))
    relation = None
    if count >= 2:
        dx = objects[0].center[0] - objects[1].center[0]
        dy = objects[0].center[1] - objects[1].center[1]
        if max(abs(dx), abs(dy)) < 1.5 * min(abs(dx), abs(dy)) or max(abs(dx), abs(dy)) < objects[0].radius:
            return None  # the relation would be ambiguous
        relation = relation_between(objects[0].center, objects[1].center)
    scene = Scene(height=height, width=width, num_frames=num_frames, objects=tuple(objects),
                  background=background, relation=relation)
    masks = amodal_masks(scene)
    labels = visible_labels(scene, masks)
    for index in range(count):
        full = masks[index].sum(axis=(1, 2))
        shown = (labels == index + 1).sum(axis=(1, 2))
        if np.any(full == 0) or np.any(shown < MIN_VISIBLE_FRACTION * full):
            return None
    return scene


@dataclasses.dataclass(frozen=True)
class RenderedScene:
    """Everything the world knows about one scene's video.

    Args:
        frames (`np.ndarray` uint8 [F, H, W, 3]): the video.
        labels (`np.ndarray` uint8 [F, H, W]): 0 background, 1 + k where object k is seen.
        masks (`np.ndarray` bool [K, F, H, W]): each object's full silhouette (occluded parts included).
        centroids (`np.ndarray` float32 [K, F, 2]): (x, y) centre of each object's motion (its outline's centre).
        depth (`np.ndarray` float32 [F, H, W]): depth of the visible surface.
        object_depths (`np.ndarray` float32 [K, F]): each object's depth.
    """

    frames: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    centroids: np.ndarray
    depth: np.ndarray
    object_depths: np.ndarray


def render_scene(scene: Scene) -> RenderedScene:
    """The video and the per-frame ground truth of a scene."""
    states = object_states(scene)
    masks = amodal_masks(scene, states)
    labels = visible_labels(scene, masks)
    return RenderedScene(frames=render_frames(scene, labels), labels=labels, masks=masks,
                         centroids=states.centers.astype(np.float32), depth=depth_maps(scene, labels, states),
                         object_depths=states.depths.astype(np.float32))
