"""VBench's total scores from per-dimension values: the official normalisation, weights and Quality / Semantic /
Total, and the VBench-I2V scores.

As the official `scripts/constant.py` and `scripts/cal_final_score.py`: each raw value is normalised as
(raw - Min) / (Max - Min) * weight, not clipped; a dimension that is missing counts as 0; Quality is the sum over
the seven quality dimensions / 6.5, Semantic the sum over the nine semantic dimensions / 9, Total
(4 Quality + Semantic) / 5. VBench-I2V (`cal_i2v_final_score.py`): I2V = (0.1 camera_motion + i2v_subject +
i2v_background) / 2.1, I2V-Quality = (subject + background + smoothness + 0.5 dynamic + aesthetic + imaging) / 5.5,
Total = the mean of the two. Values are fractions (0.9623 for 96.23 %); the results are fractions too.
"""

import math
from typing import Dict, Mapping

QUALITY_DIMENSIONS = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
)
SEMANTIC_DIMENSIONS = (
    "object_class",
    "multiple_objects",
    "human_action",
    "color",
    "spatial_relationship",
    "scene",
    "appearance_style",
    "temporal_style",
    "overall_consistency",
)
DIMENSIONS = QUALITY_DIMENSIONS + SEMANTIC_DIMENSIONS

# dimension -> (Min, Max) of the official normalisation; every other dimension is (0, 1)
NORMALIZE_RANGE = {
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
}
DIMENSION_WEIGHTS = {name: (0.5 if name == "dynamic_degree" else 1.0) for name in DIMENSIONS}
QUALITY_WEIGHT = 4.0
SEMANTIC_WEIGHT = 1.0

I2V_DIMENSIONS = ("camera_motion", "i2v_subject", "i2v_background")
I2V_WEIGHTS = {"camera_motion": 0.1, "i2v_subject": 1.0, "i2v_background": 1.0}
I2V_QUALITY_DIMENSIONS = (
    "subject_consistency",
    "background_consistency",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
)


def _values(scores: Mapping, allowed) -> Dict[str, float]:
    """The scores as {dimension: float}; keys may use spaces for underscores (as the official script reads them).
    ValueError naming a key that is not a dimension or a value that is not a finite number."""
    if not isinstance(scores, Mapping):
        raise ValueError(f"scores must be a mapping dimension -> value, got {type(scores).__name__}")
    values = {}
    for key, value in scores.items():
        name = str(key).replace(" ", "_")
        if name not in allowed:
            raise ValueError(f"scores: {key!r} is not a VBench dimension; allowed: {', '.join(allowed)}")
        if isinstance(value, (list, tuple)) and value:  # an <name>_eval_results.json entry [aggregate, per_video]
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"scores[{key!r}] must be a finite number (a fraction, 0.9623 for 96.23 %), got {value!r}")
        values[name] = float(value)
    return values


def normalized_scores(scores: Mapping) -> Dict[str, float]:
    """dimension -> (raw - Min) / (Max - Min) * weight for every one of the 16 dimensions (0 for a missing one)."""
    values = _values(scores, DIMENSIONS + I2V_DIMENSIONS)
    normalized = {}
    for name in DIMENSIONS:
        if name not in values:
            normalized[name] = 0.0
            continue
        low, high = NORMALIZE_RANGE.get(name, (0.0, 1.0))
        normalized[name] = (values[name] - low) / (high - low) * DIMENSION_WEIGHTS[name]
    return normalized


def vbench_totals(scores: Mapping) -> Dict[str, float]:
    """{'quality_score', 'semantic_score', 'total_score'} as fractions from per-dimension raw values (fractions).

    `scores` maps dimension names (underscores or spaces) to values, or is the content of an
    `<name>_eval_results.json` file (each value `[aggregate, per_video]`)."""
    normalized = normalized_scores(scores)
    quality = sum(normalized[name] for name in QUALITY_DIMENSIONS) / sum(
        DIMENSION_WEIGHTS[name] for name in QUALITY_DIMENSIONS
    )
    semantic = sum(normalized[name] for name in SEMANTIC_DIMENSIONS) / sum(
        DIMENSION_WEIGHTS[name] for name in SEMANTIC_DIMENSIONS
    )
    total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {"quality_score": quality, "semantic_score": semantic, "total_score": total}


def i2v_totals(scores: Mapping) -> Dict[str, float]:
    """{'i2v_score', 'quality_score', 'total_score'} of VBench-I2V from raw values (fractions), missing ones as 0."""
    values = _values(scores, DIMENSIONS + I2V_DIMENSIONS)
    i2v = sum(I2V_WEIGHTS[name] * values.get(name, 0.0) for name in I2V_DIMENSIONS) / sum(I2V_WEIGHTS.values())
    weights = {name: DIMENSION_WEIGHTS[name] for name in I2V_QUALITY_DIMENSIONS}
    quality = sum(weights[name] * values.get(name, 0.0) for name in I2V_QUALITY_DIMENSIONS) / sum(weights.values())
    return {"i2v_score": i2v, "quality_score": quality, "total_score": (i2v + quality) / 2}
