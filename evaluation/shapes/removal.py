"""The fixed removal set of the shapes quality bed (LGVI): scenes drawn as ``vdp dataset shapes`` draws its removal
pairs, from a seed the embedded model was not trained on, each with its instruction and ground truth.

Case ``i`` of seed ``s`` is the dataset's video ``i`` of ``--seed s``: the scene from ``numpy.random.default_rng([s,
i])``, the object to remove drawn next from the same generator, the target rendered without it. The pipeline seed of
case ``i`` is ``i``.
"""

import dataclasses
from typing import List

import numpy as np

from .dataset import referring_expression
from .world import MOTIONS, render_scene, sample_scene

__all__ = ["REMOVAL_SEED", "RemovalCase", "fixed_removal_set"]

#: the seed of the bed's scenes; the embedded LGVI was trained on the dataset of seed 0
REMOVAL_SEED = 1


@dataclasses.dataclass(frozen=True)
class RemovalCase:
    """One removal: the video, the instruction, the truth (the scene without the object), the object's pixels and
    those of the objects that must stay."""

    input_video: np.ndarray  # [F, H, W, 3] uint8
    target: np.ndarray  # [F, H, W, 3] uint8
    mask: np.ndarray  # [F, H, W] bool: the removed object's visible pixels
    instruction: str
    seed: int
    kept: np.ndarray  # [F, H, W] bool: the other objects' visible pixels (none in a one-object scene)


def fixed_removal_set(count: int = 24, num_frames: int = 8, height: int = 32, width: int = 32,
                      max_objects: int = 1, seed: int = REMOVAL_SEED, motions=MOTIONS) -> List[RemovalCase]:
    """``count`` removal cases (see the module docstring); ``max_objects`` 2 or 3 makes the instruction choose."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r} must be a positive integer")
    cases = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        scene = sample_scene(rng, height, width, num_frames, motions=motions, max_objects=max_objects)
        removed = int(rng.integers(len(scene.objects)))
        rendered = render_scene(scene)
        cases.append(RemovalCase(
            input_video=rendered.frames, target=render_scene(scene.without(removed)).frames,
            mask=rendered.labels == removed + 1, instruction=f"remove {referring_expression(scene, removed)}",
            seed=index, kept=(rendered.labels > 0) & (rendered.labels != removed + 1)))
    return cases
