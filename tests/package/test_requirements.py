"""The pack's dependencies as ComfyUI users install them: requirements.txt, pyproject.toml, import check agree."""

import re

import pytest
from helpers import REPO_ROOT

from video_diffusion_pack.custom_nodes._dependencies import REQUIREMENTS, install_command, missing_requirements_message

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

# What ComfyUI's own requirements.txt installs: requirements.txt must not list them (no install replaces its torch).
COMFYUI_INSTALLS = {
    "torch", "torchsde", "torchvision", "torchaudio", "numpy", "einops", "transformers", "tokenizers", "sentencepiece",
    "safetensors", "aiohttp", "yarl", "pyyaml", "pillow", "scipy", "tqdm", "psutil", "alembic", "sqlalchemy", "av",
    "kornia", "spandrel", "pydantic", "pydantic-settings",
}


def distribution(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pyproject_dependencies() -> list:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def requirements_txt() -> list:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_txt_is_pyproject_dependencies_less_what_comfyui_installs():
    expected = [dep for dep in pyproject_dependencies() if distribution(dep) not in COMFYUI_INSTALLS]

    assert requirements_txt() == expected


def test_requirements_txt_never_lists_torch_or_what_comfyui_installs():
    listed = {distribution(requirement) for requirement in requirements_txt()}

    assert listed & COMFYUI_INSTALLS == set()
    assert "diffusers" in listed


def test_import_check_covers_every_pyproject_dependency_with_its_version():
    assert list(REQUIREMENTS) == pyproject_dependencies()


def test_missing_requirements_message_names_the_packages_and_the_pip_command():
    message = missing_requirements_message(["diffusers>=0.35", "accelerate>=0.33"])

    assert message.startswith("video_diffusion_pack: no nodes registered, missing Python packages: diffusers>=0.35, ")
    assert message.endswith(install_command(["diffusers>=0.35", "accelerate>=0.33"]))
    assert install_command(["diffusers>=0.35"]).endswith(' -m pip install "diffusers>=0.35"')
