"""The backend script of `backend.py`: runs the official VBench models (GRiT, Tag2Text, CoTracker) on the frames the
pack sends and writes their raw outputs; the pack scores them. It is run by the Python of an environment holding the
official vbench (and detectron2 for GRiT), never imported by the pack:

    PYTHON official_backend.py REQUEST.json

Each model is built and called as the official dimension code does (`vbench.third_party.grit_model.DenseCaptioning`
with `initialize_model` for color and `initialize_model_det` for the other GRiT dimensions; `tag2text_caption` with
`tag2text_transform(384)` and `generate(..., tag_input=None, return_tag_predict=True)`; CoTracker with `grid_size=10`
on the float frames [1,T,3,H,W]). The frames arrive as the official code samples them, uint8; what the official code
does between its decoder and the model (float32 conversion, the resize of frames above 768 pixels) is done here with
the same libraries.
"""

import json
import os
import sys
import time

import numpy as np

PROTOCOL = "vdp-vbench-backend"
VERSION = 1


def read_frames(path):
    """A video's frames, waiting for the pack to hand the file over (it writes them while this runs); the file is
    removed once read. Exits when the pack is gone."""
    parent = os.getppid()
    while not os.path.exists(path):
        if os.getppid() != parent:
            sys.exit("the pack stopped before handing over every video")
        time.sleep(0.02)
    frames = np.load(path)
    os.remove(path)
    return frames


def grit_frames(frames, resize_to, dense):
    """The arrays the official GRiT dimensions pass to `run_caption_tensor`: uint8 (color, cv2 bilinear resize) or
    float32 (the others, torchvision Resize of the float [T,3,H,W] frames), [T,H,W,3]."""
    if dense:
        if resize_to is None:
            return frames
        import cv2

        height, width = resize_to
        return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR) for frame in frames])
    import torch
    from torchvision import transforms

    video = torch.Tensor(frames).permute(0, 3, 1, 2)
    if resize_to is not None:
        video = transforms.Resize(size=tuple(resize_to))(video)
    return video.permute(0, 2, 3, 1).numpy()


def run_grit(request, dense):
    import torch
    from vbench.third_party.grit_model import DenseCaptioning

    model = DenseCaptioning(torch.device(request["device"]))
    if dense:
        model.initialize_model(model_weight=request["checkpoint"])
    else:
        model.initialize_model_det(model_weight=request["checkpoint"])
    outputs = {}
    for video in request["videos"]:
        records = []
        for frame in grit_frames(read_frames(video["frames"]), video["resize_to"], dense):
            try:
                with torch.no_grad():
                    detections = model.run_caption_tensor(frame)[0]
                records.append({
                    "captions": [[str(item[0]), [int(value) for value in item[1]]] for item in detections],
                    "objects": [str(name) for name in detections[0][2]] if len(detections) > 0 else [],
                })
            except Exception as error:  # the official object_class counts a failing frame as detecting nothing
                records.append({"error": f"{type(error).__name__}: {error}"})
        outputs[video["id"]] = records
    return outputs


def run_tag2text(request):
    import torch
    from vbench.third_party.tag2Text.tag2text import tag2text_caption
    from vbench.utils import tag2text_transform

    device = torch.device(request["device"])
    model = tag2text_caption(pretrained=request["checkpoint"], image_size=384, vit="swin_b").eval().to(device)
    transform = tag2text_transform(384)
    outputs = {}
    for video in request["videos"]:
        frames = read_frames(video["frames"])
        batch = torch.cat([transform(frame).to(device).unsqueeze(0) for frame in frames])
        with torch.no_grad():
            captions, _ = model.generate(batch, tag_input=None, return_tag_predict=True)
        outputs[video["id"]] = [str(caption) for caption in captions]
    return outputs


def run_cotracker(request):
    import torch

    device = torch.device(request["device"])
    if request["checkpoint"]:
        model = torch.hub.load(request["checkpoint"], "cotracker2", source="local")
    else:
        model = torch.hub.load("facebookresearch/co-tracker", "cotracker2")
    model = model.to(device)
    outputs = {}
    for video in request["videos"]:
        frames = torch.from_numpy(read_frames(video["frames"])).permute(0, 3, 1, 2)[None].float().to(device)
        with torch.no_grad():
            tracks, _ = model(frames, grid_size=10)
        outputs[video["id"]] = tracks[0].float().cpu().tolist()
    return outputs


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: official_backend.py REQUEST.json")
    with open(argv[1], encoding="utf-8") as stream:
        request = json.load(stream)
    if request.get("protocol") != PROTOCOL or request.get("version") != VERSION:
        sys.exit(f"request {argv[1]!r} is not {PROTOCOL!r} version {VERSION}")
    try:  # before torch loads: a Python without the official package is told so at once
        import vbench  # noqa: F401
    except ImportError as error:
        sys.exit(f"this Python ({sys.executable}) cannot import the official vbench package: {error}")
    task = request["task"]
    if task in ("grit_objectdet", "grit_densecap"):
        outputs = run_grit(request, dense=task == "grit_densecap")
    elif task == "tag2text":
        outputs = run_tag2text(request)
    elif task == "cotracker":
        outputs = run_cotracker(request)
    else:
        sys.exit(f"unknown task {task!r}")
    temporary = request["output"] + ".tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump({"protocol": PROTOCOL, "version": VERSION, "task": task, "outputs": outputs}, stream)
    os.replace(temporary, request["output"])


if __name__ == "__main__":
    main(sys.argv)
