"""The example workflows: ComfyUI templates in ``example_workflows/``, their API-format copies in ``tests/workflows/``.

ComfyUI lists every ``*.json`` of a pack's ``example_workflows/`` in its template browser and its frontend
shows ``<name>.jpg`` beside it as the thumbnail, so that folder holds only UI-format graphs, each with a JPEG.
Each UI graph describes the same graph as its API-format copy.

The UI -> API translation follows the web UI's own rule, with the node specs a real ComfyUI serves
on ``/object_info``: socket inputs come from ``links``; widget values fill the node's widget inputs
in ``INPUT_TYPES`` order, and an INT input named ``seed``/``noise_seed`` (or one declaring
``control_after_generate``) is followed by its control value ("fixed", "randomize", ...), which is
not part of the API graph.
"""

import json
import pathlib

import pytest
from helpers import EXAMPLE_WORKFLOWS, REPO_ROOT, WORKFLOWS
from PIL import Image

UI_WORKFLOWS = sorted(path.name for path in EXAMPLE_WORKFLOWS.glob("*.json"))
API_WORKFLOWS = sorted(path.name for path in WORKFLOWS.glob("*.json"))
THUMBNAIL_MAX_BYTES = 16_000
# the folders of a custom-node pack whose *.json ComfyUI's /workflow_templates route lists (app/custom_node_manager.py)
TEMPLATE_FOLDER_NAMES = ("example_workflows", "example", "examples", "workflow", "workflows")
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


def api_copy(name: str) -> pathlib.Path:
    return WORKFLOWS / name.replace(".json", "_api.json")


def test_every_template_has_an_api_copy_and_every_api_copy_a_template():
    assert UI_WORKFLOWS, "no workflows found"
    assert sorted(api_copy(name).name for name in UI_WORKFLOWS) == API_WORKFLOWS


def test_comfyui_lists_only_the_ui_format_templates():
    listed = [path for folder in TEMPLATE_FOLDER_NAMES for path in (REPO_ROOT / folder).glob("*.json")]

    assert sorted(path.relative_to(REPO_ROOT).as_posix() for path in listed) == [
        f"example_workflows/{name}" for name in UI_WORKFLOWS]


def test_example_workflows_folder_holds_only_templates_and_their_thumbnails():
    stems = {pathlib.Path(name).stem for name in UI_WORKFLOWS}
    for path in EXAMPLE_WORKFLOWS.iterdir():
        assert path.suffix in (".json", ".jpg") and path.stem in stems, path.name


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_template_is_a_ui_format_graph(name):
    ui = json.loads((EXAMPLE_WORKFLOWS / name).read_text())
    assert isinstance(ui.get("nodes"), list) and isinstance(ui.get("links"), list) and ui["nodes"]
    assert all(isinstance(node["id"], int) and isinstance(node["type"], str) for node in ui["nodes"])
    assert not any(isinstance(value, dict) and "class_type" in value for value in ui.values())


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_template_has_a_small_jpeg_thumbnail(name):
    thumbnail = EXAMPLE_WORKFLOWS / name.replace(".json", ".jpg")
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG" and max(image.size) <= 256
    assert thumbnail.stat().st_size <= THUMBNAIL_MAX_BYTES


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_template_node_types_all_exist_in_comfyui(name, comfyui):
    ui = json.loads((EXAMPLE_WORKFLOWS / name).read_text())
    node_types = {node["type"] for node in ui["nodes"]}
    assert node_types - set(comfyui.client.object_info()) == set()


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_and_api_workflows_describe_the_same_graph(name, comfyui):
    ui = json.loads((EXAMPLE_WORKFLOWS / name).read_text())
    api = json.loads(api_copy(name).read_text())
    assert ui_to_api(ui, comfyui.client.object_info()) == without_meta(api)


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_workflow_links_join_sockets_of_matching_types(name, comfyui):
    ui = json.loads((EXAMPLE_WORKFLOWS / name).read_text())
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
