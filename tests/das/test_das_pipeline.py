"""DaSPipeline: the released folder layout, official defaults, a 3-step run end to end, tracking conditioning, bad input."""

import inspect
import json

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDPMScheduler, DiffusionPipeline
from PIL import Image

from video_diffusion_pack import DaSPipeline, DaSTransformer3DModel
from video_diffusion_pack.control import render_tracking_video, tracks_from_depth
from video_diffusion_pack.diffusers_pipelines.das.pipeline import OFFICIAL_NEGATIVE_PROMPT, official_dynamic_guidance
from video_diffusion_pack.diffusers_pipelines.das.tiny import (
    TINY_DAS_PROMPT,
    TINY_HEIGHT,
    TINY_NUM_FRAMES,
    TINY_WIDTH,
    save_tiny_das_layout,
)

SIZE = dict(height=TINY_HEIGHT, width=TINY_WIDTH, num_frames=TINY_NUM_FRAMES)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return save_tiny_das_layout(tmp_path_factory.mktemp("das") / "tiny", seed=0)


@pytest.fixture(scope="module")
def pipe(layout):
    pipeline = DaSPipeline.from_pretrained(layout)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def scene(seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(TINY_HEIGHT, TINY_WIDTH, 3, generator=g)
    depth = 1 + torch.rand(TINY_HEIGHT, TINY_WIDTH, generator=g)
    return Image.fromarray((image.numpy() * 255).astype(np.uint8)), image, depth


def tracking(command="rot y 10", seed=0):
    _, image, depth = scene(seed)
    return render_tracking_video(tracks_from_depth(image, depth, camera=command, num_frames=TINY_NUM_FRAMES))


@pytest.fixture(scope="module")
def three_step_run(pipe):
    """One 3-step run with the conditioning the transformer saw at each call."""
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append({k: kwargs[k].clone() for k in ("hidden_states", "tracking_maps")}),
        with_kwargs=True,
    )
    final_latents = []

    def keep_latents(pipeline, step, timestep, tensors):
        final_latents[:] = [tensors["latents"].clone()]
        return {}

    picture, _, _ = scene()
    try:
        output = pipe(image=picture, prompt=TINY_DAS_PROMPT, tracking_video=tracking(), num_inference_steps=3,
                      generator=torch.Generator().manual_seed(0), callback_on_step_end=keep_latents, **SIZE)
    finally:
        hook.remove()
    return output, seen, final_latents[0]


def test_released_layout_loads_with_the_official_scheduler_setting(pipe, layout):
    index = json.loads((layout / "model_index.json").read_text())
    assert index["transformer"] == ["models.cogvideox_tracking", "CogVideoXTransformer3DModelTracking"]
    assert index["scheduler"] == ["diffusers", "CogVideoXDDIMScheduler"]
    assert isinstance(pipe.transformer, DaSTransformer3DModel)
    assert isinstance(pipe.scheduler, CogVideoXDPMScheduler)
    assert pipe.scheduler.config.timestep_spacing == "trailing"


def test_a_models_root_in_the_download_layout_loads_the_same_weights(pipe, layout, tmp_path):
    root = tmp_path / "models_root"
    (root / "das").mkdir(parents=True)
    (root / "das" / "Diffusion-As-Shader").symlink_to(layout, target_is_directory=True)
    loaded = DaSPipeline.from_pretrained(root)
    for name, value in pipe.transformer.state_dict().items():
        assert torch.equal(loaded.transformer.state_dict()[name], value), name
    with pytest.raises(FileNotFoundError, match="vdp download Diffusion-As-Shader"):
        DaSPipeline.from_pretrained(tmp_path)


def test_defaults_are_the_official_inference_settings():
    defaults = {name: p.default for name, p in inspect.signature(DaSPipeline.__call__).parameters.items()}
    assert (defaults["num_inference_steps"], defaults["guidance_scale"], defaults["use_dynamic_cfg"]) == (50, 6.0, True)
    assert (defaults["num_frames"], defaults["height"], defaults["width"]) == (49, 480, 720)
    assert defaults["negative_prompt"] == OFFICIAL_NEGATIVE_PROMPT
    assert OFFICIAL_NEGATIVE_PROMPT.startswith("The video is not of a high quality") and OFFICIAL_NEGATIVE_PROMPT.endswith("Distortion.")


def test_three_step_run_gives_frames_of_the_requested_shape(three_step_run):
    output, seen, _ = three_step_run
    frames = output.frames
    assert frames.shape == (1, TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3)
    assert np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1
    assert len(seen) == 3


def test_tracking_conditioning_is_duplicated_for_guidance(three_step_run, pipe):
    _, seen, _ = three_step_run
    tracking_maps = seen[0]["tracking_maps"]
    latent_channels = pipe.transformer.config.in_channels // 2
    assert tracking_maps.shape == seen[0]["hidden_states"].shape == (2, 3, 2 * latent_channels, 4, 4)
    assert torch.equal(tracking_maps[0], tracking_maps[1])
    # channels: tracking video latents, then the tracking first frame's latents (zero after the first latent frame)
    assert tracking_maps[0, 1:, latent_channels:].abs().max() == 0
    assert tracking_maps[0, 0, latent_channels:].abs().max() > 0
    assert all(torch.equal(step["tracking_maps"], tracking_maps) for step in seen)


def test_tracking_video_enters_the_vae_in_the_training_range(pipe):
    video = tracking()
    ours = pipe.encode_tracking_video(video, torch.Generator().manual_seed(5))
    posterior = pipe.vae.encode((video * 2 - 1).permute(3, 0, 1, 2)[None]).latent_dist
    expected = posterior.sample(torch.Generator().manual_seed(5)) * pipe.vae.config.scaling_factor
    torch.testing.assert_close(ours, expected.permute(0, 2, 1, 3, 4))


def test_same_seed_same_video_and_another_tracking_video_changes_it(pipe, three_step_run):
    _, _, final_latents = three_step_run
    picture, _, _ = scene()
    again = pipe(image=picture, prompt=TINY_DAS_PROMPT, tracking_video=tracking(), num_inference_steps=3,
                 generator=torch.Generator().manual_seed(0), output_type="latent", **SIZE)
    assert torch.equal(again.frames, final_latents)
    other = pipe(image=picture, prompt=TINY_DAS_PROMPT, tracking_video=tracking("trans 0.3 0 0"), num_inference_steps=3,
                 generator=torch.Generator().manual_seed(0), output_type="latent", **SIZE)
    assert not torch.allclose(other.frames, final_latents)


def test_tracking_video_may_be_pil_images_or_uint8():
    video = tracking()
    as_bytes = (video * 255).round().to(torch.uint8)
    pil_frames = [Image.fromarray(frame.numpy()) for frame in as_bytes]
    for given in (pil_frames, as_bytes, as_bytes.numpy()):
        torch.testing.assert_close(DaSPipeline.tracking_video_tensor(given, TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH),
                                   as_bytes.float() / 255)


def test_dynamic_guidance_follows_the_official_ramp(pipe):
    pipe.scheduler.set_timesteps(4)
    timesteps = pipe.scheduler.timesteps
    planned = pipe.guidance_schedule(timesteps, 6.0, use_dynamic_cfg=True)
    assert planned == [official_dynamic_guidance(6.0, t, 4) for t in timesteps.tolist()]
    assert pipe.guidance_schedule(timesteps, 6.0, use_dynamic_cfg=False) == [6.0] * 4


def test_save_and_load_round_trip_is_exact(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "DaSPipeline" and index["transformer"][1] == "DaSTransformer3DModel"
    for loaded in (DaSPipeline.from_pretrained(tmp_path), DiffusionPipeline.from_pretrained(tmp_path)):
        assert isinstance(loaded, DaSPipeline)
        assert isinstance(loaded.scheduler, CogVideoXDPMScheduler)
        for name in ("transformer", "vae", "text_encoder"):
            ours, theirs = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
            assert all(torch.equal(ours[key], theirs[key]) for key in ours), name


@pytest.mark.parametrize("change, message", [
    (dict(tracking_video=torch.rand(5, TINY_HEIGHT, TINY_WIDTH, 3)), "tracking_video has 5 frames; num_frames=9 were requested"),
    (dict(tracking_video=torch.rand(TINY_NUM_FRAMES, 16, TINY_WIDTH, 3)), "tracking_video is 16x32 (HxW); height=32, width=32 were requested"),
    (dict(tracking_video=torch.rand(TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3) * 2 - 1), "expected 0..1"),
    (dict(tracking_video=torch.rand(TINY_NUM_FRAMES, 3, TINY_HEIGHT, TINY_WIDTH)), "expected [frames, height, width, 3]"),
    (dict(tracking_video=None), "tracking_video is required"),
    (dict(tracking_image=torch.rand(16, 16, 3)), "tracking_image is 16x16 (HxW); height=32, width=32 were requested"),
    (dict(height=48), "height=48, width=32, num_frames=9: this transformer has learned positional embeddings for 32x32 and 9 frames only"),
    (dict(height=40), "height=40 must be a positive multiple of 16"),
    (dict(num_frames=8), "num_frames=8 must be 1 + a multiple of 4"),
    (dict(num_inference_steps=0), "num_inference_steps=0 must be an integer >= 1"),
    (dict(output_type="gif"), "output_type='gif' must be one of"),
    (dict(eta=-1.0), "eta=-1.0 must be a finite number >= 0"),
    (dict(guidance_scale=float("inf")), "guidance_scale=inf must be a finite number"),
    (dict(max_sequence_length=226), "max_sequence_length=226 must equal the transformer's max_text_seq_length=16"),
    (dict(image=None), "image is required"),
    (dict(negative_prompt=["a", "b"]), "negative_prompt has 2 entries for 1 prompts"),
    (dict(latents=torch.zeros(1, 2, 4, 4, 4)), "latents has shape (1, 2, 4, 4, 4); expected (1, 3, 4, 4, 4)"),
    (dict(generator=[torch.Generator()] * 3, num_videos_per_prompt=2), "generator has 3 entries for 2 videos"),
])
def test_bad_input_is_refused_before_any_model_runs(pipe, change, message):
    picture, _, _ = scene()
    arguments = dict(image=picture, prompt=TINY_DAS_PROMPT, tracking_video=tracking(), num_inference_steps=1, **SIZE)
    arguments.update(change)
    calls = []
    hook = pipe.transformer.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError) as error:
            pipe(**arguments)
    finally:
        hook.remove()
    assert message in str(error.value)
    assert calls == []


def test_prompt_embeddings_given_give_the_video_the_prompt_gives(pipe):
    picture, _, _ = scene()
    common = dict(image=picture, tracking_video=tracking(), num_inference_steps=2, num_videos_per_prompt=2,
                  output_type="latent", **SIZE)
    from_prompt = pipe(prompt=TINY_DAS_PROMPT, generator=torch.Generator().manual_seed(0), **common).frames
    embeds, negative = pipe.encode_prompt(TINY_DAS_PROMPT, OFFICIAL_NEGATIVE_PROMPT, do_classifier_free_guidance=True,
                                          max_sequence_length=pipe.transformer.config.max_text_seq_length)
    from_embeds = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative,
                       generator=torch.Generator().manual_seed(0), **common).frames
    assert from_embeds.shape[0] == 2
    torch.testing.assert_close(from_embeds, from_prompt)


def test_missing_component_folder_is_reported(layout, tmp_path):
    import shutil

    shutil.copytree(layout, tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy" / "vae")
    with pytest.raises(FileNotFoundError, match=r"lacks the component folder\(s\) \['vae'\]"):
        DaSPipeline.from_pretrained(tmp_path / "copy")


def test_loads_the_released_repository_from_the_hub(layout, tmp_path):
    """A Hub id goes through huggingface_hub (a local Hub server here), then the same loading as a folder."""
    import os
    import subprocess
    import sys

    from helpers.fake_hub import FakeHub, FakeRepo

    files = {str(path.relative_to(layout)): path.read_bytes() for path in layout.rglob("*") if path.is_file()}
    with FakeHub() as hub:
        hub.add(FakeRepo("EXCAI/Diffusion-As-Shader", files))
        env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT")}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "home"), HF_HUB_CACHE=str(tmp_path / "cache"))
        code = ("from video_diffusion_pack import DaSPipeline; pipe = DaSPipeline.from_pretrained("
                "'EXCAI/Diffusion-As-Shader'); print(type(pipe.transformer).__name__, type(pipe.scheduler).__name__)")
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DaSTransformer3DModel", "CogVideoXDPMScheduler"]
