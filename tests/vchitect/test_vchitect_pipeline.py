"""VchitectRepVideoPipeline: official 3-step parity, loading and saving, outputs, and bad input."""

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from helpers import FIXTURES
from safetensors import safe_open

from video_diffusion_pack import VchitectRepVideoPipeline
from video_diffusion_pack.diffusers_pipelines.vchitect.pipeline import official_dynamic_guidance

TINY_OFFICIAL = FIXTURES / "vchitect_tiny_official"
PROMPT = "a red panda rolling down a hill"
SMALL = dict(height=32, width=32, num_frames=3, num_inference_steps=2)


def relative_error(a, b) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def reference():
    with safe_open(str(FIXTURES / "vchitect_pipeline_parity.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.fixture(scope="module")
def pipe():
    return VchitectRepVideoPipeline.from_pretrained(str(TINY_OFFICIAL))


def test_official_layout_loads_with_our_transformer_class(pipe):
    index = json.loads((TINY_OFFICIAL / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline"
    assert type(pipe.transformer).__name__ == "VchitectXLTransformer3DModel"
    assert pipe.vae.config.scaling_factor == pytest.approx(1.5305)
    assert pipe.vae.config.shift_factor == pytest.approx(0.0609)


def test_prompt_embeddings_match_the_official_layout(pipe, reference):
    embeds, pooled = pipe.official_prompt_embeds([PROMPT])
    assert embeds.shape == (1, 77 + 256, 32)
    assert relative_error(embeds, reference["prompt_embeds"]) <= 1e-5
    assert relative_error(pooled, reference["pooled_prompt_embeds"]) <= 1e-5
    negative, negative_pooled = pipe.official_prompt_embeds([""])
    assert relative_error(negative, reference["negative_prompt_embeds"]) <= 1e-5
    assert relative_error(negative_pooled, reference["negative_pooled_prompt_embeds"]) <= 1e-5


def test_three_step_run_matches_the_official_pipeline(pipe, reference):
    steps = []
    out = pipe(
        PROMPT,
        negative_prompt="",
        height=32,
        width=32,
        num_frames=3,
        num_inference_steps=3,
        guidance_scale=7.5,
        use_dynamic_cfg=True,  # the official loop always applies its ramp
        latents=reference["latents_initial"],
        output_type="np",
        callback_on_step_end=lambda p, i, t, kw: steps.append((t.item(), p.guidance_scale, kw["latents"])) or {},
    )
    assert [t for t, _, _ in steps] == pytest.approx(reference["timesteps"].tolist())
    assert [g for _, g, _ in steps] == pytest.approx(reference["guidance_scales"].tolist(), rel=1e-12)
    for i, (_, _, latents) in enumerate(steps):
        assert relative_error(latents, reference["latents_steps"][i]) <= 1e-5
    assert out.frames.shape == (1, 3, 32, 32, 3)
    assert np.abs(out.frames[0] - reference["frames"].numpy()).max() <= 1e-4
    assert relative_error(out.frames[0], reference["frames"].numpy()) <= 1e-5


def test_official_ramp_formula_is_evaluated_at_the_0_to_1000_timestep():
    # step index semantics would give 1 at t=N; the official code plugs the timestep itself in
    assert official_dynamic_guidance(7.5, 100.0, 100) == pytest.approx(1.0)
    assert official_dynamic_guidance(7.5, 1000.0, 100) == pytest.approx(
        1 + 7.5 * (1 - np.cos(np.pi * (-9.0) ** 5)) / 2
    )


def test_output_types_and_shapes(pipe):
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    np_out = pipe(PROMPT, generator=gen(), output_type="np", **SMALL).frames
    pt_out = pipe(PROMPT, generator=gen(), output_type="pt", **SMALL).frames
    pil_out = pipe(PROMPT, generator=gen(), output_type="pil", **SMALL).frames
    latent = pipe(PROMPT, generator=gen(), output_type="latent", **SMALL).frames
    assert np_out.shape == (1, 3, 32, 32, 3) and np_out.dtype == np.float32
    assert 0.0 <= np_out.min() and np_out.max() <= 1.0
    assert pt_out.shape == (1, 3, 3, 32, 32)
    assert np.allclose(pt_out.permute(0, 1, 3, 4, 2).numpy(), np_out, atol=1e-6)
    assert len(pil_out) == 1 and len(pil_out[0]) == 3 and pil_out[0][0].size == (32, 32)
    assert latent.shape == (1, 3, 16, 4, 4)


def test_same_seed_same_video_and_batches_of_prompts(pipe):
    a = pipe([PROMPT, "a cat"], num_videos_per_prompt=2, generator=torch.Generator().manual_seed(1), **SMALL).frames
    b = pipe([PROMPT, "a cat"], num_videos_per_prompt=2, generator=torch.Generator().manual_seed(1), **SMALL).frames
    assert a.shape == (4, 3, 32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.allclose(a[0], a[2])


def test_guidance_below_one_with_the_official_ramp_runs(pipe):
    # the official loop indexes a second batch element that does not exist when guidance_scale <= 1
    out = pipe(PROMPT, guidance_scale=0.5, use_dynamic_cfg=True, generator=torch.Generator().manual_seed(0),
               output_type="latent", **SMALL).frames
    no_cfg = pipe(PROMPT, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
                  output_type="latent", **SMALL).frames
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, no_cfg)  # the ramp's effective scale 1 + 0.5 * w(t) still guides


def test_repvideo_switch_changes_the_video_and_turns_back_off(pipe):
    run = lambda: pipe(PROMPT, generator=torch.Generator().manual_seed(0), output_type="latent", **SMALL).frames  # noqa
    plain = run()
    pipe.transformer.enable_repvideo()
    try:
        rep = run()
    finally:
        pipe.transformer.disable_repvideo()
    assert not torch.allclose(rep, plain)
    assert torch.equal(run(), plain)


def test_save_pretrained_round_trip_is_exact(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["_class_name"] == "VchitectRepVideoPipeline"
    library, class_name = index["transformer"]
    assert library.split(".")[0] == "video_diffusion_pack" and class_name == "VchitectXLTransformer3DModel"
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "saved")
    assert type(loaded) is VchitectRepVideoPipeline
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        ours, theirs = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    run = lambda p: p(PROMPT, generator=torch.Generator().manual_seed(0), **SMALL).frames  # noqa: E731
    assert np.array_equal(run(pipe), run(loaded))


# ----------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(height=500), "height=500 must be a positive multiple of 16"),
        (dict(width=40), "width=40 must be a positive multiple of 16"),
        (dict(num_frames=0), "num_frames=0 must be an integer >= 1"),
        (dict(num_inference_steps=0), "num_inference_steps=0"),
        (dict(prompt=[]), r"prompt=\[\] must be a string or a non-empty list"),
        (dict(prompt=["a", "b"], negative_prompt=["x"]), "negative_prompt has 1 entries for 2 prompts"),
        (dict(output_type="gif"), "output_type='gif' must be one of"),
        (dict(guidance_scale=-1.0, use_dynamic_cfg=True), "guidance_scale=-1.0 must be >= 0"),
        (dict(latents=torch.zeros(1, 2, 16, 4, 4)), r"latents has shape \(1, 2, 16, 4, 4\)"),
        (dict(num_frames=True), "num_frames=True must be an integer >= 1"),
        (dict(guidance_scale=float("nan")), "guidance_scale=nan must be a finite number"),
        (dict(decode_chunk_size=0), "decode_chunk_size=0 must be an integer >= 1"),
        (dict(cfg_batching="yes"), "cfg_batching='yes' must be True or False"),
        (dict(use_dynamic_cfg=None), "use_dynamic_cfg=None must be True or False"),
        (dict(prompt=None, prompt_embeds=torch.zeros(1, 333, 32)), "prompt_embeds needs pooled_prompt_embeds"),
        (dict(generator=[torch.Generator()] * 2), "generator has 2 entries for 1 videos"),
    ],
)
def test_bad_arguments_are_refused_before_any_model_runs(pipe, kwargs, message, monkeypatch):
    calls = []
    monkeypatch.setattr(pipe.text_encoder_3, "forward", lambda *a, **k: calls.append(1))
    args = dict(dict(prompt=PROMPT, **SMALL), **kwargs)
    with pytest.raises(ValueError, match=message):
        pipe(**args)
    assert calls == []


def test_frames_beyond_the_transformer_s_frame_table_are_refused_before_any_model_runs(pipe, monkeypatch):
    config = {key: value for key, value in pipe.transformer.config.items() if key != "_use_default_values"}
    monkeypatch.setattr(pipe, "transformer", type(pipe.transformer).from_config({**config, "frame_positions": 2}))
    calls = []
    monkeypatch.setattr(pipe.text_encoder_3, "forward", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="num_frames=3 exceeds the transformer's frame index table: it embeds at "
                                         "most frame_positions=2 frames"):
        pipe(prompt=PROMPT, **dict(SMALL, num_frames=3))
    assert calls == []


def test_model_directory_missing_a_component_names_it(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(TINY_OFFICIAL, target)
    shutil.rmtree(target / "vae")
    with pytest.raises(FileNotFoundError, match=r"lacks the component folder\(s\) \['vae'\]"):
        VchitectRepVideoPipeline.from_pretrained(str(target))


def test_corrupt_transformer_weights_name_the_file(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(TINY_OFFICIAL, target)
    weights = target / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"corrupt weights file .*transformer.*diffusion_pytorch_model.safetensors"):
        VchitectRepVideoPipeline.from_pretrained(str(target))


@pytest.mark.parametrize("entry", [["models.VchitectXL", "VchitectXLTransformerModel"], [None, None]])
def test_official_index_naming_its_own_transformer_module_still_loads(tmp_path, entry):
    target = tmp_path / "model"
    shutil.copytree(TINY_OFFICIAL, target)
    index = json.loads((target / "model_index.json").read_text())
    index["transformer"] = entry
    (target / "model_index.json").write_text(json.dumps(index))
    loaded = VchitectRepVideoPipeline.from_pretrained(str(target))
    assert type(loaded.transformer).__name__ == "VchitectXLTransformer3DModel"
    assert loaded.config._name_or_path == str(target)
