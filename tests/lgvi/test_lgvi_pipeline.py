"""InpaintByInstructionPipeline: the released folder layout, parity with the official RoviPipeline, guidance branches,
save/load, the LGVI-I instruction-encoder contract, bad input."""

import importlib.util
import inspect
import json
import pathlib

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from helpers import FIXTURES
from PIL import Image
from safetensors.torch import load_file

from video_diffusion_pack import (
    InpaintByInstructionPipeline,
    InpaintByInstructionPipelineOutput,
    RoviUNet3DConditionModel,
)
from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import (
    TINY_LGVI_PROMPT,
    save_tiny_lgvi_official_layout,
    tiny_rovi_unet_config,
)

_spec = importlib.util.spec_from_file_location("make_lgvi_fixtures", FIXTURES / "make_lgvi_fixtures.py")
make_lgvi_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_lgvi_fixtures)
RUN = make_lgvi_fixtures.PIPELINE_RUN
SIZE = dict(height=32, width=48)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return save_tiny_lgvi_official_layout(tmp_path_factory.mktemp("lgvi") / "tiny", seed=RUN["layout_seed"])


@pytest.fixture(scope="module")
def pipe(layout):
    pipeline = InpaintByInstructionPipeline.from_pretrained(layout)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def video(frames=3, height=32, width=48, seed=0):
    return torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(seed))


def run(pipe, **kwargs):
    arguments = dict(video=video(), prompt=TINY_LGVI_PROMPT, num_inference_steps=2,
                     generator=torch.Generator().manual_seed(0), **SIZE)
    arguments.update(kwargs)
    return pipe(**arguments)


def test_released_layout_loads_each_component_with_its_class(pipe, layout):
    index = json.loads((layout / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["rovi.models.unet", "RoviModel"]
    assert json.loads((layout / "unet" / "config.json").read_text())["_class_name"] == "RoviModel"
    assert isinstance(pipe.unet, RoviUNet3DConditionModel)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.instruction_encoder is None


@pytest.mark.parametrize("cfg_batching", [True, False])
def test_frames_equal_the_official_rovi_pipeline(pipe, cfg_batching):
    expected = load_file(str(FIXTURES / make_lgvi_fixtures.PIPELINE_FIXTURE))
    output = pipe(
        expected["video"], RUN["prompt"], height=RUN["height"], width=RUN["width"],
        num_inference_steps=RUN["num_inference_steps"], guidance_scale=RUN["guidance_scale"],
        image_guidance_scale=RUN["image_guidance_scale"], generator=torch.Generator().manual_seed(RUN["seed"]),
        cfg_batching=cfg_batching,
    )
    assert output.frames.shape == tuple(expected["frames"].shape)
    assert np.abs(output.frames - expected["frames"].numpy()).max() < 1e-4


def test_defaults_are_the_official_inference_settings():
    parameters = inspect.signature(InpaintByInstructionPipeline.__call__).parameters
    defaults = {name: parameters[name].default for name in (
        "height", "width", "num_inference_steps", "guidance_scale", "image_guidance_scale", "negative_prompt",
        "output_type")}
    assert defaults == dict(height=320, width=512, num_inference_steps=50, guidance_scale=3.0,
                            image_guidance_scale=1.5, negative_prompt=None, output_type="np")


def test_by_default_the_three_guidance_branches_are_three_unet_calls_as_the_official(pipe):
    batches = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        run(pipe, num_inference_steps=2)
    finally:
        hook.remove()
    assert batches == [1] * 6


def test_cfg_batching_runs_the_three_guidance_branches_in_one_unet_call(pipe):
    seen = []
    hook = pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0].shape[0], kwargs["encoder_hidden_states"].clone(),
                                                   kwargs["img_condition"].clone())),
        with_kwargs=True,
    )
    try:
        run(pipe, num_inference_steps=2, cfg_batching=True)
    finally:
        hook.remove()
    assert len(seen) == 2
    batch, text, condition = seen[0]
    assert batch == 3
    empty = pipe._clip_embeds([""], pipe.device)[0]
    torch.testing.assert_close(text[0], pipe._clip_embeds([TINY_LGVI_PROMPT], pipe.device)[0])
    torch.testing.assert_close(text[1], empty)
    torch.testing.assert_close(text[2], empty)
    assert torch.equal(condition[0], condition[1]) and condition[0].abs().sum() > 0
    assert torch.count_nonzero(condition[2]) == 0


def test_guidance_off_runs_one_branch(pipe):
    seen = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    try:
        run(pipe, guidance_scale=1.0, num_inference_steps=1)
    finally:
        hook.remove()
    assert seen == [1]


def test_output_types_and_shapes(pipe):
    frames_np = run(pipe, num_inference_steps=1).frames
    assert frames_np.shape == (1, 3, 32, 48, 3) and 0 <= frames_np.min() and frames_np.max() <= 1
    frames_pt = run(pipe, num_inference_steps=1, output_type="pt").frames
    assert frames_pt.shape == (1, 3, 3, 32, 48)
    np.testing.assert_allclose(frames_pt.permute(0, 1, 3, 4, 2).numpy(), frames_np, atol=1e-6)
    latents = run(pipe, num_inference_steps=1, output_type="latent").frames
    assert latents.shape == (1, 4, 3, 4, 6)
    output = run(pipe, num_inference_steps=1, output_type="pil")
    assert isinstance(output, InpaintByInstructionPipelineOutput) and output.mask is None
    assert len(output.frames[0]) == 3 and output.frames[0][0].size == (48, 32)


def test_pil_frames_are_resized_with_the_official_filter(pipe):
    frames = [Image.fromarray((video(1, 20, 30, seed=i)[0].numpy() * 255).astype(np.uint8)) for i in range(2)]
    tensor = pipe.video_tensor(frames, 32, 48)
    expected = np.asarray(frames[1].resize((48, 32), resample=Image.BILINEAR)).astype(np.float32) / 255
    assert tensor.shape == (1, 2, 3, 32, 48)
    np.testing.assert_array_equal(tensor[0, 1].permute(1, 2, 0).numpy(), expected)
    assert run(pipe, video=frames, num_inference_steps=1).frames.shape == (1, 2, 32, 48, 3)


def test_two_videos_two_prompts_and_several_videos_per_prompt(pipe):
    videos = torch.stack([video(seed=1), video(seed=2)])
    assert run(pipe, video=videos, prompt=["remove the cat", "remove the dog"], num_inference_steps=1).frames.shape == (
        2, 3, 32, 48, 3)
    assert run(pipe, num_videos_per_prompt=2, num_inference_steps=1).frames.shape == (2, 3, 32, 48, 3)


def test_callback_sees_and_replaces_latents(pipe):
    seen = []

    def callback(pipeline, step, timestep, tensors):
        seen.append(step)
        return {"latents": torch.zeros_like(tensors["latents"])}

    zeroed = run(pipe, callback_on_step_end=callback, output_type="latent").frames
    assert seen == [0, 1]
    assert torch.count_nonzero(zeroed) == 0


def test_mask_decoder_output_is_returned_at_frame_size(layout):
    unet = RoviUNet3DConditionModel(**tiny_rovi_unet_config(), mask_decoder_type="MaskDecoder").eval()
    pipeline = InpaintByInstructionPipeline.from_pretrained(layout, unet=unet)
    pipeline.set_progress_bar_config(disable=True)
    output = run(pipeline, num_inference_steps=1)
    assert output.mask.shape == (1, 3, 32, 48)
    assert 0 <= output.mask.min() and output.mask.max() <= 1


def test_save_pretrained_round_trip_is_exact(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "InpaintByInstructionPipeline"
    assert index["unet"] == ["video_diffusion_pack.models.rovi_unet", "RoviUNet3DConditionModel"]
    for loader in (InpaintByInstructionPipeline.from_pretrained, DiffusionPipeline.from_pretrained):
        loaded = loader(tmp_path)
        assert isinstance(loaded, InpaintByInstructionPipeline)
        loaded.set_progress_bar_config(disable=True)
        for name in ("unet", "vae", "text_encoder"):
            ours, theirs = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
            assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
        np.testing.assert_array_equal(run(loaded, num_inference_steps=1).frames, run(pipe, num_inference_steps=1).frames)


def test_instruction_encoder_writes_the_prompt_and_negatives_are_zeros(layout):
    from video_diffusion_pack.models.lgvi_instruction_encoder import build_tiny_lgvi_instruction_encoder

    encoder = build_tiny_lgvi_instruction_encoder(seed=0, cross_attention_dim=32, max_new_tokens=4)
    pipeline = InpaintByInstructionPipeline.from_pretrained(layout, instruction_encoder=encoder)
    pipeline.set_progress_bar_config(disable=True)
    seen = []
    hook = pipeline.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True
    )
    try:
        output = run(pipeline, prompt="please take the panda out", num_inference_steps=1, cfg_batching=True)
    finally:
        hook.remove()
    assert isinstance(output.instructions, list) and len(output.instructions) == 1
    assert isinstance(output.instructions[0], str)
    text = seen[0]
    assert text.shape[0] == 3 and text[0].abs().sum() > 0
    assert torch.count_nonzero(text[1:]) == 0


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(height=36), "height=36 must be a positive multiple of 8"),
        (dict(width=0), "width=0"),
        (dict(video=torch.zeros(0, 32, 48, 3)), "empty"),
        (dict(video=torch.full((2, 32, 48, 3), 1.5)), r"video values span 1.5\.\.1.5; expected 0\.\.1"),
        (dict(video=torch.rand(32, 48, 3)), r"video has shape \(32, 48, 3\)"),
        (dict(video=None), "video is required"),
        (dict(video=[]), "empty list"),
        (dict(prompt=None), "prompt is required"),
        (dict(prompt_embeds=torch.zeros(1, 7, 32)), "either prompt or prompt_embeds"),
        (dict(prompt=None, prompt_embeds=torch.zeros(1, 7, 16)), r"prompt_embeds has shape \(1, 7, 16\)"),
        (dict(prompt=3), "prompt=3"),
        (dict(num_inference_steps=0), "num_inference_steps=0"),
        (dict(guidance_scale=float("nan")), "guidance_scale=nan"),
        (dict(output_type="gif"), "output_type='gif'"),
        (dict(latents=torch.zeros(1, 4, 3, 8, 8)), r"latents has shape \(1, 4, 3, 8, 8\); expected \(1, 4, 3, 4, 6\)"),
        (dict(generator=[torch.Generator()] * 2), r"generator has 2 entries for 1 videos"),
        (dict(generator=torch.zeros(1)), "must be a torch.Generator or a list of them"),
        (dict(callback_on_step_end_tensor_inputs=["noise"]), "callback_on_step_end_tensor_inputs"),
        (dict(cfg_batching=1), "cfg_batching=1 must be True or False"),
        (dict(eta=float("nan")), "eta=nan must be a finite number"),
        (dict(image_guidance_scale=True), "image_guidance_scale=True must be a finite number"),
        (dict(negative_prompt=["a", "b"]), "negative_prompt has 2 entries for 1 videos"),
        (dict(negative_prompt_embeds=torch.zeros(2, 7, 32)), "negative_prompt_embeds has 2 entries for 1 videos"),
        (dict(video=torch.rand(3, 32, 48, 3).double().masked_fill(torch.rand(3, 32, 48, 3) > 0.5, float("nan"))),
         r"video has non-finite values \(NaN or inf\)"),
        (dict(video=torch.rand(3, 3, 32, 48, 3), prompt=["a", "b"]), "3 videos and 2 prompts"),
    ],
)
def test_bad_input_is_refused_before_any_model_runs(pipe, override, message):
    calls = []
    hooks = [module.register_forward_pre_hook(lambda *args: calls.append(1))
             for module in (pipe.unet, pipe.vae.encoder, pipe.text_encoder)]
    try:
        with pytest.raises(ValueError, match=message):
            run(pipe, **override)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []


def test_loading_a_folder_without_a_unet_names_what_is_missing(layout, tmp_path):
    (tmp_path / "model_index.json").write_text((layout / "model_index.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"lacks the component folder\(s\) \['vae', 'text_encoder', 'tokenizer'"):
        InpaintByInstructionPipeline.from_pretrained(tmp_path)


def test_loads_the_released_repository_from_the_hub(layout, tmp_path):
    """A Hub id goes through huggingface_hub (a local Hub server here), then the same loading as a folder."""
    import os
    import subprocess
    import sys

    from helpers.fake_hub import FakeHub, FakeRepo

    files = {str(path.relative_to(layout)): path.read_bytes() for path in layout.rglob("*") if path.is_file()}
    with FakeHub() as hub:
        hub.add(FakeRepo("jianzongwu/lgvi", files))
        env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT")}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "home"), HF_HUB_CACHE=str(tmp_path / "cache"))
        # conftest imports this checkout as video_diffusion_pack
        code = (f"import sys; sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parents[1])!r}); import conftest; "
                "from video_diffusion_pack import InpaintByInstructionPipeline as P; "
                "pipe = P.from_pretrained('jianzongwu/lgvi'); "
                "print(type(pipe.unet).__name__, type(pipe.scheduler).__name__)")
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RoviUNet3DConditionModel", "DDIMScheduler"]
