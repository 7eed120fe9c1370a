"""diffusers_pipelines.pipeline_utils: the checks, the official guidance ramp, the folder check and the registration
the pack's pipelines share."""

import json
import math

import numpy as np
import pytest
import torch

from video_diffusion_pack.diffusers_pipelines import pipeline_utils as pu

NON_FINITE = [float("nan"), float("inf"), -float("inf"), np.float32("nan")]


# ---------------------------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("value", [1, 7, np.int64(3), 10**12])
def test_integers_are_accepted_and_returned_as_int(value):
    assert pu.is_integer(value)
    assert pu.check_integer("num_frames", value) == int(value) and type(pu.check_integer("n", value)) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, "3", None, torch.tensor(3), [1]])
def test_integer_check_refuses_bools_floats_and_other_types(value):
    assert not pu.is_integer(value)
    with pytest.raises(ValueError, match=r"^num_frames=.* must be an integer >= 1$"):
        pu.check_integer("num_frames", value)


def test_integer_check_names_the_minimum():
    with pytest.raises(ValueError, match=r"^num_inference_steps=0 must be an integer >= 1$"):
        pu.check_integer("num_inference_steps", 0)
    assert pu.check_integer("steps", 0, minimum=0) == 0
    with pytest.raises(ValueError, match=r"^decode_chunk_size=-1 must be an integer >= 0$"):
        pu.check_integer("decode_chunk_size", -1, minimum=0)


@pytest.mark.parametrize("value, ok", [(16, True), (32, True), (0, False), (8, False), (40, False), (True, False),
                                       (32.0, False), (-16, False)])
def test_multiple_check(value, ok):
    if ok:
        assert pu.check_multiple("height", value, 16) == value
    else:
        with pytest.raises(ValueError, match=rf"^height={value!r} must be a positive multiple of 16$"):
            pu.check_multiple("height", value, 16)


@pytest.mark.parametrize("value", [0, 1, -2.5, 7.5, np.float32(6.0), np.int32(3)])
def test_real_numbers_are_accepted_and_returned_as_float(value):
    assert pu.is_real(value)
    assert pu.check_real("guidance_scale", value) == float(value)


@pytest.mark.parametrize("value", NON_FINITE + [True, "6", None, torch.tensor(6.0), 1j])
def test_real_check_refuses_non_finite_values_bools_and_other_types(value):
    assert not pu.is_real(value)
    with pytest.raises(ValueError, match=r"^guidance_scale=.* must be a finite number$"):
        pu.check_real("guidance_scale", value)


def test_real_check_with_a_minimum():
    assert pu.check_real("eta", 0, minimum=0) == 0.0
    with pytest.raises(ValueError, match=r"^eta=-0.5 must be a finite number >= 0$"):
        pu.check_real("eta", -0.5, minimum=0)
    with pytest.raises(ValueError, match=r"^eta=nan must be a finite number$"):
        pu.check_real("eta", float("nan"), minimum=0)


@pytest.mark.parametrize("value", [1, 0, None, "True", np.bool_(True)])
def test_bool_check(value):
    assert pu.check_bool("cfg_batching", True) is True and pu.check_bool("cfg_batching", False) is False
    with pytest.raises(ValueError, match=r"^cfg_batching=.* must be True or False$"):
        pu.check_bool("cfg_batching", value)


# ---------------------------------------------------------------------------------------------------- options
def test_output_types():
    assert pu.OUTPUT_TYPES == ("np", "pt", "pil", "latent")
    for output_type in pu.OUTPUT_TYPES:
        assert pu.check_output_type(output_type) == output_type
    for bad in ("gif", None, ["np"], "NP"):
        with pytest.raises(ValueError, match=r"^output_type=.* must be one of \('np', 'pt', 'pil', 'latent'\)$"):
            pu.check_output_type(bad)


def test_callback_tensor_inputs():
    allowed = ["latents", "prompt_embeds"]
    pu.check_callback_tensor_inputs(None, allowed)
    pu.check_callback_tensor_inputs(["latents", "prompt_embeds"], allowed)
    with pytest.raises(ValueError, match=r"^callback_on_step_end_tensor_inputs=\['noise'\] not allowed; choose from"):
        pu.check_callback_tensor_inputs(["latents", "noise"], allowed)
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs='latents' must be a list of names"):
        pu.check_callback_tensor_inputs("latents", allowed)


# ---------------------------------------------------------------------------------------------------- prompts
def test_prompt_check_counts_prompts_or_embedding_rows():
    assert pu.check_prompt("a cat") == 1
    assert pu.check_prompt(["a", "b", "c"]) == 3
    assert pu.check_prompt(None, torch.zeros(2, 5, 8)) == 2
    for bad in (None, [], ["a", 3], 3, ("a",)):
        with pytest.raises(ValueError, match=r"^prompt=.* must be a string or a non-empty list of strings$"):
            pu.check_prompt(bad)
    with pytest.raises(ValueError, match="pass either prompt or prompt_embeds, not both"):
        pu.check_prompt("a", torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match=r"prompt_embeds has shape \(5, 8\); expected 3 dimensions"):
        pu.check_prompt(None, torch.zeros(5, 8))
    with pytest.raises(ValueError, match=r"prompt_embeds has non-finite values \(NaN or inf\)"):
        pu.check_prompt(None, torch.full((1, 5, 8), float("nan")))


def test_negative_prompt_check():
    for good in (None, "", "blurry", ["x", "y"]):
        pu.check_negative_prompt(good, 2)
    with pytest.raises(ValueError, match=r"^negative_prompt=3 must be a string or a list of strings$"):
        pu.check_negative_prompt(3, 1)
    with pytest.raises(ValueError, match=r"^negative_prompt has 1 entries for 2 prompts; give one negative prompt per "
                                         r"prompt \(or a single string\)$"):
        pu.check_negative_prompt(["x"], 2)
    pu.check_negative_prompt(["x"], 3, unit="videos", allow_one=True)
    with pytest.raises(ValueError, match=r"negative_prompt has 2 entries for 3 videos; give one negative prompt per video"):
        pu.check_negative_prompt(["x", "y"], 3, unit="videos", allow_one=True)


# ---------------------------------------------------------------------------------------------------- tensors
@pytest.mark.parametrize("bad", NON_FINITE[:3])
def test_finite_check_names_the_argument(bad):
    pu.check_finite("image", torch.rand(2, 3))
    pu.check_finite("image", np.zeros((2, 3), dtype=np.uint8))
    pu.check_finite("image", [np.zeros((2, 2)), torch.zeros(2)])
    pu.check_finite("image", "not a tensor")  # PIL images and the like pass
    tensor = torch.rand(4, 4)
    tensor[1, 2] = bad
    for value in (tensor, tensor.numpy(), [torch.zeros(1), tensor], tensor.to(torch.bfloat16)):
        with pytest.raises(ValueError, match=r"^image has non-finite values \(NaN or inf\)$"):
            pu.check_finite("image", value)


def test_tensor_check():
    assert pu.check_tensor("prompt_embeds", torch.zeros(1, 2, 3), ndim=3) is not None
    with pytest.raises(ValueError, match="prompt_embeds of type list must be a torch.Tensor"):
        pu.check_tensor("prompt_embeds", [[0.0]])
    with pytest.raises(ValueError, match=r"prompt_embeds has dtype torch.int64; expected a floating-point tensor"):
        pu.check_tensor("prompt_embeds", torch.zeros(1, 2, 3, dtype=torch.long), ndim=3)


def test_latents_check():
    pu.check_latents(None, (1, 2, 3))
    pu.check_latents(torch.zeros(1, 2, 3), (1, 2, 3))
    with pytest.raises(ValueError, match=r"^latents has shape \(1, 2, 4\); expected \(1, 2, 3\) \[B, C, F\]$"):
        pu.check_latents(torch.zeros(1, 2, 4), (1, 2, 3), layout="[B, C, F]")
    with pytest.raises(ValueError, match=r"^latents has non-finite values \(NaN or inf\)$"):
        pu.check_latents(torch.tensor([[[0.0, float("inf"), 0.0]]]), (1, 1, 3))
    with pytest.raises(ValueError, match="latents of type ndarray must be a torch.Tensor"):
        pu.check_latents(np.zeros((1, 2, 3)), (1, 2, 3))


def test_generator_check_takes_one_generator_or_one_per_video():
    pu.check_generator(None, 4)
    pu.check_generator(torch.Generator(), 4)
    pu.check_generator([torch.Generator() for _ in range(4)], 4)
    for count in (0, 1, 3, 5):
        with pytest.raises(ValueError, match=rf"^generator has {count} entries for 4 videos \(prompts x "
                                             r"num_videos_per_prompt\); give one torch.Generator per video"):
            pu.check_generator([torch.Generator() for _ in range(count)], 4)
    for bad in (0, "seed", [torch.Generator(), 3], (torch.Generator(),)):
        with pytest.raises(ValueError, match=r"must be a torch.Generator or a list of them, one per video"):
            pu.check_generator(bad, 1)


# ---------------------------------------------------------------------------------------------------- guidance
def test_official_ramp_is_evaluated_at_the_0_to_1000_timestep():
    # step index semantics would give 1 at t=N; the official code plugs the timestep itself in
    assert pu.official_dynamic_guidance(7.5, 100.0, 100) == pytest.approx(1.0)
    assert pu.official_dynamic_guidance(6.0, 1000.0, 50) == pytest.approx(
        1 + 6.0 * (1 - math.cos(math.pi * ((50 - 1000) / 50) ** 5.0)) / 2
    )


def test_guidance_schedule_is_constant_or_the_official_ramp():
    timesteps = torch.tensor([999.0, 666.0, 333.0])
    assert pu.guidance_schedule(timesteps, 6.0, use_dynamic_cfg=False) == [6.0, 6.0, 6.0]
    ramp = pu.guidance_schedule(timesteps, 6.0, use_dynamic_cfg=True)
    assert ramp == [pu.official_dynamic_guidance(6.0, t, 3) for t in (999.0, 666.0, 333.0)]
    assert pu.guidance_schedule([999, 666, 333], 6.0, use_dynamic_cfg=True) == ramp
    assert all(isinstance(value, float) for value in ramp)


def test_the_pipelines_apply_the_shared_ramp():
    from video_diffusion_pack.diffusers_pipelines.das import pipeline as das
    from video_diffusion_pack.diffusers_pipelines.vchitect import pipeline as vchitect

    assert vchitect.official_dynamic_guidance is das.official_dynamic_guidance is pu.official_dynamic_guidance
    for module in (vchitect, das):
        assert module.OUTPUT_TYPES is pu.OUTPUT_TYPES


# ---------------------------------------------------------------------------------------------------- folders
def test_pipeline_folder_check(tmp_path):
    names = ("vae", "unet", "scheduler")
    with pytest.raises(FileNotFoundError, match=r"model folder .* has no model_index.json: not a diffusers pipeline"):
        pu.check_pipeline_folder(tmp_path, names, "SomePipeline")
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="model_index.json is not valid JSON"):
        pu.check_pipeline_folder(tmp_path, names, "SomePipeline")
    (tmp_path / "model_index.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="model_index.json holds list, not an object"):
        pu.check_pipeline_folder(tmp_path, names, "SomePipeline")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "SomePipeline"}))
    (tmp_path / "unet").mkdir()
    with pytest.raises(FileNotFoundError, match=r"lacks the component folder\(s\) \['vae', 'scheduler'\]; SomePipeline "
                                                r"needs \['vae', 'unet', 'scheduler'\]"):
        pu.check_pipeline_folder(tmp_path, names, "SomePipeline")
    with pytest.raises(FileNotFoundError, match=r"lacks the component folder\(s\) \['scheduler'\]"):
        pu.check_pipeline_folder(str(tmp_path), names, "SomePipeline", skip=["vae"])
    assert pu.check_pipeline_folder(tmp_path, names, "SomePipeline", skip=("vae", "scheduler")) == {
        "_class_name": "SomePipeline"
    }


# ---------------------------------------------------------------------------------------------------- diffusers
def test_register_pipeline_reaches_diffusers_and_diffusers_pipelines():
    import diffusers
    import diffusers.pipelines
    from diffusers import DiffusionPipeline

    class VdpRegistrationProbePipeline(DiffusionPipeline):
        pass

    try:
        assert pu.register_pipeline(VdpRegistrationProbePipeline) is VdpRegistrationProbePipeline
        assert diffusers.VdpRegistrationProbePipeline is VdpRegistrationProbePipeline
        assert diffusers.pipelines.VdpRegistrationProbePipeline is VdpRegistrationProbePipeline

        # a name already taken is left alone (diffusers' own classes, or an earlier copy of the pack)
        class StableDiffusionPipeline(DiffusionPipeline):
            pass

        pu.register_pipeline(StableDiffusionPipeline)
        assert diffusers.StableDiffusionPipeline is not StableDiffusionPipeline
        assert diffusers.pipelines.StableDiffusionPipeline is not StableDiffusionPipeline
    finally:
        for module in (diffusers, diffusers.pipelines):
            module.__dict__.pop("VdpRegistrationProbePipeline", None)
