"""Vchitect-2.0 / RepVideo text-to-video pipeline."""

import diffusers

from .pipeline import VchitectRepVideoPipeline, VchitectRepVideoPipelineOutput
from ...models.vchitect_transformer import VchitectXLTransformer3DModel

# model_index.json written by save_pretrained names these classes; diffusers resolves pipeline class names in its
# own namespace, so `DiffusionPipeline.from_pretrained(folder)` needs them registered there.
for _cls in (VchitectRepVideoPipeline,):
    if not hasattr(diffusers, _cls.__name__):
        setattr(diffusers, _cls.__name__, _cls)

__all__ = ["VchitectRepVideoPipeline", "VchitectRepVideoPipelineOutput", "VchitectXLTransformer3DModel"]
