"""Measures the activation memory autograd holds for backward (saved tensors), alive now and at the peak.

Local learning saves memory by freeing each group's graph before the next group runs; the bytes of the tensors the
graph saves are the quantity that changes, so this meter counts exactly those, through
``torch.autograd.graph.saved_tensors_hooks``. Parameters (and views of them) are not activations and are not
counted; a storage saved by several operations is counted once. Regions that install their own saved-tensor hooks
(``torch.utils.checkpoint``) are seen only through what they save outside the region.
"""

from __future__ import annotations

from typing import Dict, List

import torch


def _is_parameter_like(tensor: torch.Tensor) -> bool:
    base = tensor._base if tensor._base is not None else tensor
    return base.is_leaf and base.requires_grad


class _Saved:
    """A saved tensor while autograd holds it; releasing it (graph freed) subtracts its storage once unused."""

    __slots__ = ("meter", "key", "tensor")

    def __init__(self, meter: "SavedActivationMeter", key: int, tensor: torch.Tensor):
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self):
        self.meter._release(self.key)


class SavedActivationMeter:
    """Context manager: ``current_bytes`` and ``peak_bytes`` of saved activations while it is active.

    Example::

        with SavedActivationMeter() as meter:
            loss = model(x).square().mean()
            loss.backward()
        meter.peak_bytes
    """

    def __init__(self):
        self.current_bytes = 0
        self.peak_bytes = 0
        self._storages: Dict[int, List[int]] = {}  # data pointer -> [references, bytes]
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor):
        if _is_parameter_like(tensor):
            return tensor
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        entry = self._storages.get(key)
        if entry is None:
            self._storages[key] = [1, storage.nbytes()]
            self.current_bytes += storage.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        else:
            entry[0] += 1
        # detached: holding the tensor itself would tie an output to its own grad_fn (a reference cycle that keeps a
        # retained graph alive until the garbage collector runs); backward formulas read only the values
        return _Saved(self, key, tensor.detach())

    @staticmethod
    def _unpack(packed):
        return packed.tensor if isinstance(packed, _Saved) else packed

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.current_bytes -= entry[1]
            del self._storages[key]

    def __enter__(self) -> "SavedActivationMeter":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
