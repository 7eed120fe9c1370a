"""i2v_background (optional, through the user's dreamsim package): the DreamSim preprocessing and the score equal
the official vbench 0.1.5 (`vbench2_beta_i2v`) with the same stand-in model in both (DreamSim's weights are not
available here); the DreamSim cache and the package are checked and named before any video is decoded."""

import json
import types

import numpy as np
import pytest

from tests.vbench.dimension_fixtures import FIXTURES, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench import evaluate
from video_diffusion_pack.evaluation.vbench.dimensions import i2v_background

FOLDER = FIXTURES / "i2v_subject"
OFFICIAL = json.loads((FOLDER / "i2v_background.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """The fixture's seeded DINO ViT, given to the official function in place of DreamSim, as an object with
    DreamSim's `embed`."""
    from video_diffusion_pack.evaluation.vbench.dimensions._dino import load_dino_vit

    path = tmp_path_factory.mktemp("dino") / "dino.pth"
    model = load_dino_vit(str(write_seeded_checkpoint(OFFICIAL["checkpoints"]["dino_vitb16"], path)), "test")
    return types.SimpleNamespace(embed=lambda pixels: model(pixel_values=pixels).last_hidden_state[:, 0])


@pytest.fixture()
def dreamsim_cache(tmp_path):
    """A folder with the names of DreamSim's 'ensemble' files (their content is DreamSim's business)."""
    folder = tmp_path / "dreamsim"
    (folder / "ensemble_lora").mkdir(parents=True)
    for name in i2v_background.DREAMSIM_FILES:
        (folder / name).write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def videos():
    from video_diffusion_pack.video_io import read_video

    return [read_video(FOLDER / r["clip"]).frames for r in OFFICIAL["per_video"]]


def test_scores_equal_the_official_code_with_the_same_model(stand_in, videos, dreamsim_cache, monkeypatch):
    loaded = []
    monkeypatch.setattr(i2v_background, "load_dreamsim", lambda cache, device: loaded.append(cache) or stand_in)
    images = [FOLDER / r["image"] for r in OFFICIAL["per_video"]]
    aggregate, per_video = i2v_background.compute(videos, images=images, dreamsim_cache=dreamsim_cache, batch_size=4)
    assert loaded == [dreamsim_cache]
    np.testing.assert_allclose([r["video_results"] for r in per_video], [r["score"] for r in OFFICIAL["per_video"]],
                               rtol=1e-5, atol=0)
    np.testing.assert_allclose(aggregate, OFFICIAL["aggregate"], rtol=1e-5, atol=0)


def test_without_the_dreamsim_package_the_install_command_is_named(dreamsim_cache):
    try:
        import dreamsim  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"needs the optional dreamsim package .*pip install dreamsim"):
            i2v_background.load_dreamsim(dreamsim_cache, "cpu")
    else:
        pytest.skip("dreamsim is installed in this environment, so its absence cannot be shown")


def test_a_missing_dreamsim_cache_is_named_before_decoding(tmp_path, monkeypatch):
    from video_diffusion_pack.evaluation import vbench

    monkeypatch.setattr(vbench, "_decode", lambda path: pytest.fail("decoded before the inputs were checked"))
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = OFFICIAL["per_video"][0]["clip"]
    (videos / clip).write_bytes((FOLDER / clip).read_bytes())
    options = {"image_folder": FOLDER, "resolution": "16-9"}
    with pytest.raises(ValueError, match="dreamsim_cache is needed"):
        evaluate(videos, ["i2v_background"], mode="custom", dimension_options={"i2v_background": options})
    (tmp_path / "cache").mkdir()
    with pytest.raises(FileNotFoundError, match=r"lacks dino_vitb16_pretrain\.pth, .*ensemble_lora"):
        evaluate(videos, ["i2v_background"], mode="custom",
                 dimension_options={"i2v_background": {**options, "dreamsim_cache": tmp_path / "cache"}})
