"""Ctrl-C and SIGTERM stop a `vdp` command with one line and status 130 / 143, leaving no temporary file or folder.

Each test starts the installed console script as a user does, waits until the command is doing its heavy work (its
stderr shows the smoke-test notice, or the converter's staging folder exists), then sends the signal.
"""

import json
import os
import signal
import subprocess
import time

import pytest
from helpers import FIXTURES
from helpers.vdp import ctrl_c_as_in_a_terminal, vdp_executable

# long enough that the signal lands while the tiny model samples
LONG_RUN = ["--frames", "3", "--height", "32", "--width", "48", "--steps", "999"]  # the step limit of every pack scheduler


def _start(arguments, cwd):
    return subprocess.Popen([vdp_executable(), *map(str, arguments)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)


def _wait_for_line(process, text: str, timeout: float = 120) -> list:
    """Reads stderr lines until one contains `text`; returns the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    process.kill()
    pytest.fail(f"the command never printed {text!r}: {''.join(lines)}")


def _stop(process, signal_number) -> tuple:
    process.send_signal(signal_number)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the command did not stop within 60 s of signal {signal_number}")
    return process.returncode, out, err


@pytest.mark.parametrize("signal_number, status, words", [
    (signal.SIGINT, 130, "interrupted by Ctrl-C (SIGINT)"),
    (signal.SIGTERM, 143, "terminated by SIGTERM"),
])
def test_generate_stopped_while_sampling_exits_with_one_line_and_writes_nothing(tmp_path, signal_number, status,
                                                                                 words):
    output = tmp_path / "out"
    output.mkdir()
    process = _start(["generate", "a red ball", "-o", output / "video.mp4", *LONG_RUN], tmp_path)
    _wait_for_line(process, "embedded model")
    time.sleep(1.0)  # into the denoising loop
    returncode, _, err = _stop(process, signal_number)
    assert returncode == status
    assert "Traceback" not in err
    last_lines = [line for line in err.splitlines() if line.strip() and "it/s" not in line and "s/it" not in line]
    assert last_lines[-1] == f"vdp generate: {words}; nothing half-written was left"
    assert list(output.iterdir()) == []


def test_convert_stopped_while_staging_removes_its_staging_folder(tmp_path):
    import torch

    from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import save_tiny_cogvideox_repvideo_pipeline
    from video_diffusion_pack.models.cogvideox_repvideo import CogVideoXRepVideoTransformer3DModel

    keys = json.loads((FIXTURES / "repvideo_sat_tiny_keys.json").read_text())
    (tmp_path / "sat" / "1").mkdir(parents=True)
    (tmp_path / "sat" / "latest").write_text("1")
    config = keys["metadata"]["diffusers_config"]
    state = {key: torch.zeros(shape) for key, shape in keys["shapes"].items()}
    state["model.diffusion_model.mixins.pos_embed.pos_embedding"] = (
        CogVideoXRepVideoTransformer3DModel(**config).patch_embed.pos_embedding.float())
    torch.save({"module": state}, tmp_path / "sat" / "1" / "mp_rank_00_model_states.pt")
    tiny = save_tiny_cogvideox_repvideo_pipeline(tmp_path / "tiny")
    cogvideox = tmp_path / "cogvideox"
    cogvideox.mkdir()
    for name in ("text_encoder", "tokenizer", "vae"):
        (tiny / name).rename(cogvideox / name)
    (cogvideox / "transformer").mkdir()
    (cogvideox / "transformer" / "config.json").write_text(json.dumps(config))
    with open(cogvideox / "text_encoder" / "extra.bin", "wb") as extra:  # copying it keeps the staging folder open
        block = os.urandom(1 << 20)
        for _ in range(256):
            extra.write(block)

    output = tmp_path / "converted"
    process = _start(["convert", "repvideo", "--sat", tmp_path / "sat", "--cogvideox", cogvideox, "-o", output],
                     tmp_path)
    deadline = time.monotonic() + 120
    while not any(path.name.startswith(".converted.") for path in tmp_path.iterdir()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no staging folder appeared: {process.stderr.read()}")
        time.sleep(0.01)
    returncode, _, err = _stop(process, signal.SIGTERM)
    assert returncode == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "vdp convert: terminated by SIGTERM; nothing half-written was left"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cogvideox", "sat", "tiny"]
