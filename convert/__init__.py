"""Converters from official checkpoint formats to the pack's diffusers folders."""

from .repvideo_sat import SatCheckpointError, convert_repvideo_sat_checkpoint

__all__ = ["SatCheckpointError", "convert_repvideo_sat_checkpoint"]
