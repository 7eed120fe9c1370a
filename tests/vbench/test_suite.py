"""The official prompt suite shipped as package data, its file naming and the dimension registry."""

import pytest

from video_diffusion_pack.evaluation.vbench import available_dimensions, registry, suite

# prompts per dimension of vbench 0.1.5's VBench_full_info.json
PROMPT_COUNTS = {
    "subject_consistency": 72, "background_consistency": 86, "temporal_flickering": 75, "motion_smoothness": 72,
    "dynamic_degree": 72, "aesthetic_quality": 93, "imaging_quality": 93, "object_class": 79,
    "multiple_objects": 82, "human_action": 100, "color": 85, "spatial_relationship": 84, "scene": 86,
    "appearance_style": 90, "temporal_style": 100, "overall_consistency": 93,
}


def test_the_suite_has_the_official_prompts_per_dimension():
    assert len(suite.full_info()) == 946
    assert {name: len(suite.prompts(name)) for name in suite.suite_dimensions()} == PROMPT_COUNTS


def test_auxiliary_info_has_the_official_forms():
    colours = suite.auxiliary_info("color")
    assert len(colours) == 85 and all(set(info) == {"color"} for info in colours.values())
    assert len({info["color"] for info in colours.values()}) == 9
    scenes = suite.auxiliary_info("scene")
    assert all(set(info["scene"]) == {"scene"} for info in scenes.values())
    assert suite.auxiliary_info("temporal_flickering") == {}


def test_official_file_names():
    assert suite.video_name("a cat", 3) == "a cat-3.mp4"
    assert suite.video_name("a cat", 0, ".gif", special_str="_v2") == "a cat_v2-0.gif"
    assert suite.prompt_from_filename("/videos/a cat walks-12.mp4") == "a cat walks"
    assert suite.prompt_from_filename("a cat-walks.mp4") == "a cat-walks"
    assert suite.samples_per_prompt("temporal_flickering", filtered=False) == 25
    assert suite.samples_per_prompt("temporal_flickering") == suite.samples_per_prompt("color") == 5


@pytest.mark.parametrize("index, ext, named", [(-1, ".mp4", "index must be"), (1, "mp4", "ext must start")])
def test_bad_file_name_parts_are_named(index, ext, named):
    with pytest.raises(ValueError, match=named):
        suite.video_name("a cat", index, ext)


def test_unknown_dimension_is_named():
    with pytest.raises(ValueError, match="dimension 'colour' is not a VBench dimension"):
        suite.prompts("colour")


def test_custom_input_refuses_the_dimensions_needing_auxiliary_info(tmp_path):
    with pytest.raises(ValueError, match=r"\['color'\] need the suite's auxiliary info"):
        suite.custom_videos(str(tmp_path), ["temporal_flickering", "color"])


def test_the_registry_finds_dimension_modules_by_file():
    names = available_dimensions()
    assert {"temporal_flickering", "aesthetic_quality", "imaging_quality", "motion_smoothness"} <= set(names)
    assert names == [name for name in registry.known_dimensions() if name in names]  # the official order
    module = registry.dimension_module("temporal_flickering")
    assert module.NAME == "temporal_flickering" and module.CHECKPOINTS == {}
    assert registry.checkpoint_files("imaging_quality") == {
        "musiq_spaq": ("musiq_spaq_ckpt-358bb6af.pth", "vbench-musiq-spaq")
    }
