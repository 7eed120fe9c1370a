"""LGVI ComfyUI nodes: as Python objects, and the example workflows in a real ComfyUI with the tiny LGVI model."""

import json
import pathlib

import pytest
from helpers import WORKFLOWS
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.custom_nodes.lgvi_nodes import CATEGORY, VDPInpaintByInstruction

LGVI_NODES = [name for name, node in NODE_CLASS_MAPPINGS.items() if getattr(node, "CATEGORY", "") == CATEGORY]
TINY_INPAINT, TINY_SAVE = "3", "4"


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


# ---------------------------------------------------------------- as Python objects
def test_the_pack_registers_four_lgvi_nodes():
    assert sorted(LGVI_NODES) == ["VDPEmbeddedLGVILoader", "VDPInpaintByInstruction", "VDPLGVILoader",
                                  "VDPTinyLGVILoader"]


# the loader's INPUT_TYPES lists ComfyUI's model folders, so it is checked in the real ComfyUI below
@pytest.mark.parametrize("name", [name for name in LGVI_NODES if name != "VDPLGVILoader"])
def test_every_lgvi_input_and_output_has_a_tooltip(name):
    node = NODE_CLASS_MAPPINGS[name]
    assert all(spec[1]["tooltip"] for spec in node.INPUT_TYPES()["required"].values())
    assert len(node.OUTPUT_TOOLTIPS) == len(node.RETURN_TYPES) and all(node.OUTPUT_TOOLTIPS)


def test_sizes_that_are_not_multiples_of_8_are_refused_at_validation():
    assert VDPInpaintByInstruction.VALIDATE_INPUTS(512, 320) is True
    assert VDPInpaintByInstruction.VALIDATE_INPUTS(500, 320) == "width=500 must be a positive multiple of 8"


# ---------------------------------------------------------------- in a real ComfyUI
def test_object_info_serves_the_lgvi_nodes_with_the_official_defaults(comfyui):
    info = comfyui.client.object_info()
    assert all(spec[1]["tooltip"] for spec in info["VDPLGVILoader"]["input"]["required"].values())
    for name in LGVI_NODES:
        assert info[name]["category"] == CATEGORY
    assert info["VDPInpaintByInstruction"]["output"] == ["IMAGE", "MASK", "STRING"]
    required = info["VDPInpaintByInstruction"]["input"]["required"]
    assert {name: required[name][1]["default"] for name in (
        "steps", "guidance_scale", "image_guidance_scale", "width", "height", "seed")} == dict(
        steps=50, guidance_scale=3.0, image_guidance_scale=1.5, width=512, height=320, seed=0)


def test_tiny_inpaint_workflow_saves_the_edited_video(comfyui):
    graph = api_workflow("lgvi_tiny_inpaint_api.json")
    history, events = comfyui.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (item,) = history["outputs"][TINY_SAVE]["images"]
    path = comfyui.output_dir / item["subfolder"] / item["filename"]
    assert path.name.startswith("vdp_lgvi_tiny")
    with Image.open(path) as webp:
        assert webp.format == "WEBP" and webp.size == (48, 32)
        # WebP merges identical consecutive frames; these all differ (each frame gets its own noise)
        assert webp.n_frames == graph["2"]["inputs"]["batch_size"]
    progress = [e["data"] for e in events if e["type"] == "progress" and e["data"]["node"] == TINY_INPAINT]
    assert [(item["value"], item["max"]) for item in progress] == [(1, 3), (2, 3), (3, 3)]
    # LGVI edits with the instruction itself, and the node shows it
    assert history["outputs"][TINY_INPAINT]["text"] == [graph[TINY_INPAINT]["inputs"]["instruction"]]


def test_the_embedded_loader_runs_the_trained_model_in_a_graph_and_loads_it_once(comfyui):
    """The embedded LGVI (trained on the shapes world) through its loader: the graph saves 32x32 frames, and two equal
    embedded loaders in one graph share one loaded pipeline (one load line in the server log)."""
    import copy
    import time

    graph = api_workflow("lgvi_tiny_inpaint_api.json")
    graph["1"] = {"inputs": {"memory": "none"}, "class_type": "VDPEmbeddedLGVILoader"}
    graph["2"]["inputs"].update(width=32, height=32, batch_size=4)
    graph[TINY_INPAINT]["inputs"].update(instruction="remove the red circle", steps=2, width=32, height=32)
    graph["5"] = {"inputs": {"memory": "none"}, "class_type": "VDPEmbeddedLGVILoader"}
    graph["6"] = copy.deepcopy(graph[TINY_INPAINT])
    graph["6"]["inputs"]["pipeline"] = ["5", 0]
    graph["7"] = copy.deepcopy(graph[TINY_SAVE])
    graph["7"]["inputs"].update(images=["6", 0], filename_prefix="vdp_lgvi_embedded_b")
    graph[TINY_SAVE]["inputs"]["filename_prefix"] = "vdp_lgvi_embedded"
    log_before = comfyui.log_text()
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (item,) = history["outputs"][TINY_SAVE]["images"]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        assert webp.size == (32, 32)
    line = "loaded pipeline VDPEmbeddedLGVILoader(memory='none') on cpu"
    deadline = time.monotonic() + 10
    while line not in comfyui.log_text()[len(log_before):] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert comfyui.log_text()[len(log_before):].count(line) == 1


def test_a_graph_that_swaps_the_tiny_lgvi_i_loader_for_the_lgvi_one_under_the_same_id_gets_the_lgvi_pipeline(comfyui):
    # the LGVI-I graph puts VDPTinyLGVIILoader(seed=0) under the id the LGVI graph gives VDPTinyLGVILoader(seed=0);
    # this ComfyUI compares only inputs when it decides to reuse a cached output, so the loaders must name their class.
    # The LGVI loader's random weights are chosen by an input the LGVI-I loader does not have: given to both, the
    # inputs are equal (the LGVI-I loader takes "random", the only weights it has).
    lgvi_i = api_workflow("lgvi_i_tiny_inpaint_api.json")
    lgvi = api_workflow("lgvi_tiny_inpaint_api.json")
    lgvi_i["1"]["inputs"]["weights"] = lgvi["1"]["inputs"]["weights"]
    assert lgvi_i["1"]["inputs"] == lgvi["1"]["inputs"] and lgvi_i["1"]["class_type"] != lgvi["1"]["class_type"]
    for graph in (lgvi_i, lgvi):
        history = comfyui.client.run(graph, timeout_s=300)
        assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    assert history["outputs"][TINY_INPAINT]["text"] == [lgvi[TINY_INPAINT]["inputs"]["instruction"]]


def test_frame_height_not_a_multiple_of_8_is_rejected_at_validation(comfyui):
    graph = api_workflow("lgvi_tiny_inpaint_api.json")
    graph[TINY_INPAINT]["inputs"]["height"] = 36
    status, body = comfyui.client.post_prompt(graph)
    assert status == 400
    messages = [error["details"] for error in body["node_errors"][TINY_INPAINT]["errors"]]
    assert any("height=36 must be a positive multiple of 8" in message for message in messages)


def test_real_weights_workflow_without_weights_gives_the_download_command(comfyui):
    status, body = comfyui.client.post_prompt(api_workflow("lgvi_inpaint_api.json"))
    assert status == 400
    (error,) = body["node_errors"]["1"]["errors"]
    assert "jianzongwu/lgvi" in error["details"] and "vdp download lgvi" in error["details"]


def test_loader_lists_and_loads_an_lgvi_folder_in_the_released_layout(comfyui):
    from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import save_tiny_lgvi_official_layout

    models_dir = pathlib.Path(comfyui.extra_model_paths["video_diffusion_pack_lgvi"])
    save_tiny_lgvi_official_layout(models_dir / "tiny-lgvi", seed=1)
    assert "tiny-lgvi" in comfyui.client.object_info()["VDPLGVILoader"]["input"]["required"]["model"][0]
    graph = api_workflow("lgvi_tiny_inpaint_api.json")
    graph["1"] = {"class_type": "VDPLGVILoader", "inputs": {"model": "tiny-lgvi", "dtype": "fp32"}}
    graph[TINY_INPAINT]["inputs"]["steps"] = 2
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (item,) = history["outputs"][TINY_SAVE]["images"]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        assert (webp.n_frames, webp.size) == (3, (48, 32))
