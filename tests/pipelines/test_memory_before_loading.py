"""The memory estimate of a pipeline folder, from its files alone (before any weight loads), equals the estimate the
loaded pipeline makes before sampling, plus its weights; `vdp generate --model FOLDER` refuses a run that cannot fit
before it loads the folder."""

import re

import pytest
import torch
from helpers.vdp import run_vdp

from video_diffusion_pack import (
    build_tiny_cogvideox_repvideo_pipeline,
    build_tiny_das_pipeline,
    build_tiny_inpaint_pipeline,
    build_tiny_vchitect_pipeline,
)
from video_diffusion_pack.diffusers_pipelines import pipeline_utils

BUILDERS = {"vchitect": build_tiny_vchitect_pipeline, "das": build_tiny_das_pipeline,
            "repvideo": build_tiny_cogvideox_repvideo_pipeline, "lgvi": build_tiny_inpaint_pipeline}


def _loaded_estimate(name, pipe, frames, height, width):
    """What each pipeline's own check estimates for one guided video (as its check_inputs calls it)."""
    if name == "vchitect":
        return pipe._memory_estimate(2, frames, height, width)
    if name == "das":
        return pipeline_utils.cogvideox_estimate(pipe, 2, frames, height, width, branches=2)
    if name == "repvideo":
        return pipeline_utils.cogvideox_estimate(pipe, 2, frames, height, width)
    return pipeline_utils.unet_config_estimate(pipe.unet.config, pipe.vae_scale_factor, pipe.unet.dtype, 3, frames,
                                               height, width)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_folder_estimate_is_the_loaded_pipelines_plus_its_weight_files(name, tmp_path):
    pipe = BUILDERS[name](weights="random")
    pipe.save_pretrained(tmp_path / name)
    frames, height, width = 9, 64, 96
    before = pipeline_utils.folder_memory_estimate(tmp_path / name, torch.float32, 1, frames, height, width)
    weights = sum(p.stat().st_size for p in (tmp_path / name).rglob("*.safetensors"))
    assert before.pop("weights") == weights > 0
    assert before == _loaded_estimate(name, pipe, frames, height, width)
    assert before["denoiser activations"] > 0 and before["decoded video"] == 2 * frames * height * width * 3 * 4


def test_a_folder_without_a_denoiser_config_has_no_estimate(tmp_path):
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text("not json")
    assert pipeline_utils.folder_memory_estimate(tmp_path, torch.float32, 1, 9, 32, 32) == {}


def test_vdp_generate_refuses_a_run_that_cannot_fit_before_loading_the_model_folder(tmp_path):
    build_tiny_vchitect_pipeline(weights="random").save_pretrained(tmp_path / "model")
    result = run_vdp("generate", "p", "--model", tmp_path / "model", "-o", tmp_path / "x.mp4", "--height", "64",
                     "--width", "64", "--frames", "1000000", "--steps", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "Loading pipeline components" not in result.stderr, "refused only after the folder was loaded"
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(r"vdp generate: error: argument --frames: frames=1000000 at 64x64 with the weights of '.*model' "
                    r"needs about [0-9.]+ GiB \(estimate: weights 0\.\d\d GiB, denoiser activations [0-9.]+ GiB, "
                    r"decoded video [0-9.]+ GiB\), more than the [0-9.]+ GiB available", last), last
    assert not (tmp_path / "x.mp4").exists()
