"""RepVideo cross-layer representation aggregation, as a module any transformer backbone can wrap its block loop with.

RepVideo (Vchitect/RepVideo, ``sat/transformer_gating.py``) keeps a window of recent layer outputs and, before
each block, replaces the block input by a gated mix of the window mean and the current hidden state:

    input_i = g_i * mean(o_s, ..., o_{i-1}) + (1 - g_i) * o_{i-1},   s = window * floor((i - 1) / window)

with one learnable scalar gate ``g_i`` per layer (initialised to 0.5). The window holds the embedding output
before the first block and restarts with the block output after every block whose index is a multiple of
``window_size`` (layers 0, 6, 12, ... with the released window of 6). Where the window holds a single entry the
mix is the identity, so it is skipped. The mix applies to every token stream of the block (video and text).

The window mean is kept as a running float32 sum instead of a list of cached activations: the same values as
``torch.stack(cache).mean(0)`` up to rounding, with one activation-sized buffer per stream instead of six.
"""

import contextlib
from typing import List, Optional, Sequence

import torch
from torch import nn


class RepVideoAggregation(nn.Module):
    """One learnable gate per layer and the windowed mean that mixes earlier layer outputs into each block input.

    Args:
        num_layers (`int`): number of transformer blocks (one gate each).
        window_size (`int`, defaults to 6): the window restarts after blocks whose index is a multiple of it.
        gate_init (`float`, defaults to 0.5): initial value of every gate.
    """

    def __init__(self, num_layers: int, window_size: int = 6, gate_init: float = 0.5):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers={num_layers} must be >= 1")
        if window_size < 1:
            raise ValueError(f"repvideo window_size={window_size} must be >= 1")
        self.window_size = window_size
        self.learnable_gating = nn.Parameter(torch.full((num_layers,), float(gate_init)))

    def start(self, streams: Sequence[Optional[torch.Tensor]]) -> "_AggregationWindow":
        """Opens the window on the embedding outputs (one tensor per token stream, `None` for an absent stream)."""
        return _AggregationWindow(self, streams)


class _AggregationWindow:
    """Running state of one forward pass: the float32 sum and count of the layer outputs in the current window."""

    def __init__(self, owner: RepVideoAggregation, streams: Sequence[Optional[torch.Tensor]]):
        self.owner = owner
        self.sums: List[Optional[torch.Tensor]] = [None if s is None else s.float() for s in streams]
        self.count = 1

    def mix(self, layer_index: int, streams: Sequence[Optional[torch.Tensor]]) -> List[Optional[torch.Tensor]]:
        """Block input for layer `layer_index`: gate * window mean + (1 - gate) * current stream."""
        if self.count == 1:
            # the window holds only the current hidden state: g * h + (1 - g) * h == h
            return list(streams)
        gate = self.owner.learnable_gating[layer_index]
        mixed = []
        for stream, total in zip(streams, self.sums):
            if stream is None:
                mixed.append(None)
                continue
            mean = (total / self.count).to(stream.dtype)
            mixed.append(gate.to(stream.dtype) * mean + (1 - gate.to(stream.dtype)) * stream)
        return mixed

    def detached(self) -> "_AggregationWindow":
        """The same window with its sums cut from the autograd graph (training by gradient-isolated groups)."""
        window = _AggregationWindow(self.owner, ())
        window.sums = [None if total is None else total.detach() for total in self.sums]
        window.count = self.count
        return window

    def record(self, layer_index: int, outputs: Sequence[Optional[torch.Tensor]]) -> None:
        """Adds the outputs of layer `layer_index` to the window, restarting it where the official loop does."""
        if layer_index % self.owner.window_size == 0:
            self.sums = [None if o is None else o.float() for o in outputs]
            self.count = 1
            return
        self.sums = [
            None if (o is None or total is None) else total + o.float() for o, total in zip(outputs, self.sums)
        ]
        self.count += 1


class RepVideoSwitchMixin:
    """`enable_repvideo` / `disable_repvideo` / `repvideo_switched` for a diffusers model that holds its aggregation as
    ``self.repvideo`` (None when off) and has the config fields ``num_layers``, ``repvideo_aggregation`` and
    ``repvideo_window_size``."""

    def enable_repvideo(self, window_size: Optional[int] = None, gate_init: float = 0.5) -> None:
        """Switches the aggregation on; existing (e.g. trained) gates are kept when the window is unchanged."""
        window_size = window_size or self.config.repvideo_window_size
        if self.repvideo is None or self.repvideo.window_size != window_size:
            parameter = next(self.parameters())
            self.repvideo = RepVideoAggregation(self.config.num_layers, window_size, gate_init).to(
                device=parameter.device, dtype=parameter.dtype
            )
        self.register_to_config(repvideo_aggregation=True, repvideo_window_size=window_size)

    def disable_repvideo(self) -> None:
        """Switches the aggregation off and drops its gates: the model is exactly its backbone again."""
        self.repvideo = None
        self.register_to_config(repvideo_aggregation=False)

    @contextlib.contextmanager
    def repvideo_switched(self, enabled: bool):
        """Context manager: aggregation on or off inside the block, the previous state (gates included) after."""
        previous_module = self.repvideo
        previous_config = {
            "repvideo_aggregation": self.config.repvideo_aggregation,
            "repvideo_window_size": self.config.repvideo_window_size,
        }
        try:
            if enabled:
                self.enable_repvideo()
            else:
                self.disable_repvideo()
            yield self
        finally:
            self.repvideo = previous_module
            self.register_to_config(**previous_config)
