"""Limits the pipelines derive from their models, checked before any model runs: the scheduler's step count, a memory
estimate against what the device has free, the one empty-prompt rule, the prompt-truncation warning and the DaS
first-frame layouts (channels-last tensors, RGBA and greyscale images)."""

import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image

from video_diffusion_pack.diffusers_pipelines import pipeline_utils
from video_diffusion_pack.diffusers_pipelines.das.tiny import build_tiny_das_pipeline
from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import build_tiny_inpaint_pipeline
from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import build_tiny_cogvideox_repvideo_pipeline
from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import build_tiny_vchitect_pipeline


@pytest.fixture(scope="module")
def pipes():
    built = {"vchitect": build_tiny_vchitect_pipeline(weights="random"), "das": build_tiny_das_pipeline(weights="random"),
             "lgvi": build_tiny_inpaint_pipeline(weights="random"), "repvideo": build_tiny_cogvideox_repvideo_pipeline()}
    for pipe in built.values():
        pipe.set_progress_bar_config(disable=True)
    return built


def _call(pipes, name, **overrides):
    """Runs a tiny pipeline with small settings; the denoiser must not run when a check refuses."""
    settings = {
        "vchitect": dict(prompt="a panda", height=32, width=32, num_frames=2, num_inference_steps=1),
        "das": dict(prompt="a room", height=32, width=32, num_frames=9, num_inference_steps=1,
                    image=Image.new("RGB", (32, 32), (90, 120, 200)),
                    tracking_video=torch.rand(9, 32, 32, 3, generator=torch.Generator().manual_seed(1))),
        "lgvi": dict(prompt="remove the bird", video=torch.rand(3, 32, 48, 3, generator=torch.Generator().manual_seed(1)),
                     height=32, width=48,
                     num_inference_steps=1),
        "repvideo": dict(prompt="a panda", height=32, width=32, num_frames=9, num_inference_steps=1),
    }[name]
    settings.update(overrides)
    return pipes[name](generator=torch.Generator().manual_seed(0), output_type="np", **settings)


def _forbid_denoising(pipe, monkeypatch):
    denoiser = pipe.transformer if hasattr(pipe, "transformer") else pipe.unet

    def fail(*args, **kwargs):
        raise AssertionError("the denoiser ran before the check refused")
    monkeypatch.setattr(denoiser, "forward", fail)


@pytest.mark.parametrize("name, limit", [("vchitect", 1000), ("das", 1000), ("lgvi", 999), ("repvideo", 1000)])
def test_steps_beyond_the_schedulers_limit_are_refused_naming_the_limit(pipes, name, limit, monkeypatch):
    # before: LGVI's DDIM (steps_offset=1) failed with an IndexError at 1000 steps, the others in set_timesteps
    assert pipeline_utils.max_inference_steps(pipes[name].scheduler) == limit
    _forbid_denoising(pipes[name], monkeypatch)
    with pytest.raises(ValueError, match=rf"^num_inference_steps={limit + 1} must be at most {limit}: the "):
        _call(pipes, name, num_inference_steps=limit + 1)
    with pytest.raises(ValueError, match=r"num_inference_steps=1000000000 must be at most"):
        _call(pipes, name, num_inference_steps=10**9)


@pytest.mark.parametrize("name, frames", [("vchitect", 1_000_000), ("das", 9), ("repvideo", 100_001),
                                          ("lgvi", 1)])
def test_a_run_that_cannot_fit_in_memory_is_refused_before_the_denoiser_runs(pipes, name, frames, monkeypatch):
    """The estimate (several TiB here) and the limit are in the message; before: the run allocated until it died."""
    _forbid_denoising(pipes[name], monkeypatch)
    huge = {"vchitect": dict(num_frames=frames, height=64, width=64),
            "repvideo": dict(num_frames=frames, height=256, width=256),
            "das": dict(num_videos_per_prompt=2_000_000),
            "lgvi": dict(num_videos_per_prompt=2_000_000)}[name]
    with pytest.raises(ValueError) as raised:
        _call(pipes, name, **huge)
    message = str(raised.value)
    assert re.search(r"needs about [0-9.]+ GiB beyond the loaded weights \(estimate: denoiser activations [0-9.]+ "
                     r"GiB, decoded video [0-9.]+ GiB\), more than the [0-9.]+ GiB available \(", message), message


def test_check_memory_names_the_estimate_and_the_limit():
    pipeline_utils.check_memory("num_frames=9 at 32x32", {"denoiser activations": 1024}, "cpu")  # fits
    with pytest.raises(ValueError, match=r"^num_frames=99 at 64x64 needs about 1024.0 GiB beyond the loaded weights "
                                         r"\(estimate: denoiser activations 1024.00 GiB\), more than the"):
        pipeline_utils.check_memory("num_frames=99 at 64x64", {"denoiser activations": 2**40}, "cpu")


@pytest.mark.parametrize("name", ["vchitect", "das", "lgvi", "repvideo"])
@pytest.mark.parametrize("prompt", ["", "   ", ["a cat", " "]])
def test_every_pipeline_refuses_an_empty_prompt(pipes, name, prompt, monkeypatch):
    # the one rule, as the CLI and the nodes apply it; before: Vchitect, DaS, RepVideo and LGVI sampled it
    _forbid_denoising(pipes[name], monkeypatch)
    if name == "lgvi" and isinstance(prompt, list):
        prompt = prompt[1]
    with pytest.raises(ValueError, match=r"^prompt='\s*' is empty; say what the video should show"):
        _call(pipes, name, prompt=prompt)


def test_empty_negative_prompts_stay_allowed(pipes):
    output = _call(pipes, "vchitect", negative_prompt="", guidance_scale=5.0)
    assert np.isfinite(output.frames).all()


@pytest.mark.parametrize("name, encoder", [("vchitect", "the T5 encoder"), ("lgvi", "the CLIP text encoder")])
def test_a_prompt_longer_than_the_text_encoder_reads_is_truncated_with_a_warning(pipes, name, encoder, caplog):
    with caplog.at_level(logging.WARNING, logger="video_diffusion_pack"):
        _call(pipes, name, prompt="a red panda eating bamboo " * 400)
    messages = [record.getMessage() for record in caplog.records if "truncated" in record.getMessage()]
    assert any(encoder in message and "tokens" in message for message in messages), messages
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="video_diffusion_pack"):
        _call(pipes, name, prompt="a red panda")
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def _das_frames(pipes, image):
    return _call(pipes, "das", image=image).frames


def test_das_takes_channels_last_tensors_rgba_and_greyscale_images_as_documented(pipes):
    """Before: [H, W, 3] tensors (ComfyUI's layout), RGBA and L images failed deep in the VAE's first conv."""
    rgb = Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    expected = _das_frames(pipes, rgb)
    channels_last = torch.from_numpy(np.array(rgb)).float() / 255
    np.testing.assert_allclose(_das_frames(pipes, channels_last), expected, atol=1e-5)
    np.testing.assert_allclose(_das_frames(pipes, channels_last.permute(2, 0, 1)), expected, atol=1e-5)
    np.testing.assert_allclose(_das_frames(pipes, rgb.convert("RGBA")), expected, atol=1e-5)
    grey = rgb.convert("L")
    np.testing.assert_allclose(_das_frames(pipes, grey), _das_frames(pipes, grey.convert("RGB")), atol=1e-5)


@pytest.mark.parametrize("image, message", [
    (torch.rand(3, 32, 32) * 255, r"image values span .*; expected 0\.\.1"),
    (torch.full((3, 32, 32), float("nan")), r"image has non-finite values"),
    ("img.png", r"image of type str must be a PIL image"),
    (torch.ones(2, 32, 32), r"image has shape \(2, 32, 32\)"),
])
def test_das_refuses_first_frames_it_cannot_use(pipes, image, message, monkeypatch):
    _forbid_denoising(pipes["das"], monkeypatch)
    with pytest.raises(ValueError, match=message):
        _call(pipes, "das", image=image)


@pytest.mark.parametrize("name", ["vchitect", "das", "lgvi"])
def test_a_callback_must_return_a_dict_and_keep_the_latents_shape(pipes, name):
    # before: a list was dropped silently (Vchitect) or failed in dict.pop; latents of another shape failed in the
    # transformer without naming the callback
    with pytest.raises(ValueError, match=r"callback_on_step_end returned a list; it must return a dict"):
        _call(pipes, name, num_inference_steps=2, callback_on_step_end=lambda *args: [])
    with pytest.raises(ValueError, match=r"callback_on_step_end returned latents of shape \(1,\); expected \("):
        _call(pipes, name, num_inference_steps=2,
              callback_on_step_end=lambda pipe, i, t, kwargs: {"latents": torch.zeros(1)})


def test_vchitect_prompt_embeds_of_the_wrong_shape_are_named(pipes):
    # before: RuntimeError from torch.cat deep in the transformer
    with pytest.raises(ValueError, match=r"prompt_embeds has shape \(1, 5, 7\); expected \[batch, 333, 32\]"):
        _call(pipes, "vchitect", prompt=None, prompt_embeds=torch.rand(1, 5, 7), pooled_prompt_embeds=torch.rand(1, 16))


def test_das_tracking_video_frames_of_two_sizes_are_named(pipes):
    frames = [Image.new("RGB", (32, 32))] * 8 + [Image.new("RGB", (16, 16))]
    with pytest.raises(ValueError, match=r"tracking_video\[8\] has shape \(16, 16, 3\); tracking_video\[0\] has "
                                         r"\(32, 32, 3\)"):
        _call(pipes, "das", tracking_video=frames)
