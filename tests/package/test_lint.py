"""The package passes its own lint configuration (`[tool.ruff]` in pyproject.toml: diffusers' settings)."""

import pathlib
import shutil
import subprocess
import sys

from helpers import REPO_ROOT


def ruff_command():
    beside_python = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")
    return [beside_python] if beside_python else [sys.executable, "-m", "ruff"]


def test_ruff_check_passes_on_the_whole_checkout():
    result = subprocess.run([*ruff_command(), "check", "--no-cache", str(REPO_ROOT)], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lint_configuration_is_diffusers_line_length_with_pyflakes_pycodestyle_isort_and_bugbear():
    import tomllib

    ruff = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["ruff"]

    assert ruff["line-length"] == 119
    assert {"E", "W", "F", "I", "B"} <= set(ruff["lint"]["select"])
