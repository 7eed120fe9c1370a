"""Model classes of the pack (diffusers ModelMixin/ConfigMixin), one architecture a file."""

from .repvideo import RepVideoAggregation
from .vchitect_transformer import VchitectXLTransformer3DModel

__all__ = ["RepVideoAggregation", "VchitectXLTransformer3DModel"]
