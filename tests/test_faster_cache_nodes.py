"""The FasterCache node: its settings object, the sampler input, and the example workflow in a real ComfyUI."""

import copy
import json
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.custom_nodes.faster_cache_nodes import VDPFasterCache
from video_diffusion_pack.custom_nodes.vchitect_nodes import VDPVchitectSampler
from video_diffusion_pack.schedulers.faster_cache import FASTER_CACHE_PRESETS, FasterCacheConfig

WORKFLOW = pathlib.Path(__file__).resolve().parent.parent / "workflows" / "vchitect_tiny_fastercache_t2v_api.json"
SAMPLER_ID, SAVE_ID, FASTERCACHE_ID = "2", "3", "4"

KEEP_PRESET = dict(start_fraction=-1, attention_interval=-1, attention_weight=-1, uncond_interval=-1,
                   low_frequency_factor=-1, high_frequency_factor=-1, cache_precision="model")


def load_workflow() -> dict:
    return json.loads(WORKFLOW.read_text())


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


def test_sampler_declares_the_optional_fastercache_input():
    optional = VDPVchitectSampler.INPUT_TYPES()["optional"]
    assert optional["fastercache"][0] == VDPFasterCache.RETURN_TYPES[0] == "VDP_FASTERCACHE"


def test_object_info_serves_the_fastercache_node_and_the_sampler_socket(comfyui):
    info = comfyui.client.object_info()
    assert info["VDPFasterCache"]["output"] == ["VDP_FASTERCACHE"]
    required = info["VDPFasterCache"]["input"]["required"]
    assert {name: spec[1]["default"] for name, spec in required.items()} == {"preset": "vchitect-2.0", **KEEP_PRESET}
    assert info["VDPVchitectSampler"]["input"]["optional"]["fastercache"][0] == "VDP_FASTERCACHE"


def saved_frames(comfyui, history) -> np.ndarray:
    (item,) = history["outputs"][SAVE_ID]["images"]
    with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as webp:
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(webp)])


def test_fastercache_workflow_saves_the_video_and_changes_the_result(comfyui):
    graph = load_workflow()
    sampler = graph[SAMPLER_ID]["inputs"]
    cached = comfyui.client.run(graph, timeout_s=300)
    assert cached["status"]["status_str"] == "success", comfyui.client.execution_errors(cached)
    cached_frames = saved_frames(comfyui, cached)
    assert cached_frames.shape == (sampler["frames"], sampler["height"], sampler["width"], 3)

    # the same settings with a FasterCache that skips nothing: the plain sampler's video
    skip_nothing = copy.deepcopy(graph)
    skip_nothing[FASTERCACHE_ID]["inputs"].update(attention_interval=1, uncond_interval=1)
    skip_nothing[SAVE_ID]["inputs"]["filename_prefix"] = "vdp_tiny_fastercache_off"
    plain = comfyui.client.run(skip_nothing, timeout_s=300)
    assert plain["status"]["status_str"] == "success", comfyui.client.execution_errors(plain)
    plain_frames = saved_frames(comfyui, plain)
    assert not np.array_equal(cached_frames, plain_frames)

    without = copy.deepcopy(graph)
    del without[FASTERCACHE_ID], without[SAMPLER_ID]["inputs"]["fastercache"]
    without[SAVE_ID]["inputs"]["filename_prefix"] = "vdp_tiny_fastercache_none"
    uncached = comfyui.client.run(without, timeout_s=300)
    assert uncached["status"]["status_str"] == "success", comfyui.client.execution_errors(uncached)
    assert np.array_equal(saved_frames(comfyui, uncached), plain_frames)
