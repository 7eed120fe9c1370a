"""The LGVI training specification: InstructPix2Pix-style training of the ROVI UNet, its dropout, mask loss, export."""

import pytest
import torch

from video_diffusion_pack.training.specifications import get_specification
from video_diffusion_pack.training.specifications.lgvi import LGVI_RECIPE, LGVISpecification


def _batch(seed=0, mask=False):
    g = torch.Generator().manual_seed(seed)
    batch = {"input_video": torch.rand(1, 3, 3, 32, 48, generator=g) * 2 - 1,
             "video": torch.rand(1, 3, 3, 32, 48, generator=g) * 2 - 1,
             "instruction": ["remove the red panda"]}
    if mask:
        batch["mask"] = (torch.rand(1, 3, 1, 32, 48, generator=g) > 0.5).float()
    return batch


@pytest.fixture(scope="module")
def spec_and_components():
    spec = LGVISpecification()
    return spec, spec.load_components(None)


def _train(spec, components, latents, conditions, training_type, lr, steps):
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    params = spec.trainable_parameters(components, training_type)
    for _, p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW([p for _, p in params], lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        output = spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(5))
        loss = spec.loss(output)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if loss.item() < losses[0] / 2:
            break
    return params, losses, output


def test_conditioning_dropout_rates():
    assert isinstance(get_specification("lgvi"), LGVISpecification)
    assert LGVI_RECIPE.conditioning_dropout == 0.05
    drop_text, drop_video = LGVISpecification().conditioning_dropout(200_000, torch.Generator().manual_seed(0))
    rates = [(drop_text & ~drop_video).float().mean().item(), (drop_text & drop_video).float().mean().item(),
             (~drop_text & drop_video).float().mean().item()]
    for rate in rates:
        assert abs(rate - 0.05) < 0.002, rates
    assert abs((~drop_text & ~drop_video).float().mean().item() - 0.85) < 0.003


def test_dropout_reaches_the_unet(spec_and_components):
    spec, components = spec_and_components
    batch = _batch()
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    seen = []
    hook = components["unet"].register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs), with_kwargs=True)
    # seeds whose first uniform draw falls in each dropout band (text, both, video, none)
    wanted = {"text": (True, False), "both": (True, True), "video": (False, True), "none": (False, False)}
    found = {}
    for seed in range(400):
        g = torch.Generator().manual_seed(seed)
        torch.randint(0, 1000, (1,), generator=g)
        torch.randn(latents["latents"].shape, generator=g)
        t, v = spec.conditioning_dropout(1, g)
        key = next(k for k, val in wanted.items() if val == (bool(t), bool(v)))
        found.setdefault(key, seed)
    assert set(found) == set(wanted)
    try:
        for key, seed in found.items():
            with torch.no_grad():
                spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(seed))
            text, video = seen[-1]["encoder_hidden_states"], seen[-1]["img_condition"]
            drop_text, drop_video = wanted[key]
            reference = conditions["null_prompt_embeds"] if drop_text else conditions["prompt_embeds"]
            assert torch.equal(text, reference), key
            assert bool(video.abs().sum() == 0) is drop_video, key
    finally:
        hook.remove()


def test_full_training_and_pipeline_export(spec_and_components, tmp_path):
    from video_diffusion_pack.diffusers_pipelines.lgvi import InpaintByInstructionPipeline

    spec, components = spec_and_components
    torch.manual_seed(0)
    batch = _batch(1)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    assert latents["latents"].shape == (1, 4, 3, 4, 6) and conditions["input_latents"].shape == (1, 4, 3, 4, 6)
    params, losses, _ = _train(spec, components, latents, conditions, "full", lr=3e-3, steps=60)
    assert {n for n, _ in params} == {n for n, _ in components["unet"].named_parameters()}
    assert losses[-1] < losses[0] / 2, losses

    out = tmp_path / "export"
    spec.save(components, str(out), training_type="full")
    loaded = InpaintByInstructionPipeline.from_pretrained(str(out))
    for n, p in loaded.unet.named_parameters():
        assert torch.equal(p, components["unet"].state_dict()[n]), n
    frames = loaded(video=torch.rand(3, 32, 48, 3), prompt="remove the panda", height=32, width=48,
                    num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt").frames
    assert frames.shape[-2:] == (32, 48) and torch.isfinite(frames).all()


def test_lora_trains_only_adapters(spec_and_components, tmp_path):
    spec, components = spec_and_components
    torch.manual_seed(0)
    batch = _batch(2)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    base = {n: p.detach().clone() for n, p in components["unet"].named_parameters()}
    spec.add_lora(components, rank=4)
    lora = {n for n, _ in components["unet"].named_parameters() if "lora_" in n}
    params, losses, _ = _train(spec, components, latents, conditions, "lora", lr=3e-2, steps=60)
    assert lora and {n for n, _ in params} == lora
    assert losses[-1] < losses[0] / 2, losses
    for n, p in components["unet"].named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n.replace(".base_layer", "")]), n
    with pytest.raises(ValueError, match="rank=0"):
        spec.add_lora(components, rank=0)

    spec.save(components, str(tmp_path / "lora"), training_type="lora")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "lora" / "pytorch_lora_weights.safetensors"))
    assert saved and all(k.startswith("unet.") and "lora" in k for k in saved)


def test_mask_decoder_loss_is_added_and_learns():
    from video_diffusion_pack.diffusers_pipelines.lgvi.tiny import tiny_rovi_unet_config
    from video_diffusion_pack.models.rovi_unet import RoviUNet3DConditionModel

    spec = LGVISpecification()
    components = spec.load_components(None)
    torch.manual_seed(0)
    components["unet"] = RoviUNet3DConditionModel(**tiny_rovi_unet_config(), mask_decoder_type="MaskDecoder")
    batch = _batch(3, mask=True)
    batch["mask"] = torch.zeros(1, 3, 1, 32, 48)
    batch["mask"][..., :, :24] = 1.0  # the left half is the region to edit
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    with torch.no_grad():
        output = spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(5))
    plain = ((output.prediction - output.target) ** 2).mean()
    assert set(output.extra_losses) == {"mask"}
    assert torch.allclose(spec.loss(output), plain + output.extra_losses["mask"])
    start = output.extra_losses["mask"].item()
    _, _, output = _train(spec, components, latents, conditions, "full", lr=1e-3, steps=15)
    assert output.extra_losses["mask"].item() < 0.8 * start
    # without a mask column the head's loss is not asked for
    no_mask = {k: v for k, v in conditions.items() if k != "mask"}
    assert spec.forward(components, latents, no_mask, generator=torch.Generator().manual_seed(5)).extra_losses == {}


def test_bad_input_is_named(spec_and_components):
    spec, components = spec_and_components
    with pytest.raises(ValueError, match="multiples of 8"):
        spec.prepare_latents(components, {"video": torch.zeros(1, 3, 3, 30, 48)})
    with pytest.raises(ValueError, match="'input_video'"):
        spec.prepare_conditions(components, {"video": torch.zeros(1, 3, 3, 32, 48), "instruction": ["x"]})
    bad = _batch()
    bad["mask"] = torch.zeros(1, 2, 1, 32, 48)
    with pytest.raises(ValueError, match="mask has shape"):
        spec.prepare_conditions(components, bad)
