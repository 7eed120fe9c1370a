"""The ``ManagedPipeline`` handle and its ``LoadedModel``-like entry outside ComfyUI: loading once per key, reloading
after a release, and the answers current ComfyUI's memory manager asks of its entries (``free_memory``: sizes,
``is_dead``, ``model.model`` for its log line, ``model_unload(memory_to_free)`` returning True; ``load_models_gpu``
re-listing a known model: ``is_clone`` of itself, ``detach(unpatch_all=False)`` keeping the pipeline,
``model_finalizer.detach()``; ``cleanup_models``: ``real_model()``). The 2024 snapshot's own module runs against them
in ``test_inside_comfyui_process.py``."""

import sys

import torch
from diffusers import ConfigMixin, DiffusionPipeline, ModelMixin
from diffusers.configuration_utils import register_to_config

from video_diffusion_pack.custom_nodes import _model_cache


class Linear(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)


class OneLinear(DiffusionPipeline):
    """A diffusers pipeline of one 4x4 linear layer."""

    def __init__(self, linear: Linear):
        super().__init__()
        self.register_modules(linear=linear)


class Built:
    """Counts the pipelines ``build`` made."""

    def __init__(self):
        self.count = 0

    def __call__(self):
        self.count += 1
        return OneLinear(Linear())


def managed(key, built):
    return _model_cache.ManagedPipeline.get(key, built, place=lambda pipeline, device: pipeline.to(device),
                                            bytes_needed=lambda pipeline: 0, device=torch.device("cpu"))


def test_equal_keys_share_one_pipeline_and_a_release_loads_it_again():
    built = Built()
    first, second = managed("unit(seed=1)", built), managed("unit(seed=1)", built)
    assert first is second
    pipeline = first.acquire()
    assert second.acquire() is pipeline and built.count == 1
    first.release()
    assert not first.is_loaded
    assert first.acquire() is not pipeline and built.count == 2
    assert managed("unit(seed=2)", built) is not first


def test_entry_answers_what_comfyui_free_memory_asks():
    built = Built()
    handle = managed("unit(seed=3)", built)
    pipeline = handle.acquire()
    entry = _model_cache.LoadedPipeline(handle)
    assert entry.device == torch.device("cpu") and entry.currently_used
    assert not entry.is_dead() and entry.real_model() is pipeline
    assert entry.model.model.__class__.__name__ == "OneLinear"
    assert entry.model_memory() == 4 * (16 + 4) and entry.model_offloaded_memory() == 0
    assert sys.getrefcount(entry.model) > 2
    assert entry.model_unload(1234) is True
    assert not handle.is_loaded and entry.real_model() is None


def test_entry_survives_being_listed_again_by_load_models_gpu():
    handle = managed("unit(seed=4)", Built())
    pipeline = handle.acquire()
    entry = _model_cache.LoadedPipeline(handle)
    assert handle.is_clone(handle) and not handle.is_clone(object())
    handle.detach(unpatch_all=False)
    entry.model_finalizer.detach()
    assert handle.is_loaded and entry.model_load(0) is pipeline
    assert entry == entry and entry != object()
    handle.detach(unpatch_all=True)
    assert not handle.is_loaded
