"""The pack's pipelines under ComfyUI's memory manager: loaded once per set of loader inputs, released on request.

A loader node returns a ``ManagedPipeline`` (the ``VDP_PIPELINE`` value): the key of its inputs and how to build the
pipeline, not the pipeline itself, much as core loaders return a ``ModelPatcher``. Two loaders with equal inputs get
the same ``ManagedPipeline``, so the pipeline loads once. While loaded it is listed in
``comfy.model_management.current_loaded_models`` through a ``LoadedModel``-like entry, so ComfyUI's "unload models"
(``POST /free`` with ``unload_models``, which calls ``unload_all_models``) and the memory other nodes ask for
(``free_memory``, ``load_models_gpu``) release it like any core model: the pipeline is dropped (its RAM and device
memory come back; reloading reads the files again) and the next sampler run loads it again. Before it is placed on the
device, and before each sampling run, ComfyUI is asked to free what it needs there (core's ``load_models_gpu``
semantics: models are freed on accelerators only, the entry goes to the front as the most recently used).

The entries implement what ComfyUI's memory manager calls on a ``LoadedModel`` and on the ``ModelPatcher`` it holds,
as of the 2024 snapshot (``model_unload()``) and of current ComfyUI (``model_unload(memory_to_free)``,
``model_offloaded_memory``, ``is_dead``, ``real_model``, ``currently_used``, ...). Outside ComfyUI (unit tests) nothing
is registered. Log lines (logger ``video_diffusion_pack``) tell each load (with its count for the key), release and
the moment the released pipeline object is freed.
"""

import collections
import gc
import logging
import weakref
from typing import Callable, Optional

LOGGER = logging.getLogger("video_diffusion_pack")

# key -> the ManagedPipeline of those loader inputs while any node output still holds it
_MANAGED: "weakref.WeakValueDictionary[str, ManagedPipeline]" = weakref.WeakValueDictionary()
# key -> how many times a pipeline was loaded for it in this process
LOAD_COUNTS = collections.Counter()


def _model_management():
    """ComfyUI's memory manager, or None outside ComfyUI (nothing to cooperate with there)."""
    try:
        import comfy.model_management
    except ImportError:
        return None
    return comfy.model_management


def _on_accelerator(device) -> bool:
    return getattr(device, "type", str(device)) != "cpu"


class ManagedPipeline:
    """The ``VDP_PIPELINE`` value: a pipeline loaded on demand (``acquire``) and released by ComfyUI (``release``).

    Towards ComfyUI's memory manager it is the model of its ``LoadedModel``-like entry (``ModelPatcher`` surface:
    ``model`` is the pipeline or None, ``load_device``, sizes, no patches, never a clone of another model).

    Args:
        key (`str`): the loader's class and inputs (``_comfy.cache_key``).
        build (`Callable[[], DiffusionPipeline]`): loads the pipeline on the CPU.
        place (`Callable[[pipeline, device], pipeline]`): puts it on ComfyUI's device (memory preset applied).
        bytes_needed (`Callable[[pipeline], int]`): the weight bytes it will take on the device once placed.
        device: ComfyUI's torch device.
    """

    def __init__(self, key: str, build: Callable, place: Callable, bytes_needed: Callable[..., int], device):
        self.key = key
        self._build = build
        self._place = place
        self._bytes_needed = bytes_needed
        self.load_device = device
        self.offload_device = device
        self.model = None
        self.parent = None
        self.patches = {}
        self._entry: Optional[LoadedPipeline] = None
        self._device_bytes = 0

    @classmethod
    def get(cls, key: str, build: Callable, place: Callable, bytes_needed: Callable[..., int], device):
        """The managed pipeline of ``key``: the one a node output still holds, or a new (not yet loaded) one."""
        managed = _MANAGED.get(key)
        if managed is None:
            managed = cls(key, build, place, bytes_needed, device)
            _MANAGED[key] = managed
        return managed

    @property
    def is_loaded(self) -> bool:
        return self.model is not None

    def acquire(self):
        """The pipeline, loaded (and registered with ComfyUI) if it is not."""
        if self.model is None:
            self._load()
        return self.model

    def acquire_for_sampling(self):
        """The pipeline, loaded if needed, after asking ComfyUI to free the memory a run needs on the device."""
        pipeline = self.acquire()
        management = _model_management()
        if management is not None and self._entry is not None:
            entry = self._entry
            entry.currently_used = True
            if entry in management.current_loaded_models:
                management.current_loaded_models.remove(entry)
            if _on_accelerator(self.load_device):
                management.free_memory(management.minimum_inference_memory(), self.load_device, keep_loaded=[entry])
            management.current_loaded_models.insert(0, entry)
        return pipeline

    def _load(self):
        from ..diffusers_pipelines.memory import weight_bytes_on

        management = _model_management()
        pipeline = self._build()
        if management is not None and _on_accelerator(self.load_device):
            management.free_memory(self._bytes_needed(pipeline) + management.minimum_inference_memory(),
                                   self.load_device)
        pipeline = self._place(pipeline, self.load_device)
        self.model = pipeline
        self._device_bytes = weight_bytes_on(pipeline, self.load_device)
        LOAD_COUNTS[self.key] += 1
        weakref.finalize(pipeline, LOGGER.info, f"video_diffusion_pack: pipeline {self.key} freed")
        LOGGER.info(f"video_diffusion_pack: loaded pipeline {self.key} on {self.load_device} "
                    f"({self._device_bytes / 2**20:.1f} MiB there, load {LOAD_COUNTS[self.key]} of these inputs)")
        if management is not None:
            self._entry = LoadedPipeline(self)
            management.current_loaded_models.insert(0, self._entry)

    def release(self):
        """Drops the pipeline (ComfyUI's memory manager removes the entry from its list itself)."""
        if self.model is None:
            return
        self.model = None
        self._entry = None
        self._device_bytes = 0
        LOGGER.info(f"video_diffusion_pack: released pipeline {self.key} (ComfyUI unloaded it)")

    # --- the ModelPatcher surface ComfyUI's memory manager uses
    def model_size(self) -> int:
        return self._device_bytes

    def loaded_size(self) -> int:
        return self._device_bytes

    def current_loaded_device(self):
        return self.load_device

    def model_dtype(self):
        return getattr(self.model, "dtype", None)

    @property
    def current_device(self):
        return self.load_device

    def is_clone(self, other) -> bool:
        # only itself: current ComfyUI pops and detaches (without unpatching) the entries of clones before loading
        return other is self

    def clone_has_same_weights(self, other) -> bool:
        return False

    def model_patches_models(self):
        return []

    def model_patches_to(self, device_or_dtype):
        return None

    def partially_load(self, device, extra_memory=0, force_patch_weights=False) -> int:
        self.acquire()
        return 0

    def patch_model(self, device_to=None, patch_weights=True, **kwargs):
        return self.acquire()

    def patch_model_lowvram(self, device_to=None, lowvram_model_memory=0, **kwargs):
        return self.acquire()

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights:
            self.release()

    def partially_unload(self, device_to, memory_to_free=0) -> int:
        return 0

    def lowvram_patch_counter(self) -> int:
        return 0

    def is_dynamic(self) -> bool:
        return False

    def detach(self, unpatch_all=True):
        self.unpatch_model(self.offload_device, unpatch_weights=unpatch_all)


class _NoFinalizer:
    """Stands for the ``weakref.finalize`` core entries hold (current ComfyUI detaches it when it re-lists a model)."""

    def detach(self):
        return None


class LoadedPipeline:
    """A loaded ``ManagedPipeline`` as an entry of ``comfy.model_management.current_loaded_models``.

    ComfyUI unloads entries of the device it frees by calling ``model_unload`` (2024: no argument; current: the bytes
    it still needs, True when the entry is gone) and then pops them from the list itself.
    """

    def __init__(self, managed: ManagedPipeline):
        self.model = managed
        self.device = managed.load_device
        self.currently_used = True
        self.weights_loaded = True
        self.model_finalizer = _NoFinalizer()

    def real_model(self):
        return self.model.model

    def is_dead(self) -> bool:
        return False

    def model_memory(self) -> int:
        return self.model.model_size()

    def model_loaded_memory(self) -> int:
        return self.model.loaded_size()

    def model_offloaded_memory(self) -> int:
        return 0

    def model_memory_required(self, device) -> int:
        return 0 if self.model.is_loaded and device == self.device else self.model.model_size()

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        return self.model.acquire()

    def model_use_more_vram(self, extra_memory, force_patch_weights=False) -> int:
        return 0

    def should_reload_model(self, force_patch_weights=False) -> bool:
        return False

    def model_unload(self, memory_to_free=None, unpatch_weights=True) -> bool:
        self.model.release()
        # collect now, so the pipeline's tensors (which reference cycles, e.g. of offload hooks, would keep) are freed
        # before ComfyUI empties the device cache right after unloading
        gc.collect()
        return True

    def __eq__(self, other):
        return self.model is getattr(other, "model", None)

    def __hash__(self):
        return id(self)


def resolve_pipeline(value, for_sampling: bool = True):
    """The pipeline a ``VDP_PIPELINE`` input stands for: a ``ManagedPipeline`` is acquired (for sampling: with
    ComfyUI asked to free what the run needs); any other value is a pipeline already."""
    if isinstance(value, ManagedPipeline):
        return value.acquire_for_sampling() if for_sampling else value.acquire()
    return value
