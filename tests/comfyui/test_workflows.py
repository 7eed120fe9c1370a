"""The example workflows: each UI-format file describes the same graph as its API-format twin.

The UI -> API translation follows the web UI's own rule, with the node specs a real ComfyUI serves
on ``/object_info``: socket inputs come from ``links``; widget values fill the node's widget inputs
in ``INPUT_TYPES`` order, and an INT input named ``seed``/``noise_seed`` (or one declaring
``control_after_generate``) is followed by its control value ("fixed", "randomize", ...), which is
not part of the API graph.
"""

import json
import pathlib

import pytest
from helpers import WORKFLOWS

UI_WORKFLOWS = sorted(path.name for path in WORKFLOWS.glob("*.json") if not path.stem.endswith("_api"))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SEED_INPUT_NAMES = {"seed", "noise_seed"}


def is_widget(spec) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def has_control_widget(name: str, spec) -> bool:
    options = spec[1] if len(spec) > 1 else {}
    return (spec[0] == "INT" and name in SEED_INPUT_NAMES) or bool(options.get("control_after_generate"))


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """The API-format graph the web UI queues for a UI-format workflow."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        spec = object_info[node["type"]]["input"]
        declared = {**spec.get("required", {}), **spec.get("optional", {})}
        inputs = {}
        socket_names = set()
        for socket in node.get("inputs", []):
            socket_names.add(socket["name"])
            if socket.get("link") is not None:
                _, origin_id, origin_slot, _, _, _ = links[socket["link"]]
                inputs[socket["name"]] = [str(origin_id), origin_slot]
        values = iter(node.get("widgets_values", []))
        for name, input_spec in declared.items():
            if not is_widget(input_spec) or name in socket_names:
                continue
            inputs[name] = next(values)
            if has_control_widget(name, input_spec):
                next(values)
        assert next(values, None) is None, f"node {node['id']} has more widget values than widget inputs"
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def without_meta(api: dict) -> dict:
    return {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]} for node_id, node in api.items()}


def test_every_ui_workflow_has_an_api_twin():
    assert UI_WORKFLOWS, "no workflows found"
    for name in UI_WORKFLOWS:
        assert (WORKFLOWS / name.replace(".json", "_api.json")).is_file(), name


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_and_api_workflows_describe_the_same_graph(name, comfyui):
    ui = json.loads((WORKFLOWS / name).read_text())
    api = json.loads((WORKFLOWS / name.replace(".json", "_api.json")).read_text())
    assert ui_to_api(ui, comfyui.client.object_info()) == without_meta(api)


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_workflow_links_join_sockets_of_matching_types(name, comfyui):
    ui = json.loads((WORKFLOWS / name).read_text())
    object_info = comfyui.client.object_info()
    nodes = {node["id"]: node for node in ui["nodes"]}
    assert ui["last_node_id"] == max(nodes) and ui["last_link_id"] == max(link[0] for link in ui["links"])
    for link_id, origin_id, origin_slot, target_id, target_slot, link_type in ui["links"]:
        assert object_info[nodes[origin_id]["type"]]["output"][origin_slot] == link_type
        target_socket = nodes[target_id]["inputs"][target_slot]
        assert (target_socket["type"], target_socket["link"]) == (link_type, link_id)
        target_inputs = object_info[nodes[target_id]["type"]]["input"]
        declared = {**target_inputs.get("required", {}), **target_inputs.get("optional", {})}
        assert declared[target_socket["name"]][0] == link_type
        assert link_id in nodes[origin_id]["outputs"][origin_slot]["links"]
