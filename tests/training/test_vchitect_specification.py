"""The Vchitect-2.0 training specification: SD3 flow matching, text dropout, denoiser stages, full and LoRA export."""

import dataclasses
import json

import pytest
import torch

from video_diffusion_pack.training.specifications import get_specification
from video_diffusion_pack.training.specifications.vchitect import (
    VCHITECT_RECIPE,
    VchitectSpecification,
    VchitectTrainingRecipe,
)

TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3", "vae")


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.rand(1, 2, 3, 32, 32, generator=g) * 2 - 1, "caption": ["a red panda rolling down a hill"]}


@pytest.fixture(scope="module")
def prepared():
    spec = VchitectSpecification()
    components = spec.load_components(None)
    torch.manual_seed(0)
    batch = _batch()
    return spec, components, spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)


def _train(spec, components, latents, conditions, training_type, lr, steps):
    """The trainer's contract: freeze everything, train what the specification names, on one fixed batch."""
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    params = spec.trainable_parameters(components, training_type)
    for _, p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW([p for _, p in params], lr=lr)
    losses = []
    for _ in range(steps):
        loss = spec.loss(spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(3)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if loss.item() < losses[0] / 2:
            break
    return params, losses


def test_registry_and_sd3_defaults():
    assert isinstance(get_specification("vchitect"), VchitectSpecification)
    assert (VCHITECT_RECIPE.weighting_scheme, VCHITECT_RECIPE.logit_mean, VCHITECT_RECIPE.logit_std) == (
        "logit_normal", 0.0, 1.0)
    assert VCHITECT_RECIPE.text_dropout == 0.1
    with pytest.raises(ValueError, match="weighting_scheme='uniform'.*logit_normal"):
        VchitectTrainingRecipe(weighting_scheme="uniform")
    with pytest.raises(ValueError, match="text_dropout=1.5"):
        VchitectTrainingRecipe(text_dropout=1.5)


def test_logit_normal_sigmas_carry_the_scheduler_shift(prepared):
    spec, components, _, _ = prepared
    timesteps, sigmas = spec.sample_sigmas(components["scheduler"], 100_000, torch.Generator().manual_seed(0))
    # sigmoid(N(0, 1)) has median 0.5; shift 3 maps sigma 0.5 to 3 * 0.5 / (1 + 2 * 0.5) = 0.75
    assert components["scheduler"].config.shift == 3.0
    assert abs(sigmas.median().item() - 0.75) < 0.005
    assert torch.allclose(timesteps, sigmas * 1000)
    assert 0 < sigmas.min() and sigmas.max() <= 1


def test_weighting_scheme_setting_replaces_the_recipe_s_density_for_the_run(prepared, tmp_path):
    from helpers.training_data import write_training_folder

    from video_diffusion_pack.training.settings import TrainingSettings
    from video_diffusion_pack.training.trainer import Trainer

    _, components, _, _ = prepared
    data = write_training_folder(tmp_path / "data", "das", count=2, frames=3, index="prompts.txt")
    common = dict(model="vchitect", data=str(data), output=str(tmp_path / "run"), num_frames=2, height=32, width=32)
    default = Trainer(TrainingSettings(**common)).spec
    uniform = Trainer(TrainingSettings(**common, weighting_scheme="none")).spec
    assert default.recipe.weighting_scheme == "logit_normal" and uniform.recipe.weighting_scheme == "none"
    scheduler = components["scheduler"]
    _, sigmas = uniform.sample_sigmas(scheduler, 100_000, torch.Generator().manual_seed(0))
    _, logit = default.sample_sigmas(scheduler, 100_000, torch.Generator().manual_seed(0))
    # uniform u: sigma = 3u / (1 + 2u) > 0.98 when u > 0.98 / 1.04, so 5.8% of the samples; logit-normal: 0.16%
    assert abs((sigmas > 0.98).float().mean().item() - (1 - 0.98 / 1.04)) < 0.003
    assert (logit > 0.98).float().mean().item() < 0.003
    with pytest.raises(ValueError, match="weighting_scheme='flat' is not allowed; use one of logit_normal"):
        TrainingSettings(**common, weighting_scheme="flat").check()
    with pytest.raises(ValueError, match="weighting_scheme='none': model 'das' does not train by flow matching"):
        TrainingSettings(**{**common, "model": "das"}, weighting_scheme="none").check()


def test_temporal_difference_weight_adds_the_frame_difference_error_to_the_loss(prepared, tmp_path):
    from helpers.training_data import write_training_folder

    from video_diffusion_pack.training.settings import TrainingSettings
    from video_diffusion_pack.training.specification import ForwardOutput
    from video_diffusion_pack.training.trainer import Trainer

    data = write_training_folder(tmp_path / "data", "das", count=2, frames=3, index="prompts.txt")
    common = dict(model="vchitect", data=str(data), output=str(tmp_path / "run"), num_frames=2, height=32, width=32)
    plain = Trainer(TrainingSettings(**common)).spec
    stressed = Trainer(TrainingSettings(**common, temporal_difference_weight=2.0)).spec
    assert plain.recipe.temporal_difference_weight == 0.0 and stressed.recipe.temporal_difference_weight == 2.0
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(2, 4, 3, 2, 2, generator=generator)
    # an error the same in every frame: no frame-to-frame difference, the loss is the plain one
    same = ForwardOutput(prediction=target + 0.5, target=target, weights=torch.ones(2, 1, 1, 1, 1))
    assert stressed.loss(same).item() == pytest.approx(plain.loss(same).item()) == pytest.approx(0.25)
    # an error only in the last frame (e.g. an object left behind): its jump from frame 3 to 4 is counted twice more
    error = torch.zeros_like(target)
    error[:, -1] = 1.0
    moved = ForwardOutput(prediction=target + error, target=target, weights=torch.ones(2, 1, 1, 1, 1))
    assert plain.loss(moved).item() == pytest.approx(1 / 4)
    assert stressed.loss(moved).item() == pytest.approx(1 / 4 + 2.0 * 1 / 3)
    with pytest.raises(ValueError, match="temporal_difference_weight=-1.0 must be a finite number >= 0"):
        TrainingSettings(**common, temporal_difference_weight=-1.0).check()
    with pytest.raises(ValueError, match="temporal_difference_weight=1.0: only vchitect takes it, not model 'das'"):
        TrainingSettings(**{**common, "model": "das"}, temporal_difference_weight=1.0).check()


def test_text_dropout_uses_the_empty_prompt(prepared):
    spec, components, latents, conditions = prepared
    seen = {}
    hook = components["transformer"].register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True)
    try:
        for rate, source in ((1.0, "null_"), (0.0, "")):
            spec.recipe = dataclasses.replace(VCHITECT_RECIPE, text_dropout=rate)
            with torch.no_grad():
                spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(0))
            assert torch.equal(seen["encoder_hidden_states"], conditions[f"{source}prompt_embeds"])
            assert torch.equal(seen["pooled_projections"], conditions[f"{source}pooled_prompt_embeds"])
        assert not torch.equal(conditions["prompt_embeds"], conditions["null_prompt_embeds"])
    finally:
        hook.remove()
        spec.recipe = VCHITECT_RECIPE


def test_denoiser_stages_give_the_forward_step(prepared):
    spec, components, latents, conditions = prepared
    with torch.no_grad():
        full = spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(5))
        stages = spec.denoiser_stages(components, latents, conditions, generator=torch.Generator().manual_seed(5))
        state = stages.prelude()
        for block in stages.blocks:
            state = block(state)
        prediction = stages.head(state)
    assert len(stages.blocks) == len(stages.block_modules) == components["transformer"].config.num_layers
    assert torch.equal(prediction, full.prediction) and torch.equal(stages.target, full.target)


def test_bad_video_and_missing_caption_are_named(prepared):
    spec, components, _, _ = prepared
    with pytest.raises(ValueError, match="24x32.*multiples of 16"):
        spec.prepare_latents(components, {"video": torch.zeros(1, 2, 3, 24, 32)})
    with pytest.raises(ValueError, match="'caption'"):
        spec.prepare_conditions(components, {"video": torch.zeros(1, 2, 3, 32, 32)})


def test_full_training_with_repvideo_gates_saves_a_pipeline(tmp_path):
    from video_diffusion_pack.diffusers_pipelines.vchitect import VchitectRepVideoPipeline

    spec = VchitectSpecification()
    components = spec.load_components(None)
    transformer = components["transformer"]
    transformer.enable_repvideo()
    torch.manual_seed(0)
    batch = _batch(1)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    encoders = {k: {n: p.detach().clone() for n, p in components[k].named_parameters()} for k in TEXT_ENCODERS}
    gates = transformer.repvideo.learnable_gating.detach().clone()
    params, losses = _train(spec, components, latents, conditions, "full", lr=5e-3, steps=40)
    assert {n for n, _ in params} == {n for n, _ in transformer.named_parameters()}
    assert "repvideo.learnable_gating" in {n for n, _ in params}
    assert losses[-1] < losses[0] / 2, losses
    assert not torch.equal(transformer.repvideo.learnable_gating, gates)
    for key, before in encoders.items():
        for n, p in components[key].named_parameters():
            assert torch.equal(p, before[n]), (key, n)

    out = tmp_path / "export"
    spec.save(components, str(out), training_type="full")
    assert (out / "model_index.json").is_file() and not list(tmp_path.glob(".export.writing-*"))
    loaded = VchitectRepVideoPipeline.from_pretrained(str(out))
    assert loaded.transformer.config.repvideo_aggregation
    state = transformer.state_dict()
    for n, p in loaded.transformer.state_dict().items():
        assert torch.equal(p, state[n]), n
    frames = loaded(prompt="a panda", height=32, width=32, num_frames=2, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(0), output_type="pt").frames
    assert frames.shape == (1, 2, 3, 32, 32) and torch.isfinite(frames).all()


def test_lora_trains_adapters_only_and_saves_diffusers_format(tmp_path):
    from safetensors import safe_open

    spec = VchitectSpecification()
    components = spec.load_components(None)
    torch.manual_seed(0)
    batch = _batch(2)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    transformer = components["transformer"]
    base = {n: p.detach().clone() for n, p in transformer.named_parameters()}
    with pytest.raises(ValueError, match="rank=0"):
        spec.add_lora(components, rank=0)
    with pytest.raises(ValueError, match="match no linear layer"):
        spec.add_lora(components, rank=4, targets=["not_a_layer"])
    spec.add_lora(components, rank=4, alpha=8)
    lora_names = {n for n, _ in transformer.named_parameters() if "lora_" in n}
    assert any(".attn.to_q_temp.lora_A" in n for n in lora_names)
    params, losses = _train(spec, components, latents, conditions, "lora", lr=2e-2, steps=60)
    assert {n for n, _ in params} == lora_names
    assert losses[-1] < losses[0] / 2, losses
    for n, p in transformer.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n.replace(".base_layer", "")]), n

    spec.save(components, str(tmp_path / "lora"), training_type="lora")
    with safe_open(str(tmp_path / "lora" / "pytorch_lora_weights.safetensors"), "pt") as f:
        keys, metadata = set(f.keys()), f.metadata()
    assert keys and all(k.startswith("transformer.transformer_blocks.") for k in keys)
    adapter = json.loads(metadata["lora_adapter_metadata"])
    assert (adapter["transformer.r"], adapter["transformer.lora_alpha"]) == (4, 8)
