"""Model classes of the pack (diffusers ModelMixin/ConfigMixin), one architecture a file."""

from .das_transformer import DaSTransformer3DModel
from .repvideo import RepVideoAggregation
from .vchitect_transformer import VchitectXLTransformer3DModel

__all__ = ["DaSTransformer3DModel", "RepVideoAggregation", "VchitectXLTransformer3DModel"]
