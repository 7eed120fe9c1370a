"""Runs the installed `vdp` console script, as a user does."""

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# small enough for a few seconds of sampling on a CPU
TINY_SETTINGS = ["--frames", "3", "--height", "32", "--width", "48", "--steps", "2"]


def ctrl_c_as_in_a_terminal() -> None:
    """``preexec_fn`` for a command a test stops with SIGINT: SIGINT's default action, as a terminal's Ctrl-C finds
    it. A test run started in the background by a non-interactive shell ignores SIGINT, and a child inherits that,
    so Python would install no KeyboardInterrupt handler and the command would run on to the end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def vdp_executable() -> str:
    """The `vdp` script of this interpreter's environment (pip puts it beside python), else the one on PATH."""
    beside_python = Path(sys.executable).with_name("vdp")
    found = str(beside_python) if beside_python.is_file() else shutil.which("vdp")
    if found is None:
        pytest.fail("the vdp console script is not installed; install the package with pip first")
    return found


def run_vdp(*arguments, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [vdp_executable(), *map(str, arguments)], capture_output=True, text=True, timeout=300, env=env
    )
