"""Writes the template thumbnails of example_workflows/: a still of what each graph produces, run in a real ComfyUI.

Each tiny-model graph (random weights, or the trained shapes-world model) runs as it is (its API copy in this folder) in the test harness's ComfyUI (CPU); the middle
frame of the video one of its save nodes writes becomes ``example_workflows/<name>.jpg`` (256 px on the long side,
nearest-neighbour, since the tiny videos are a few dozen pixels). A graph on the released weights cannot run
without them, so its thumbnail is the still of its tiny-model counterpart, the same graph on the embedded model.
The DaS graphs show the tracking video they render (their second save node), which is what conditions the model.

    python tests/workflows/make_thumbnails.py
"""

import json
import pathlib
import sys
import tempfile

from PIL import Image, ImageSequence

TESTS_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS_ROOT))

from helpers import EXAMPLE_WORKFLOWS, REPO_ROOT, WORKFLOWS  # noqa: E402
from helpers.comfyui_harness import ComfyUIServer, install_pack, prepare_comfyui  # noqa: E402

# template -> (API copy that runs, the save node whose video gives the still)
SOURCES = {
    "vchitect_tiny_t2v": ("vchitect_tiny_t2v_api.json", "3"),
    "vchitect_shapes_t2v": ("vchitect_shapes_t2v_api.json", "3"),
    "vchitect_tiny_freeinit_t2v": ("vchitect_tiny_freeinit_t2v_api.json", "3"),
    "vchitect_tiny_fastercache_t2v": ("vchitect_tiny_fastercache_t2v_api.json", "3"),
    "vchitect_t2v": ("vchitect_tiny_t2v_api.json", "3"),
    "repvideo_tiny_t2v": ("repvideo_tiny_t2v_api.json", "33"),
    "repvideo_t2v": ("repvideo_tiny_t2v_api.json", "33"),
    "das_tiny_camera": ("das_tiny_camera_api.json", "9"),
    "das_camera": ("das_tiny_camera_api.json", "9"),
    "lgvi_tiny_inpaint": ("lgvi_tiny_inpaint_api.json", "4"),
    "lgvi_inpaint": ("lgvi_tiny_inpaint_api.json", "4"),
    "lgvi_i_tiny_inpaint": ("lgvi_i_tiny_inpaint_api.json", "4"),
    "lgvi_i_inpaint": ("lgvi_i_tiny_inpaint_api.json", "4"),
}
THUMBNAIL_SIDE = 256


def middle_frame(video: pathlib.Path) -> Image.Image:
    with Image.open(video) as animation:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(animation)]
    return frames[len(frames) // 2]


def thumbnail(frame: Image.Image) -> Image.Image:
    scale = THUMBNAIL_SIDE / max(frame.size)
    size = (round(frame.width * scale), round(frame.height * scale))
    return frame.resize(size, Image.Resampling.NEAREST)


def main() -> None:
    missing = sorted({path.stem for path in EXAMPLE_WORKFLOWS.glob("*.json")} - set(SOURCES))
    if missing:
        raise SystemExit(f"no thumbnail source for {missing}")
    comfyui_dir = prepare_comfyui(REPO_ROOT / ".cache" / "comfyui")
    install_pack(comfyui_dir, REPO_ROOT)
    with tempfile.TemporaryDirectory() as work_dir:
        server = ComfyUIServer(comfyui_dir, pathlib.Path(work_dir))
        server.start()
        try:
            stills = {}
            for api_name, save_id in sorted(set(SOURCES.values())):
                history = server.client.run(json.loads((WORKFLOWS / api_name).read_text()), timeout_s=600)
                if history["status"]["status_str"] != "success":
                    raise SystemExit(f"{api_name} failed: {server.client.execution_errors(history)}")
                item = history["outputs"][save_id]["images"][0]
                stills[api_name, save_id] = middle_frame(server.output_dir / item["subfolder"] / item["filename"])
        finally:
            server.stop()
    for name, source in SOURCES.items():
        path = EXAMPLE_WORKFLOWS / f"{name}.jpg"
        thumbnail(stills[source]).save(path, "JPEG", quality=70, optimize=True)
        print(f"{path.relative_to(REPO_ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
