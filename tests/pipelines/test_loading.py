"""One loading path for the four tiny pipelines (diffusers' `from_pretrained` over a view of the folder): variants,
`.bin` weights, dtype dicts, passed-in components, keywords passed on to diffusers; and what diffusers' pipeline test
suite expects besides: optional components surviving save/load, diffusers' `encode_prompt` names, the guidance
properties and callbacks that change the guidance scale."""

import json

import pytest
import torch

from video_diffusion_pack import (
    CogVideoXRepVideoPipeline,
    DaSPipeline,
    InpaintByInstructionPipeline,
    VchitectRepVideoPipeline,
    build_tiny_cogvideox_repvideo_pipeline,
    build_tiny_das_pipeline,
    build_tiny_inpaint_pipeline,
    build_tiny_vchitect_pipeline,
)
from video_diffusion_pack.diffusers_pipelines.das.defaults import OFFICIAL_NEGATIVE_PROMPT
from video_diffusion_pack.diffusers_pipelines.loading import loadable_index

NAMES = ["vchitect", "das", "repvideo", "lgvi"]
CLASSES = {
    "vchitect": VchitectRepVideoPipeline,
    "das": DaSPipeline,
    "repvideo": CogVideoXRepVideoPipeline,
    "lgvi": InpaintByInstructionPipeline,
}
BUILDERS = {
    "vchitect": build_tiny_vchitect_pipeline,
    "das": build_tiny_das_pipeline,
    "repvideo": build_tiny_cogvideox_repvideo_pipeline,
    "lgvi": build_tiny_inpaint_pipeline,
}
DENOISER = {"vchitect": "transformer", "das": "transformer", "repvideo": "transformer", "lgvi": "unet"}


@pytest.fixture(scope="module", params=NAMES)
def tiny(request):
    return request.param, BUILDERS[request.param]()


def _modules(pipe):
    return {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}


def _assert_same_weights(loaded, original):
    for name, module in _modules(original).items():
        loaded_params = dict(_modules(loaded)[name].named_parameters())
        for key, value in module.named_parameters():
            if key in loaded_params:
                assert torch.equal(loaded_params[key], value), f"{name}.{key}"


def test_a_folder_saved_with_a_variant_loads_with_that_variant(tiny, tmp_path):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / DENOISER[name] / "diffusion_pytorch_model.fp16.safetensors").is_file()
    loaded = CLASSES[name].from_pretrained(tmp_path, variant="fp16")
    _assert_same_weights(loaded, pipe)


def test_a_folder_of_bin_weights_loads(tiny, tmp_path):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / DENOISER[name] / "diffusion_pytorch_model.bin").is_file()
    loaded = CLASSES[name].from_pretrained(tmp_path)
    _assert_same_weights(loaded, pipe)


def test_a_dtype_dict_gives_each_component_its_dtype(tiny, tmp_path):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path)
    denoiser = DENOISER[name]
    loaded = CLASSES[name].from_pretrained(tmp_path, torch_dtype={denoiser: torch.bfloat16, "default": torch.float32})
    dtypes = {component: module.dtype for component, module in _modules(loaded).items()}
    assert dtypes.pop(denoiser) == torch.bfloat16
    assert set(dtypes.values()) == {torch.float32}


def test_a_component_passed_in_is_used_as_is(tiny, tmp_path):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path)
    vae = pipe.vae
    loaded = CLASSES[name].from_pretrained(tmp_path, vae=vae)
    assert loaded.vae is vae


def test_keywords_the_pack_does_not_use_are_passed_to_diffusers(tiny, tmp_path):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path)
    loaded = CLASSES[name].from_pretrained(tmp_path, low_cpu_mem_usage=False, use_safetensors=True)
    _assert_same_weights(loaded, pipe)


def test_a_device_map_places_every_component(tiny, tmp_path):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path)
    loaded = CLASSES[name].from_pretrained(tmp_path, device_map="cpu")
    assert loaded.hf_device_map == "cpu"
    assert {module.device.type for module in _modules(loaded).values()} == {"cpu"}
    _assert_same_weights(loaded, pipe)


def test_a_released_index_is_read_with_the_pipelines_own_classes():
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.21.4",
        "safety_checker": [None, None],
        "requires_safety_checker": False,
        "unet": ["rovi.models.unet", "RoviModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    loadable = loadable_index(InpaintByInstructionPipeline, index)
    assert loadable == {
        "_class_name": "InpaintByInstructionPipeline",
        "_diffusers_version": "0.21.4",
        "unet": ["video_diffusion_pack.models.rovi_unet", "RoviUNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def test_an_optional_component_left_out_stays_out_after_save_and_load(tmp_path):
    pipe = build_tiny_inpaint_pipeline()
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["instruction_encoder"] == [None, None]
    assert InpaintByInstructionPipeline.from_pretrained(tmp_path).instruction_encoder is None


def test_vchitect_encode_prompt_takes_diffusers_names_and_its_output_replaces_the_prompt():
    pipe = build_tiny_vchitect_pipeline()
    arguments = dict(height=32, width=32, num_frames=2, num_inference_steps=2, guidance_scale=6.0,
                     output_type="latent")
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
        prompt="a red cube", negative_prompt="", do_classifier_free_guidance=True, num_videos_per_prompt=1
    )
    from_embeds = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, pooled_prompt_embeds=pooled,
                       negative_pooled_prompt_embeds=negative_pooled, generator=torch.Generator().manual_seed(0),
                       **arguments).frames
    from_prompt = pipe(prompt="a red cube", generator=torch.Generator().manual_seed(0), **arguments).frames
    assert torch.equal(from_embeds, from_prompt)


def _lgvi_run(pipe, **extra):
    video = torch.rand(2, 32, 48, 3, generator=torch.Generator().manual_seed(1))
    return pipe(video=video, prompt="remove the cube", height=32, width=48, num_inference_steps=3,
                guidance_scale=2.0, generator=torch.Generator().manual_seed(0), output_type="latent", **extra).frames


def test_the_inpainting_pipeline_exposes_its_guidance_and_step_count():
    pipe = build_tiny_inpaint_pipeline()
    _lgvi_run(pipe, image_guidance_scale=1.5)
    assert (pipe.guidance_scale, pipe.image_guidance_scale, pipe.num_timesteps, pipe.interrupt) == (2.0, 1.5, 3, False)


@pytest.mark.parametrize("name", ["lgvi", "vchitect"])
def test_a_callback_that_changes_the_guidance_scale_changes_the_steps_after_it(name):
    pipe = BUILDERS[name]()

    def raise_guidance(p, i, t, tensors):
        p._guidance_scale += 1.0
        return tensors

    if name == "lgvi":
        def run(**extra):
            return _lgvi_run(pipe, **extra)
    else:
        def run(**extra):
            return pipe(prompt="a red cube", height=32, width=32, num_frames=2, num_inference_steps=3,
                        guidance_scale=2.0, use_dynamic_cfg=False, generator=torch.Generator().manual_seed(0),
                        output_type="latent", **extra).frames
    plain = run()
    raised = run(callback_on_step_end=raise_guidance)
    assert pipe.guidance_scale == 2.0 + pipe.num_timesteps
    assert not torch.equal(plain, raised)


def test_das_encode_prompt_defaults_to_the_transformers_text_length_and_the_official_negative_prompt():
    pipe = build_tiny_das_pipeline()
    embeds, negative = pipe.encode_prompt(prompt="a red cube")
    official, _ = pipe.encode_prompt(prompt=OFFICIAL_NEGATIVE_PROMPT, do_classifier_free_guidance=False)
    assert embeds.shape[1] == pipe.transformer.config.max_text_seq_length
    assert torch.equal(negative, official)


def test_repvideo_runs_at_the_transformers_text_length_by_default():
    pipe = build_tiny_cogvideox_repvideo_pipeline()
    frames = pipe(prompt="a red cube", height=32, width=32, num_frames=9, num_inference_steps=1,
                  generator=torch.Generator().manual_seed(0), output_type="latent").frames
    assert frames.shape[0] == 1
