"""One process of the FSDP-plan proof (run with `torchrun --nproc-per-node 2 fsdp_plan_worker.py OUT FAMILY...`).

For each family: the embedded model's denoiser trains 3 steps on two samples twice, once whole in this process (the
two samples accumulated, the loss and gradient their mean) and once sharded by the specification's plan
(``training/sharding.py``) with ``fully_shard`` over the gloo group, each process taking one sample. Rank 0 writes
both loss curves, the largest parameter difference after the 3 steps and the plan to ``OUT`` (JSON).
"""

import copy
import json
import sys

import torch
import torch.distributed as dist

from video_diffusion_pack.training.sharding import apply_fully_shard, sharding_plan
from video_diffusion_pack.training.specifications import get_specification

STEPS, LEARNING_RATE = 3, 1e-3


def _samples(name):
    """Two raw one-sample batches at the embedded model's clip geometry."""
    g = torch.Generator().manual_seed(7)
    video = {"vchitect": (2, 32, 32), "repvideo": (9, 32, 32), "das": (9, 32, 32), "lgvi": (3, 32, 48)}[name]
    samples = []
    for i in range(2):
        frames, height, width = video
        batch = {"video": torch.rand(1, frames, 3, height, width, generator=g) * 2 - 1,
                 "caption": [f"a red panda rolling down a hill {i}"]}
        if name == "das":
            batch["tracking_video"] = torch.rand(1, frames, 3, height, width, generator=g) * 2 - 1
        if name == "lgvi":
            batch["input_video"] = torch.rand(1, frames, 3, height, width, generator=g) * 2 - 1
            batch["instruction"] = [f"remove the square {i}"]
        samples.append(batch)
    return samples


def _trainable(spec, components):
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    parameters = [p for _, p in spec.trainable_parameters(components, "full")]
    for p in parameters:
        p.requires_grad_(True)
    return torch.optim.AdamW(parameters, lr=LEARNING_RATE)


def _step_generator(step, sample):
    return torch.Generator().manual_seed(1000 * step + sample)


def prepare(name):
    """Specification, components and the two samples' latents and conditions (before any process group exists: the
    embedded builders write through transformers' save_pretrained, which writes on rank 0 only inside a group)."""
    spec = get_specification(name)
    components = spec.load_components(None)
    inputs = []
    for index, batch in enumerate(_samples(name)):
        torch.manual_seed(index)
        with torch.no_grad():
            inputs.append((spec.prepare_latents(components, batch), spec.prepare_conditions(components, batch)))
    return spec, components, inputs


def whole(spec, components, inputs):
    """The single-process reference: both samples each step, the loss and gradient their mean."""
    components = {**components, spec.denoiser_key: copy.deepcopy(components[spec.denoiser_key])}
    optimiser = _trainable(spec, components)
    losses = []
    for step in range(STEPS):
        total = 0.0
        for sample, (latents, conditions) in enumerate(inputs):
            loss = spec.loss(spec.forward(components, latents, conditions,
                                          generator=_step_generator(step, sample))) / len(inputs)
            loss.backward()
            total += loss.item()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(total)
    return losses, components[spec.denoiser_key].state_dict()


def sharded(spec, components, inputs, rank, world):
    """The same steps with the denoiser sharded by the plan, this process taking sample ``rank``."""
    plan = sharding_plan(spec, components)
    denoiser = apply_fully_shard(copy.deepcopy(components[spec.denoiser_key]), plan)
    components = {**components, spec.denoiser_key: denoiser}
    optimiser = _trainable(spec, components)
    latents, conditions = inputs[rank]
    losses = []
    for step in range(STEPS):
        loss = spec.loss(spec.forward(components, latents, conditions, generator=_step_generator(step, rank)))
        loss.backward()  # fully_shard reduce-scatters the gradients as their mean over the processes
        optimiser.step()
        optimiser.zero_grad()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(mean.item() / world)
    full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in denoiser.state_dict().items()}
    return plan, losses, full


def main(out, names):
    prepared = {name: prepare(name) for name in names}
    references = {name: whole(*prepared[name]) for name in names}
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    report = {}
    for name in names:
        plan, losses, state = sharded(*prepared[name], rank, world)
        reference_losses, reference_state = references[name]
        shard_counts = {}
        for module in prepared[name][1][plan.denoiser_key].modules():
            if isinstance(module, plan.unit_classes):
                shard_counts[type(module).__name__] = shard_counts.get(type(module).__name__, 0) + 1
        report[name] = {"units": list(plan.unit_class_names), "unit_counts": shard_counts,
                        "replicated": list(plan.replicated), "sharded_losses": losses,
                        "whole_losses": reference_losses,
                        "max_parameter_difference": max((state[k] - reference_state[k]).abs().max().item()
                                                        for k in reference_state),
                        "world": world}
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(report, handle)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
