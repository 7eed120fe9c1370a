"""In ComfyUI the pack adds no upscaling node: core's Load Upscale Model and Upscale Image (using Model) take the
pack's IMAGE output as it is. A real ComfyUI runs the tiny text-to-video graph through them."""

import json

from helpers import WORKFLOWS
from helpers.upscalers import save_state_dict, tiny_compact_state_dict
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS


def test_the_pack_has_no_upscaling_node_of_its_own():
    assert not [name for name in NODE_CLASS_MAPPINGS if "upscale" in name.lower()]


def test_cores_upscale_image_using_model_takes_the_samplers_image_output(comfyui):
    save_state_dict(tiny_compact_state_dict(scale=2), comfyui.extra_model_paths["upscale_models"] + "/vdp_tiny_x2.pth")
    graph = json.loads((WORKFLOWS / "vchitect_tiny_t2v_api.json").read_text())
    sampler = graph["2"]["inputs"]
    sampler.update(steps=2, frames=3)
    graph["10"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "vdp_tiny_x2.pth"}}
    graph["11"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["10", 0], "image": ["2", 0]}}
    graph["3"]["inputs"].update(images=["11", 0], filename_prefix="vdp_upscaled")
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (item,) = history["outputs"]["3"]["images"]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        assert webp.n_frames == 3
        assert webp.size == (2 * sampler["width"], 2 * sampler["height"])
