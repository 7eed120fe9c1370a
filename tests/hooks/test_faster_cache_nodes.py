"""The FasterCache node: its settings object, the sampler input, and the example workflow in a real ComfyUI."""

import inspect
import json

import numpy as np
import pytest
import torch
from helpers import WORKFLOWS
from PIL import Image, ImageSequence

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.custom_nodes.faster_cache_nodes import VDPFasterCache
from video_diffusion_pack.hooks.faster_cache import FASTER_CACHE_PRESETS, FasterCacheConfig

WORKFLOW = WORKFLOWS / "vchitect_tiny_fastercache_t2v_api.json"
SAMPLER_ID, SAVE_ID, FASTERCACHE_ID = "2", "3", "4"

KEEP_PRESET = dict(start_fraction=-1, attention_interval=-1, attention_weight=-1, uncond_interval=-1,
                   low_frequency_factor=-1, high_frequency_factor=-1, cache_precision="model")


def load_workflow(prefix: str) -> dict:
    return with_prefixed_ids(json.loads(WORKFLOW.read_text()), prefix)


# Copied from tests/test_free_init_nodes.py
def with_prefixed_ids(graph: dict, prefix: str) -> dict:
    """The graph with every node id prefixed: this ComfyUI reuses a cached output of an earlier prompt's node with the
    same id and inputs even when its class differs."""
    def relink(value):
        return [prefix + value[0], value[1]] if isinstance(value, list) else value

    return {prefix + node_id: {**node, "inputs": {name: relink(value) for name, value in node["inputs"].items()}}
            for node_id, node in graph.items()}


def test_node_is_registered_and_every_input_has_a_tooltip():
    assert NODE_CLASS_MAPPINGS["VDPFasterCache"] is VDPFasterCache
    inputs = VDPFasterCache.INPUT_TYPES()["required"]
    assert list(inputs) == ["preset", *KEEP_PRESET]
    assert inputs["preset"][0] == sorted(FASTER_CACHE_PRESETS)
    assert all(spec[1]["tooltip"] for spec in inputs.values())


@pytest.mark.parametrize("preset", sorted(FASTER_CACHE_PRESETS))
def test_node_defaults_give_the_preset(preset):
    (config,) = VDPFasterCache().build(preset=preset, **KEEP_PRESET)

    assert config == FasterCacheConfig.preset(preset)


def test_node_overrides_only_the_values_that_are_set():
    (config,) = VDPFasterCache().build(preset="cogvideox", **{**KEEP_PRESET, "start_fraction": 0.5,
                                                               "uncond_interval": 3, "cache_precision": "bf16"})

    assert config == FasterCacheConfig.preset("cogvideox", start_fraction=0.5, uncond_interval=3,
                                              cache_dtype=torch.bfloat16)


def test_node_refuses_a_value_outside_the_allowed_range():
    with pytest.raises(ValueError, match="attention_interval=0 must be an integer >= 1"):
        VDPFasterCache().build(preset="default", **{**KEEP_PRESET, "attention_interval": 0})


@pytest.mark.parametrize("sampler", ["VDPVchitectSampler", "VDPDaSSampler"])
def test_every_sampler_declares_the_optional_fastercache_input(sampler):
    optional = NODE_CLASS_MAPPINGS[sampler].INPUT_TYPES()["optional"]
    assert optional["fastercache"][0] == VDPFasterCache.RETURN_TYPES[0] == "VDP_FASTERCACHE"
    assert "fastercache" in inspect.signature(NODE_CLASS_MAPPINGS[sampler].sample).parameters


def test_object_info_serves_the_fastercache_node_and_the_sampler_socket(comfyui):
    info = comfyui.client.object_info()
    assert info["VDPFasterCache"]["output"] == ["VDP_FASTERCACHE"]
    required = info["VDPFasterCache"]["input"]["required"]
    assert {name: spec[1]["default"] for name, spec in required.items()} == {"preset": "vchitect-2.0", **KEEP_PRESET}
    assert info["VDPVchitectSampler"]["input"]["optional"]["fastercache"][0] == "VDP_FASTERCACHE"


def saved_frames(comfyui, history, save_id) -> np.ndarray:
    (item,) = history["outputs"][save_id]["images"]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(webp)])


def run_graph(comfyui, graph, save_id):
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    return saved_frames(comfyui, history, save_id)


def test_fastercache_workflow_saves_the_video_and_changes_the_result(comfyui):
    cached_graph = load_workflow("fastercache_")
    sampler = cached_graph["fastercache_" + SAMPLER_ID]["inputs"]
    cached = run_graph(comfyui, cached_graph, "fastercache_" + SAVE_ID)
    assert cached.shape == (sampler["frames"], sampler["height"], sampler["width"], 3)

    # the same graph with a FasterCache that skips nothing gives the plain sampler's video
    skip_nothing = load_workflow("fastercache_off_")
    skip_nothing["fastercache_off_" + FASTERCACHE_ID]["inputs"].update(attention_interval=1, uncond_interval=1)
    plain = run_graph(comfyui, skip_nothing, "fastercache_off_" + SAVE_ID)
    assert not np.array_equal(cached, plain)

    without = load_workflow("fastercache_none_")
    del without["fastercache_none_" + FASTERCACHE_ID], without["fastercache_none_" + SAMPLER_ID]["inputs"]["fastercache"]
    assert np.array_equal(run_graph(comfyui, without, "fastercache_none_" + SAVE_ID), plain)


def test_das_sampler_takes_fastercache_in_a_real_comfyui(comfyui):
    graph = with_prefixed_ids(json.loads((WORKFLOW.parent / "das_tiny_camera_api.json").read_text()), "das_fc_")
    sampler_id = next(node_id for node_id, node in graph.items() if node["class_type"] == "VDPDaSSampler")
    graph["das_fc_cache"] = {"class_type": "VDPFasterCache", "inputs": {"preset": "cogvideox", **KEEP_PRESET}}
    graph[sampler_id]["inputs"].update(fastercache=["das_fc_cache", 0], steps=6)

    history, events = comfyui.client.run_with_events(graph, timeout_s=300)

    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    progress = [(e["data"]["value"], e["data"]["max"]) for e in events
                if e["type"] == "progress" and e["data"]["node"] == sampler_id]
    assert progress == [(step, 6) for step in range(1, 7)]
    assert any(output.get("images") for output in history["outputs"].values())
