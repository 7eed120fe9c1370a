"""A short LoRA training run on a family's embedded model, as the trainer drives a specification, for the LoRA tests."""

import pathlib

import torch

from video_diffusion_pack.training.specifications import get_specification

LORA_FILE = "pytorch_lora_weights.safetensors"
RANK, ALPHA = 4, 8


def lora_batch(family: str) -> dict:
    """One fixed raw batch of ``family`` (random videos in [-1, 1] and a caption or instruction)."""
    g = torch.Generator().manual_seed(0)
    if family == "vchitect":
        return {"video": torch.rand(1, 2, 3, 32, 32, generator=g) * 2 - 1, "caption": ["a red panda"]}
    if family == "repvideo":
        return {"video": torch.rand(1, 9, 3, 32, 32, generator=g) * 2 - 1, "caption": ["a corgi running"]}
    if family == "das":
        return {"video": torch.rand(1, 9, 3, 32, 32, generator=g) * 2 - 1,
                "tracking_video": torch.rand(1, 9, 3, 32, 32, generator=g) * 2 - 1, "caption": ["a red panda"]}
    return {"input_video": torch.rand(1, 3, 3, 32, 48, generator=g) * 2 - 1,
            "video": torch.rand(1, 3, 3, 32, 48, generator=g) * 2 - 1, "instruction": ["remove the red panda"]}


def train_lora(family: str, folder, steps: int = 4, lr: float = 1e-2) -> pathlib.Path:
    """Trains a rank-4 (alpha 8) LoRA of ``family``'s embedded model for ``steps`` AdamW steps at a high ``lr`` on one
    batch, saves it with the specification into ``folder``; returns the LoRA file."""
    spec = get_specification(family)
    components = spec.load_components(None)
    batch = lora_batch(family)
    latents, conditions = spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)
    spec.add_lora(components, rank=RANK, alpha=ALPHA)
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    params = [p for _, p in spec.trainable_parameters(components, "lora")]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=lr)
    for _ in range(steps):
        loss = spec.loss(spec.forward(components, latents, conditions, generator=torch.Generator().manual_seed(3)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    spec.save(components, str(folder), training_type="lora")
    return pathlib.Path(folder) / LORA_FILE
