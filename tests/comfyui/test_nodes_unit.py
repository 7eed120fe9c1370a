"""The ComfyUI nodes without ComfyUI: import, declarations, input validation, RepVideo switching."""

import subprocess
import sys

import pytest
import torch
from helpers import REPO_ROOT

from video_diffusion_pack.custom_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from video_diffusion_pack.custom_nodes._comfy import video_to_image_batch
from video_diffusion_pack.custom_nodes.vchitect_nodes import (
    VDPVchitectSampler,
    frame_size_problem,
)

# Loads the repo root the way ComfyUI loads a custom-node folder, then lists what got imported.
_LOAD_AS_COMFYUI_DOES = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("video_diffusion_pack", sys.argv[1] + "/__init__.py")
module = importlib.util.module_from_spec(spec)
sys.modules["video_diffusion_pack"] = module
spec.loader.exec_module(module)
print(sorted(module.NODE_CLASS_MAPPINGS))
print(sorted(name for name in sys.modules if name.split(".")[0] in ("comfy", "folder_paths", "nodes", "diffusers")))
"""


def test_pack_loads_as_comfyui_loads_it_without_importing_comfyui_or_diffusers():
    result = subprocess.run([sys.executable, "-c", _LOAD_AS_COMFYUI_DOES, str(REPO_ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    node_names, imported = result.stdout.strip().splitlines()
    assert node_names == str(sorted(NODE_CLASS_MAPPINGS))
    assert imported == "[]"


# The same load, with diffusers and accelerate unimportable (as in a clone whose requirements were never installed).
_LOAD_WITHOUT_DIFFUSERS = """
import sys
sys.modules["diffusers"] = None
sys.modules["accelerate"] = None
""" + _LOAD_AS_COMFYUI_DOES


def test_pack_without_diffusers_registers_no_node_and_logs_what_to_install():
    result = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_DIFFUSERS, str(REPO_ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    node_names, _ = result.stdout.strip().splitlines()
    assert node_names == "[]"
    (line,) = result.stderr.strip().splitlines()
    assert line == ("video_diffusion_pack: no nodes registered, missing Python packages: "
                    "diffusers>=0.41, accelerate>=0.33. "
                    f'Install them with: "{sys.executable}" -m pip install "diffusers>=0.41" "accelerate>=0.33"')


def test_root_package_exports_the_node_mappings():
    import video_diffusion_pack

    assert video_diffusion_pack.NODE_CLASS_MAPPINGS is NODE_CLASS_MAPPINGS
    assert video_diffusion_pack.NODE_DISPLAY_NAME_MAPPINGS is NODE_DISPLAY_NAME_MAPPINGS


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_node_declares_the_classic_api(name):
    node_class = NODE_CLASS_MAPPINGS[name]
    assert name.startswith("VDP") and name in NODE_DISPLAY_NAME_MAPPINGS
    assert node_class.CATEGORY.startswith("video_diffusion_pack/")
    assert callable(getattr(node_class, node_class.FUNCTION))
    assert isinstance(node_class.RETURN_TYPES, tuple)
    assert len(node_class.RETURN_NAMES) == len(node_class.OUTPUT_TOOLTIPS) == len(node_class.RETURN_TYPES)


@pytest.mark.parametrize("name", ["VDPTinyVchitectLoader", "VDPVchitectSampler"])
def test_every_input_has_a_tooltip(name):
    for spec in NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["required"].values():
        assert spec[1]["tooltip"]


def test_loaders_return_the_pipeline_socket_the_sampler_takes():
    sampler_inputs = VDPVchitectSampler.INPUT_TYPES()["required"]
    assert sampler_inputs["pipeline"][0] == "VDP_PIPELINE"
    assert NODE_CLASS_MAPPINGS["VDPVchitectLoader"].RETURN_TYPES == ("VDP_PIPELINE",)
    assert NODE_CLASS_MAPPINGS["VDPTinyVchitectLoader"].RETURN_TYPES == ("VDP_PIPELINE",)
    assert VDPVchitectSampler.RETURN_TYPES == ("IMAGE",)


def test_sampler_defaults_are_the_official_inference_settings():
    inputs = VDPVchitectSampler.INPUT_TYPES()["required"]
    defaults = {name: spec[1].get("default") for name, spec in inputs.items() if len(spec) > 1}
    assert (defaults["steps"], defaults["cfg"], defaults["frames"]) == (100, 7.5, 40)
    assert (defaults["width"], defaults["height"]) == (768, 432)
    assert defaults["negative_prompt"] == "" and defaults["dynamic_cfg"] is False
    assert inputs["width"][1]["step"] == inputs["height"][1]["step"] == 16
    assert inputs["repvideo"][0] == inputs["dynamic_cfg"][0] == "BOOLEAN"


def test_validate_inputs_accepts_multiples_of_16():
    assert VDPVchitectSampler.VALIDATE_INPUTS(width=64, height=48) is True


@pytest.mark.parametrize(
    "width, height, named",
    [(64, 500, "height=500"), (100, 64, "width=100"), (0, 64, "width=0"), (64, 8, "height=8"), (64, 8192, "height=8192")],
)
def test_validate_inputs_names_the_bad_input_and_its_value(width, height, named):
    message = VDPVchitectSampler.VALIDATE_INPUTS(width=width, height=height)
    assert isinstance(message, str) and named in message and "16" in message


def test_validate_inputs_skips_linked_inputs():
    assert VDPVchitectSampler.VALIDATE_INPUTS(width=None, height=None) is True
    assert frame_size_problem(None, 500).startswith("height=500")


def test_sampler_rejects_a_bad_size_before_touching_the_pipeline():
    class NeverCalled:
        def __getattr__(self, name):
            raise AssertionError(f"the pipeline was used ({name}) despite a bad size")

    with pytest.raises(ValueError, match="height=500"):
        VDPVchitectSampler().sample(NeverCalled(), "a cat", "", 0, 2, 7.5, 2, 64, 500, False, False)


def test_video_to_image_batch_concatenates_the_frames_of_each_video():
    frames = torch.arange(2 * 3 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 3, 4, 5)
    images = video_to_image_batch(frames)
    assert images.shape == (6, 4, 5, 3) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert torch.equal(images[4], frames[1, 1].permute(1, 2, 0).float())


@pytest.fixture(scope="module")
def tiny_transformer():
    from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import tiny_transformer_config
    from video_diffusion_pack.models.vchitect_transformer import VchitectXLTransformer3DModel

    return VchitectXLTransformer3DModel(**tiny_transformer_config())


def test_repvideo_switch_is_restored_with_its_gates_after_a_failed_run(tiny_transformer):
    tiny_transformer.enable_repvideo()
    gates = tiny_transformer.repvideo
    with pytest.raises(RuntimeError, match="interrupted"):
        with tiny_transformer.repvideo_switched(False):
            assert tiny_transformer.repvideo is None
            raise RuntimeError("interrupted")
    assert tiny_transformer.repvideo is gates and tiny_transformer.config.repvideo_aggregation is True
    tiny_transformer.disable_repvideo()


def test_repvideo_switch_turns_aggregation_on_for_the_run_only(tiny_transformer):
    tiny_transformer.disable_repvideo()
    with tiny_transformer.repvideo_switched(True):
        assert tiny_transformer.repvideo is not None and tiny_transformer.config.repvideo_aggregation is True
    assert tiny_transformer.repvideo is None and tiny_transformer.config.repvideo_aggregation is False


SAMPLER_DEFAULTS = {
    "VDPVchitectSampler": "vchitect",
    "VDPRepVideoSampler": "repvideo",
    "VDPDaSSampler": "das",
}


@pytest.mark.parametrize("name", sorted(SAMPLER_DEFAULTS))
def test_sampler_defaults_are_the_official_settings_of_its_pipeline(name):
    import importlib

    official = importlib.import_module(
        f"video_diffusion_pack.diffusers_pipelines.{SAMPLER_DEFAULTS[name]}.defaults").OFFICIAL
    inputs = NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["required"]
    defaults = {argument: inputs[argument][1]["default"] for argument in ("seed", "steps", "cfg", "dynamic_cfg")}
    expected = dict(seed=official.seed, steps=official.num_inference_steps, cfg=official.guidance_scale,
                    dynamic_cfg=official.use_dynamic_cfg)
    assert defaults == expected
    if "frames" in inputs:
        assert (inputs["frames"][1]["default"], inputs["width"][1]["default"], inputs["height"][1]["default"]) == (
            official.num_frames, official.width, official.height)


def test_inpaint_defaults_are_the_official_lgvi_settings():
    from video_diffusion_pack.diffusers_pipelines.lgvi.defaults import OFFICIAL

    inputs = NODE_CLASS_MAPPINGS["VDPInpaintByInstruction"].INPUT_TYPES()["required"]
    defaults = {name: inputs[name][1]["default"] for name in (
        "seed", "steps", "guidance_scale", "image_guidance_scale", "width", "height")}
    assert defaults == dict(seed=OFFICIAL.seed, steps=OFFICIAL.num_inference_steps,
                            guidance_scale=OFFICIAL.guidance_scale, image_guidance_scale=OFFICIAL.image_guidance_scale,
                            width=OFFICIAL.width, height=OFFICIAL.height)


def test_every_sampler_takes_the_same_freeinit_fastercache_and_lora_inputs():
    from video_diffusion_pack.custom_nodes._sampler import lora_input, training_free_inputs

    for name in SAMPLER_DEFAULTS:
        assert NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["optional"] == {**training_free_inputs(), "lora": lora_input()}
    assert NODE_CLASS_MAPPINGS["VDPInpaintByInstruction"].INPUT_TYPES()["optional"] == {"lora": lora_input()}


@pytest.mark.parametrize("name", sorted(SAMPLER_DEFAULTS) + ["VDPInpaintByInstruction"])
def test_sampler_seed_and_steps_inputs_are_the_shared_specs(name):
    from video_diffusion_pack.custom_nodes._sampler import MAX_SEED, MAX_STEPS

    inputs = NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["required"]
    assert inputs["seed"][0] == "INT" and (inputs["seed"][1]["min"], inputs["seed"][1]["max"]) == (0, MAX_SEED)
    # the inpainting node's DDIM schedule (steps_offset 1) plans at most 999 steps; the others' plan 1000
    assert (inputs["steps"][1]["min"], inputs["steps"][1]["max"]) == (1, 999 if name == "VDPInpaintByInstruction"
                                                                       else MAX_STEPS)
    assert f"(official: {inputs['steps'][1]['default']})" in inputs["steps"][1]["tooltip"]


def test_inpaint_node_steps_limit_is_what_the_lgvi_scheduler_can_plan():
    from video_diffusion_pack import build_tiny_inpaint_pipeline
    from video_diffusion_pack.diffusers_pipelines.pipeline_utils import max_inference_steps

    limit = NODE_CLASS_MAPPINGS["VDPInpaintByInstruction"].INPUT_TYPES()["required"]["steps"][1]["max"]
    assert limit == max_inference_steps(build_tiny_inpaint_pipeline(weights="random").scheduler) == 999


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_node_category_is_its_system_slug(name):
    slug = NODE_CLASS_MAPPINGS[name].CATEGORY.split("/")[1]
    assert slug in ("vchitect", "repvideo", "das", "lgvi", "freeinit", "fastercache", "vbench", "lora")
