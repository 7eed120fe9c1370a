"""The low-memory settings (diffusers_pipelines/memory.py) on the four tiny pipelines, on the CPU: each option gives
the video it gives without it (bit-identical where the maths is unchanged; VAE slicing within float32 rounding of a
batched against a per-video convolution; fp8 weight storage with bf16 compute within the bound measured on the tiny
models, relative error <= 0.1 against float32 where it measured 0.04-0.053), and it composes with FreeInit and
FasterCache. The presets and their errors are torch-free."""

import subprocess
import sys

import pytest
import torch

from video_diffusion_pack import FasterCacheConfig, FreeInitConfig, apply_faster_cache, apply_free_init
from video_diffusion_pack.diffusers_pipelines.memory import (
    MEMORY_PRESETS,
    MemoryConfig,
    apply_memory,
    memory_config,
    memory_config_of,
)

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "pipelines"))
from test_pipelines_common import NAMES, arguments, build, denoiser, relative_error  # noqa: E402

FP8_BOUND = 0.1


def video(pipe, name, steps=2):
    kwargs = dict(arguments(name), num_inference_steps=steps, output_type="pt",
                  generator=torch.Generator().manual_seed(0))
    return pipe(**kwargs).frames


@pytest.fixture(scope="module")
def references():
    return {name: video(build(name), name) for name in NAMES}


# ------------------------------------------------------------------------------------------------ settings
def test_presets_and_switches():
    assert list(MEMORY_PRESETS) == ["none", "balanced", "low", "lowest"]
    assert memory_config().changes_nothing
    low = memory_config("low")
    assert (low.offload, low.fp8, low.vae_tiling) == ("group", True, True)
    assert memory_config("low", fp8=False, vae_tiling=None).fp8 is False
    assert memory_config(low, offload="none").offload == "none"
    assert MemoryConfig.preset("lowest").offload == "sequential"


@pytest.mark.parametrize("call, message", [
    (lambda: memory_config("tiny"), "memory='tiny' is not a memory preset; choose from ['none', 'balanced', 'low'"),
    (lambda: memory_config("low", offload="disk"), "offload='disk' is not an offload mode; choose from"),
    (lambda: memory_config("none", tiling=True), "unknown memory switches ['tiling']"),
    (lambda: memory_config("none", blocks_per_group=0), "blocks_per_group=0 must be an integer >= 1"),
    (lambda: memory_config("none", fp8="yes"), "fp8='yes' must be True or False"),
    (lambda: memory_config(3), "memory=3 must be a preset name"),
])
def test_bad_settings_are_named(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        call()


def test_the_settings_module_does_not_import_torch():
    code = ("import sys; from video_diffusion_pack.diffusers_pipelines import memory; memory.memory_config('low'); "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_whole_model_offload_on_the_cpu_is_refused_before_anything_changes(offload):
    pipe = build("repvideo")
    with pytest.raises(ValueError, match=f"offload='{offload}' needs an accelerator device.*device='cpu'"):
        apply_memory(pipe, "lowest" if offload == "sequential" else "balanced", device="cpu")
    assert pipe.transformer.dtype == torch.float32 and not pipe.vae.use_tiling and memory_config_of(pipe) is None


def test_an_unknown_attention_backend_is_named():
    with pytest.raises(ValueError, match="attention_backend='fastest' is not a diffusers attention backend"):
        apply_memory(build("lgvi"), attention_backend="fastest", device="cpu")


# ------------------------------------------------------------------------------------------------ same video
EXACT = [dict(vae_tiling=True), dict(offload="group"), dict(offload="group", group_offload_type="leaf_level"),
         dict(attention_backend="native")]


@pytest.mark.parametrize("name", NAMES)
def test_each_option_gives_the_same_video(name, references):
    reference = references[name]
    for switches in EXACT:
        out = video(apply_memory(build(name), device="cpu", **switches), name)
        assert torch.equal(out, reference), (name, switches)
    out = video(apply_memory(build(name), device="cpu", vae_slicing=True), name)
    assert relative_error(out, reference) <= 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_fp8_storage_with_bf16_compute_stays_within_the_measured_bound(name, references):
    pipe = apply_memory(build(name), device="cpu", fp8=True)
    model = denoiser(pipe)
    stored = {p.dtype for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 2}
    assert torch.float8_e4m3fn in stored
    out = video(pipe, name)
    assert out.dtype == torch.bfloat16 or out.float().isfinite().all()
    error = relative_error(out, references[name])
    assert 0 < error <= FP8_BOUND, error


def test_composes_with_free_init_and_faster_cache():
    name = "repvideo"

    def run(memory, steps=4):
        pipe = build(name)
        apply_free_init(pipe, FreeInitConfig(num_iters=2))
        apply_faster_cache(pipe, FasterCacheConfig(start_fraction=0.25))
        if memory:
            apply_memory(pipe, device="cpu", **memory)
        return video(pipe, name, steps=steps)

    reference = run(None)
    assert torch.equal(run(dict(offload="group", vae_tiling=True)), reference)
    assert relative_error(run(dict(fp8=True)), reference) <= FP8_BOUND
