"""The attention module types whose outputs FasterCache may reuse, and the search for them under a denoiser."""

from typing import Callable, List, Optional, Tuple

from diffusers.models.attention import AttentionModuleMixin
from diffusers.models.attention_processor import Attention
from torch import nn

from ...models.vchitect_transformer import VchitectAttention

__all__ = ["register_faster_cache_attention"]

# (module type, predicate): modules of these types whose predicate holds get the attention hook
_CACHEABLE_ATTENTION: List[Tuple[type, Callable[[nn.Module], bool]]] = []


def register_faster_cache_attention(module_type: type, is_cacheable: Optional[Callable[[nn.Module], bool]] = None) -> None:
    """Registers an attention module type whose output FasterCache may reuse.

    The module's forward must take batched tensors (batch first) and return a tensor or a tuple of tensors / None,
    each batch first, and its samples must not interact (each sample's output depends on its own inputs only).

    Args:
        module_type (`type`): the `nn.Module` subclass.
        is_cacheable (`Callable[[nn.Module], bool]`, *optional*): per-instance filter (e.g. excludes cross attention).
    """
    _CACHEABLE_ATTENTION.append((module_type, is_cacheable or (lambda module: True)))


def _is_self_attention(module: nn.Module) -> bool:
    # cross attention to the prompt is not part of FasterCache's feature reuse
    return not getattr(module, "is_cross_attention", False)


register_faster_cache_attention(VchitectAttention)
register_faster_cache_attention(Attention, _is_self_attention)
register_faster_cache_attention(AttentionModuleMixin, _is_self_attention)


def _cacheable_attention_modules(denoiser: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Registered attention modules under `denoiser`, outermost only, in module order."""
    found: List[Tuple[str, nn.Module]] = []
    for name, module in denoiser.named_modules():
        if any(name.startswith(outer + ".") for outer, _ in found):
            continue
        if any(isinstance(module, kind) and accepts(module) for kind, accepts in _CACHEABLE_ATTENTION):
            found.append((name, module))
    return found
