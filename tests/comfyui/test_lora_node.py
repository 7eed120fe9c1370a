"""The LoRA node in a real ComfyUI: a LoRA the trainer wrote, put in ComfyUI's loras folder, changes a sampler's video;
strength 0 and graphs without it give the video of the pipeline alone, from the same cached pipeline."""

import math
import shutil

import numpy as np
import pytest
from helpers.lora_training import train_lora
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.custom_nodes.lora_nodes import LoraSelection, VDPLoRA

VCHITECT_LORA, LGVI_LORA = "vchitect_style.safetensors", "lgvi_style.safetensors"


@pytest.fixture(scope="module")
def loras(comfyui, tmp_path_factory):
    """The trained Vchitect-2.0 and LGVI LoRAs, in the server's loras folder under the names above."""
    folder = comfyui.extra_model_paths["loras"]
    for family, name in (("vchitect", VCHITECT_LORA), ("lgvi", LGVI_LORA)):
        shutil.copy(train_lora(family, tmp_path_factory.mktemp(family)), f"{folder}/{name}")
    return folder


def vchitect_graph(tag: str, lora_name=None, strength=1.0) -> dict:
    """Tiny Vchitect loader (always node id ``loader``, so ComfyUI keeps its pipeline cached between graphs) ->
    sampler (optionally with a LoRA node) -> lossless PNG frames."""
    graph = {
        "loader": {"class_type": "VDPTinyVchitectLoader", "inputs": {"seed": 0, "memory": "none", "weights": "random"}},
        f"sampler_{tag}": {"class_type": "VDPVchitectSampler", "inputs": {
            "pipeline": ["loader", 0], "prompt": "a red panda", "negative_prompt": "", "seed": 7, "steps": 2,
            "cfg": 7.5, "frames": 2, "width": 32, "height": 32, "repvideo": False, "dynamic_cfg": False}},
        f"save_{tag}": {"class_type": "SaveImage", "inputs": {"images": [f"sampler_{tag}", 0],
                                                              "filename_prefix": f"vdp_lora_{tag}"}},
    }
    if lora_name is not None:
        graph[f"lora_{tag}"] = {"class_type": "VDPLoRA", "inputs": {"lora_name": lora_name, "strength": strength}}
        graph[f"sampler_{tag}"]["inputs"]["lora"] = [f"lora_{tag}", 0]
    return graph


def lgvi_graph(tag: str, lora_name=None) -> dict:
    graph = {
        "lgvi_loader": {"class_type": "VDPTinyLGVILoader", "inputs": {"seed": 0, "memory": "none", "weights": "random"}},
        f"video_{tag}": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 3,
                                                                "color": 9198140}},
        f"inpaint_{tag}": {"class_type": "VDPInpaintByInstruction", "inputs": {
            "pipeline": ["lgvi_loader", 0], "video": [f"video_{tag}", 0], "instruction": "remove the red panda",
            "seed": 0, "steps": 2, "guidance_scale": 3.0, "image_guidance_scale": 1.5, "width": 48, "height": 32}},
        f"save_{tag}": {"class_type": "SaveImage", "inputs": {"images": [f"inpaint_{tag}", 0],
                                                              "filename_prefix": f"vdp_lgvi_lora_{tag}"}},
    }
    if lora_name is not None:
        graph[f"lora_{tag}"] = {"class_type": "VDPLoRA", "inputs": {"lora_name": lora_name, "strength": 1.0}}
        graph[f"inpaint_{tag}"]["inputs"]["lora"] = [f"lora_{tag}", 0]
    return graph


def run_frames(comfyui, graph: dict, tag: str):
    """Runs ``graph``; returns (frames [F, H, W, 3] uint8 as saved, ids of the nodes ComfyUI took from its cache)."""
    history, events = comfyui.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    cached = {node for event in events if event["type"] == "execution_cached" for node in event["data"]["nodes"]}
    frames = []
    for item in history["outputs"][f"save_{tag}"]["images"]:
        with Image.open(comfyui.output_dir / item["subfolder"] / item["filename"]) as png:
            frames.append(np.asarray(png.convert("RGB")))
    return np.stack(frames), cached


def test_lora_node_lists_comfyuis_loras_folder(comfyui, loras):
    info = comfyui.client.object_info()["VDPLoRA"]
    assert {VCHITECT_LORA, LGVI_LORA} <= set(info["input"]["required"]["lora_name"][0])
    assert info["output"] == ["VDP_LORA"] and info["category"] == "video_diffusion_pack/lora"
    assert comfyui.client.object_info()["VDPVchitectSampler"]["input"]["optional"]["lora"][0] == "VDP_LORA"


@pytest.fixture(scope="module")
def baseline(comfyui):
    """The tiny Vchitect pipeline's own video (no LoRA)."""
    return run_frames(comfyui, vchitect_graph("base"), "base")[0]


def test_lora_changes_the_video_and_strength_zero_or_no_lora_give_the_cached_pipelines_own(comfyui, loras, baseline):
    styled, cached = run_frames(comfyui, vchitect_graph("styled", VCHITECT_LORA, 1.0), "styled")
    assert "loader" in cached  # the same pipeline object as the baseline's
    assert np.abs(styled.astype(int) - baseline.astype(int)).mean() > 2.0
    zero, cached = run_frames(comfyui, vchitect_graph("zero", VCHITECT_LORA, 0.0), "zero")
    assert "loader" in cached and np.array_equal(zero, baseline)
    after, cached = run_frames(comfyui, vchitect_graph("after"), "after")
    assert "loader" in cached and np.array_equal(after, baseline)


def test_lora_changes_the_inpainting_node_output_and_leaves_its_pipeline_clean(comfyui, loras):
    baseline, _ = run_frames(comfyui, lgvi_graph("base"), "base")
    styled, cached = run_frames(comfyui, lgvi_graph("styled", LGVI_LORA), "styled")
    assert "lgvi_loader" in cached and np.abs(styled.astype(int) - baseline.astype(int)).mean() > 1.0
    after, _ = run_frames(comfyui, lgvi_graph("after"), "after")
    assert np.array_equal(after, baseline)


def test_lora_of_another_model_stops_the_sampler_naming_the_file_and_the_prefix(comfyui, loras, baseline):
    graph = vchitect_graph("foreign", LGVI_LORA, 1.0)

    history = comfyui.client.run(graph, timeout_s=300)

    assert history["status"]["status_str"] == "error"
    (error,) = comfyui.client.execution_errors(history)
    assert error["node_id"] == "sampler_foreign"
    assert LGVI_LORA in error["exception_message"] and "'transformer.'" in error["exception_message"]
    after, _ = run_frames(comfyui, vchitect_graph("after_foreign"), "after_foreign")
    assert np.array_equal(after, baseline)


def test_non_finite_strength_stops_the_lora_node_with_an_error_naming_it(comfyui, loras):
    # JSON NaN passes ComfyUI's min/max check (every comparison with NaN is false): the node's own check reports it
    history = comfyui.client.run(vchitect_graph("nan", VCHITECT_LORA, math.nan), timeout_s=300)

    assert history["status"]["status_str"] == "error"
    (error,) = comfyui.client.execution_errors(history)
    assert error["node_id"] == "lora_nan" and "strength=nan must be a finite number" in error["exception_message"]


def test_missing_lora_file_stops_the_lora_node_naming_it(comfyui, loras):
    history = comfyui.client.run(vchitect_graph("missing", "nowhere.safetensors", 1.0), timeout_s=300)

    assert history["status"]["status_str"] == "error"
    (error,) = comfyui.client.execution_errors(history)
    assert error["node_id"] == "lora_missing"
    assert "lora_name='nowhere.safetensors' is not a file in ComfyUI's loras folders" in error["exception_message"]


# -- the node alone (no server) --------------------------------------------------------------------------------------
def test_node_is_registered_with_the_classic_api():
    assert NODE_CLASS_MAPPINGS["VDPLoRA"] is VDPLoRA
    assert VDPLoRA.RETURN_TYPES == ("VDP_LORA",) and VDPLoRA.CATEGORY == "video_diffusion_pack/lora"


def test_chained_nodes_collect_their_loras_in_order(comfyui_models):
    import folder_paths

    (comfyui_models / "loras").mkdir()
    folder_paths.add_model_folder_path("loras", str(comfyui_models / "loras"))
    for name in ("a.safetensors", "b.safetensors"):
        (comfyui_models / "loras" / name).write_bytes(b"")
    (first,) = VDPLoRA().select("a.safetensors", 0.5)
    (both,) = VDPLoRA().select("b.safetensors", -1.0, lora=first)
    assert [(s.name, s.strength) for s in both] == [("a.safetensors", 0.5), ("b.safetensors", -1.0)]
    assert all(isinstance(s, LoraSelection) and s.path.startswith(str(comfyui_models)) for s in both)
    with pytest.raises(FileNotFoundError, match="lora_name='c.safetensors'"):
        VDPLoRA().select("c.safetensors", 1.0)
    with pytest.raises(ValueError, match="strength=inf must be a finite number"):
        VDPLoRA().select("a.safetensors", math.inf)


def test_is_changed_follows_the_file_so_a_retrained_lora_reruns_the_sampler(comfyui_models):
    import os

    import folder_paths

    (comfyui_models / "loras").mkdir()
    folder_paths.add_model_folder_path("loras", str(comfyui_models / "loras"))
    lora = comfyui_models / "loras" / "style.safetensors"
    lora.write_bytes(b"first")
    before = VDPLoRA.IS_CHANGED(lora_name="style.safetensors", strength=1.0)
    assert VDPLoRA.IS_CHANGED(lora_name="style.safetensors", strength=1.0) == before
    lora.write_bytes(b"second run")
    os.utime(lora, ns=(1, 1))
    assert VDPLoRA.IS_CHANGED(lora_name="style.safetensors", strength=1.0) != before
