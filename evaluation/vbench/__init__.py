"""VBench in the pack: the official prompt suite and file naming, the dimensions computed from local checkpoint
files, results in the official `<name>_eval_results.json` layout and the official totals.

Python API (importing this package imports neither torch nor diffusers):

- `evaluate(videos, dimensions, weights_dir=None, checkpoints=None, ...) -> results` scores a folder (or a list
  of files) and returns {dimension: [aggregate, [{'video_path', 'video_results', ...}, ...]]}, the content of the
  official `<name>_eval_results.json` (written to `output_dir` when given, and resumed from there);
- `available_dimensions()` names the dimensions this version computes, `resolve_checkpoints(dimension, weights_dir)`
  the checkpoint files a dimension reads;
- `vbench_totals(scores)` and `i2v_totals(scores)` give Quality / Semantic / Total and the VBench-I2V scores;
- `prompts(dimension)` lists the suite's prompts of a dimension, `video_name(prompt, index)` the official file name.
"""

import contextlib
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Union

from .registry import available_dimensions, check_dimensions, checkpoint_files, dimension_module
from .results import read_results, results_path, write_results
from .suite import custom_videos, prompts, standard_videos, video_name
from .totals import i2v_totals, normalized_scores, vbench_totals

__all__ = [
    "available_dimensions",
    "evaluate",
    "i2v_totals",
    "normalized_scores",
    "prompts",
    "resolve_checkpoints",
    "vbench_totals",
    "video_name",
]

MODES = ("standard", "custom")
# the compute precisions evaluate() takes: float32 (the default, the official numbers) or autocast to half precision
PRECISIONS = ("fp32", "fp16", "bf16")
# the kind folder `vdp download` puts the evaluator checkpoints in: <models root>/vbench/<manifest entry>/<file>
WEIGHTS_KIND = "vbench"


def _folders(weights_dir) -> List[str]:
    if weights_dir is None:
        return []
    if isinstance(weights_dir, (str, os.PathLike)):
        return [os.fspath(weights_dir)]
    return [os.fspath(folder) for folder in weights_dir]


def resolve_checkpoints(dimension: str, weights_dir=None, checkpoints: Optional[Mapping] = None) -> Dict[str, str]:
    """checkpoint key -> local file of `dimension`.

    `checkpoints[key]` when given; else the first of `<folder>/vbench/<manifest entry>/<official file>` (the models
    root `vdp download` fills), `<folder>/<manifest entry>/<official file>` (its `vbench` kind folder, as ComfyUI's
    `models/video_diffusion_pack/vbench`) and `<folder>/<official file>` (a flat folder of the official files) that
    exists, for each folder of `weights_dir` (a folder or a list of them). A file found nowhere is a
    FileNotFoundError naming every place looked at and the `vdp download` entry that provides it."""
    given = dict(checkpoints or {})
    folders = _folders(weights_dir)
    resolved = {}
    for key, (file_name, entry) in checkpoint_files(dimension).items():
        if key in given:
            path = os.fspath(given[key])
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{dimension}: checkpoints[{key!r}]={path!r} is not a file; `vdp download {entry}` fetches "
                    f"{file_name}"
                )
            resolved[key] = path
            continue
        if not folders:
            raise ValueError(
                f"{dimension}: checkpoint {key!r} ({file_name}) needs weights_dir or checkpoints[{key!r}]; "
                f"`vdp download {entry}` fetches it"
            )
        candidates = [
            path
            for folder in folders
            for path in (
                os.path.join(folder, WEIGHTS_KIND, entry, file_name),
                os.path.join(folder, entry, file_name),
                os.path.join(folder, file_name),
            )
        ]
        found = [path for path in candidates if os.path.isfile(path)]
        if not found:
            raise FileNotFoundError(
                f"{dimension}: checkpoint {key!r} ({file_name}) is not in weights_dir "
                f"{' or '.join(repr(folder) for folder in folders)} (looked for {', '.join(candidates)}); "
                f"`vdp download {entry}` fetches it"
            )
        resolved[key] = found[0]
    return resolved


def _decode(path: str):
    from ...video_io import read_video

    try:
        return read_video(path)
    except Exception as error:
        raise ValueError(f"video {path!r} cannot be decoded: {error}") from None


def _check_output_dir(output_dir) -> str:
    output_dir = os.fspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"output_dir={output_dir!r} exists and is not a folder")
    parent = output_dir if os.path.isdir(output_dir) else os.path.dirname(os.path.abspath(output_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir={output_dir!r} is not writable (no write access to {parent!r})")
    return output_dir


def _find_videos(videos, dimensions, mode, special_str) -> Dict[str, List[tuple]]:
    """dimension -> [(path, prompt, auxiliary info or None)] in the official order."""
    if mode == "standard":
        if not isinstance(videos, (str, os.PathLike)):
            raise ValueError(f"videos must be a folder in standard mode, got {type(videos).__name__}")
        items = standard_videos(os.fspath(videos), dimensions, special_str=special_str)
    elif isinstance(videos, (str, os.PathLike)):
        items = custom_videos(os.fspath(videos), dimensions)
    else:
        paths = [os.fspath(path) for path in videos]
        missing = [path for path in paths if not os.path.isfile(path)]
        if not paths or missing:
            raise FileNotFoundError(f"videos: {len(missing)} of {len(paths)} file(s) do not exist: {missing[:10]}")
        per_file = [custom_videos(path, dimensions) for path in paths]
        items = {dimension: [item for found in per_file for item in found[dimension]] for dimension in dimensions}
    return {
        dimension: [
            (path, item["prompt_en"], item.get("auxiliary_info")) for item in items[dimension] for path in item["video_list"]
        ]
        for dimension in dimensions
    }


def _autocast(device, precision: str):
    """`torch.autocast` on `device`'s type in `precision`'s half type, or no context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _name_videos(error: Exception, paths: Sequence[str]) -> str:
    """A dimension module's message with each `videos[i]` followed by the file it is."""

    def named(match):
        index = int(match.group(1))
        return f"{match.group(0)} ({paths[index]!r})" if index < len(paths) else match.group(0)

    return re.sub(r"videos\[(\d+)\]", named, str(error))


def evaluate(
    videos: Union[str, os.PathLike, Sequence],
    dimensions: Sequence[str],
    weights_dir=None,
    checkpoints: Optional[Mapping] = None,
    *,
    mode: str = "standard",
    name: str = "results",
    output_dir=None,
    special_str: str = "",
    device="cpu",
    batch_size: int = 16,
    resume: bool = True,
    progress: bool = False,
    dimension_options: Optional[Mapping[str, Mapping]] = None,
    precision: str = "fp32",
) -> Dict:
    """Score `videos` on `dimensions` as the official `VBench.evaluate` does, each video decoded once for all of
    them.

    Args:
        videos: a folder of videos (standard mode: the suite's `{prompt}{special_str}-{i}{ext}` files, i in 0..4;
            custom mode: any videos, the prompt read from the name) or, in custom mode, a list of video files.
            temporal_flickering scores the videos the official static filter kept (its `filtered_videos` folder).
        dimensions: dimension names (see `available_dimensions()`).
        weights_dir: the models root `vdp download` fills, its `vbench` folder, or a flat folder of the official
            checkpoint files (or a list of such folders); see `resolve_checkpoints`.
        checkpoints: {checkpoint key: file} overriding `weights_dir` per key (keys: a dimension module's
            `CHECKPOINTS`).
        mode: "standard" or "custom" (the official `custom_input`; the six dimensions needing the suite's auxiliary
            info are refused there).
        name, output_dir: with `output_dir`, results go to `<output_dir>/<name>_eval_results.json`, rewritten after
            each dimension; with `resume`, the dimensions already in that file (for the same videos) are kept, not
            recomputed.
        device, batch_size: where the models run and how many frames a forward pass takes.
        progress: a tqdm bar per dimension.
        dimension_options: {dimension: {keyword: value}} passed on to that dimension module's `compute` (e.g.
            `{"imaging_quality": {"imaging_quality_preprocessing_mode": "longer"}}`).
        precision: "fp32" (default: the official computation, the parity the tests pin), or "fp16" / "bf16":
            each dimension's models run under `torch.autocast` in that type on `device` (weights stay float32;
            matrix products and convolutions run in half precision). Meant for GPUs; scores move by the half type's
            rounding (bf16 on CPU: up to 2e-4 relative on the consistency dimensions of the test clips). Resuming a
            results file continues it whatever precision computed the dimensions already in it.

    Returns: {dimension: [aggregate, [{'video_path', 'video_results', ...}, ...]]}, the official layout.

    Every check (dimension names, missing videos, checkpoint files, the results file to resume) runs before a video
    is decoded or a model is loaded. Each dimension module's `compute(frames, *, checkpoints, device, batch_size,
    video_paths, prompts, auxiliary_info, fps)` receives the decoded uint8 [F,H,W,3] frames of all its videos at
    once (so it batches frames across videos) with each video's path, prompt, auxiliary info of the suite (None
    when there is none) and frame rate; a decoded video is kept only while a later dimension still needs it.

    The dimensions whose models run outside the pack (object_class, multiple_objects, color, spatial_relationship,
    scene, camera_motion; see `backend.py`) take their backend in `dimension_options`: {"backend_python": the
    Python of an environment with the official vbench} or {"model_outputs": a model-outputs file}, optionally
    "save_model_outputs" and, for camera_motion, "tracker_repo"; `backend.backend_options(dimensions, ...)` builds
    them. Such a module's `check_options(video_paths, **options)` runs with the checks above, and its
    `needs_checkpoints(**options)` and `needs_frames(**options)` tell whether its checkpoint is read and its videos
    decoded (not with a model-outputs file); color lists only the videos it kept
    (`SKIPS_VIDEOS`) and camera_motion returns [aggregate, per-type means, per-video], as the official files do.
    """
    dimensions = check_dimensions(dimensions)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(special_str, str):
        raise ValueError(f"special_str must be a string, got {special_str!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    options = dict(dimension_options or {})
    stray = sorted(set(options) - set(dimensions))
    if stray or not all(isinstance(value, Mapping) for value in options.values()):
        raise ValueError(
            f"dimension_options must map dimensions of {dimensions} to keyword mappings, got {dimension_options!r:.200}"
        )
    target = results_path(_check_output_dir(output_dir), name) if output_dir is not None else None
    videos_of = _find_videos(videos, dimensions, mode, special_str)
    empty = [dimension for dimension in dimensions if not videos_of[dimension]]
    if empty:
        raise FileNotFoundError(f"no video to score for {empty}")

    results = {}
    if target is not None and resume and os.path.isfile(target):
        paths_of = {dimension: [path for path, _, _ in found] for dimension, found in videos_of.items()}
        results = {key: value for key, value in read_results(target, paths_of).items() if key in dimensions}
    to_compute = [dimension for dimension in dimensions if dimension not in results]
    known_keys = {key for dimension in dimensions for key in checkpoint_files(dimension)}
    unknown = sorted(set(checkpoints or {}) - known_keys)
    if unknown:
        raise ValueError(
            f"checkpoints names {unknown}, which no dimension of {dimensions} reads; allowed keys: {sorted(known_keys)}"
        )
    modules = {dimension: dimension_module(dimension) for dimension in to_compute}
    for dimension in to_compute:  # a backend dimension checks its options (backend, model-outputs file) here
        if hasattr(modules[dimension], "check_options"):
            modules[dimension].check_options([path for path, _, _ in videos_of[dimension]], **options.get(dimension, {}))
    checkpoint_paths = {
        dimension: resolve_checkpoints(dimension, weights_dir, checkpoints)
        if getattr(modules[dimension], "needs_checkpoints", lambda **_: True)(**options.get(dimension, {})) else {}
        for dimension in to_compute
    }
    for dimension in to_compute:  # a module's own inputs (e.g. the I2V input images), checked before decoding
        if hasattr(modules[dimension], "check_inputs"):
            paths, found_prompts, infos = zip(*videos_of[dimension])
            try:
                modules[dimension].check_inputs(list(paths), list(found_prompts), list(infos),
                                                **options.get(dimension, {}))
            except ValueError as error:
                raise ValueError(_name_videos(error, paths)) from None

    # how many of the dimensions still to compute need each video: a decoded video is dropped after its last one
    uses = {}
    for dimension in to_compute:
        for path in dict.fromkeys(path for path, _, _ in videos_of[dimension]):
            uses[path] = uses.get(path, 0) + 1
    decoded = {}
    for dimension in to_compute:
        found = videos_of[dimension]
        paths = [path for path, _, _ in found]
        iterator = paths
        if progress:
            from tqdm import tqdm

            iterator = tqdm(paths, desc=f"{dimension}: decoding", unit="video")
        frames, rates = [], []
        # a dimension scoring a model-outputs file reads no frame: its videos are not decoded
        undecoded = not getattr(modules[dimension], "needs_frames", lambda **_: True)(**options.get(dimension, {}))
        for path in iterator:
            if undecoded:
                frames.append(None)
                rates.append(None)
                continue
            if path not in decoded:
                decoded[path] = _decode(path)
            frames.append(decoded[path].frames)
            rates.append(decoded[path].fps)
        if progress:
            print(f"{dimension}: scoring {len(paths)} video(s)", flush=True)
        try:
            with _autocast(device, precision):
                aggregate, *extras, per_video = modules[dimension].compute(
                    frames,
                    checkpoints=checkpoint_paths[dimension],
                    device=device,
                    batch_size=batch_size,
                    video_paths=paths,
                    prompts=[prompt for _, prompt, _ in found],
                    auxiliary_info=[info for _, _, info in found],
                    fps=rates,
                    **options.get(dimension, {}),
                )
        except ValueError as error:
            raise ValueError(_name_videos(error, paths)) from None
        del frames, rates
        for path in dict.fromkeys(paths):
            uses[path] -= 1
            if uses[path] == 0:
                decoded.pop(path, None)
        if getattr(modules[dimension], "SKIPS_VIDEOS", False):  # color: entries of the videos kept, with their paths
            entries = [dict(score) for score in per_video]
        elif len(per_video) != len(paths):
            raise RuntimeError(f"{dimension}: {len(per_video)} per-video results for {len(paths)} videos")
        else:
            entries = []
            for path, score in zip(paths, per_video):
                fields = dict(score) if isinstance(score, Mapping) else {"video_results": score}
                entries.append({"video_path": path, **fields})
        # camera_motion keeps its per-type means between the aggregate and the videos, as the official file does
        results[dimension] = [float(aggregate), *extras, entries]
        if target is not None:
            write_results(results, target)
    return {dimension: results[dimension] for dimension in dimensions}
