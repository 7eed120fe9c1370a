"""VBench in the pack: the official prompt suite and file naming, the dimensions computed from local checkpoint
files, results in the official `<name>_eval_results.json` layout and the official totals.

Python API (importing this package imports neither torch nor diffusers):

- `evaluate(videos, dimensions, checkpoints=None, ...) -> results` scores a folder or list of videos;
- `vbench_totals(scores)` and `i2v_totals(scores)` give Quality / Semantic / Total and the VBench-I2V scores;
- `prompts(dimension)` lists the suite's prompts of a dimension, `video_name(prompt, index)` the official file name.
"""

from .totals import i2v_totals, normalized_scores, vbench_totals

__all__ = ["i2v_totals", "normalized_scores", "vbench_totals"]
