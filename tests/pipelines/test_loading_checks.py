"""Loading refuses what would otherwise load wrong: a text encoder whose file holds another model's weights (before:
every key missing, random weights, exit 0) and transformer configs with impossible sizes (before: a RuntimeError
about a negative dimension)."""

import json
import shutil

import pytest

from video_diffusion_pack.diffusers_pipelines.vchitect import VchitectRepVideoPipeline
from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import build_tiny_vchitect_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vchitect") / "tiny"
    build_tiny_vchitect_pipeline(weights="random").save_pretrained(folder)
    return folder


def test_the_saved_pipeline_loads(saved):
    assert VchitectRepVideoPipeline.from_pretrained(saved).text_encoder is not None


def test_a_text_encoder_file_holding_another_models_weights_is_refused(saved, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    (weights,) = (broken / "text_encoder").glob("*.safetensors")
    (vae_weights,) = (broken / "vae").glob("*.safetensors")
    shutil.copy(vae_weights, weights)
    with pytest.raises(ValueError, match=r"broken/text_encoder: the weights do not match CLIPTextModelWithProjection "
                                         r"\(\d+ missing keys \(e\.g\. '.*'\); \d+ unexpected keys"):
        VchitectRepVideoPipeline.from_pretrained(broken)


@pytest.mark.parametrize("key, value", [("patch_size", -2), ("num_layers", 0), ("attention_head_dim", "8")])
def test_impossible_transformer_sizes_are_named(saved, tmp_path, key, value):
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    config_path = broken / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config[key] = value
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"{key}={value!r} must be an integer >= 1 \(transformer config\)"):
        VchitectRepVideoPipeline.from_pretrained(broken)


class _Payload:
    def __reduce__(self):
        return (print, ("never runs",))


def _pickle_into(path):
    import pickle

    with open(path, "wb") as handle:
        pickle.dump({"x": _Payload()}, handle)


def test_pickled_weights_are_refused_naming_the_users_folder(tmp_path):
    from video_diffusion_pack.diffusers_pipelines.lgvi import InpaintByInstructionPipeline
    from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import save_tiny_lgvi_official_layout

    folder = save_tiny_lgvi_official_layout(tmp_path / "lgvi")
    (weights,) = (folder / "text_encoder").glob("*.safetensors")
    weights.unlink()
    _pickle_into(folder / "text_encoder" / "pytorch_model.bin")
    # before: an UnpicklingError traceback
    with pytest.raises(ValueError, match=r"lgvi/text_encoder: its weights file is a pickle that the safe loader "
                                         r"refuses"):
        InpaintByInstructionPipeline.from_pretrained(folder)

    folder = save_tiny_lgvi_official_layout(tmp_path / "lgvi2")
    (weights,) = (folder / "vae").glob("*.safetensors")
    weights.unlink()
    _pickle_into(folder / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(OSError) as raised:  # before: named a temporary folder of links
        InpaintByInstructionPipeline.from_pretrained(folder)
    assert f"{folder}/vae/diffusion_pytorch_model.bin" in str(raised.value)
    assert "vdp-pipeline-view" not in str(raised.value)
