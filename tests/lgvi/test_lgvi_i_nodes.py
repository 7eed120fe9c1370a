"""LGVI-I loader nodes: the three weight folders found with ComfyUI's own `folder_paths`, validation messages, loading;
the LGVI-I workflows in a real ComfyUI.

`folder_paths` is ComfyUI's module from the snapshot the ComfyUI tests use, loaded fresh for each test with its
models folder in tmp_path (as in test_weights_comfyui.py).
"""

import json

import pytest
import torch
from helpers import WORKFLOWS
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS, _comfy
from video_diffusion_pack.custom_nodes.lgvi_i_nodes import VDPLGVIILoader, VDPTinyLGVIILoader
from video_diffusion_pack.diffusers_pipelines.lgvi.lgvi_i import (
    build_tiny_lgvi_i_pipeline,
    save_tiny_lgvi_i_official_layout,
)
from video_diffusion_pack.models.lgvi_instruction_encoder import LGVIInstructionEncoder

FOLDERS = {"lgvi_i": "lgvi-i", "llava": "llava-v1.5-7b", "clip": "clip-vit-large-patch14-336"}
TINY_INPAINT, TINY_SAVE = "3", "4"


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def test_the_pack_registers_both_lgvi_i_loaders():
    assert NODE_CLASS_MAPPINGS["VDPLGVIILoader"] is VDPLGVIILoader
    assert NODE_CLASS_MAPPINGS["VDPTinyLGVIILoader"] is VDPTinyLGVIILoader
    for node in (VDPLGVIILoader, VDPTinyLGVIILoader):
        assert node.RETURN_TYPES == ("VDP_PIPELINE",) and len(node.OUTPUT_TOOLTIPS) == 1


def test_loader_lists_the_three_folders_in_the_layout_vdp_download_writes(comfyui_models):
    save_tiny_lgvi_i_official_layout(comfyui_models / "video_diffusion_pack" / "lgvi", seed=0)
    required = VDPLGVIILoader.INPUT_TYPES()["required"]
    for argument, name in FOLDERS.items():
        assert required[argument][0] == [name]
        assert required[argument][1]["tooltip"]
    assert required["max_new_tokens"][1]["default"] == 1024
    assert VDPLGVIILoader.VALIDATE_INPUTS(**FOLDERS) is True


def test_loader_validation_without_weights_gives_the_download_commands(comfyui_models):
    required = VDPLGVIILoader.INPUT_TYPES()["required"]
    assert required["lgvi_i"][0] == ["no lgvi-i folder in ComfyUI/models/video_diffusion_pack/lgvi/"]
    message = VDPLGVIILoader.VALIDATE_INPUTS(**FOLDERS)
    assert message.startswith("lgvi_i='lgvi-i' is not a lgvi-i folder")
    assert "llava='llava-v1.5-7b' is not" in message and "clip='clip-vit-large-patch14-336' is not" in message
    assert f"`vdp download lgvi-i --comfyui-models {comfyui_models}`" in message
    # an LGVI (not LGVI-I) folder has no llava/llava_weights.pth and is not offered
    lgvi = comfyui_models / "video_diffusion_pack" / "lgvi" / "lgvi"
    lgvi.mkdir(parents=True)
    (lgvi / "model_index.json").write_text("{}")
    assert VDPLGVIILoader.INPUT_TYPES()["required"]["lgvi_i"][0] == required["lgvi_i"][0]


def test_loader_loads_the_tiny_layout(comfyui_models, monkeypatch):
    save_tiny_lgvi_i_official_layout(comfyui_models / "video_diffusion_pack" / "lgvi", seed=0)
    # ComfyUI's device module cannot be imported under pytest's command line; the device is CPU here either way
    monkeypatch.setattr(_comfy, "torch_device", lambda: torch.device("cpu"))
    (managed,) = VDPLGVIILoader().load(**FOLDERS, dtype="fp32", max_new_tokens=8)
    pipeline = managed.acquire()
    assert isinstance(pipeline.instruction_encoder, LGVIInstructionEncoder)
    assert pipeline.instruction_encoder.config.max_new_tokens == 8
    with pytest.raises(ValueError, match="dtype='fp8' must be one of"):
        VDPLGVIILoader().load(**FOLDERS, dtype="fp8", max_new_tokens=8)
    with pytest.raises(FileNotFoundError, match="clip='missing' is not a clip-vit-large-patch14-336 folder"):
        VDPLGVIILoader().load(**{**FOLDERS, "clip": "missing"}, dtype="fp32", max_new_tokens=8)


# ---------------------------------------------------------------- in a real ComfyUI
def test_tiny_lgvi_i_workflow_saves_the_edited_video(comfyui):
    graph = api_workflow("lgvi_i_tiny_inpaint_api.json")
    assert graph["1"]["class_type"] == "VDPTinyLGVIILoader"
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (item,) = history["outputs"][TINY_SAVE]["images"]
    path = comfyui.output_dir / item["subfolder"] / item["filename"]
    assert path.name.startswith("vdp_lgvi_i_tiny")
    with Image.open(path) as webp:
        assert webp.format == "WEBP" and webp.size == (48, 32)
        assert webp.n_frames == graph["2"]["inputs"]["batch_size"]
    # the node shows the prompt the MLLM wrote: the same answer the pipeline gives in Python for the same graph inputs
    empty = graph["2"]["inputs"]
    rgb = torch.tensor([(empty["color"] >> shift) & 0xFF for shift in (16, 8, 0)], dtype=torch.float32) / 255
    video = rgb.expand(empty["batch_size"], empty["height"], empty["width"], 3)
    node = graph[TINY_INPAINT]["inputs"]
    expected = build_tiny_lgvi_i_pipeline(seed=graph["1"]["inputs"]["seed"])(
        video=video, prompt=node["instruction"], height=node["height"], width=node["width"],
        num_inference_steps=node["steps"], guidance_scale=node["guidance_scale"],
        image_guidance_scale=node["image_guidance_scale"], generator=torch.Generator().manual_seed(node["seed"]),
        output_type="pt",
    ).instructions
    assert history["outputs"][TINY_INPAINT]["text"] == expected
    assert expected[0] != node["instruction"]


def test_object_info_serves_the_lgvi_i_loaders(comfyui):
    info = comfyui.client.object_info()
    required = info["VDPLGVIILoader"]["input"]["required"]
    assert list(required) == ["lgvi_i", "llava", "clip", "dtype", "max_new_tokens"]
    assert all(spec[1]["tooltip"] for spec in required.values())
    assert info["VDPLGVIILoader"]["output"] == info["VDPTinyLGVIILoader"]["output"] == ["VDP_PIPELINE"]


def test_real_weights_workflow_without_weights_gives_the_download_command(comfyui):
    status, body = comfyui.client.post_prompt(api_workflow("lgvi_i_inpaint_api.json"))
    assert status == 400
    errors = body["node_errors"]["1"]["errors"]
    assert errors and all(error["type"] == "custom_validation_failed" for error in errors)
    for error in errors:
        for name in ("lgvi-i", "llava-v1.5-7b", "clip-vit-large-patch14-336"):
            assert f"vdp download {name}" in error["details"]
