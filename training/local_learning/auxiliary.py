"""The auxiliary networks of the local groups: copies of the denoiser's own blocks and head, run through its callables.

An auxiliary network never re-implements a block: it holds parameter copies of real blocks (and of the output head)
and runs the specification's own block and head callables with those parameters swapped in
(``torch.func.functional_call``), so any denoiser that gives :class:`~..specification.DenoiserStages` gets auxiliary
networks of its own architecture, predicting the same diffusion target.

- ``auglocal``: freshly initialised copies of blocks selected uniformly from the later groups (AugLocal's rule).
- ``man``: a frozen EMA copy of the first block of the next group plus a trainable copy of that block, outputs summed
  (``y = LB(h) + EMA(h)``). The paper calls the trainable part a "learnable bias"; its official code, followed here,
  makes it a full trainable copy of the block.
- ``hpff`` and ``infopro``: the output head alone.

Every auxiliary network ends in a copy of the output head, starting from the main head's current weights (the main
head already maps hidden states to the target; block copies follow the mode's own rule).
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

# RepVideo's cross-layer window travels in the state under this key (Vchitect-2.0 and CogVideoX backbones); its
# gates belong to the main network's later blocks, so the auxiliary networks run their block copies without it
AGGREGATION_STATE_KEY = "repvideo_window"


class _Bound(nn.Module):
    """Holds real modules so that ``functional_call`` can swap their parameters while a callable runs."""

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__()
        self.targets = nn.ModuleList(modules)

    def forward(self, fn: Callable, *args):
        return fn(*args)


def call_with_parameters(real: Sequence[nn.Module], copies: Sequence[nn.Module], fn: Callable, *args):
    """``fn(*args)`` with the parameters and buffers of ``real[k]`` replaced by those of ``copies[k]``."""
    values: Dict[str, torch.Tensor] = {}
    for index, module in enumerate(copies):
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            values[f"targets.{index}.{name}"] = tensor
    return torch.func.functional_call(_Bound(real), values, (fn, *args), strict=True)


def reinitialise(module: nn.Module) -> nn.Module:
    """Fresh weights for every submodule that defines ``reset_parameters`` (an architecture copy, no weights kept)."""
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
    return module


def aggregation_free(state: Dict) -> Dict:
    """The state an auxiliary network reads: the same tensors, without the main network's aggregation window."""
    return {key: value for key, value in state.items() if key != AGGREGATION_STATE_KEY}


class AuxiliaryNetwork(nn.Module):
    """One non-final group's auxiliary network: block copies (by the index of the block they copy) and a head copy.

    Args:
        block_indices (`Sequence[int]`): indices of the real blocks whose callables the copies run, in order.
        blocks (`Sequence[nn.Module]`): the trainable copies, one per index.
        head (`Sequence[nn.Module]`): copies of the head modules.
        ema_blocks (`Sequence[nn.Module]`, *optional*): MAN's frozen EMA copies, run on the same input as ``blocks``
            and summed with them.
    """

    def __init__(self, block_indices: Sequence[int], blocks: Sequence[nn.Module], head: Sequence[nn.Module],
                 ema_blocks: Optional[Sequence[nn.Module]] = None):
        super().__init__()
        self.block_indices = list(block_indices)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.ModuleList(head)
        self.ema_blocks = nn.ModuleList(ema_blocks or [])
        for parameter in self.ema_blocks.parameters():
            parameter.requires_grad_(False)

    def forward(self, stages, state: Dict) -> torch.Tensor:
        """The auxiliary prediction (shape of ``stages.target``) from a group's output state."""
        state = aggregation_free(state)
        for position, index in enumerate(self.block_indices):
            real = [stages.block_modules[index]]
            out = call_with_parameters(real, [self.blocks[position]], stages.blocks[index], state)
            if self.ema_blocks:
                ema = call_with_parameters(real, [self.ema_blocks[position]], stages.blocks[index], state)
                out = {**out, "hidden_states": out["hidden_states"] + ema["hidden_states"]}
            state = out
        return call_with_parameters(stages.head_modules, self.head, stages.head, state)

    @torch.no_grad()
    def update_ema(self, block_modules: Sequence[nn.Module], momentum: float) -> None:
        """MAN: ``ema = momentum * ema + (1 - momentum) * live`` for each EMA copy, from the block it copies."""
        for position, index in enumerate(self.block_indices):
            live = dict(block_modules[index].named_parameters())
            for name, ema in self.ema_blocks[position].named_parameters():
                ema.mul_(momentum).add_(live[name].detach().to(ema.dtype), alpha=1.0 - momentum)


def _copies(modules: Sequence[nn.Module], fresh: bool) -> List[nn.Module]:
    made = []
    for module in modules:
        duplicate = copy.deepcopy(module)
        for parameter in duplicate.parameters():
            parameter.requires_grad_(True)
        made.append(reinitialise(duplicate) if fresh else duplicate)
    return made


def build_auxiliary_networks(config, block_modules: Sequence[nn.Module],
                             head_modules: Sequence[nn.Module]) -> nn.ModuleList:
    """The auxiliary network of every non-final group for ``config`` (a ``LocalLearningConfig``)."""
    bounds = config.group_bounds(len(block_modules))
    if config.mode == "auglocal":
        selections = config.auglocal_selection(len(block_modules))
    elif config.mode == "man":
        selections = [[end] for _, end in bounds[:-1]]  # the first block of the next group
    else:
        selections = [[] for _ in bounds[:-1]]
    networks = []
    for indices in selections:
        blocks = _copies([block_modules[i] for i in indices], fresh=config.mode == "auglocal")
        ema = _copies([block_modules[i] for i in indices], fresh=False) if config.mode == "man" else None
        networks.append(AuxiliaryNetwork(indices, blocks, _copies(head_modules, fresh=False), ema))
    return nn.ModuleList(networks)
