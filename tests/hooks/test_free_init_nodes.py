"""The FreeInit node: its settings object, and the example workflow that feeds it to the sampler in a real ComfyUI."""

import json

import pytest
from helpers import WORKFLOWS
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.custom_nodes.free_init_nodes import VDPFreeInit
from video_diffusion_pack.hooks.free_init import METHODS, FreeInitConfig

WORKFLOW = WORKFLOWS / "vchitect_tiny_freeinit_t2v_api.json"
SAMPLER_ID, SAVE_ID, FREEINIT_ID = "2", "3", "4"

NODE_DEFAULTS = dict(iterations=3, filter="butterworth", d_s=0.25, d_t=0.25, order=4, fast_sampling=False, renoise_level=0.0)


def with_prefixed_ids(graph: dict, prefix: str) -> dict:
    """The graph with every node id prefixed: this ComfyUI reuses a cached output of an earlier prompt's node with the
    same id and inputs even when its class differs."""
    def relink(value):
        return [prefix + value[0], value[1]] if isinstance(value, list) else value

    return {prefix + node_id: {**node, "inputs": {name: relink(value) for name, value in node["inputs"].items()}}
            for node_id, node in graph.items()}


def load_workflow() -> dict:
    return json.loads(WORKFLOW.read_text())


def test_node_is_registered_and_every_input_has_a_tooltip():
    assert NODE_CLASS_MAPPINGS["VDPFreeInit"] is VDPFreeInit
    inputs = VDPFreeInit.INPUT_TYPES()["required"]
    assert list(inputs) == list(NODE_DEFAULTS)
    assert inputs["filter"][0] == list(METHODS)
    assert all(spec[1]["tooltip"] for spec in inputs.values())


def test_node_defaults_give_the_library_defaults_with_the_automatic_renoise_level():
    (config,) = VDPFreeInit().build(**NODE_DEFAULTS)

    assert config == FreeInitConfig()


def test_node_passes_every_setting_through():
    (config,) = VDPFreeInit().build(iterations=5, filter="gaussian", d_s=0.5, d_t=0.1, order=2, fast_sampling=True,
                                    renoise_level=0.9)

    assert config == FreeInitConfig(num_iters=5, method="gaussian", spatial_stop_frequency=0.5,
                                    temporal_stop_frequency=0.1, order=2, use_fast_sampling=True, renoise_level=0.9)


def test_node_refuses_a_value_outside_the_allowed_range():
    with pytest.raises(ValueError, match=r"spatial_stop_frequency=1.5 must be in \(0, 1\]"):
        VDPFreeInit().build(**{**NODE_DEFAULTS, "d_s": 1.5})


@pytest.mark.parametrize("sampler", ["VDPVchitectSampler", "VDPDaSSampler"])
def test_samplers_declare_the_optional_freeinit_input(sampler):
    optional = NODE_CLASS_MAPPINGS[sampler].INPUT_TYPES()["optional"]
    assert optional["freeinit"][0] == VDPFreeInit.RETURN_TYPES[0] == "VDP_FREEINIT"


def test_object_info_serves_the_freeinit_node_and_the_sampler_socket(comfyui):
    info = comfyui.client.object_info()
    assert info["VDPFreeInit"]["output"] == ["VDP_FREEINIT"]
    required = info["VDPFreeInit"]["input"]["required"]
    assert {name: spec[1]["default"] for name, spec in required.items()} == NODE_DEFAULTS
    assert info["VDPVchitectSampler"]["input"]["optional"]["freeinit"][0] == "VDP_FREEINIT"


def test_freeinit_workflow_runs_iterations_times_steps_and_saves_the_video(comfyui):
    graph = load_workflow()
    sampler, freeinit = graph[SAMPLER_ID]["inputs"], graph[FREEINIT_ID]["inputs"]
    total = freeinit["iterations"] * sampler["steps"]

    history, events = comfyui.client.run_with_events(with_prefixed_ids(graph, "freeinit_"), timeout_s=300)

    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    progress = [(e["data"]["value"], e["data"]["max"]) for e in events
                if e["type"] == "progress" and e["data"]["node"] == "freeinit_" + SAMPLER_ID]
    assert progress == [(step, total) for step in range(1, total + 1)]
    (item,) = history["outputs"]["freeinit_" + SAVE_ID]["images"]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        assert (webp.n_frames, webp.size) == (sampler["frames"], (sampler["width"], sampler["height"]))


def test_das_sampler_takes_freeinit_in_a_real_comfyui(comfyui):
    graph = with_prefixed_ids(json.loads((WORKFLOWS / "das_tiny_camera_api.json").read_text()), "das_")
    sampler_id = next(node_id for node_id, node in graph.items() if node["class_type"] == "VDPDaSSampler")
    graph["freeinit"] = {"class_type": "VDPFreeInit", "inputs": {**NODE_DEFAULTS, "iterations": 2, "fast_sampling": True}}
    graph[sampler_id]["inputs"].update(freeinit=["freeinit", 0], steps=4)

    history, events = comfyui.client.run_with_events(graph, timeout_s=300)

    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    progress = [(e["data"]["value"], e["data"]["max"]) for e in events
                if e["type"] == "progress" and e["data"]["node"] == sampler_id]
    assert progress == [(step, 2 + 4) for step in range(1, 2 + 4 + 1)]


def test_freeinit_stop_frequency_of_zero_stops_the_run_with_an_error_naming_it(comfyui):
    # this ComfyUI validates only nodes reached through required sockets, so the node's own check reports it
    graph = load_workflow()
    graph[FREEINIT_ID]["inputs"]["d_s"] = 0.0

    history = comfyui.client.run(with_prefixed_ids(graph, "bad_freeinit_"), timeout_s=300)

    assert history["status"]["status_str"] == "error"
    (error,) = comfyui.client.execution_errors(history)
    assert error["node_id"] == "bad_freeinit_" + FREEINIT_ID
    assert "spatial_stop_frequency=0.0 must be in (0, 1]" in error["exception_message"]
    assert history["outputs"] == {}
