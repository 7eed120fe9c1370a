"""One loading path for the four tiny pipelines (diffusers' `from_pretrained` over a view of the folder): variants,
`.bin` weights, dtype dicts, passed-in components, keywords passed on to diffusers; and what diffusers' pipeline test
suite expects besides: optional components surviving save/load, diffusers' `encode_prompt` names, the guidance
properties and callbacks that change the guidance scale."""

import json

import pytest
import torch
from PIL import Image

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
from video_diffusion_pack.diffusers_pipelines.pipeline_utils import official_dynamic_guidance

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
    return request.param, BUILDERS[request.param](weights="random")


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


@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])  # diffusers' keyword and its older spelling
def test_a_dtype_dict_gives_each_component_its_dtype(tiny, tmp_path, keyword):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path)
    denoiser = DENOISER[name]
    loaded = CLASSES[name].from_pretrained(tmp_path, **{keyword: {denoiser: torch.bfloat16, "default": torch.float32}})
    dtypes = {component: module.dtype for component, module in _modules(loaded).items()}
    assert dtypes.pop(denoiser) == torch.bfloat16
    assert set(dtypes.values()) == {torch.float32}


@pytest.mark.parametrize("keyword", ["dtype", "torch_dtype"])
def test_one_dtype_reaches_every_component_text_encoders_included(tiny, tmp_path, keyword):
    name, pipe = tiny
    pipe.save_pretrained(tmp_path)  # float32 files
    loaded = CLASSES[name].from_pretrained(tmp_path, **{keyword: torch.bfloat16})
    assert {component: module.dtype for component, module in _modules(loaded).items()} == {
        component: torch.bfloat16 for component in _modules(loaded)}


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


def test_an_unknown_keyword_is_named_by_diffusers_not_refused_by_the_pack(tmp_path):
    import logging

    pipe = build_tiny_das_pipeline(weights="random")
    pipe.save_pretrained(tmp_path)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("diffusers.pipelines.pipeline_utils")
    logger.addHandler(handler)
    try:
        loaded = DaSPipeline.from_pretrained(tmp_path, not_a_diffusers_keyword=3)
    finally:
        logger.removeHandler(handler)
    assert isinstance(loaded, DaSPipeline)
    assert any("not_a_diffusers_keyword" in record.getMessage() for record in records)


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
    pipe = build_tiny_inpaint_pipeline(weights="random")
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["instruction_encoder"] == [None, None]
    assert InpaintByInstructionPipeline.from_pretrained(tmp_path).instruction_encoder is None


def test_vchitect_encode_prompt_takes_diffusers_names_and_its_output_replaces_the_prompt():
    pipe = build_tiny_vchitect_pipeline(weights="random")
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
    pipe = build_tiny_inpaint_pipeline(weights="random")
    _lgvi_run(pipe, image_guidance_scale=1.5)
    assert (pipe.guidance_scale, pipe.image_guidance_scale, pipe.num_timesteps, pipe.interrupt) == (2.0, 1.5, 3, False)


def _guided_run(pipe, name, use_dynamic_cfg, **extra):
    """Three guided steps of the tiny pipeline `name` from guidance_scale 2 (latents out)."""
    if name == "lgvi":
        return _lgvi_run(pipe, **extra)
    arguments = {
        "vchitect": dict(prompt="a red cube", height=32, width=32, num_frames=2),
        "das": dict(_das_arguments(), num_frames=9),
        "repvideo": dict(prompt="a red cube", height=32, width=32, num_frames=9),
    }[name]
    return pipe(**arguments, num_inference_steps=3, guidance_scale=2.0, use_dynamic_cfg=use_dynamic_cfg,
                generator=torch.Generator().manual_seed(0), output_type="latent", **extra).frames


def _das_arguments():
    from video_diffusion_pack.control import render_tracking_video, tracks_from_depth

    g = torch.Generator().manual_seed(0)
    image, depth = torch.rand(32, 32, 3, generator=g), 1 + torch.rand(32, 32, generator=g)
    tracking = render_tracking_video(tracks_from_depth(image, depth, camera="rot y 10", num_frames=9))
    return dict(image=image.permute(2, 0, 1)[None], prompt="a red cube", tracking_video=tracking, height=32, width=32)


@pytest.mark.parametrize(
    "name,use_dynamic_cfg",
    [("lgvi", False), ("vchitect", False), ("vchitect", True), ("das", True), ("repvideo", True)],
)
def test_a_callback_that_changes_the_guidance_scale_changes_the_steps_after_it(name, use_dynamic_cfg):
    # diffusers' test_callback_cfg, and its CFG-cutoff callbacks: `_guidance_scale` is the base scale a callback may
    # change, under the dynamic ramp too; `guidance_scale` reads the scale applied at the current step in the loop
    pipe = BUILDERS[name](weights="random")
    seen = []

    def raise_guidance(p, i, t, tensors):
        seen.append((float(t), p.guidance_scale))
        p._guidance_scale += 1.0
        return tensors

    plain = _guided_run(pipe, name, use_dynamic_cfg)
    raised = _guided_run(pipe, name, use_dynamic_cfg, callback_on_step_end=raise_guidance)
    assert pipe.guidance_scale == 2.0 + pipe.num_timesteps == 5.0
    assert not torch.equal(plain, raised)
    steps = len(seen)
    expected = [official_dynamic_guidance(2.0 + i, t, steps) if use_dynamic_cfg else 2.0 + i
                for i, (t, _) in enumerate(seen)]
    assert [scale for _, scale in seen] == pytest.approx(expected, rel=1e-12)


def test_das_prompt_embeds_of_another_text_length_are_refused_before_any_model_runs():
    # e.g. encoded by a pipeline without a transformer, at the default 226 tokens: the tiny transformer takes 16
    pipe = build_tiny_das_pipeline(weights="random")
    embeds = torch.zeros(1, 226, pipe.transformer.config.text_embed_dim)
    calls = []
    hook = pipe.transformer.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match="prompt_embeds has 226 tokens; the transformer takes max_text_seq_length=16"):
            pipe(**dict(_das_arguments(), prompt=None), num_frames=9, prompt_embeds=embeds, num_inference_steps=1)
    finally:
        hook.remove()
    assert calls == []


def test_the_inpainting_pipeline_takes_a_list_of_videos_one_per_prompt():
    # as diffusers' video-to-video pipelines batch `video`
    pipe = build_tiny_inpaint_pipeline(weights="random")
    videos = torch.rand(2, 2, 32, 48, 3, generator=torch.Generator().manual_seed(1))
    arguments = dict(prompt=["remove the cube", "remove the ball"], height=32, width=48, num_inference_steps=2,
                     output_type="latent")
    from_list = pipe(video=[videos[0], videos[1].numpy()], generator=torch.Generator().manual_seed(0), **arguments)
    from_batch = pipe(video=videos, generator=torch.Generator().manual_seed(0), **arguments)
    assert from_list.frames.shape[0] == 2
    torch.testing.assert_close(from_list.frames, from_batch.frames, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"video as a list holds videos of \[2, 3\] frames; they must be equal"):
        pipe(video=[videos[0], torch.rand(3, 32, 48, 3)], **arguments)
    with pytest.raises(ValueError, match="video as a list mixes PIL images and other values"):
        pipe(video=[Image.new("RGB", (48, 32)), videos[0]], **arguments)


def test_the_inpainting_encode_prompt_output_replaces_the_prompt_in_a_pipeline_without_text_encoder():
    # diffusers' test_encode_prompt_works_in_isolation: its names, its output fed to a pipeline built without the
    # text encoder and tokenizer
    pipe = build_tiny_inpaint_pipeline(weights="random")
    embeds, negative = pipe.encode_prompt(prompt="remove the cube", negative_prompt="", do_classifier_free_guidance=True,
                                          num_videos_per_prompt=1)
    without_text = InpaintByInstructionPipeline(**dict(pipe.components, text_encoder=None, tokenizer=None))
    video = torch.rand(2, 32, 48, 3, generator=torch.Generator().manual_seed(1))
    arguments = dict(video=video, height=32, width=48, num_inference_steps=2, guidance_scale=2.0, output_type="latent")
    isolated = without_text(prompt_embeds=embeds, negative_prompt_embeds=negative,
                            generator=torch.Generator().manual_seed(0), **arguments).frames
    full = pipe(prompt="remove the cube", negative_prompt="", generator=torch.Generator().manual_seed(0),
                **arguments).frames
    assert torch.equal(isolated, full)
    only_text = InpaintByInstructionPipeline(**{name: component if "text" in name or "tokenizer" in name else None
                                                for name, component in pipe.components.items()})
    assert torch.equal(only_text.encode_prompt("remove the cube", negative_prompt="")[0], embeds)
    doubled, none = pipe.encode_prompt(prompt=["a", "b"], do_classifier_free_guidance=False, num_videos_per_prompt=2)
    assert doubled.shape[0] == 4 and none is None and torch.equal(doubled[0], doubled[1])


def test_das_encode_prompt_defaults_to_the_transformers_text_length_and_the_official_negative_prompt():
    pipe = build_tiny_das_pipeline(weights="random")
    embeds, negative = pipe.encode_prompt(prompt="a red cube")
    official, _ = pipe.encode_prompt(prompt=OFFICIAL_NEGATIVE_PROMPT, do_classifier_free_guidance=False)
    assert embeds.shape[1] == pipe.transformer.config.max_text_seq_length
    assert torch.equal(negative, official)


def test_repvideo_runs_at_the_transformers_text_length_by_default():
    pipe = build_tiny_cogvideox_repvideo_pipeline()
    frames = pipe(prompt="a red cube", height=32, width=32, num_frames=9, num_inference_steps=1,
                  generator=torch.Generator().manual_seed(0), output_type="latent").frames
    assert frames.shape[0] == 1


def test_the_pack_loads_its_models_with_diffusers_current_dtype_keyword():
    # diffusers >= 0.41 takes `dtype` and warns that `torch_dtype` will be removed; `vdp generate` printed that warning
    import warnings

    from video_diffusion_pack.diffusers_pipelines.vchitect.embedded import load_embedded_vchitect_pipeline

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = load_embedded_vchitect_pipeline(dtype=torch.float32)
    assert not [str(w.message) for w in caught if "torch_dtype" in str(w.message)]
    assert {module.dtype for module in _modules(pipe).values()} == {torch.float32}  # fp16 files, loaded in float32
