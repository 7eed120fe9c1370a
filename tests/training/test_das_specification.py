"""The DaS training specification: official recipe, only the tracking branch trains, complete pipeline export."""

import dataclasses

import pytest
import torch

from video_diffusion_pack.training.specifications import get_specification
from video_diffusion_pack.training.specifications.das import DAS_RECIPE, DaSSpecification

BRANCH = ("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear.")


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.rand(1, 9, 3, 32, 32, generator=g) * 2 - 1,
            "tracking_video": torch.rand(1, 9, 3, 32, 32, generator=g) * 2 - 1,
            "caption": ["a red panda rolling down a hill"]}


@pytest.fixture(scope="module")
def prepared():
    spec = DaSSpecification()
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
    optimiser = torch.optim.AdamW([p for _, p in params], lr=lr, betas=DAS_RECIPE.adam_betas)
    losses = []
    for _ in range(steps):
        loss = spec.loss(spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(3)))
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], DAS_RECIPE.max_grad_norm)
        optimiser.step()
        losses.append(loss.item())
        if loss.item() < losses[0] / 2:
            break
    return params, losses


def test_registry_and_official_recipe():
    assert isinstance(get_specification("das"), DaSSpecification)
    assert (DAS_RECIPE.learning_rate, DAS_RECIPE.adam_betas, DAS_RECIPE.weight_decay) == (1e-4, (0.9, 0.95), 1e-3)
    assert (DAS_RECIPE.lr_scheduler, DAS_RECIPE.lr_warmup_steps, DAS_RECIPE.max_grad_norm) == (
        "cosine_with_restarts", 100, 1.0)
    assert DAS_RECIPE.noised_image_dropout == 0.05
    assert (DAS_RECIPE.image_noise_log_mean, DAS_RECIPE.image_noise_log_std) == (-3.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DAS_RECIPE.learning_rate = 1.0


def test_dropout_rate_and_first_frame_sigma():
    spec = DaSSpecification()
    dropped = spec.image_dropout_mask(200_000, torch.Generator().manual_seed(0)).float().mean().item()
    assert abs(dropped - 0.05) < 0.002
    log_sigma = spec.sample_image_noise_sigma(200_000, torch.Generator().manual_seed(1)).log()
    assert abs(log_sigma.mean().item() + 3.0) < 0.01
    assert abs(log_sigma.std().item() - 0.5) < 0.01


def test_dropout_zeroes_image_and_tracking_image_latents(prepared):
    spec, components, latents, conditions = prepared
    seen = {}
    hook = components["transformer"].register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True)
    try:
        for rate, expect_zero in ((1.0, True), (0.0, False)):
            spec.recipe = dataclasses.replace(DAS_RECIPE, noised_image_dropout=rate)
            with torch.no_grad():
                spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(0))
            image = seen["hidden_states"][:, :, 4:]
            tracking_image = seen["tracking_maps"][:, :, 4:]
            assert bool(image.abs().sum() == 0) is expect_zero
            assert bool(tracking_image.abs().sum() == 0) is expect_zero
            # the tracking video itself is never dropped
            assert seen["tracking_maps"][:, :, :4].abs().sum() > 0
    finally:
        hook.remove()
        spec.recipe = DAS_RECIPE


def test_bad_frame_count_is_named(prepared):
    spec, components, _, _ = prepared
    with pytest.raises(ValueError, match="8 frames.*4k\\+1"):
        spec.prepare_latents(components, {"video": torch.zeros(1, 8, 3, 32, 32)})
    with pytest.raises(ValueError, match="'tracking_video'"):
        spec.prepare_conditions(components, {"video": torch.zeros(1, 9, 3, 32, 32), "caption": ["x"]})


def test_full_training_moves_only_the_tracking_branch_and_saves_a_pipeline(prepared, tmp_path):
    from video_diffusion_pack.diffusers_pipelines.das import DaSPipeline

    spec, components, latents, conditions = prepared
    transformer = components["transformer"]
    before = {n: p.detach().clone() for n, p in transformer.named_parameters()}
    params, losses = _train(spec, components, latents, conditions, "full", lr=1e-3, steps=40)
    names = {n for n, _ in params}
    assert names == {n for n in before if n.startswith(BRANCH)}
    assert {id(p) for _, p in params} == {id(p) for p in transformer.tracking_parameters()}
    assert losses[-1] < losses[0] / 2, losses
    for n, p in transformer.named_parameters():
        if n in names:
            continue
        assert torch.equal(p, before[n]), n
    assert any(not torch.equal(p, before[n]) for n, p in params)

    out = tmp_path / "export"
    spec.save(components, str(out), training_type="full")
    assert (out / "model_index.json").is_file() and not list(tmp_path.glob(".export.writing-*"))
    loaded = DaSPipeline.from_pretrained(str(out))
    for n, p in loaded.transformer.named_parameters():
        assert torch.equal(p, transformer.state_dict()[n]), n
    frames = loaded(image=torch.rand(3, 32, 32), prompt="a panda", tracking_video=torch.rand(9, 32, 32, 3),
                    height=32, width=32, num_frames=9, num_inference_steps=2, guidance_scale=1.0,
                    generator=torch.Generator().manual_seed(0), output_type="pt").frames
    assert frames.shape == (1, 9, 3, 32, 32) and torch.isfinite(frames).all()


def test_lora_trains_adapters_on_the_control_branch_only(tmp_path):
    spec = DaSSpecification()
    components = spec.load_components(None)
    torch.manual_seed(0)
    batch = _batch(1)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    transformer = components["transformer"]
    base = {n: p.detach().clone() for n, p in transformer.named_parameters()}
    spec.add_lora(components, rank=4)
    lora_names = {n for n, _ in transformer.named_parameters() if "lora_" in n}
    assert lora_names and all(n.startswith("transformer_blocks_copy.") for n in lora_names)
    params, losses = _train(spec, components, latents, conditions, "lora", lr=2e-2, steps=60)
    assert {n for n, _ in params} == lora_names
    assert losses[-1] < losses[0] / 2, losses
    for n, p in transformer.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n.replace(".base_layer", "")]), n
    with pytest.raises(ValueError, match="rank=0"):
        spec.add_lora(components, rank=0)

    spec.save(components, str(tmp_path / "lora"), training_type="lora")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "lora" / "pytorch_lora_weights.safetensors"))
    assert saved and all(k.startswith("transformer.transformer_blocks_copy.") for k in saved)
