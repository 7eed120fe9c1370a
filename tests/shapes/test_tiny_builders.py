"""The ``build_tiny_*`` builders and the Tiny loader nodes give the trained embedded models by default (Vchitect-2.0,
DaS, LGVI); random weights in the tiny layouts on request (``weights="random"``), which the families without a trained
model (RepVideo, LGVI-I) build only."""

import numpy as np
import pytest
import torch

from video_diffusion_pack import (
    build_tiny_cogvideox_repvideo_pipeline,
    build_tiny_das_pipeline,
    build_tiny_inpaint_pipeline,
    build_tiny_lgvi_i_pipeline,
    build_tiny_vchitect_pipeline,
)
from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS
from video_diffusion_pack.diffusers_pipelines.das.embedded import load_embedded_das_pipeline
from video_diffusion_pack.diffusers_pipelines.lgvi.embedded import load_embedded_lgvi_pipeline
from video_diffusion_pack.diffusers_pipelines.vchitect.defaults import EMBEDDED
from video_diffusion_pack.diffusers_pipelines.vchitect.embedded import load_embedded_vchitect_pipeline
from video_diffusion_pack.evaluation.shapes import quality

# family: (builder, loader of the shipped model, denoiser component, Tiny loader node)
TRAINED = {
    "vchitect": (build_tiny_vchitect_pipeline, load_embedded_vchitect_pipeline, "transformer", "VDPTinyVchitectLoader"),
    "das": (build_tiny_das_pipeline, load_embedded_das_pipeline, "transformer", "VDPTinyDaSLoader"),
    "lgvi": (build_tiny_inpaint_pipeline, load_embedded_lgvi_pipeline, "unet", "VDPTinyLGVILoader"),
}


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("family", sorted(TRAINED))
def test_the_default_is_the_shipped_trained_model_and_random_is_another(family):
    build, load, denoiser, _ = TRAINED[family]
    default = getattr(build(), denoiser)
    assert same_weights(default, getattr(load(), denoiser))
    random = getattr(build(weights="random"), denoiser)
    assert not same_weights(default, random)
    assert same_weights(random, getattr(build(seed=0, weights="random"), denoiser))
    assert not same_weights(random, getattr(build(seed=1, weights="random"), denoiser))


def test_the_default_tiny_vchitect_draws_the_prompt_s_colour_and_background():
    prompt = "a red circle moving right on a blue background"
    pipe = build_tiny_vchitect_pipeline()
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(prompt=prompt, height=EMBEDDED.height, width=EMBEDDED.width, num_frames=EMBEDDED.num_frames,
                  num_inference_steps=EMBEDDED.num_inference_steps, guidance_scale=EMBEDDED.guidance_scale,
                  generator=torch.Generator().manual_seed(0), output_type="np").frames[0]
    score = quality.score_prompt(quality.check_video(np.asarray(frames)), prompt)
    assert (score.color, score.background) == (1.0, 1.0), score


@pytest.mark.parametrize("family", sorted(TRAINED))
def test_a_seed_with_the_trained_model_is_refused_naming_it(family):
    build = TRAINED[family][0]
    with pytest.raises(ValueError, match=r"seed=3 applies to weights='random' only"):
        build(seed=3)


@pytest.mark.parametrize("build", [build_tiny_vchitect_pipeline, build_tiny_cogvideox_repvideo_pipeline])
def test_an_unknown_weights_value_is_refused_naming_it(build):
    with pytest.raises(ValueError, match=r"weights='trianed' is not one of"):
        build(weights="trianed")


@pytest.mark.parametrize("build", [build_tiny_cogvideox_repvideo_pipeline, build_tiny_lgvi_i_pipeline])
def test_families_without_a_trained_model_build_random_weights_only(build):
    with pytest.raises(ValueError, match=r"weights='trained' is not one of \('random',\): this family has no "
                                         r"trained embedded model"):
        build(weights="trained")


@pytest.mark.parametrize("family", sorted(TRAINED))
def test_the_tiny_loader_node_offers_trained_by_default_and_random(family):
    node = NODE_CLASS_MAPPINGS[TRAINED[family][3]]
    choices, options = node.INPUT_TYPES()["optional"]["weights"]
    assert choices == ["trained", "random"] and options["default"] == "trained" and options["tooltip"]
    _, load, denoiser, _ = TRAINED[family]
    assert same_weights(getattr(node.build(5, "cpu", "trained"), denoiser), getattr(load(), denoiser))
    assert same_weights(getattr(node.build(5, "cpu", "random"), denoiser),
                        getattr(TRAINED[family][0](seed=5, weights="random"), denoiser))


@pytest.mark.parametrize("name", ["VDPTinyRepVideoLoader", "VDPTinyLGVIILoader"])
def test_tiny_loaders_of_families_without_a_trained_model_have_no_weights_choice(name):
    assert "weights" not in NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["optional"]
