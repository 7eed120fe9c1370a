"""Small training data folders in the formats `vdp train` reads (random videos, written and read as real files)."""

import csv
import json
from pathlib import Path

import numpy as np

from video_diffusion_pack.video_io import write_video


def write_training_folder(folder, family: str, count: int = 2, frames: int = 9, size=(32, 32), seed: int = 0,
                          index: str = "metadata.jsonl") -> Path:
    """A data folder of ``count`` samples for ``family`` (das: with tracking videos; lgvi: input videos and masks).

    ``index`` is ``metadata.jsonl``, ``metadata.csv`` or ``prompts.txt`` (with ``videos.txt``; captions only).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        # a smooth moving gradient plus a little noise: compressible, different per sample
        t = np.arange(frames)[:, None, None, None]
        y, x = np.mgrid[0:size[0], 0:size[1]]
        base = (np.sin((x[None, ..., None] + 3 * t + 7 * i) / 5.0) * 0.5 + 0.5) * 255
        video = np.clip(base * np.array([1.0, 0.6, 0.3]) + rng.normal(0, 8, (frames, *size, 3)), 0, 255)
        write_video(folder / f"clip{i}.mp4", video.astype(np.uint8), fps=8)
        row = {"file_name": f"clip{i}.mp4"}
        if family == "das":
            write_video(folder / f"tracks{i}.mp4", np.roll(video, 2 * i + 1, axis=2).astype(np.uint8), fps=8)
            row.update(tracking_video=f"tracks{i}.mp4", caption=f"a gradient drifting right, sample {i}")
        else:
            write_video(folder / f"input{i}.mp4", np.roll(video, i + 1, axis=1).astype(np.uint8), fps=8)
            mask = np.zeros((frames, *size, 3), np.uint8)
            mask[:, size[0] // 4: size[0] // 2, size[1] // 4: size[1] // 2] = 255
            write_video(folder / f"mask{i}.mp4", mask, fps=8)
            row.update(input_video=f"input{i}.mp4", mask=f"mask{i}.mp4", instruction=f"remove the square {i}")
        rows.append(row)
    if index == "metadata.jsonl":
        (folder / index).write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif index == "metadata.csv":
        with open(folder / index, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        (folder / "prompts.txt").write_text("".join(row.get("caption", row.get("instruction")) + "\n" for row in rows))
        (folder / "videos.txt").write_text("".join(row["file_name"] + "\n" for row in rows))
    return folder
