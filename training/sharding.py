"""The FSDP sharding plan of a specification's components: which module classes are FSDP units, what stays whole.

One plan serves two users. On GPUs the trainer gives it to accelerate's ``FullyShardedDataParallelPlugin``
(``fsdp_version=2``, ``transformer_based_wrap`` on the plan's class names). On CPU, where accelerate does not run
FSDP, :func:`apply_fully_shard` applies the same plan with ``torch.distributed.fsdp.fully_shard`` so a 2-process gloo
run can prove it (``tests/training/test_distributed.py``).

The plan, for every family:

- **units**: the classes of the denoiser's transformer blocks, i.e. the members of each ``nn.ModuleList`` child whose
  name ends in ``blocks`` (Vchitect ``transformer_blocks``; CogVideoX-RepVideo ``transformer_blocks``; DaS
  ``transformer_blocks`` and the control copy ``transformer_blocks_copy``; LGVI's UNet ``down_blocks`` /
  ``up_blocks``). Each block is gathered for its own forward and backward and resharded after, which is where the
  memory of a large denoiser goes down.
- **root**: the denoiser itself, holding what is left (patch and time embeddings, norms, the output projection,
  RepVideo's gates, a UNet's mid block), sharded as one unit.
- **replicated**: every other component (VAE, text encoders): frozen, used under ``no_grad`` to encode, and whole on
  every process (with ``--precompute`` not loaded at all).
"""

import dataclasses
from typing import Any, Mapping, Tuple

from torch import nn

__all__ = ["ShardingPlan", "apply_fully_shard", "block_lists", "fsdp_plugin", "sharding_plan"]


def block_lists(model: nn.Module):
    """The model's lists of blocks: every ``nn.ModuleList`` child whose name ends in ``blocks``."""
    return [child for name, child in model.named_children() if isinstance(child, nn.ModuleList)
            and name.endswith("blocks")]


@dataclasses.dataclass(frozen=True)
class ShardingPlan:
    """FSDP units of the denoiser (``unit_classes``) and the components kept whole on every process."""

    denoiser_key: str
    unit_classes: Tuple[type, ...]
    replicated: Tuple[str, ...]

    @property
    def unit_class_names(self) -> Tuple[str, ...]:
        return tuple(cls.__name__ for cls in self.unit_classes)


def sharding_plan(spec, components: Mapping[str, Any]) -> ShardingPlan:
    """The plan of ``spec``'s ``components`` (see the module docstring); a ValueError when the denoiser has no
    block list to make units of."""
    denoiser = components[spec.denoiser_key]
    classes = []
    for blocks in block_lists(denoiser):
        for block in blocks:
            if type(block) not in classes:
                classes.append(type(block))
    if not classes:
        raise ValueError(f"the {spec.name} denoiser {type(denoiser).__name__} has no block list (a ModuleList named "
                         "...blocks) to make FSDP units of")
    replicated = tuple(k for k, v in components.items() if k != spec.denoiser_key and isinstance(v, nn.Module))
    return ShardingPlan(spec.denoiser_key, tuple(classes), replicated)


def apply_fully_shard(denoiser: nn.Module, plan: ShardingPlan, mesh=None) -> nn.Module:
    """Shard ``denoiser`` in place with ``torch.distributed.fsdp.fully_shard``: each unit-class module, then the root.

    Returns the denoiser (now an FSDP module: its parameters are DTensors sharded over ``mesh``).
    """
    from torch.distributed.fsdp import fully_shard

    units = [m for m in denoiser.modules() if isinstance(m, plan.unit_classes) and m is not denoiser]
    for module in units:
        fully_shard(module, mesh=mesh)
    fully_shard(denoiser, mesh=mesh)
    return denoiser


def fsdp_plugin(plan: ShardingPlan):
    """accelerate's FSDP plugin for ``plan``: FSDP2, the unit classes as ``transformer_based_wrap``, a full state dict
    for checkpoints and the export."""
    from accelerate import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                          transformer_cls_names_to_wrap=list(plan.unit_class_names),
                                          reshard_after_forward=True, state_dict_type="FULL_STATE_DICT")
