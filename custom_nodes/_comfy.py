"""ComfyUI glue shared by the pack's nodes: model folders, the torch device, progress and interrupt.

Every function imports ``comfy`` / ``folder_paths`` when it is called, so this module (and every node
module that uses it) imports without ComfyUI; the functions themselves only work inside ComfyUI.
"""

import importlib
import os
from typing import Callable, Dict, List, Optional

import torch
from einops import rearrange

# MODELS_SUBFOLDER: the sub-folder of ComfyUI's models folder that holds the pack's weights, one folder per kind.
from ..diffusers_pipelines.tiny_weights import TINY_WEIGHTS
from ..weights.manifest import MODELS_SUBFOLDER
from . import _memory, _model_cache

# A diffusers pipeline directory is recognised by this file.
PIPELINE_INDEX_FILE = "model_index.json"


def model_folder_key(kind: str) -> str:
    """The ``folder_paths`` key of a kind of weights (also the key users write in extra_model_paths.yaml).

    Args:
        kind (`str`): the kind of weights, e.g. ``"vchitect"``.
    """
    return f"{MODELS_SUBFOLDER}_{kind}"


def register_model_folder(kind: str) -> str:
    """Register ``models/video_diffusion_pack/<kind>/`` with ComfyUI's ``folder_paths``; return its key.

    Idempotent. Paths users add for the same key (extra_model_paths.yaml) are kept. The key's extension
    set gets ``.json`` so that ``folder_paths.get_filename_list`` lists the ``model_index.json`` files that
    mark pipeline directories.

    Args:
        kind (`str`): the kind of weights, e.g. ``"vchitect"``.
    """
    import folder_paths

    key = model_folder_key(kind)
    default_path = os.path.join(folder_paths.models_dir, MODELS_SUBFOLDER, kind)
    if key not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(key, default_path)
    paths, extensions = folder_paths.folder_names_and_paths[key]
    if default_path not in paths:
        paths.append(default_path)
    if ".json" not in extensions:
        folder_paths.folder_names_and_paths[key] = (paths, set(extensions) | {".json"})
    return key


def model_folder_paths(kind: str) -> List[str]:
    """The folders searched for weights of ``kind`` (the default one first, then any user-added ones)."""
    import folder_paths

    return folder_paths.get_folder_paths(register_model_folder(kind))


def comfyui_models_dir() -> str:
    """ComfyUI's ``models`` folder (what ``vdp download --comfyui-models`` takes)."""
    import folder_paths

    return folder_paths.models_dir


def _search_folders_that_are_pipelines(kind: str) -> List[str]:
    """Search folders of ``kind`` that are themselves pipeline directories (a diffusers folder added as a path)."""
    return [folder for folder in model_folder_paths(kind) if os.path.isfile(os.path.join(folder, PIPELINE_INDEX_FILE))]


def list_pipeline_dirs(kind: str) -> List[str]:
    """Pipeline directories (those holding a ``model_index.json``) under the folders of ``kind``.

    Returns paths relative to their search folder, sorted, e.g. ``["Vchitect-2.0-2B"]``. A search folder that is
    itself a pipeline directory is listed under its own name.
    """
    import folder_paths

    key = register_model_folder(kind)
    found = {
        os.path.dirname(relative_path)
        for relative_path in folder_paths.get_filename_list(key)
        if os.path.basename(relative_path) == PIPELINE_INDEX_FILE
    }
    found.update(os.path.basename(os.path.normpath(folder)) for folder in _search_folders_that_are_pipelines(kind))
    return sorted(path for path in found if path)


def resolve_pipeline_dir(kind: str, name: str) -> str:
    """Absolute path of the pipeline directory ``name`` listed by ``list_pipeline_dirs(kind)``.

    Raises:
        FileNotFoundError: when no search folder holds ``name/model_index.json``.
    """
    import folder_paths

    index_path = folder_paths.get_full_path(register_model_folder(kind), os.path.join(name, PIPELINE_INDEX_FILE))
    if index_path is None:
        for folder in _search_folders_that_are_pipelines(kind):
            if os.path.basename(os.path.normpath(folder)) == name:
                return folder
        raise FileNotFoundError(
            f"pipeline {name!r} not found: no {os.path.join(name, PIPELINE_INDEX_FILE)} in {model_folder_paths(kind)}"
        )
    return os.path.dirname(index_path)


def missing_weights_message(pack_class: str, kind: str, model: str, found: List[str], search_folders: List[str],
                            comfyui_models: Optional[str] = None) -> str:
    """The error of a loader whose ``model`` is not a pipeline directory of ``kind``, with the exact download command.

    Args:
        pack_class (`str`): the pack class the loader builds; its official weights are looked up in the weights manifest.
        kind (`str`): the kind of weights, e.g. ``"vchitect"``.
        model (`str`): the value the loader got.
        found (`List[str]`): the pipeline directories there are.
        search_folders (`List[str]`): the folders searched.
        comfyui_models (`str`, *optional*): ComfyUI's models folder, for the `vdp download --comfyui-models` command.
    """
    from ..weights.manifest import load_manifest

    entry = load_manifest().entry_for_class(pack_class)
    target = (os.path.join(comfyui_models, MODELS_SUBFOLDER, entry.kind, entry.name) if comfyui_models is not None
              else f"ComfyUI/{entry.comfyui_folder}")
    return (
        f"model={model!r} is not a pipeline directory (one holding {PIPELINE_INDEX_FILE}) in {search_folders}; "
        f"found: {found}. Download the official weights ({entry.repo_id}) with `{entry.download_command(comfyui_models)}`, "
        f"which fetches and verifies them into {target}; or add a '{model_folder_key(kind)}' entry "
        f"(a folder of pipeline directories, or one pipeline directory) to extra_model_paths.yaml; then refresh."
    )


# weight dtypes a loader node offers
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cache_key(node_class, **inputs) -> str:
    """A loader's ``IS_CHANGED`` value: its class and inputs.

    ComfyUI before mid-2024 keeps a node's cached output when the next graph puts another node class with equal inputs
    under the same node id (it compares inputs, not classes), so one tiny loader's pipeline would be reused for
    another's. A value that names the class makes ComfyUI run the loader again; equal values keep its cache.
    """
    return f"{node_class.__name__}({', '.join(f'{name}={value!r}' for name, value in sorted(inputs.items()))})"


def _pack_export(name: str):
    """A public name of the pack (a pipeline class, a tiny builder), resolved by the package's lazy exports."""
    package = importlib.import_module("..", __package__)
    if not name or name not in package._LAZY_EXPORTS:
        raise TypeError(f"{name!r} is not a name the pack exports")
    return getattr(package, name)


class PipelineFolderLoader:
    """Base of the loader nodes that load a pipeline directory from ComfyUI/models/video_diffusion_pack/<kind>/.

    A subclass sets ``WEIGHTS_KIND``, ``PIPELINE_CLASS`` (the pack class, as the weights manifest names it; imported
    on first use), ``EXAMPLE``, ``OUTPUT_TOOLTIPS``, ``CATEGORY`` and ``DESCRIPTION``.
    """

    WEIGHTS_KIND = ""
    PIPELINE_CLASS = ""
    EXAMPLE = ""
    DTYPE_TOOLTIP = "Weight dtype. The official inference runs in bf16."
    RETURN_TYPES = ("VDP_PIPELINE",)
    RETURN_NAMES = ("pipeline",)
    FUNCTION = "load"

    @classmethod
    def pipeline_class(cls):
        """The pack class `PIPELINE_CLASS` names, imported on first use."""
        return _pack_export(cls.PIPELINE_CLASS)

    @classmethod
    def INPUT_TYPES(cls):
        found = list_pipeline_dirs(cls.WEIGHTS_KIND)
        choices = found or [f"no pipeline in models/{MODELS_SUBFOLDER}/{cls.WEIGHTS_KIND}"]
        return {
            "required": {
                "model": (choices, {
                    "tooltip": f"A diffusers pipeline directory (with {PIPELINE_INDEX_FILE}) under "
                               f"ComfyUI/models/{MODELS_SUBFOLDER}/{cls.WEIGHTS_KIND}/, e.g. {cls.EXAMPLE}.",
                }),
                "dtype": (list(DTYPES), {"default": "bf16", "tooltip": cls.DTYPE_TOOLTIP}),
            },
            "optional": _memory.memory_inputs(),
        }

    @classmethod
    def missing_message(cls, model: str, found: List[str]) -> str:
        return missing_weights_message(
            cls.PIPELINE_CLASS, cls.WEIGHTS_KIND, model, found, model_folder_paths(cls.WEIGHTS_KIND), comfyui_models_dir()
        )

    @classmethod
    def IS_CHANGED(cls, **inputs):
        return cache_key(cls, **inputs)

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        found = list_pipeline_dirs(cls.WEIGHTS_KIND)
        return True if model in found else cls.missing_message(model, found)

    def load(self, model, dtype, memory="none"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} must be one of {list(DTYPES)}")
        found = list_pipeline_dirs(self.WEIGHTS_KIND)
        if model not in found:
            raise FileNotFoundError(self.missing_message(model, found))
        directory = resolve_pipeline_dir(self.WEIGHTS_KIND, model)
        _memory.check_memory(memory, torch_device())
        pipeline_class = self.pipeline_class()
        return (managed_pipeline(type(self), dict(model=model, dtype=dtype, memory=memory),
                                 lambda: pipeline_class.from_pretrained(directory, dtype=DTYPES[dtype]), memory),)


class EmbeddedPipelineLoader:
    """Base of the loader nodes of the pack's trained embedded models (shipped in the package, no download).

    A subclass sets ``LOADER`` (the pack's ``load_embedded_..._pipeline()`` function, by name), ``OUTPUT_TOOLTIPS``,
    ``CATEGORY`` and ``DESCRIPTION``. The pipeline is managed: loaded once per memory setting.
    """

    LOADER = ""
    RETURN_TYPES = ("VDP_PIPELINE",)
    RETURN_NAMES = ("pipeline",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "optional": _memory.memory_inputs()}

    @classmethod
    def IS_CHANGED(cls, **inputs):
        return cache_key(cls, **inputs)

    def load(self, memory="none"):
        _memory.check_memory(memory, torch_device())
        return (managed_pipeline(type(self), dict(memory=memory), _pack_export(self.LOADER), memory),)


class TinyPipelineLoader:
    """Base of the loader nodes that build an embedded tiny pipeline (no download).

    A subclass sets ``BUILDER`` (the pack's ``build_tiny_...(seed, device)`` function, by name), ``OUTPUT_TOOLTIPS``,
    ``CATEGORY`` and ``DESCRIPTION``. With ``TRAINED`` set, the family ships a model trained on the shapes world: the
    node gets a ``weights`` choice, ``trained`` (the default, that model; the seed is not used) or ``random`` (seeded
    random weights, a smoke test); otherwise it builds random weights only.
    """

    BUILDER = ""
    TRAINED = False
    RETURN_TYPES = ("VDP_PIPELINE",)
    RETURN_NAMES = ("pipeline",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        seed_tip = "Seed of the random weights. The outputs are noise: this model checks wiring, shapes and speed."
        optional = dict(_memory.memory_inputs())
        if cls.TRAINED:
            seed_tip = "Seed of the random weights (weights: random only; the trained model does not use it)."
            optional["weights"] = (list(TINY_WEIGHTS), {
                "default": "trained",
                "tooltip": "trained: the pack's model trained on the shapes world (as its Embedded Loader). random: "
                           "seeded random weights in the tiny layout; their outputs are noise, for smoke tests.",
            })
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**32 - 1, "tooltip": seed_tip})},
                "optional": optional}

    @classmethod
    def IS_CHANGED(cls, **inputs):
        return cache_key(cls, **inputs)

    @classmethod
    def build(cls, seed: int, device, weights: str = "random"):
        # the builder refuses a weights value its family does not have, and a seed with the trained model
        return _pack_export(cls.BUILDER)(seed=None if weights == "trained" else seed, device=device, weights=weights)

    def load(self, seed, memory="none", weights=None):
        weights = ("trained" if self.TRAINED else "random") if weights is None else weights
        _memory.check_memory(memory, torch_device())
        inputs = dict(memory=memory, weights=weights) if weights == "trained" else dict(seed=seed, memory=memory)
        return (managed_pipeline(type(self), inputs, lambda: self.build(seed, "cpu", weights), memory),)


def managed_pipeline(node_class, inputs: Dict, build: Callable, memory: str = "none"):
    """A loader's ``VDP_PIPELINE``: the ``ManagedPipeline`` of its class and inputs, loaded (once for equal inputs).

    Args:
        node_class: the loader node's class; with ``inputs`` it is the key (``cache_key``).
        inputs (`Dict`): the loader's inputs.
        build (`Callable`): loads the pipeline on the CPU.
        memory (`str`, defaults to "none"): the memory preset it is placed with.
    """
    from ..diffusers_pipelines.memory import weight_bytes_needed

    managed = _model_cache.ManagedPipeline.get(
        cache_key(node_class, **inputs), build,
        place=lambda pipeline, device: _memory.place_pipeline(pipeline, memory, device),
        bytes_needed=lambda pipeline: weight_bytes_needed(pipeline, memory), device=torch_device(),
    )
    managed.acquire()
    return managed


def torch_device():
    """The torch device ComfyUI runs models on (its ``--cpu`` / ``--cuda-device`` choice)."""
    import comfy.model_management

    return comfy.model_management.get_torch_device()


def step_callback(total_steps: int, pipeline=None) -> Dict:
    """The ``callback_on_step_end`` arguments of a pipeline call: progress, interrupt and latent previews.

    Each step first raises ComfyUI's interrupt exception if the user pressed cancel, then advances the progress bar
    (shown on the node and sent over the websocket as ``progress`` events) by one step, with a preview image of the
    step's latents when ComfyUI's preview setting asks for previews and ``pipeline``'s VAE has latent2rgb
    coefficients (``_previews``).

    Args:
        total_steps (`int`): the number of denoising steps the bar spans.
        pipeline (*optional*): the pipeline that runs, for its previews; None sends none.

    Returns:
        ``callback_on_step_end`` and ``callback_on_step_end_tensor_inputs`` for the pipeline call.
    """
    import comfy.model_management
    import comfy.utils

    from . import _previews

    bar = comfy.utils.ProgressBar(total_steps)
    previewer = None if pipeline is None else _previews.previewer_for_run(pipeline)

    def on_step_end(pipeline, step_index, timestep, callback_kwargs):
        comfy.model_management.throw_exception_if_processing_interrupted()
        preview = None if previewer is None else _previews.preview_image(previewer, callback_kwargs["latents"])
        bar.update_absolute(bar.current + 1, total_steps, preview)
        return callback_kwargs

    return {"callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": [] if previewer is None else ["latents"]}


def video_to_image_batch(frames: torch.Tensor) -> torch.Tensor:
    """Pipeline frames ``[B, F, 3, H, W]`` in 0..1 -> ComfyUI ``IMAGE`` ``[B*F, H, W, 3]`` float32 on the CPU.

    Several videos become one batch, their frames one after the other.
    """
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames of shape {tuple(frames.shape)} must be [batch, frames, 3, height, width]")
    return rearrange(frames, "b f c h w -> (b f) h w c").to(device="cpu", dtype=torch.float32).contiguous()
