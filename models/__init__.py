"""Model classes of the pack (diffusers ModelMixin/ConfigMixin), one architecture a file."""

from .cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel
from .das_transformer import DaSTransformer3DModel
from .lgvi_instruction_encoder import LGVIInstructionEncoder
from .repvideo import RepVideoAggregation
from .rovi_unet import RoviUNet3DConditionModel
from .vchitect_transformer import VchitectXLTransformer3DModel

__all__ = [
    "CogVideoXRepVideoTransformer3DModel",
    "DaSTransformer3DModel",
    "LGVIInstructionEncoder",
    "RepVideoAggregation",
    "RoviUNet3DConditionModel",
    "VchitectXLTransformer3DModel",
]
