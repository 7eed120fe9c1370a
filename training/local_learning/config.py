"""Settings of a local-learning run (mode, groups, each mode's options) and the block ranges of the groups; torch-free.

The denoiser's blocks are cut into K consecutive groups. Every group but the last trains on the loss of its own
auxiliary network; the last group trains on the model's real output head and loss. Options belong to one mode each
and are refused for the others, so that a setting never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

MODES = ("auglocal", "man", "hpff", "infopro")

# option -> (the mode it belongs to, its default): AugLocal's d and tau, MAN's momentum (README of the official code),
# HPFF's loss weights (hard-coded in the official code) and its patch grid
MODE_OPTIONS = {
    "aux_depth": ("auglocal", 2),
    "pyramid_coeff": ("auglocal", 0.5),
    "momentum": ("man", 0.995),
    "wx": ("hpff", 0.001),
    "wy": ("hpff", 0.999),
    "patches": ("hpff", 2),
}


def _finite_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    return float(value)


def _whole_number(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return value


@dataclasses.dataclass(frozen=True)
class LocalLearningConfig:
    """One local-learning mode and its options.

    Args:
        mode (`str`): ``auglocal``, ``man``, ``hpff`` or ``infopro`` (the baseline: auxiliary = output head only).
        groups (`int`, *optional*): K, the number of local groups; the blocks are split as evenly as possible, the
            earlier groups taking the extra blocks. Give this or ``cut_points``.
        cut_points (`Sequence[int]`, *optional*): block indices where a new group starts, strictly increasing, each in
            1 .. blocks-1 (``(4, 8)`` on 12 blocks: blocks 0-3, 4-7, 8-11).
        aux_depth (`int`, defaults to 2): AugLocal's d, the most blocks an auxiliary network copies.
        pyramid_coeff (`float`, defaults to 0.5): AugLocal's tau: the depth falls linearly from d at the first group to
            d(1 - tau) + tau at the last auxiliary network.
        momentum (`float`, defaults to 0.995): MAN's m in ``ema = m * ema + (1 - m) * live`` (1.0: never updated).
        wx (`float`, defaults to 0.001): HPFF's weight of the independent path's loss.
        wy (`float`, defaults to 0.999): HPFF's weight of the cascade path's loss.
        patches (`int`, defaults to 2): HPFF's n: the auxiliary input is split into n x n spatial patches (1: off).
    """

    mode: str
    groups: Optional[int] = None
    cut_points: Optional[Tuple[int, ...]] = None
    aux_depth: Optional[int] = None
    pyramid_coeff: Optional[float] = None
    momentum: Optional[float] = None
    wx: Optional[float] = None
    wy: Optional[float] = None
    patches: Optional[int] = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"local-learning mode={self.mode!r} is not one of {', '.join(MODES)}")
        if (self.groups is None) == (self.cut_points is None):
            raise ValueError(
                f"give exactly one of groups and cut_points (got groups={self.groups!r}, cut_points={self.cut_points!r})"
            )
        if self.groups is not None:
            _whole_number("groups", self.groups, 2)
        if self.cut_points is not None:
            cuts = tuple(self.cut_points)
            if not cuts:
                raise ValueError("cut_points=() must name at least one cut (two groups)")
            for cut in cuts:
                _whole_number("cut_points", cut, 1)
            if any(b <= a for a, b in zip(cuts, cuts[1:])):
                raise ValueError(f"cut_points={cuts} must be strictly increasing")
            object.__setattr__(self, "cut_points", cuts)
        for option, (owner, default) in MODE_OPTIONS.items():
            value = getattr(self, option)
            if value is None:
                if owner == self.mode:
                    object.__setattr__(self, option, default)
                continue
            if owner != self.mode:
                own = [name for name, (mode, _) in MODE_OPTIONS.items() if mode == self.mode]
                raise ValueError(
                    f"{option}={value!r} is an option of local-learning mode {owner!r}; mode {self.mode!r} takes"
                    f" {', '.join(own) if own else 'no options'}"
                )
        if self.mode == "auglocal":
            _whole_number("aux_depth", self.aux_depth, 1)
            if not 0.0 <= _finite_number("pyramid_coeff", self.pyramid_coeff) <= 1.0:
                raise ValueError(f"pyramid_coeff={self.pyramid_coeff!r} must be in [0, 1]")
        if self.mode == "man" and not 0.0 <= _finite_number("momentum", self.momentum) <= 1.0:
            raise ValueError(f"momentum={self.momentum!r} must be in [0, 1]")
        if self.mode == "hpff":
            for name in ("wx", "wy"):
                if _finite_number(name, getattr(self, name)) < 0:
                    raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0")
            if self.wx == 0 and self.wy == 0:
                raise ValueError("wx=0 and wy=0: at least one of HPFF's two losses must have a weight above 0")
            _whole_number("patches", self.patches, 1)

    @property
    def num_groups(self) -> int:
        """K."""
        return self.groups if self.groups is not None else len(self.cut_points) + 1

    def group_bounds(self, num_blocks: int) -> List[Tuple[int, int]]:
        """``[(start, end), ...]``: block ``start`` up to (not including) ``end`` for each group, in order."""
        _whole_number("num_blocks", num_blocks, 1)
        if self.cut_points is not None:
            if self.cut_points[-1] >= num_blocks:
                raise ValueError(
                    f"cut_points={self.cut_points}: every cut must be in 1..{num_blocks - 1} (the denoiser has"
                    f" {num_blocks} blocks)"
                )
            edges = [0, *self.cut_points, num_blocks]
        else:
            if self.groups > num_blocks:
                raise ValueError(
                    f"groups={self.groups} is more than the denoiser's {num_blocks} blocks; allowed: 2..{num_blocks}"
                )
            size, extra = divmod(num_blocks, self.groups)
            edges = [0]
            for index in range(self.groups):
                edges.append(edges[-1] + size + (1 if index < extra else 0))
        return list(zip(edges[:-1], edges[1:]))

    def auglocal_selection(self, num_blocks: int) -> List[List[int]]:
        """AugLocal's block indices copied into each auxiliary network (one list per non-final group).

        For a group whose last block is ``l``, with depth ``d_i`` from the pyramid rule, the copies are of blocks
        ``round(l + (L - l - 1) / d_i * j)`` for ``j = 1..d_i`` (the last block always among them); when ``d_i`` is at
        least the number of later blocks, all of them.
        """
        if self.mode != "auglocal":
            raise ValueError(f"auglocal_selection is for mode 'auglocal', not {self.mode!r}")
        bounds = self.group_bounds(num_blocks)
        aux_count = len(bounds) - 1
        selections = []
        for index, (_, end) in enumerate(bounds[:-1]):
            last = end - 1
            ratio = index / (aux_count - 1) if aux_count > 1 else 0.0
            shrink = ratio * self.pyramid_coeff
            depth = max(1, round(self.aux_depth * (1 - shrink) + shrink))
            remaining = num_blocks - 1 - last
            if depth >= remaining:
                selections.append(list(range(last + 1, num_blocks)))
            else:
                selections.append([round(last + remaining / depth * j) for j in range(1, depth + 1)])
        return selections


def check_training_setup(config: LocalLearningConfig, *, training_type: str, gradient_checkpointing: float) -> None:
    """Refuses the combinations local learning does not support, before any model loads."""
    if training_type != "full":
        raise ValueError(
            f"training_type={training_type!r} with local_learning={config.mode!r}: only full is supported (the"
            " auxiliary networks copy whole blocks, which LoRA adapters would not follow)"
        )
    if gradient_checkpointing:
        raise ValueError(
            f"gradient_checkpointing={gradient_checkpointing!r} with local_learning={config.mode!r}: every block belongs"
            " to a local group, whose activations are freed after its own backward; allowed: gradient_checkpointing=0"
            " (for less memory, raise local_groups)"
        )


def parse_cut_points(text: str) -> Tuple[int, ...]:
    """``"4,8"`` -> ``(4, 8)`` (the CLI's form of ``cut_points``)."""
    try:
        cuts: Sequence[int] = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"cut points {text!r} must be comma-separated block indices, e.g. '4,8'") from None
    return tuple(cuts)
