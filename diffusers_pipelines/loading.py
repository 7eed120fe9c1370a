"""The one loading path of the pack's pipelines: find the folder, view it with a model_index.json naming the pipeline's
own classes, and load that view with diffusers' own `DiffusionPipeline.from_pretrained`.

So every keyword diffusers takes works the same for every pipeline (`variant`, `torch_dtype` / `dtype` as one dtype
or a dict per component with a "default", `device_map`, `low_cpu_mem_usage`, `use_safetensors`, components passed
in as objects, ...), and one diffusers does not know is named by diffusers. The folder may be:

- a pipeline folder written by `save_pretrained` (safetensors or `.bin` weights, with or without a variant);
- a released folder whose model_index.json names other classes (Stable Diffusion's pipeline, the official code's own
  modules): the pipeline class and its pack model classes replace them, entries the pipeline does not take are left
  out, and the component folders are read as they are (through links, nothing is copied or changed);
- a folder holding the pack's weights layout (ComfyUI's folder, its ``models`` folder, or a models root), where the
  weights manifest's entry for the pipeline class says which sub-folder to take;
- a Hub id: model_index.json and the component folders not passed in are downloaded first.
"""

import contextlib
import inspect
import json
import os
import pickle
import tempfile
from typing import Dict, Iterator, List, Tuple

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging

from .pipeline_utils import check_pipeline_folder

logger = logging.get_logger(__name__)

__all__ = ["component_names", "load_pipeline", "loadable_index", "pack_component_classes", "resolve_pipeline_folder"]

# `from_pretrained` keywords that also steer the download of a Hub id
DOWNLOAD_OPTIONS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "proxies")
_PACK = __name__.split(".")[0]


def component_names(pipeline_class) -> Tuple[List[str], List[str]]:
    """(required, optional) component names of `pipeline_class`, in the order its `__init__` takes them."""
    parameters = [name for name in inspect.signature(pipeline_class.__init__).parameters if name != "self"]
    optional = set(getattr(pipeline_class, "_optional_components", None) or [])
    return [n for n in parameters if n not in optional], [n for n in parameters if n in optional]


def pack_component_classes(pipeline_class) -> Dict[str, type]:
    """Component name -> the pack's own model class that `pipeline_class.__init__` is annotated with."""
    classes = {}
    for name, parameter in inspect.signature(pipeline_class.__init__).parameters.items():
        annotation = parameter.annotation
        if inspect.isclass(annotation) and annotation.__module__.split(".")[0] == _PACK:
            classes[name] = annotation
    return classes


def resolve_pipeline_folder(pipeline_class, pretrained_model_name_or_path, kwargs: dict) -> str:
    """The local pipeline folder `pretrained_model_name_or_path` designates (a Hub id is downloaded first)."""
    path = str(pretrained_model_name_or_path)
    if not os.path.isdir(path):
        from huggingface_hub import snapshot_download

        required, optional = component_names(pipeline_class)
        wanted = [name for name in required + optional if name not in kwargs]
        download = {key: kwargs[key] for key in DOWNLOAD_OPTIONS if key in kwargs}
        return snapshot_download(path, allow_patterns=["model_index.json"] + [f"{n}/*" for n in wanted], **download)
    if os.path.isfile(os.path.join(path, "model_index.json")):
        return path
    from ..weights.manifest import UnknownEntryError, find_local_folder, load_manifest

    try:
        entry = load_manifest().entry_for_class(pipeline_class.__name__)
    except UnknownEntryError:
        return path
    return str(find_local_folder(path, entry))


def loadable_index(pipeline_class, index: dict) -> dict:
    """`index` (a folder's model_index.json) as `pipeline_class` loads it: its own class name, its pack model classes
    for its required components (whatever the index names there) and for the optional ones the index names, and
    only the entries its `__init__` takes."""
    parameters = set(inspect.signature(pipeline_class.__init__).parameters) - {"self"}
    loadable = {key: value for key, value in index.items() if key.startswith("_") or key in parameters}
    loadable["_class_name"] = pipeline_class.__name__
    required, _ = component_names(pipeline_class)
    for name, component_class in pack_component_classes(pipeline_class).items():
        entry = loadable.get(name)
        # a required component is always read with the pack's class, an optional one only where the index names one
        if name in required or (isinstance(entry, (list, tuple)) and entry and entry[0] is not None):
            loadable[name] = [component_class.__module__, component_class.__name__]
    return loadable


@contextlib.contextmanager
def _loadable_view(pipeline_class, path: str, index: dict) -> Iterator[str]:
    """`path` itself when its index loads as is; otherwise a temporary folder of links to its entries with the
    loadable model_index.json."""
    loadable = loadable_index(pipeline_class, index)
    if loadable == index:
        yield path
        return
    changed = sorted(key for key in set(index) | set(loadable) if index.get(key) != loadable.get(key))
    logger.info(f"{path}/model_index.json is read as {pipeline_class.__name__}'s (entries {changed} differ)")
    with tempfile.TemporaryDirectory(prefix="vdp-pipeline-view-") as view:
        for name in os.listdir(path):
            if name != "model_index.json":
                os.symlink(os.path.abspath(os.path.join(path, name)), os.path.join(view, name))
        with open(os.path.join(view, "model_index.json"), "w", encoding="utf-8") as f:
            json.dump(loadable, f, indent=2)
        yield view


def _component_dtype(kwargs: dict, name: str):
    """The dtype diffusers gives component ``name``: ``dtype`` (or the older ``torch_dtype``), one dtype or a dict
    per component with a "default" (float32 for a component the dict leaves out); None when neither is given."""
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    if isinstance(dtype, dict):
        return dtype.get(name, dtype.get("default", torch.float32))
    return dtype


def _checked_transformers_components(path: str, index: dict, kwargs: dict) -> dict:
    """The transformers models of the folder (text encoders), loaded with their loading report: missing, unexpected or
    mismatched keys are an error naming the component's folder (transformers itself only logs them and initialises
    the missing weights at random). Skipped when diffusers must place the weights itself (device_map)."""
    if kwargs.get("device_map") is not None:
        return {}
    import transformers

    loaded = {}
    for name, entry in index.items():
        if name.startswith("_") or name in kwargs or not isinstance(entry, (list, tuple)) or len(entry) != 2:
            continue
        library, class_name = entry
        model_class = getattr(transformers, class_name, None) if library == "transformers" else None
        if model_class is None or not issubclass(model_class, transformers.PreTrainedModel):
            continue
        options = {key: kwargs[key] for key in ("variant", "use_safetensors") if key in kwargs}
        dtype = _component_dtype(kwargs, name)
        if dtype is not None:
            options["torch_dtype"] = dtype
        folder = os.path.join(path, name)
        try:
            model, info = model_class.from_pretrained(folder, output_loading_info=True, **options)
        except pickle.UnpicklingError as error:
            raise ValueError(f"{folder}: its weights file is a pickle that the safe loader refuses "
                             f"({str(error).strip().splitlines()[0]}); use a .safetensors file") from None
        problems = {kind: sorted(info.get(kind) or []) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        problems = {kind: keys for kind, keys in problems.items() if keys}
        if problems:
            detail = "; ".join(f"{len(keys)} {kind.replace('_', ' ')} (e.g. {keys[0]!r})" for kind, keys in problems.items())
            raise ValueError(f"{os.path.join(path, name)}: the weights do not match {class_name} ({detail}); this "
                             f"folder holds another model's weights or a broken file")
        loaded[name] = model
    return loaded


def load_pipeline(pipeline_class, pretrained_model_name_or_path, **kwargs):
    """`pipeline_class` loaded from a folder, a pack weights layout or a Hub id (see the module docstring), with
    diffusers' `DiffusionPipeline.from_pretrained` and all of its keywords.

    Raises FileNotFoundError naming a missing model_index.json or component folder (a component passed in as an
    object needs none) before anything loads.
    """
    path = resolve_pipeline_folder(pipeline_class, pretrained_model_name_or_path, kwargs)
    required, _ = component_names(pipeline_class)
    index = check_pipeline_folder(path, required, pipeline_class.__name__, skip=[n for n in required if n in kwargs])
    kwargs = {**_checked_transformers_components(path, index, kwargs), **kwargs}
    with _loadable_view(pipeline_class, path, index) as view:
        try:
            pipeline = DiffusionPipeline.from_pretrained.__func__(pipeline_class, view, **kwargs)
        except (OSError, ValueError) as error:
            if view == path or view not in str(error):
                raise
            # name the user's folder, not the temporary view of links to it
            raise type(error)(str(error).replace(view, path)) from None
    pipeline.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
    return pipeline
