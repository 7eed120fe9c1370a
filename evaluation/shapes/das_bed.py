"""The DaS control bed of the shapes world: a fixed set of one-object scenes, each with its first frame, caption, the
tracking video of its own trajectory and the tracking video of another trajectory (the same object at the same
start, moving in another direction), and the centroid errors of a DaS pipeline's videos against them.

- ``matched``: the video generated with the scene's own tracking video, scored against it;
- ``other``: the same video scored against the other trajectory's tracking video (what the error is when the video
  does not follow that tracking video: control works only if ``matched`` is much smaller);
- ``followed``: the video generated with the other trajectory's tracking video (the caption still names the scene's
  own motion), scored against the tracking video it was given: small when the tracking video, not the caption,
  steers the motion.

Each error is measured twice: by the quality bed's ``score_control`` (the object of the caption's colour, as the
bed detects it: ``inf`` when the video has no object of that colour), and colour-free (``*_any``): the centroid of
every pixel that differs from the scene's background colour (by more than the bed's colour tolerance, after a 3x3
opening), whatever its colour, against the tracking video's object points. The colour-free error tells whether
something moves where the tracking video says even when its colour is wrong.

numpy only at import; :func:`generate` imports torch.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

from .quality import COLOR_TOLERANCE, _centroids, check_video, opened, score_control, tracking_regions
from .world import COLORS, DIRECTIONS, Scene, caption, render_scene, sample_scene, tracking_video

__all__ = ["DaSCase", "DaSCaseScores", "background_image", "das_cases", "foreground_centroid_error", "generate",
           "other_trajectory", "score_case", "summarise_cases"]

# the translations the embedded DaS model was trained on (one object a video)
TRANSLATIONS = ("left", "right", "up", "down", "up-left", "up-right", "down-left", "down-right")


@dataclasses.dataclass(frozen=True)
class DaSCase:
    """One scene of the bed: ``image`` (the first frame, uint8 [H, W, 3]), ``caption``, ``tracking`` (its own
    tracking video, uint8 [F, H, W, 3]) and ``other_tracking`` (another trajectory's), ``seed`` of the noise."""

    scene: Scene
    other_motion: str
    image: np.ndarray
    caption: str
    tracking: np.ndarray
    other_tracking: np.ndarray
    seed: int


def other_trajectory(scene: Scene) -> str:
    """The direction, among the translations, farthest in angle from the scene's first object's whose path keeps
    the object inside the frame (as the world draws it: 1.4 radii from the edges)."""
    item = scene.objects[0]
    own = np.array(DIRECTIONS[item.motion], dtype=np.float64)
    own /= np.linalg.norm(own)
    travel = 0.35 * min(scene.height, scene.width)
    extent = 1.4 * item.radius
    best, best_cos = None, 2.0
    for motion in TRANSLATIONS:
        if motion == item.motion:
            continue
        direction = np.array(DIRECTIONS[motion], dtype=np.float64)
        direction /= np.linalg.norm(direction)
        end = np.array(item.center) + travel * direction
        if not (extent <= end[0] <= scene.width - extent and extent <= end[1] <= scene.height - extent):
            continue
        cosine = float(direction @ own)
        if cosine < best_cos:
            best, best_cos = motion, cosine
    if best is None:
        raise ValueError(f"no other trajectory keeps the {item.name} of the scene inside the frame")
    return best


def das_cases(count: int, height: int = 32, width: int = 32, num_frames: int = 5, seed: int = 1000) -> List[DaSCase]:
    """``count`` fixed cases: scene ``i`` drawn from ``numpy.random.default_rng([seed, i])`` (one object, a
    translation; the training data used seed 0), noise seed ``i``."""
    cases = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        scene = sample_scene(rng, height, width, num_frames, motions=TRANSLATIONS, max_objects=1)
        rendered = render_scene(scene)
        other_motion = other_trajectory(scene)
        moved = dataclasses.replace(scene, objects=(dataclasses.replace(scene.objects[0], motion=other_motion),))
        other = render_scene(moved)
        cases.append(DaSCase(scene=scene, other_motion=other_motion, image=rendered.frames[0], caption=caption(scene),
                             tracking=tracking_video(scene, rendered.labels),
                             other_tracking=tracking_video(moved, other.labels), seed=index))
    return cases


def generate(pipeline, case: DaSCase, tracking: np.ndarray, num_inference_steps: int,
             guidance_scale: Optional[float] = None) -> np.ndarray:
    """The pipeline's video [F, H, W, 3] float in 0..1 from the case's first frame and caption and ``tracking``."""
    import torch
    from PIL import Image

    frames, height, width = tracking.shape[:3]
    extra = {} if guidance_scale is None else {"guidance_scale": guidance_scale}
    return pipeline(image=Image.fromarray(case.image), prompt=case.caption,
                    tracking_video=torch.from_numpy(tracking).float() / 255, height=height, width=width,
                    num_frames=frames, num_inference_steps=num_inference_steps,
                    generator=torch.Generator("cpu").manual_seed(case.seed), output_type="np", **extra).frames[0]


def background_image(scene: Scene) -> np.ndarray:
    """The scene's background alone, float [H, W, 3] (two-tone: the first colour on the top half)."""
    image = np.empty((scene.height, scene.width, 3), dtype=np.float32)
    image[:] = COLORS[scene.background[0]]
    image[scene.height // 2:] = COLORS[scene.background[-1]]
    return image


def foreground_centroid_error(video, tracking, scene: Scene) -> float:
    """Colour-free centroid error (pixels): the centroid of the pixels of ``video`` that differ from the scene's
    background against the centroid of the object points of ``tracking``, averaged over the frames that have both
    (``inf`` when none has)."""
    video = check_video(video).astype(np.float32)
    foreground = np.linalg.norm(video - background_image(scene), axis=-1) > COLOR_TOLERANCE
    foreground = opened(foreground)
    _, centres = _centroids(foreground)
    _, track_centres = _centroids(tracking_regions(tracking) == 0)
    distance = np.linalg.norm(centres - track_centres, axis=1)
    distance = distance[np.isfinite(distance)]
    return float(distance.mean()) if distance.size else float("inf")


@dataclasses.dataclass(frozen=True)
class DaSCaseScores:
    """Centroid errors in pixels (``inf`` when the object is not found in the video): by the bed's detector of the
    caption's object, and colour-free (``*_any``)."""

    matched: float
    other: float
    matched_any: float
    other_any: float
    followed: Optional[float] = None
    followed_any: Optional[float] = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_case(case: DaSCase, video: np.ndarray, followed_video: Optional[np.ndarray] = None) -> DaSCaseScores:
    """The case's errors: ``video`` (generated with its own tracking video) against both tracking videos, and
    ``followed_video`` (generated with the other one) against the other one."""
    followed = followed_any = None
    if followed_video is not None:
        followed = score_control(followed_video, case.other_tracking, case.caption).centroid_error_pixels
        followed_any = foreground_centroid_error(followed_video, case.other_tracking, case.scene)
    return DaSCaseScores(matched=score_control(video, case.tracking, case.caption).centroid_error_pixels,
                         other=score_control(video, case.other_tracking, case.caption).centroid_error_pixels,
                         matched_any=foreground_centroid_error(video, case.tracking, case.scene),
                         other_any=foreground_centroid_error(video, case.other_tracking, case.scene),
                         followed=followed, followed_any=followed_any)


def summarise_cases(scores: Sequence[DaSCaseScores]) -> Dict[str, float]:
    """Median and mean of each error over the cases (a case whose object was not found counts as ``inf``: the
    median stays finite while most are found), and the fraction found."""
    summary: Dict[str, float] = {}
    for name in ("matched", "other", "followed", "matched_any", "other_any", "followed_any"):
        values = np.array([getattr(s, name) for s in scores if getattr(s, name) is not None], dtype=np.float64)
        if values.size == 0:
            continue
        found = np.isfinite(values)
        summary[f"{name}_median_px"] = float(np.median(values))
        summary[f"{name}_mean_px"] = float(values[found].mean()) if found.any() else float("inf")
        summary[f"{name}_found"] = float(found.mean())
    return summary
