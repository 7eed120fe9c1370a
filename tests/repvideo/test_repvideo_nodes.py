"""RepVideo ComfyUI nodes: as Python objects, and the example workflows in a real ComfyUI with the tiny model."""

import copy
import json
import pathlib
import shutil

import pytest
from helpers import WORKFLOWS
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.custom_nodes.repvideo_nodes import CATEGORY, VDPRepVideoSampler, inputs_problem

REPVIDEO_NODES = [name for name, node in NODE_CLASS_MAPPINGS.items() if getattr(node, "CATEGORY", "") == CATEGORY]
LOADER, SAMPLER, SAVE = "31", "32", "33"


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def test_the_pack_registers_three_repvideo_nodes():
    assert sorted(REPVIDEO_NODES) == ["VDPRepVideoLoader", "VDPRepVideoSampler", "VDPTinyRepVideoLoader"]


@pytest.mark.parametrize("name", ["VDPTinyRepVideoLoader", "VDPRepVideoSampler"])
def test_every_input_and_output_has_a_tooltip(name):
    node = NODE_CLASS_MAPPINGS[name]
    specs = node.INPUT_TYPES()
    assert all(spec[1]["tooltip"] for group in specs.values() for spec in group.values())
    assert len(node.OUTPUT_TOOLTIPS) == len(node.RETURN_TYPES) and all(node.OUTPUT_TOOLTIPS)


@pytest.mark.parametrize("width, height, frames, message", [
    (720, 480, 49, None),
    (None, None, None, None),
    (700, 480, 49, "width=700 must be divisible by 16"),
    (720, 8, 49, "height=8 must be divisible by 16"),
    (720, 480, 48, "frames=48 must be 1 + a multiple of 4"),
])
def test_sampler_validation_names_the_input(width, height, frames, message):
    problem = inputs_problem(width, height, frames)
    assert problem is None if message is None else message in problem
    assert VDPRepVideoSampler.VALIDATE_INPUTS(width=width, height=height, frames=frames) == (problem or True)


def test_object_info_serves_the_official_defaults(comfyui):
    info = comfyui.client.object_info()
    for name in REPVIDEO_NODES:
        assert info[name]["category"] == CATEGORY
    sampler = info["VDPRepVideoSampler"]["input"]["required"]
    defaults = {name: sampler[name][1]["default"] for name in
                ("steps", "cfg", "seed", "frames", "width", "height", "repvideo", "dynamic_cfg")}
    assert defaults == dict(steps=50, cfg=6.0, seed=42, frames=49, width=720, height=480, repvideo=True, dynamic_cfg=True)
    assert info["VDPRepVideoSampler"]["input"]["optional"]["fastercache"][0] == "VDP_FASTERCACHE"


def test_tiny_workflow_saves_a_video_of_the_requested_frames_and_size(comfyui):
    graph = api_workflow("repvideo_tiny_t2v_api.json")
    history, events = comfyui.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (item,) = history["outputs"][SAVE]["images"]
    path = comfyui.output_dir / item["subfolder"] / item["filename"]
    assert path.name.startswith("vdp_repvideo_tiny")
    with Image.open(path) as webp:
        # WebP merges identical consecutive frames; these all differ (noise from random weights)
        assert (webp.format, webp.n_frames, webp.size) == ("WEBP", 9, (32, 32))
    progress = [e["data"] for e in events if e["type"] == "progress" and e["data"]["node"] == SAMPLER]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]


def test_tiny_workflow_with_fastercache_runs(comfyui):
    graph = copy.deepcopy(api_workflow("repvideo_tiny_t2v_api.json"))
    # the FasterCache node's other inputs at their "keep the preset" values
    keep = {name: spec[1]["default"] for name, spec in NODE_CLASS_MAPPINGS["VDPFasterCache"].INPUT_TYPES()["required"].items()}
    graph["34"] = {"class_type": "VDPFasterCache", "inputs": {**keep, "preset": "cogvideox"}}
    graph[SAMPLER]["inputs"].update(fastercache=["34", 0], steps=6, seed=7)
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (item,) = history["outputs"][SAVE]["images"]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        assert (webp.n_frames, webp.size) == (9, (32, 32))


def test_frames_that_are_not_4k_plus_1_are_rejected_at_validation(comfyui):
    graph = api_workflow("repvideo_tiny_t2v_api.json")
    graph[SAMPLER]["inputs"]["frames"] = 10
    status, body = comfyui.client.post_prompt(graph)
    assert status == 400
    messages = json.dumps(body["node_errors"][SAMPLER])
    assert "frames=10 must be 1 + a multiple of 4" in messages


def test_real_weights_workflow_without_weights_gives_the_download_and_convert_commands(comfyui):
    status, body = comfyui.client.post_prompt(api_workflow("repvideo_t2v_api.json"))
    assert status == 400
    (error,) = body["node_errors"][LOADER]["errors"]
    assert "Vchitect/RepVideo" in error["details"] and "vdp download RepVideo" in error["details"]
    assert "vdp convert repvideo --sat" in error["details"]


def test_a_converted_sat_checkpoint_runs_in_the_real_weights_workflow(comfyui, tmp_path):
    # the path a user takes: the SAT download, `vdp convert repvideo` into ComfyUI's repvideo folder, the workflow
    from test_repvideo_convert import CONFIG, sat_state, write_sat

    from video_diffusion_pack.cli import main
    from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import save_tiny_cogvideox_repvideo_pipeline

    tiny = save_tiny_cogvideox_repvideo_pipeline(tmp_path / "tiny")
    cogvideox = tmp_path / "CogVideoX-2b"  # the manifest's CogVideoX-2b entry: these three folders
    cogvideox.mkdir()
    for name in ("text_encoder", "tokenizer", "vae"):
        (tiny / name).rename(cogvideox / name)
    (cogvideox / "transformer").mkdir()
    (cogvideox / "transformer" / "config.json").write_text(json.dumps(CONFIG))
    sat = write_sat(tmp_path / "RepVideo", sat_state(seed=3))
    converted = pathlib.Path(comfyui.extra_model_paths["video_diffusion_pack_repvideo"]) / "tiny-RepVideo-diffusers"
    try:
        assert main(["convert", "repvideo", "--sat", str(sat), "--cogvideox", str(cogvideox), "-o", str(converted)]) == 0
        graph = api_workflow("repvideo_t2v_api.json")
        graph[LOADER]["inputs"].update(model=converted.name, dtype="fp32")
        graph[SAMPLER]["inputs"].update(steps=2, frames=9, width=32, height=32)
        history = comfyui.client.run(graph, timeout_s=300)
        assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
        (item,) = history["outputs"][SAVE]["images"]
        with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
            assert (webp.format, webp.size, webp.n_frames) == ("WEBP", (32, 32), 9)
    finally:
        shutil.rmtree(converted, ignore_errors=True)
