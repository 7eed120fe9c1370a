"""The local-learning training step: the denoiser run group by group, one local loss and ``backward`` per group.

Each group runs on its input state with every tensor detached, computes its local loss (its auxiliary network's, or
the real head's in the last group), calls ``backward`` and only then hands its detached output to the next group, so
the autograd graph of one group (plus its auxiliary network) is alive at a time and no gradient crosses a group
boundary. The optimiser steps once per batch, outside this step, as in the official code.

HPFF adds a cascade path: group ``i`` also runs on the output of group ``i - 1`` that still carries group ``i - 1``'s
graph, so its loss reaches exactly groups ``i - 1`` and ``i``. The official code recomputes that window; here group
``i - 1``'s independent-path graph is kept (``retain_graph``) and reused, which gives the same values and gradients
with one group forward less. The two paths' weighted losses are backpropagated one after the other (the cascade
first, which frees the window), so at most two groups' graphs are alive at once instead of three; the gradients are
those of their sum. Group 0 has no loss of its own and trains through the cascade of group 1 (as there).
Both paths use one auxiliary network per group (the official code has a classifier per path); the cascade path's
auxiliary runs on n x n spatial patches of the tokens, each patch predicting its own region of the target, and the
patch losses are averaged (the paper's Patch Feature Fusion; the official CIFAR code gives each quadrant its own
decoder and sums the four losses).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from einops import rearrange
from torch import nn

from .auxiliary import build_auxiliary_networks
from .config import LocalLearningConfig

LossFn = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
BackwardFn = Callable[..., None]


def _plain_backward(loss: torch.Tensor, retain_graph: bool = False) -> None:
    loss.backward(retain_graph=retain_graph)


def detached(state: Dict) -> Dict:
    """The state cut from the autograd graph: tensors detached, objects with ``detached()`` (RepVideo's window)
    replaced by their detached copy, everything else (shapes, ``None``) as it is."""
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach()
        elif callable(getattr(value, "detached", None)):
            out[key] = value.detached()
        else:
            out[key] = value
    return out


def spatial_patches(state: Dict, target: torch.Tensor, weights: Optional[torch.Tensor],
                    patches: int) -> Iterator[Tuple[Dict, torch.Tensor, Optional[torch.Tensor]]]:
    """HPFF's n x n split: ``(state, target, weights)`` of each spatial patch, the tokens of a patch in grid order.

    The state must hold ``hidden_states`` ``[B*F, S, D]`` on a row-major token grid and ``shape`` ``(B, F, H, W)`` in
    latent pixels (the Vchitect-2.0 stages); ``target`` is ``[..., H, W]``.
    """
    if "hidden_states" not in state or "shape" not in state:
        raise ValueError(
            f"patches={patches} needs a state with hidden_states [B*F, S, D] and shape (B, F, H, W); this denoiser's"
            f" state has {sorted(state)}: use patches=1"
        )
    hidden = state["hidden_states"]
    batch, frames, height, width = state["shape"]
    tokens = hidden.shape[1]
    patch = round(math.sqrt(height * width / tokens))
    grid_h, grid_w = height // max(patch, 1), width // max(patch, 1)
    if patch < 1 or grid_h * grid_w != tokens or grid_h % patches or grid_w % patches:
        raise ValueError(
            f"patches={patches}: the {grid_h}x{grid_w} token grid of a {height}x{width} latent cannot be split into"
            f" {patches}x{patches} equal patches; use a divisor of both sides"
        )
    grid = rearrange(hidden, "n (h w) d -> n h w d", h=grid_h)
    rows, cols = grid_h // patches, grid_w // patches
    per_pixel = weights is not None and weights.shape[-2:] == target.shape[-2:]
    for a in range(patches):
        for b in range(patches):
            sub = grid[:, a * rows:(a + 1) * rows, b * cols:(b + 1) * cols]
            pixel_rows = slice(a * rows * patch, (a + 1) * rows * patch)
            pixel_cols = slice(b * cols * patch, (b + 1) * cols * patch)
            patch_state = {**state, "hidden_states": rearrange(sub, "n h w d -> n (h w) d"),
                           "shape": (batch, frames, rows * patch, cols * patch)}
            patch_weights = weights[..., pixel_rows, pixel_cols] if per_pixel else weights
            yield patch_state, target[..., pixel_rows, pixel_cols], patch_weights


@dataclasses.dataclass
class LocalStepResult:
    """What one local-learning step measured (tensors detached, not synchronised to the host).

    ``loss`` is the main network's own loss (the real head on the last group's output); ``group_losses[i]`` is the
    local loss group ``i`` backpropagated (``None`` for HPFF's group 0, which has none).
    """

    loss: torch.Tensor
    group_losses: List[Optional[torch.Tensor]]


class LocalLearner(nn.Module):
    """The auxiliary networks of one run and the per-group step; not part of the exported model.

    Args:
        config (`LocalLearningConfig`): the mode and its options.
        block_modules (`Sequence[nn.Module]`): the denoiser's blocks (``DenoiserStages.block_modules``).
        head_modules (`Sequence[nn.Module]`): the modules of its output head (``DenoiserStages.head_modules``).
    """

    def __init__(self, config: LocalLearningConfig, block_modules: Sequence[nn.Module],
                 head_modules: Sequence[nn.Module]):
        super().__init__()
        self.config = config
        self.num_blocks = len(block_modules)
        self.bounds = config.group_bounds(self.num_blocks)
        # hpff's group 0 has no local loss, so it has no auxiliary network
        groups = range(1, len(self.bounds) - 1) if config.mode == "hpff" else range(len(self.bounds) - 1)
        networks = build_auxiliary_networks(config, block_modules, head_modules)
        self.auxiliary = nn.ModuleDict({str(index): networks[index] for index in groups})

    def trainable_parameters(self) -> List[nn.Parameter]:
        """The auxiliary networks' parameters the optimiser updates (MAN's EMA copies excluded)."""
        return [p for p in self.auxiliary.parameters() if p.requires_grad]

    def _run_group(self, stages, index: int, state: Dict) -> Dict:
        start, end = self.bounds[index]
        for block in range(start, end):
            state = stages.blocks[block](state)
        return state

    def _auxiliary_loss(self, stages, index: int, state: Dict, loss_fn: LossFn, patches: int = 1) -> torch.Tensor:
        network = self.auxiliary[str(index)]
        if patches == 1:
            return loss_fn(network(stages, state), stages.target, stages.weights)
        losses = [loss_fn(network(stages, patch_state), target, weights)
                  for patch_state, target, weights in spatial_patches(state, stages.target, stages.weights, patches)]
        return torch.stack(losses).mean()

    def step(self, stages, loss_fn: LossFn, backward: Optional[BackwardFn] = None) -> LocalStepResult:
        """Forward and backward of one batch, group by group; gradients accumulate in ``.grad`` as usual.

        Args:
            stages (`DenoiserStages`): the batch's denoiser stages.
            loss_fn (`Callable`): ``loss_fn(prediction, target, weights)`` -> scalar (the specification's loss).
            backward (`Callable`, *optional*): ``backward(loss, retain_graph=...)``, e.g. accelerate's
                ``accelerator.backward`` (mixed-precision scaling, division by the accumulation steps); default
                ``loss.backward``.
        """
        if len(stages.blocks) != self.num_blocks:
            raise ValueError(
                f"the stages have {len(stages.blocks)} blocks; this local learner was built for {self.num_blocks}"
            )
        backward = backward or _plain_backward
        if self.config.mode == "hpff":
            return self._hpff_step(stages, loss_fn, backward)
        last = len(self.bounds) - 1
        group_losses: List[Optional[torch.Tensor]] = []
        state = stages.prelude()
        for index in range(len(self.bounds)):
            if index:
                state = detached(state)
            state = self._run_group(stages, index, state)
            if index == last:
                loss = loss_fn(stages.head(state), stages.target, stages.weights)
            else:
                loss = self._auxiliary_loss(stages, index, state, loss_fn)
            backward(loss, retain_graph=False)
            group_losses.append(loss.detach())
            del loss
            if self.config.mode == "man" and index != last:
                self.auxiliary[str(index)].update_ema(stages.block_modules, self.config.momentum)
        return LocalStepResult(loss=group_losses[-1], group_losses=group_losses)

    def _hpff_step(self, stages, loss_fn: LossFn, backward: BackwardFn) -> LocalStepResult:
        config, last = self.config, len(self.bounds) - 1
        group_losses: List[Optional[torch.Tensor]] = [None]
        # group 0 keeps its graph (to the prelude too): the cascade of group 1 trains it
        previous = self._run_group(stages, 0, stages.prelude())
        main_loss = None
        for index in range(1, len(self.bounds)):
            entry = detached(previous)
            # the cascade path first: its backward frees the window (group i-1's graph and its own) before the
            # independent path of group i is built, so at most two groups' graphs are alive at once
            cascade = self._run_group(stages, index, previous)
            if index == last:
                loss_y = loss_fn(stages.head(cascade), stages.target, stages.weights)
            else:
                loss_y = self._auxiliary_loss(stages, index, cascade, loss_fn, patches=config.patches)
            backward(config.wy * loss_y, retain_graph=False)
            del cascade
            independent = self._run_group(stages, index, entry)
            if index == last:
                loss_x = loss_fn(stages.head(independent), stages.target, stages.weights)
                main_loss = loss_x.detach()
            else:
                loss_x = self._auxiliary_loss(stages, index, independent, loss_fn)
            # the independent path's graph of this group is the next group's cascade window
            backward(config.wx * loss_x, retain_graph=index != last)
            group_losses.append((config.wx * loss_x + config.wy * loss_y).detach())
            del loss_x, loss_y
            previous = independent
        return LocalStepResult(loss=main_loss, group_losses=group_losses)


def all_reduce_gradients(parameters: Sequence[nn.Parameter]) -> None:
    """Averages ``.grad`` over the processes of the default ``torch.distributed`` group (DDP's job, which local
    learning does itself: its per-group backward runs outside DDP's forward). No-op in a single process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    if world == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()
