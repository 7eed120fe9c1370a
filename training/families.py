"""What the CLI and the data checks know of each model family without importing torch: frame and size rules, data
columns, the clip geometry of the embedded and the released models.

The values equal the specification classes' attributes (``training/specifications/*.py``); a test keeps them equal.
"""

import dataclasses
from typing import Tuple

__all__ = ["FAMILIES", "FamilyRules", "family_rules"]


@dataclasses.dataclass(frozen=True)
class FamilyRules:
    """The torch-free facts of one model family the trainer checks its arguments and data against."""

    #: a clip has ``num_frames % frame_multiple == frame_remainder`` frames
    frame_multiple: int
    frame_remainder: int
    #: height and width are multiples of this
    size_multiple: int
    #: data columns every row must have besides ``file_name`` and a text column
    required_columns: Tuple[str, ...]
    #: the text column the family reads first (``caption`` is always accepted)
    text_column: str
    #: (frames, height, width) of a clip for the embedded model and for the released one
    embedded_clip: Tuple[int, int, int]
    released_clip: Tuple[int, int, int]

    def frames_allowed(self, num_frames: int) -> bool:
        return num_frames >= 1 and num_frames % self.frame_multiple == self.frame_remainder

    def frame_rule(self) -> str:
        if self.frame_multiple == 1:
            return "any number of frames >= 1"
        first = [n for n in range(1, 4 * self.frame_multiple) if self.frames_allowed(n)][:3]
        return f"{self.frame_multiple}k+{self.frame_remainder} frames ({', '.join(map(str, first))}, ...)"


FAMILIES = {
    # CogVideoX geometry: the VAE compresses time by 4 (4k+1 frames), space by 8, the transformer's patch is 2
    "das": FamilyRules(frame_multiple=4, frame_remainder=1, size_multiple=16, required_columns=("tracking_video",),
                       text_column="caption", embedded_clip=(9, 32, 32), released_clip=(49, 480, 720)),
    # SD3's image VAE frame by frame: any frame count; sizes a multiple of 8 (VAE) x 2 (patch)
    "vchitect": FamilyRules(frame_multiple=1, frame_remainder=0, size_multiple=16, required_columns=(),
                            text_column="caption", embedded_clip=(8, 48, 48), released_clip=(40, 432, 768)),
    # Stable Diffusion's VAE: any frame count, sizes a multiple of 8
    "lgvi": FamilyRules(frame_multiple=1, frame_remainder=0, size_multiple=8, required_columns=("input_video",),
                        text_column="instruction", embedded_clip=(3, 32, 48), released_clip=(24, 320, 512)),
}


def family_rules(model: str) -> FamilyRules:
    """The rules of the family ``model``; a ValueError lists the families the trainer knows."""
    if model not in FAMILIES:
        raise ValueError(f"model={model!r} is not a model family the trainer knows; allowed: {', '.join(FAMILIES)}")
    return FAMILIES[model]
