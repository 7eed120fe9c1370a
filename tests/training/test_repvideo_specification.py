"""The RepVideo (CogVideoX-2B) training specification: SAT's v-prediction, the gates train, full and LoRA export."""

import dataclasses
import json

import pytest
import torch

from video_diffusion_pack.training.specifications import get_specification
from video_diffusion_pack.training.specifications.repvideo import REPVIDEO_RECIPE, RepVideoSpecification


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.rand(1, 9, 3, 32, 32, generator=g) * 2 - 1, "caption": ["a corgi running on a beach"]}


@pytest.fixture(scope="module")
def prepared():
    spec = RepVideoSpecification()
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
    optimiser = torch.optim.AdamW([p for _, p in params], lr=lr, betas=REPVIDEO_RECIPE.adam_betas)
    losses = []
    for _ in range(steps):
        loss = spec.loss(spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(3)))
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], REPVIDEO_RECIPE.max_grad_norm)
        optimiser.step()
        losses.append(loss.item())
        if loss.item() < losses[0] / 2:
            break
    return params, losses


def test_registry_scheduler_and_dropout_rate(prepared):
    from diffusers import CogVideoXDPMScheduler

    spec, components, _, _ = prepared
    assert isinstance(get_specification("repvideo"), RepVideoSpecification)
    scheduler = components["scheduler"]
    assert isinstance(scheduler, CogVideoXDPMScheduler)
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.snr_shift_scale == 3.0
    # zero terminal SNR: the last training step is pure noise
    assert scheduler.alphas_cumprod[-1].item() < 1e-6
    dropped = spec.text_dropout_mask(200_000, torch.Generator().manual_seed(0)).float().mean().item()
    assert REPVIDEO_RECIPE.text_dropout == 0.1 and abs(dropped - 0.1) < 0.003


def test_loss_is_the_v_mse(prepared):
    """x0 from v with weight 1/(1 - alpha_bar) is the same loss as the plain MSE on v (SAT's VWeighting)."""
    spec, components, latents, conditions = prepared
    scheduler = components["scheduler"]
    seen = {}
    hook = components["transformer"].register_forward_hook(lambda m, args, out: seen.update(v=out[0]))
    try:
        with torch.no_grad():
            out = spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(7),
                               training=False)
    finally:
        hook.remove()
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, 1000, (1,), generator=g)
    noise = torch.randn(latents["latents"].shape, generator=g)
    v_target = scheduler.get_velocity(latents["latents"], noise, t)
    expected = ((seen["v"] - v_target) ** 2).mean()
    assert torch.allclose(spec.loss(out), expected, rtol=1e-4)


def test_text_dropout_zeroes_the_prompt(prepared):
    spec, components, latents, conditions = prepared
    seen = {}
    hook = components["transformer"].register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True)
    try:
        for rate, zero in ((1.0, True), (0.0, False)):
            spec.recipe = dataclasses.replace(REPVIDEO_RECIPE, text_dropout=rate)
            with torch.no_grad():
                spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(0))
            assert bool(seen["encoder_hidden_states"].abs().sum() == 0) is zero
    finally:
        hook.remove()
        spec.recipe = REPVIDEO_RECIPE


def test_bad_frames_and_missing_caption_are_named(prepared):
    spec, components, _, _ = prepared
    with pytest.raises(ValueError, match="8 frames.*4k\\+1"):
        spec.prepare_latents(components, {"video": torch.zeros(1, 8, 3, 32, 32)})
    with pytest.raises(ValueError, match="'caption'"):
        spec.prepare_conditions(components, {"video": torch.zeros(1, 9, 3, 32, 32)})


def test_full_training_moves_the_gates_and_saves_a_pipeline(prepared, tmp_path):
    from video_diffusion_pack.diffusers_pipelines.repvideo import CogVideoXRepVideoPipeline

    spec, components, latents, conditions = prepared
    transformer = components["transformer"]
    encoder = {n: p.detach().clone() for n, p in components["text_encoder"].named_parameters()}
    gates = transformer.repvideo.learnable_gating.detach().clone()
    params, losses = _train(spec, components, latents, conditions, "full", lr=5e-3, steps=40)
    assert {n for n, _ in params} == {n for n, _ in transformer.named_parameters()}
    assert "repvideo.learnable_gating" in {n for n, _ in params}
    assert losses[-1] < losses[0] / 2, losses
    assert not torch.equal(transformer.repvideo.learnable_gating, gates)
    for n, p in components["text_encoder"].named_parameters():
        assert torch.equal(p, encoder[n]), n

    out = tmp_path / "export"
    spec.save(components, str(out), training_type="full")
    assert (out / "model_index.json").is_file() and not list(tmp_path.glob(".export.writing-*"))
    loaded = CogVideoXRepVideoPipeline.from_pretrained(str(out))
    assert torch.equal(loaded.transformer.repvideo.learnable_gating, transformer.repvideo.learnable_gating)
    frames = loaded(prompt="a corgi", height=32, width=32, num_frames=9, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(0), output_type="pt").frames
    assert frames.shape == (1, 9, 3, 32, 32) and torch.isfinite(frames).all()


def test_lora_trains_adapters_only_and_saves_diffusers_format(tmp_path):
    from safetensors import safe_open

    spec = RepVideoSpecification()
    components = spec.load_components(None)
    torch.manual_seed(0)
    batch = _batch(1)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    transformer = components["transformer"]
    base = {n: p.detach().clone() for n, p in transformer.named_parameters()}
    with pytest.raises(ValueError, match="rank=0"):
        spec.add_lora(components, rank=0)
    spec.add_lora(components, rank=4)
    lora_names = {n for n, _ in transformer.named_parameters() if "lora_" in n}
    params, losses = _train(spec, components, latents, conditions, "lora", lr=3e-2, steps=60)
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
    assert (adapter["transformer.r"], adapter["transformer.lora_alpha"]) == (4, 4)
