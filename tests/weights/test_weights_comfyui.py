"""The Vchitect loader node finds weights the way `vdp download` places them, with ComfyUI's own `folder_paths`.

`folder_paths` is ComfyUI's module from the snapshot the ComfyUI tests use, loaded fresh for each test with its
models folder in tmp_path.
"""

from video_diffusion_pack.custom_nodes import _comfy
from video_diffusion_pack.custom_nodes.vchitect_nodes import VDPVchitectLoader


def make_pipeline_folder(path):
    path.mkdir(parents=True)
    (path / "model_index.json").write_text("{}")
    return path


def test_loader_lists_pipelines_in_the_layout_vdp_download_writes(comfyui_models):
    make_pipeline_folder(comfyui_models / "video_diffusion_pack" / "vchitect" / "Vchitect-2.0-2B")

    assert _comfy.list_pipeline_dirs("vchitect") == ["Vchitect-2.0-2B"]
    assert VDPVchitectLoader.VALIDATE_INPUTS("Vchitect-2.0-2B") is True


def test_loader_takes_a_pipeline_folder_added_as_a_search_path_under_its_own_name(comfyui_models, tmp_path):
    import folder_paths

    elsewhere = make_pipeline_folder(tmp_path / "diffusers" / "Vchitect-2.0-2B")
    make_pipeline_folder(comfyui_models / "video_diffusion_pack" / "vchitect" / "my-finetune")
    folder_paths.add_model_folder_path(_comfy.model_folder_key("vchitect"), str(elsewhere))

    assert _comfy.list_pipeline_dirs("vchitect") == ["Vchitect-2.0-2B", "my-finetune"]
    assert _comfy.resolve_pipeline_dir("vchitect", "Vchitect-2.0-2B") == str(elsewhere)


def test_loader_validation_for_missing_weights_gives_the_download_command_for_this_comfyui(comfyui_models):
    message = VDPVchitectLoader.VALIDATE_INPUTS("Vchitect-2.0-2B")

    assert f"`vdp download Vchitect-2.0-2B --comfyui-models {comfyui_models}`" in message
    assert str(comfyui_models / "video_diffusion_pack" / "vchitect" / "Vchitect-2.0-2B") in message
