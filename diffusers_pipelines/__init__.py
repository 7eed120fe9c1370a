"""Diffusers pipelines of the pack, one folder a pipeline."""
