"""Specification of weights_manifest.json: its schema, its entries, the pack classes they name and the layouts."""

import json
import os
import pathlib
import re

import jsonschema
import pytest
from helpers.vdp import run_vdp

import video_diffusion_pack
from video_diffusion_pack.custom_nodes import das_nodes, lgvi_i_nodes, lgvi_nodes, repvideo_nodes, vchitect_nodes
from video_diffusion_pack.custom_nodes._comfy import missing_weights_message
from video_diffusion_pack.weights import (
    MANIFEST_PATH,
    SCHEMA_PATH,
    UnknownEntryError,
    find_local_folder,
    load_manifest,
    missing_pack_classes,
)

MANIFEST = load_manifest()
# The checkpoints the pack's systems use (Vchitect-2.0, RepVideo, Diffusion as Shader, LGVI / LGVI-I).
REQUIRED_REPOS = {
    "Vchitect/Vchitect-2.0-2B",
    "Vchitect/RepVideo",
    "THUDM/CogVideoX-2b",
    "EXCAI/Diffusion-As-Shader",
    "jianzongwu/lgvi",
    "jianzongwu/lgvi-i",
    "liuhaotian/llava-v1.5-7b",
    "openai/clip-vit-large-patch14-336",
}


def _write_manifest(tmp_path: pathlib.Path, change) -> pathlib.Path:
    document = json.loads(MANIFEST_PATH.read_text())
    change(document)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(document))
    return path


def test_shipped_manifest_follows_its_json_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)

    jsonschema.Draft202012Validator(schema).validate(json.loads(MANIFEST_PATH.read_text()))


def test_manifest_has_an_entry_for_every_checkpoint_the_pack_uses():
    assert {entry.repo_id for entry in MANIFEST if entry.pack_classes} == REQUIRED_REPOS


def test_repvideo_comes_with_the_cogvideox_text_encoder_tokenizer_and_vae():
    repvideo, cogvideox = MANIFEST.get("Vchitect/RepVideo"), MANIFEST.get("THUDM/CogVideoX-2b")

    assert repvideo.requires == (cogvideox.name,)
    assert set(cogvideox.allow_patterns) == {"text_encoder/*", "tokenizer/*", "vae/*"}
    assert repvideo.conversion_description is not None and "learnable_gating" in repvideo.conversion_description


def test_lgvi_i_comes_with_llava_and_its_clip_vision_tower():
    lgvi_i = MANIFEST.get("jianzongwu/lgvi-i")

    assert {MANIFEST.get(name).repo_id for name in lgvi_i.requires} == {
        "liuhaotian/llava-v1.5-7b", "openai/clip-vit-large-patch14-336"}
    assert [entry.name for entry in MANIFEST.with_requirements(lgvi_i)][-1] == lgvi_i.name


@pytest.mark.parametrize(
    "entry, class_name",
    [(e, name) for e in MANIFEST for name in e.pack_classes if name in video_diffusion_pack._LAZY_EXPORTS],
    ids=lambda value: getattr(value, "name", value),
)
def test_every_pack_class_the_package_exports_is_a_class(entry, class_name):
    assert isinstance(getattr(video_diffusion_pack, class_name), type)


@pytest.mark.parametrize("entry", [e for e in MANIFEST if not e.evaluates], ids=lambda entry: entry.name)
def test_every_entry_names_pack_classes_this_version_has(entry):
    assert entry.pack_classes
    assert missing_pack_classes(entry) == []
    for class_name in entry.pack_classes:
        assert isinstance(getattr(video_diffusion_pack, class_name), type), class_name


def test_pack_classes_the_package_does_not_export_are_reported_missing(tmp_path):
    path = _write_manifest(tmp_path, lambda document: document["entries"][0].update(
        pack_classes=["VchitectRepVideoPipeline", "NotInThePack"]))

    assert missing_pack_classes(load_manifest(path).get("Vchitect-2.0-2B")) == ["NotInThePack"]


def test_every_folder_is_the_comfyui_layout_of_its_kind_and_name():
    for entry in MANIFEST:
        assert entry.comfyui_folder == f"models/video_diffusion_pack/{entry.kind}/{entry.name}"
        assert entry.folder_in("root") == pathlib.Path("root", entry.kind, entry.name)


@pytest.mark.parametrize("node_module, pack_class", [
    (vchitect_nodes, "VchitectRepVideoPipeline"), (das_nodes, "DaSPipeline"), (repvideo_nodes, "CogVideoXRepVideoPipeline"),
    (lgvi_nodes, "InpaintByInstructionPipeline"), (lgvi_i_nodes, "LGVIInstructionEncoder"),
], ids=["vchitect", "das", "repvideo", "lgvi", "lgvi-i"])
def test_loader_nodes_look_in_the_manifest_kind_folder_of_their_weights(node_module, pack_class):
    assert node_module.WEIGHTS_KIND == MANIFEST.entry_for_class(pack_class).kind


def test_vchitect_loader_node_names_the_manifest_repo():
    assert vchitect_nodes.HUB_REPO == MANIFEST.entry_for_class("VchitectRepVideoPipeline").repo_id


def test_loader_node_message_for_a_missing_model_gives_the_exact_download_command():
    message = missing_weights_message(
        "VchitectRepVideoPipeline", "vchitect", "Vchitect-2.0-2B", [], ["/ComfyUI/models/video_diffusion_pack/vchitect"],
        "/ComfyUI/models")

    assert "`vdp download Vchitect-2.0-2B --comfyui-models /ComfyUI/models`" in message
    assert "/ComfyUI/models/video_diffusion_pack/vchitect/Vchitect-2.0-2B" in message
    assert "Vchitect/Vchitect-2.0-2B" in message and "model_index.json" in message


def test_download_command_quotes_folders_for_the_shell():
    entry = MANIFEST.get("lgvi-i")

    assert entry.download_command("/my models") == "vdp download lgvi-i --comfyui-models '/my models'"


def test_entries_are_found_by_name_in_any_case_or_by_repo_id():
    assert MANIFEST.get("vchitect-2.0-2b") is MANIFEST.get("Vchitect/Vchitect-2.0-2B") is MANIFEST.get("Vchitect-2.0-2B")


def test_an_unknown_name_is_refused_with_the_names_there_are_and_the_closest():
    with pytest.raises(UnknownEntryError) as raised:
        MANIFEST.get("vchitect")

    assert "name='vchitect' is not in weights_manifest.json" in str(raised.value)
    assert all(name in str(raised.value) for name in MANIFEST.names)
    assert "Did you mean 'Vchitect-2.0-2B'?" in str(raised.value)


def test_a_manifest_with_a_bad_field_is_refused_naming_the_entry_and_field(tmp_path):
    path = _write_manifest(tmp_path, lambda document: document["entries"][2].update(revision="v1.0"))

    with pytest.raises(ValueError, match=r"at entries/2/revision: 'v1.0' does not match"):
        load_manifest(path)


def test_a_manifest_with_an_invented_looking_hash_is_refused(tmp_path):
    path = _write_manifest(tmp_path, lambda document: document["entries"][0]["files"][0].update(sha256="abc"))

    with pytest.raises(ValueError, match=r"at entries/0/files/0/sha256"):
        load_manifest(path)


def test_a_manifest_file_that_no_pattern_fetches_is_refused(tmp_path):
    path = _write_manifest(tmp_path, lambda document: document["entries"][0]["files"].append(
        {"path": "README.md", "size": None, "sha256": None}))

    with pytest.raises(ValueError, match=r"entry 'Vchitect-2.0-2B' lists file 'README.md', which none of its allow_patterns"):
        load_manifest(path)


def test_a_manifest_requiring_an_unknown_entry_is_refused(tmp_path):
    path = _write_manifest(tmp_path, lambda document: document["entries"][0].update(requires=["nope"]))

    with pytest.raises(ValueError, match=r"entry 'Vchitect-2.0-2B' requires \['nope'\]"):
        load_manifest(path)


@pytest.mark.parametrize("given", ["folder", "models root", "comfyui models", "comfyui"])
def test_local_folder_is_found_from_the_folder_itself_or_any_folder_of_the_layout(tmp_path, given):
    entry = MANIFEST.get("Vchitect-2.0-2B")
    folder = tmp_path / "ComfyUI" / "models" / "video_diffusion_pack" / "vchitect" / "Vchitect-2.0-2B"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    path = {"folder": folder, "models root": folder.parent.parent, "comfyui models": tmp_path / "ComfyUI" / "models",
            "comfyui": tmp_path / "ComfyUI"}[given]

    assert find_local_folder(path, entry) == folder


def test_a_folder_without_the_weights_names_the_places_looked_at_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        find_local_folder(tmp_path, MANIFEST.get("Vchitect-2.0-2B"))

    assert f"'{tmp_path / 'video_diffusion_pack' / 'vchitect' / 'Vchitect-2.0-2B' / 'model_index.json'}'" in str(raised.value)
    assert "`vdp download Vchitect-2.0-2B`" in str(raised.value)


def _entry_named(document, name):
    return next(entry for entry in document["entries"] if entry["name"] == name)


def test_a_manifest_whose_entry_requires_itself_is_refused_naming_it(tmp_path):
    path = _write_manifest(tmp_path, lambda document: _entry_named(document, "Vchitect-2.0-2B").update(
        requires=["Vchitect-2.0-2B"]))

    with pytest.raises(ValueError, match=r"entries require each other in a cycle: Vchitect-2\.0-2B -> Vchitect-2\.0-2B"):
        load_manifest(path)


def test_a_manifest_with_a_requires_cycle_is_refused_naming_its_entries(tmp_path):
    path = _write_manifest(tmp_path, lambda document: _entry_named(document, "CogVideoX-2b").update(requires=["RepVideo"]))

    with pytest.raises(ValueError, match=r"entries require each other in a cycle: (RepVideo -> CogVideoX-2b -> RepVideo"
                                         r"|CogVideoX-2b -> RepVideo -> CogVideoX-2b)"):
        load_manifest(path)


def test_download_with_a_requires_cycle_exits_2_with_one_line(tmp_path):
    path = _write_manifest(tmp_path, lambda document: _entry_named(document, "CogVideoX-2b").update(requires=["RepVideo"]))

    result = run_vdp("download", "RepVideo", "--manifest", path, env={**os.environ, "HF_HUB_OFFLINE": "1"})

    assert result.returncode == 2
    assert "argument --manifest:" in result.stderr and "require each other in a cycle" in result.stderr
    assert "CogVideoX-2b" in result.stderr and "RepVideo" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("field, change", [
    ("name", lambda entry: entry.update(name="evil\n", comfyui_folder="models/video_diffusion_pack/vchitect/evil\n")),
    ("repo_id", lambda entry: entry.update(repo_id=entry["repo_id"] + "\n")),
    ("revision", lambda entry: entry.update(revision=entry["revision"] + "\n")),
    ("comfyui_folder", lambda entry: entry.update(comfyui_folder=entry["comfyui_folder"] + "\n")),
    ("pack_classes", lambda entry: entry.update(pack_classes=[entry["pack_classes"][0] + "\n"])),
    ("files/0/path", lambda entry: entry["files"][0].update(path=entry["files"][0]["path"] + "\n")),
    ("files/0/sha256", lambda entry: entry["files"][0].update(sha256="a" * 64 + "\n")),
])
def test_the_schema_refuses_a_trailing_newline(tmp_path, field, change):
    path = _write_manifest(tmp_path, lambda document: change(_entry_named(document, "Vchitect-2.0-2B")))

    with pytest.raises(ValueError, match=r"does not follow weights_manifest\.schema\.json at entries/0/"):
        load_manifest(path)


def test_a_manifest_path_with_a_control_character_is_refused_by_the_schema(tmp_path):
    path = _write_manifest(tmp_path, lambda document: document["entries"][0]["files"][0].update(path="model\rindex.json"))

    with pytest.raises(ValueError, match=r"at entries/0/files/0/path"):
        load_manifest(path)


def test_a_manifest_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe{}")

    with pytest.raises(ValueError, match=re.escape(f"weights manifest '{path}' is not UTF-8 text")):
        load_manifest(path)


def test_a_manifest_path_that_is_a_folder_is_refused_as_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=re.escape(f"weights manifest '{tmp_path}' is a folder, not a file")):
        load_manifest(tmp_path)
