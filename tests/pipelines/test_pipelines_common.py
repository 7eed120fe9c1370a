"""What every pipeline of the pack does the same way, on the four tiny pipelines: registration with diffusers, its own
`check_inputs`, one name for batching the guidance branches, latents kept in the denoiser's dtype across steps
(fp16, bf16, and a bf16 denoiser with float32 text encoders and VAE), a list of generators (one per video), and
non-finite numbers and tensors refused before any model runs."""

import inspect

import diffusers
import diffusers.pipelines
import numpy as np
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
from video_diffusion_pack.control import render_tracking_video, tracks_from_depth

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


def _tracking_video():
    g = torch.Generator().manual_seed(0)
    image, depth = torch.rand(32, 32, 3, generator=g), 1 + torch.rand(32, 32, generator=g)
    return image, render_tracking_video(tracks_from_depth(image, depth, camera="rot y 10", num_frames=9))


def arguments(name):
    """The smallest run of each tiny pipeline (one prompt, guidance on)."""
    if name == "vchitect":
        return dict(prompt="a red panda", height=32, width=32, num_frames=3)
    if name == "das":
        image, tracking_video = _tracking_video()
        return dict(image=image.permute(2, 0, 1)[None], prompt="a red panda", tracking_video=tracking_video,
                    height=32, width=32, num_frames=9)
    if name == "repvideo":
        return dict(prompt="a corgi", height=32, width=32, num_frames=9, max_sequence_length=16)
    video = torch.rand(3, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    return dict(video=video, prompt="remove the red panda", height=32, width=48)


def denoiser(pipe):
    return pipe.unet if isinstance(pipe, InpaintByInstructionPipeline) else pipe.transformer


def build(name, dtype=None):
    pipe = BUILDERS[name](seed=0, weights="random")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dtype) if dtype is not None else pipe


@pytest.fixture(scope="module")
def pipes():
    return {}


@pytest.fixture
def pipe(request, pipes):
    name = request.param
    if name not in pipes:
        pipes[name] = build(name)
    return pipes[name]


def run(pipe, name, steps=2, **overrides):
    kwargs = dict(arguments(name), num_inference_steps=steps, output_type="latent",
                  generator=torch.Generator().manual_seed(0))
    kwargs.update(overrides)
    return pipe(**kwargs).frames


def relative_error(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


# ---------------------------------------------------------------------------------------------------- structure
@pytest.mark.parametrize("name", NAMES)
def test_registered_as_diffusers_and_diffusers_pipelines_attributes(name):
    cls = CLASSES[name]
    assert getattr(diffusers, cls.__name__) is cls
    assert getattr(diffusers.pipelines, cls.__name__) is cls


@pytest.mark.parametrize("name", NAMES)
def test_the_validator_is_the_pipelines_own_check_inputs(name):
    cls = CLASSES[name]
    assert "check_inputs" in vars(cls)
    assert not [attribute for attribute in vars(cls) if attribute.startswith("check_") and attribute != "check_inputs"]


def test_das_check_inputs_checks_the_tracking_video():
    pipe = build("das")
    kwargs = arguments("das")
    positional = [kwargs.pop(key) for key in ("image", "prompt", "height", "width")]
    common = dict(negative_prompt=None, callback_on_step_end_tensor_inputs=["latents"])
    assert pipe.check_inputs(*positional, **common, **kwargs) == 1
    with pytest.raises(ValueError, match="tracking_video is required"):
        pipe.check_inputs(*positional, **common, **dict(kwargs, tracking_video=None))
    with pytest.raises(ValueError, match="tracking_video has 5 frames; num_frames=9 were requested"):
        pipe.check_inputs(*positional, **common, **dict(kwargs, tracking_video=kwargs["tracking_video"][:5]))


def test_repvideo_check_inputs_takes_diffusers_arguments_and_checks_ours():
    pipe = build("repvideo")
    # as diffusers' CogVideoXPipeline.__call__ calls it
    assert pipe.check_inputs("a corgi", 32, 32, None, ["latents"], None, None) == 1
    with pytest.raises(ValueError, match="num_frames=10 must be 1 \\+ a multiple of 4"):
        pipe.check_inputs("a corgi", 32, 32, None, ["latents"], num_frames=10)


def test_one_name_for_running_all_guidance_branches_in_one_denoiser_call():
    for cls in CLASSES.values():
        assert "batch_guidance" not in inspect.signature(cls.__call__).parameters
    assert inspect.signature(VchitectRepVideoPipeline.__call__).parameters["cfg_batching"].default is True
    assert inspect.signature(InpaintByInstructionPipeline.__call__).parameters["cfg_batching"].default is False


# ---------------------------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_latents_stay_in_the_denoiser_dtype_across_steps(name, dtype):
    reference = run(build(name), name, steps=3)
    pipe = build(name, dtype)
    seen = []

    def record(pipeline, step, timestep, tensors):
        seen.append(tensors["latents"].dtype)
        return {}

    latents = run(pipe, name, steps=3, callback_on_step_end=record)
    assert seen == [dtype] * 3
    assert latents.dtype == dtype and torch.isfinite(latents).all()
    # the same sample as in float32, up to the reduced precision of the tiny random models
    assert relative_error(latents, reference) < 0.1
    frames = pipe(**dict(arguments(name), num_inference_steps=2, output_type="np")).frames
    assert np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_a_bf16_denoiser_with_float32_encoders_and_vae(name):
    pipe = build(name)
    denoiser(pipe).to(torch.bfloat16)
    seen = []
    latents = run(pipe, name, steps=2,
                  callback_on_step_end=lambda p, i, t, tensors: seen.append(tensors["latents"].dtype) or {})
    assert seen == [torch.bfloat16] * 2 and latents.dtype == torch.bfloat16 and torch.isfinite(latents).all()
    given = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))  # float32 latents are cast
    assert run(pipe, name, steps=1, latents=given).dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------------- generators
@pytest.mark.parametrize("pipe", NAMES, indirect=True)
def test_a_list_of_generators_seeds_each_video(pipe):
    name = next(key for key, cls in CLASSES.items() if isinstance(pipe, cls))
    batch = run(pipe, name, num_videos_per_prompt=2,
                generator=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)])
    assert batch.shape[0] == 2 and not torch.allclose(batch[0], batch[1])
    first = run(pipe, name, generator=torch.Generator().manual_seed(0))
    assert relative_error(batch[:1], first) < 1e-4
    if name != "das":
        # DaS draws the first frame's and the tracking video's VAE samples, shared by all videos, from the first
        second = run(pipe, name, generator=[torch.Generator().manual_seed(1)])
        assert relative_error(batch[1:], second) < 1e-4


@pytest.mark.parametrize("pipe", NAMES, indirect=True)
def test_a_list_of_generators_of_the_wrong_length_is_refused_before_any_model_runs(pipe):
    name = next(key for key, cls in CLASSES.items() if isinstance(pipe, cls))
    calls = []
    hook = denoiser(pipe).register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"generator has 3 entries for 2 videos"):
            run(pipe, name, num_videos_per_prompt=2, generator=[torch.Generator() for _ in range(3)])
    finally:
        hook.remove()
    assert calls == []


# ---------------------------------------------------------------------------------------------------- non-finite
def _non_finite_cases(name):
    nan_latents = {"vchitect": (1, 3, 16, 4, 4), "das": (1, 3, 4, 4, 4), "repvideo": (1, 3, 4, 4, 4),
                   "lgvi": (1, 4, 3, 4, 6)}[name]
    latents = torch.zeros(nan_latents)
    latents[0, 0, 0, 0, 0] = float("nan")
    cases = [
        (dict(guidance_scale=float("nan")), "guidance_scale=nan must be a finite number"),
        (dict(guidance_scale=float("inf")), "guidance_scale=inf must be a finite number"),
        (dict(latents=latents), r"latents has non-finite values \(NaN or inf\)"),
    ]
    if name != "vchitect":
        cases.append((dict(eta=float("nan")), "eta=nan must be a finite number"))
    if name == "das":
        args = arguments("das")
        image = args["image"].clone()
        image[0, 0, 0, 0] = float("inf")
        tracking = args["tracking_video"].clone()
        tracking[2, 0, 0, 0] = float("nan")
        cases += [(dict(image=image), r"image has non-finite values"),
                  (dict(image=image[0].permute(1, 2, 0).numpy()), r"image has non-finite values"),
                  (dict(tracking_video=tracking), r"tracking_video has non-finite values"),
                  (dict(tracking_image=tracking[2]), r"tracking_image has non-finite values")]
    if name == "lgvi":
        video = arguments("lgvi")["video"].clone()
        video[1, 2, 3, 0] = float("nan")
        cases += [(dict(video=video), r"video has non-finite values"),
                  (dict(image_guidance_scale=-float("inf")), "image_guidance_scale=-inf must be a finite number")]
    if name in ("lgvi", "repvideo"):
        tokens = 16 if name == "repvideo" else 7
        embeds = torch.zeros(1, tokens, 32)
        embeds[0, 0, 0] = float("inf")
        cases.append((dict(prompt=None, prompt_embeds=embeds), r"prompt_embeds has non-finite values"))
    return cases


@pytest.mark.parametrize("pipe", NAMES, indirect=True)
def test_non_finite_numbers_and_tensors_are_refused_naming_the_argument(pipe):
    name = next(key for key, cls in CLASSES.items() if isinstance(pipe, cls))
    calls = []
    modules = [denoiser(pipe), pipe.vae.encoder, pipe.vae.decoder] + [getattr(pipe, n) for n in ("text_encoder", "text_encoder_3")
                                             if getattr(pipe, n, None) is not None]
    hooks = [module.register_forward_pre_hook(lambda *args: calls.append(1)) for module in modules]
    try:
        for override, message in _non_finite_cases(name):
            with pytest.raises(ValueError, match=message):
                run(pipe, name, **override)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []
