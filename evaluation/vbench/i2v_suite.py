"""The official VBench-I2V suite (`vbench2_beta_i2v/vbench2_i2v_full_info.json` of VBench at 45e79ec, shipped as
package data): for each prompt its dimensions and the input image it animates, and where that image is in the
I2V image suite the user downloads (`crop/{1-1|8-5|7-4|16-9}/{image_name}`, from the suite's `crop.zip`).

The I2V dimensions (i2v_subject, i2v_background, camera_motion) take their prompts from this suite; the quality
dimensions keep the T2V suite's. A prompt's entry carries its image as auxiliary info, `{'image_name': ...}`.
"""

import functools
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

I2V_SUITE_DIMENSIONS = ("camera_motion", "i2v_subject", "i2v_background")
RESOLUTIONS = ("1-1", "8-5", "7-4", "16-9")  # the aspect-ratio folders of the image suite's crop.zip
IMAGE_DIMENSIONS = ("i2v_subject", "i2v_background")  # the dimensions that compare the video to its input image

_DATA = Path(__file__).resolve().parent / "data"


@functools.lru_cache(maxsize=1)
def _suite() -> tuple:
    with open(_DATA / "vbench2_i2v_full_info.json", encoding="utf-8") as handle:
        entries = json.load(handle)
    converted = []
    for entry in entries:
        dimensions = [name for name in entry["dimension"] if name in I2V_SUITE_DIMENSIONS]
        if dimensions:
            info = {name: {"image_name": entry["image_name"]} for name in dimensions}
            converted.append({"prompt_en": entry["prompt_en"], "dimension": dimensions, "auxiliary_info": info})
    return tuple(converted)


def i2v_entries() -> tuple:
    """The suite's entries of the I2V dimensions as {'prompt_en', 'dimension', 'auxiliary_info'} (the image name
    as each I2V dimension's auxiliary info)."""
    return _suite()


@functools.lru_cache(maxsize=1)
def _image_names() -> Dict[str, str]:
    return {entry["prompt_en"]: next(iter(entry["auxiliary_info"].values()))["image_name"] for entry in _suite()}


def image_name(prompt: str) -> Optional[str]:
    """The suite's input image of `prompt`, None when the prompt is not in the I2V suite."""
    return _image_names().get(prompt)


def check_image_folder(image_folder, resolution: str) -> str:
    """The folder holding the `resolution` crops: `<image_folder>/crop/<resolution>` (the suite's data folder),
    `<image_folder>/<resolution>` (its crop folder) or `image_folder` itself when it is named `resolution`.
    ValueError / FileNotFoundError naming the argument otherwise."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution={resolution!r} is not an aspect ratio of the I2V image suite; allowed: {RESOLUTIONS}")
    if image_folder is None:
        raise ValueError(
            "image_folder is needed: the I2V image suite's data folder (holding crop/<ratio>/) or its crop folder"
        )
    folder = os.fspath(image_folder)
    candidates = [os.path.join(folder, "crop", resolution), os.path.join(folder, resolution)]
    if os.path.basename(os.path.normpath(folder)) == resolution:
        candidates.append(folder)
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"image_folder={folder!r} holds no {resolution} crops of the I2V image suite (looked for "
        f"{', '.join(candidates)}); give the suite's data folder (crop/<ratio>/<image>) or its crop folder"
    )


def input_images(prompts: List[str], auxiliary_info: List, image_folder, resolution: str) -> List[str]:
    """The input image of each video (its suite entry's image, else its prompt's in the suite), checked to exist;
    one error listing every video whose image is unknown or missing."""
    folder = check_image_folder(image_folder, resolution)
    images, unknown, missing = [], [], []
    for index, (prompt, info) in enumerate(zip(prompts, auxiliary_info)):
        name = info.get("image_name") if isinstance(info, dict) else None
        name = name or image_name(prompt)
        if name is None:
            unknown.append(f"videos[{index}] (prompt {prompt!r})")
            images.append(None)
            continue
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            missing.append(path)
        images.append(path)
    if unknown:
        raise ValueError(
            f"{len(unknown)} video(s) have a prompt that is not in the I2V suite, so no input image: "
            f"{', '.join(unknown[:10])}"
        )
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} input image(s) of the I2V suite are missing in {folder!r}: {', '.join(missing[:10])}"
        )
    return images


def resolve_input_images(name: str, video_paths, prompts, auxiliary_info, images, image_folder, resolution: str):
    """The input image file of each video of an I2V dimension `name`: `images` (one file per video) or, from
    `image_folder` and `resolution`, each video's image in the suite (`input_images`). An error naming the argument,
    or listing every video whose image is unknown or missing."""
    if images is not None:
        if image_folder is not None:
            raise ValueError(f"{name}: give images or image_folder, not both")
        images = [os.fspath(path) for path in images]
        if video_paths is not None and len(images) != len(video_paths):
            raise ValueError(f"{name}: images gives {len(images)} files for {len(video_paths)} videos")
        missing = [path for path in images if not os.path.isfile(path)]
        if missing:
            raise FileNotFoundError(f"{name}: {len(missing)} input image(s) do not exist: {missing[:10]}")
        return images
    if prompts is None:
        raise ValueError(f"{name}: prompts (one per video) or images are needed to find each video's input image")
    auxiliary_info = list(auxiliary_info) if auxiliary_info is not None else [None] * len(prompts)
    try:
        return input_images(list(prompts), auxiliary_info, image_folder, resolution)
    except (ValueError, FileNotFoundError) as error:
        raise type(error)(f"{name}: {error}") from None
