"""What a pipeline needs on its device under each memory setting (`weight_bytes_needed`, `weight_bytes_on`), which the
ComfyUI loaders ask ComfyUI's memory manager to free before placing a pipeline."""

import pytest
import torch

from video_diffusion_pack import build_tiny_vchitect_pipeline
from video_diffusion_pack.diffusers_pipelines.memory import MemoryConfig, weight_bytes_needed, weight_bytes_on


@pytest.fixture(scope="module")
def pipeline():
    return build_tiny_vchitect_pipeline(seed=0, weights="random")


def module_bytes(module):
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def test_without_offload_every_model_counts(pipeline):
    models = [module for module in pipeline.components.values() if isinstance(module, torch.nn.Module)]
    assert len(models) == 5  # three text encoders, the transformer, the VAE
    assert weight_bytes_needed(pipeline, "none") == sum(module_bytes(module) for module in models)
    assert weight_bytes_on(pipeline, "cpu") == weight_bytes_needed(pipeline, "none")
    assert weight_bytes_on(pipeline, "meta") == 0


def test_model_offload_counts_the_largest_model_and_streaming_offloads_none(pipeline):
    models = [module for module in pipeline.components.values() if isinstance(module, torch.nn.Module)]
    assert weight_bytes_needed(pipeline, "balanced") == max(module_bytes(module) for module in models)
    assert weight_bytes_needed(pipeline, "low") == weight_bytes_needed(pipeline, "lowest") == 0


def test_fp8_storage_counts_the_denoiser_at_one_byte_a_weight(pipeline):
    fp32 = weight_bytes_needed(pipeline, "none")
    denoiser_params = sum(p.numel() for p in pipeline.transformer.parameters())
    fp8 = weight_bytes_needed(pipeline, MemoryConfig(fp8=True))
    assert fp32 - fp8 == module_bytes(pipeline.transformer) - denoiser_params
