"""The fixed prompt set of the shapes quality bed: one-object prompts of the embedded text-to-video model's
training vocabulary (colours, shapes and directions it was trained on), each with its seed.

Every colour, shape and direction appears equally often; the background is another colour of the set, chosen so
that each (object colour, background) pair differs. Some (colour, shape, direction, background) combinations of the
set never occur in the training data; ``unseen`` tells which, given the training captions.

``relation_prompt_set`` holds two-object prompts with a spatial relation (RepVideo's claim), scored separately.
"""

from typing import Iterable, List, Tuple

from .world import MOTION_PHRASES, RELATIONS, article

#: what the embedded Vchitect-2.0 model was trained on (``vdp dataset shapes --colors ... --motions ...``)
TRAINED_COLORS = ("red", "yellow", "green", "blue", "white", "black")
TRAINED_SHAPES = ("circle", "square", "triangle", "star")
TRAINED_MOTIONS = ("left", "right", "up", "down")


def prompt_of(color: str, shape: str, motion: str, background: str) -> str:
    """The grammar's caption of one object on a plain background."""
    return f"{article(color)} {color} {shape} {MOTION_PHRASES[motion]} on {article(background)} {background} background"


def fixed_prompt_set(count: int = 24) -> List[Tuple[str, int]]:
    """(prompt, seed) pairs: colour, shape and direction cycle with coprime periods (6, 4, and 4 shifted every 4),
    so 24 prompts hold every colour 4 times, every shape and direction 6 times and 24 different combinations."""
    prompts = []
    for index in range(count):
        color = TRAINED_COLORS[index % len(TRAINED_COLORS)]
        shape = TRAINED_SHAPES[index % len(TRAINED_SHAPES)]
        motion = TRAINED_MOTIONS[(index + index // len(TRAINED_SHAPES)) % len(TRAINED_MOTIONS)]
        others = [name for name in TRAINED_COLORS if name != color]
        background = others[(index // len(TRAINED_COLORS)) % len(others)]
        prompts.append((prompt_of(color, shape, motion, background), index))
    return prompts


def relation_prompt_set(count: int = 24) -> List[Tuple[str, int]]:
    """(prompt, seed) pairs of two objects in a spatial relation, both doing the same motion, on a background of a
    third colour: "a red circle moving left above a yellow square moving left on a green background".

    The relation cycles fastest (every relation ``count / 4`` times), the first colour with period 6, the second
    colour is another one (offset 1 to 5, changing every 6 prompts), the shapes differ; seeds start at 1000, apart
    from ``fixed_prompt_set``'s.
    """
    prompts = []
    for index in range(count):
        relation = RELATIONS[index % len(RELATIONS)]
        first = TRAINED_COLORS[index % len(TRAINED_COLORS)]
        offset = 1 + (index // len(TRAINED_COLORS)) % (len(TRAINED_COLORS) - 1)
        second = TRAINED_COLORS[(index + offset) % len(TRAINED_COLORS)]
        first_shape = TRAINED_SHAPES[(index // 2) % len(TRAINED_SHAPES)]
        second_shape = TRAINED_SHAPES[(index // 2 + 1 + index % 3) % len(TRAINED_SHAPES)]
        if second_shape == first_shape:
            second_shape = TRAINED_SHAPES[(TRAINED_SHAPES.index(first_shape) + 1) % len(TRAINED_SHAPES)]
        motion = MOTION_PHRASES[TRAINED_MOTIONS[(index // 3) % len(TRAINED_MOTIONS)]]
        others = [name for name in TRAINED_COLORS if name not in (first, second)]
        background = others[(index // 4) % len(others)]
        prompts.append((f"{article(first)} {first} {first_shape} {motion} {relation} {article(second)} {second} "
                        f"{second_shape} {motion} on {article(background)} {background} background", 1000 + index))
    return prompts


def unseen(prompts: Iterable[str], training_captions: Iterable[str]) -> List[str]:
    """The prompts whose exact caption (colour, shape, direction and background) no training video has."""
    seen = set(training_captions)
    return [prompt for prompt in prompts if prompt not in seen]
