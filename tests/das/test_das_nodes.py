"""DaS ComfyUI nodes: as Python objects, and the example workflows in a real ComfyUI with the tiny DaS model."""

import copy
import json
import pathlib

import numpy as np
import pytest
import torch
from helpers import WORKFLOWS
from PIL import Image

from video_diffusion_pack.control import Tracks
from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.custom_nodes.das_nodes import (
    CATEGORY,
    DEPTH_MEANINGS,
    VDPDaSCameraTrajectory,
    VDPDaSDepthToTracks,
    VDPDaSObjectMotion,
    VDPDaSRenderTracking,
)

DAS_NODES = [name for name, node in NODE_CLASS_MAPPINGS.items() if getattr(node, "CATEGORY", "") == CATEGORY]
TINY_SAMPLER, TINY_SAVE, TRACKING_SAVE = "7", "8", "9"


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def saved_files(comfyui, history: dict, node_id: str) -> list:
    return [comfyui.output_dir / item["subfolder"] / item["filename"] for item in history["outputs"][node_id]["images"]]


# ---------------------------------------------------------------- as Python objects


def test_the_pack_registers_nine_das_nodes():
    assert sorted(DAS_NODES) == sorted([
        "VDPDaSLoader", "VDPTinyDaSLoader", "VDPEmbeddedDaSLoader", "VDPDaSCameraTrajectory", "VDPDaSDepthToTracks",
        "VDPDaSObjectMotion",
        "VDPDaSLoadTracks", "VDPDaSRenderTracking", "VDPDaSSampler",
    ])


# the loader's INPUT_TYPES lists ComfyUI's model folders, so it is checked in the real ComfyUI below
@pytest.mark.parametrize("name", [name for name in DAS_NODES if name != "VDPDaSLoader"])
def test_every_das_input_and_output_has_a_tooltip(name):
    node = NODE_CLASS_MAPPINGS[name]
    assert all(spec[1]["tooltip"] for spec in node.INPUT_TYPES()["required"].values())
    assert len(node.OUTPUT_TOOLTIPS) == len(node.RETURN_TYPES) and all(node.OUTPUT_TOOLTIPS)


def test_depth_image_to_tracks_to_tracking_video_image_batch():
    (camera,) = VDPDaSCameraTrajectory().build("rot y 10", 5)
    image = torch.rand(1, 24, 32, 3)
    depth = torch.rand(1, 24, 32, 3) * 0.9 + 0.1
    (tracks,) = VDPDaSDepthToTracks().build(image, depth, DEPTH_MEANINGS[0], camera, 55.0, 0)
    assert isinstance(tracks, Tracks) and tracks.points.shape == (5, 24 * 32, 3)
    # white (large disparity) is near: the brightest pixel gets the smallest depth
    brightest = depth[0].mean(-1).flatten().argmax()
    assert tracks.points[0, brightest, 2] == tracks.points[0, :, 2].min()
    (video,) = VDPDaSRenderTracking().render(tracks, 2)
    assert video.shape == (5, 24, 32, 3) and video.dtype == torch.float32 and 0 <= video.min() and video.max() <= 1


def test_grid_size_tracks_a_grid_and_depth_meaning_takes_values_as_depth():
    (camera,) = VDPDaSCameraTrajectory().build("", 3)
    depth = torch.full((1, 24, 32, 3), 0.5)
    (tracks,) = VDPDaSDepthToTracks().build(torch.rand(1, 24, 32, 3), depth, DEPTH_MEANINGS[1], camera, 55.0, 6)
    assert tracks.points.shape == (3, 36, 3)
    torch.testing.assert_close(tracks.points[..., 2], torch.full((3, 36), 0.5))
    with pytest.raises(ValueError, match="depth must be finite and > 0 everywhere"):
        VDPDaSDepthToTracks().build(torch.rand(1, 24, 32, 3), torch.zeros(1, 24, 32, 3), DEPTH_MEANINGS[1], camera, 55.0, 0)


def test_object_motion_node_takes_a_comfyui_mask():
    (camera,) = VDPDaSCameraTrajectory().build("", 4)
    (tracks,) = VDPDaSDepthToTracks().build(torch.rand(1, 24, 32, 3), torch.rand(1, 24, 32, 3) + 0.1,
                                            DEPTH_MEANINGS[0], camera, 55.0, 0)
    mask = torch.zeros(1, 24, 32)
    mask[0, 4:10, 4:10] = 1.0
    (moved,) = VDPDaSObjectMotion().move(tracks, mask, "left", 8.0)
    changed = (moved.points != tracks.points).any(-1).any(0)
    assert changed.view(24, 32)[4:10, 4:10].all() and changed.sum() == 36


def test_camera_node_reports_bad_commands_at_validation():
    assert VDPDaSCameraTrajectory.VALIDATE_INPUTS("rot y 30", 49) is True
    message = VDPDaSCameraTrajectory.VALIDATE_INPUTS("zoom 3", 49)
    assert "unknown command 'zoom'" in message and "trans" in message


# ---------------------------------------------------------------- in a real ComfyUI


def test_object_info_serves_the_das_nodes(comfyui):
    info = comfyui.client.object_info()
    assert all(spec[1]["tooltip"] for spec in info["VDPDaSLoader"]["input"]["required"].values())
    for name in DAS_NODES:
        assert info[name]["category"] == CATEGORY
        assert info[name]["output"] == list(NODE_CLASS_MAPPINGS[name].RETURN_TYPES)
    assert info["VDPDaSRenderTracking"]["output"] == ["IMAGE"]
    assert info["VDPDaSDepthToTracks"]["input"]["required"]["camera"][0] == "VDP_CAMERA"
    assert info["VDPDaSObjectMotion"]["input"]["required"]["mask"][0] == "MASK"
    sampler = info["VDPDaSSampler"]["input"]["required"]
    assert {name: sampler[name][1]["default"] for name in ("steps", "cfg", "seed", "dynamic_cfg")} == \
        {"steps": 50, "cfg": 6.0, "seed": 42, "dynamic_cfg": True}


def test_tiny_camera_workflow_saves_the_video_and_the_tracking_video(comfyui):
    graph = api_workflow("das_tiny_camera_api.json")
    history, events = comfyui.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    for node_id, prefix in ((TINY_SAVE, "vdp_das_tiny"), (TRACKING_SAVE, "vdp_das_tiny_tracking")):
        (path,) = saved_files(comfyui, history, node_id)
        assert path.name.startswith(prefix)
        with Image.open(path) as webp:
            assert webp.format == "WEBP" and webp.size == (32, 32)
            # WebP merges identical consecutive frames; these all differ (noise, a moving camera)
            assert webp.n_frames == graph["4"]["inputs"]["frames"]
    progress = [e["data"] for e in events if e["type"] == "progress" and e["data"]["node"] == TINY_SAMPLER]
    assert [(item["value"], item["max"]) for item in progress] == [(1, 3), (2, 3), (3, 3)]


def test_embedded_loader_runs_the_trained_model_in_a_graph(comfyui):
    """The embedded DaS (trained on the shapes world) through its loader: the camera graph at the model's geometry
    (32x32, 5 frames) saves 5 frames of 32x32."""
    graph = api_workflow("das_tiny_camera_api.json")
    graph["1"] = {"inputs": {"memory": "none"}, "class_type": "VDPEmbeddedDaSLoader"}
    graph["4"]["inputs"]["frames"] = 5
    graph[TINY_SAMPLER]["inputs"].update(steps=2, cfg=1.0, dynamic_cfg=False)
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (path,) = saved_files(comfyui, history, TINY_SAVE)
    with Image.open(path) as webp:
        assert webp.size == (32, 32) and webp.n_frames == 5


def test_bad_camera_command_is_rejected_at_validation(comfyui):
    graph = api_workflow("das_tiny_camera_api.json")
    graph["4"]["inputs"]["command"] = "rot w 30"
    status, body = comfyui.client.post_prompt(graph)
    assert status == 400
    messages = [error["details"] for error in body["node_errors"]["4"]["errors"]]
    assert any("axis='w' must be one of ('x', 'y', 'z')" in message for message in messages)


def test_tracking_video_of_another_frame_count_is_refused_by_the_sampler(comfyui):
    graph = api_workflow("das_tiny_camera_api.json")
    graph["4"]["inputs"]["frames"] = 5
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "error"
    assert "num_frames=5" in json.dumps(comfyui.client.execution_errors(history))


def test_real_weights_workflow_without_weights_gives_the_download_command(comfyui):
    status, body = comfyui.client.post_prompt(api_workflow("das_camera_api.json"))
    assert status == 400
    (error,) = body["node_errors"]["1"]["errors"]
    assert "EXCAI/Diffusion-As-Shader" in error["details"] and "vdp download Diffusion-As-Shader" in error["details"]


def test_loader_lists_and_loads_a_das_folder_in_the_released_layout(comfyui):
    from video_diffusion_pack.diffusers_pipelines.das.tiny import save_tiny_das_layout

    models_dir = pathlib.Path(comfyui.extra_model_paths["video_diffusion_pack_das"])
    save_tiny_das_layout(models_dir / "tiny-das", seed=1)
    assert comfyui.client.object_info()["VDPDaSLoader"]["input"]["required"]["model"][0] == ["tiny-das"]
    graph = copy.deepcopy(api_workflow("das_tiny_camera_api.json"))
    graph["1"] = {"class_type": "VDPDaSLoader", "inputs": {"model": "tiny-das", "dtype": "fp32"}}
    graph[TINY_SAMPLER]["inputs"]["steps"] = 2
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (path,) = saved_files(comfyui, history, TINY_SAVE)
    with Image.open(path) as webp:
        assert (webp.n_frames, webp.size) == (9, (32, 32))


def test_load_tracks_node_reads_only_from_the_input_folder(comfyui):
    """Like core's load nodes, Load Tracks reads names in ComfyUI's input folder; '../' and absolute paths that
    leave it are refused (before: any .npz/.pt on the server was readable)."""
    tracks = np.random.rand(1, 3, 7, 3).astype(np.float32) * 10 + 1
    np.savez(comfyui.input_dir / "tracks.npz", tracks=tracks, visibility=np.ones((1, 3, 7), dtype=bool))
    outside = comfyui.input_dir.parent / "private_tracks.npz"
    np.savez(outside, tracks=tracks)

    def graph(path):
        return {"1": {"class_type": "VDPDaSLoadTracks",
                      "inputs": {"path": path, "width": 32, "height": 24, "visibility_threshold": 0.9}},
                "2": {"class_type": "VDPDaSRenderTracking", "inputs": {"tracks": ["1", 0], "point_size": 2}},
                "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}

    history = comfyui.client.run(graph("tracks.npz"), timeout_s=120)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    for path in ("../private_tracks.npz", str(outside)):
        history = comfyui.client.run(graph(path), timeout_s=120)
        assert history["status"]["status_str"] == "error"
        assert "is outside ComfyUI's input folder" in json.dumps(comfyui.client.execution_errors(history))
