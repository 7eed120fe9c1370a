"""The pack's Python dependencies and the check ComfyUI's import of the pack runs before it registers any node.

Torch-free and cheap: ``importlib.util.find_spec`` looks each module up without importing it (for a dotted name
only its parent package is imported), so the check costs no import of torch or diffusers.
"""

import importlib.util
import sys
from typing import Dict, List

# requirement, as pyproject.toml's [project] dependencies write it -> the module it installs
REQUIREMENTS: Dict[str, str] = {
    "torch>=2.4": "torch",
    "diffusers>=0.41": "diffusers",
    "transformers>=4.44": "transformers",
    "accelerate>=0.33": "accelerate",
    "peft>=0.13": "peft",
    "kornia>=0.7": "kornia",
    "spandrel>=0.4": "spandrel",
    "safetensors>=0.4": "safetensors",
    "huggingface_hub>=0.24": "huggingface_hub",
    "jsonschema>=4": "jsonschema",
    "einops>=0.8": "einops",
    "imageio>=2.34": "imageio",
    "imageio-ffmpeg>=0.5": "imageio_ffmpeg",
    "av>=12": "av",
    "sentencepiece>=0.2": "sentencepiece",
    "protobuf>=4": "google.protobuf",
    "tqdm": "tqdm",
    "numpy": "numpy",
    "pillow": "PIL",
}


def module_available(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_requirements() -> List[str]:
    """The requirements (``"diffusers>=0.35"``) whose module cannot be imported, in pyproject.toml's order."""
    return [requirement for requirement, module in REQUIREMENTS.items() if not module_available(module)]


def install_command(requirements: List[str]) -> str:
    """The command that installs ``requirements`` into the Python that runs ComfyUI."""
    quoted = " ".join(f'"{requirement}"' for requirement in requirements)
    return f'"{sys.executable}" -m pip install {quoted}'


def missing_requirements_message(requirements: List[str]) -> str:
    """The one log line that says the pack registered no nodes, which packages are missing and how to install them."""
    return (f"video_diffusion_pack: no nodes registered, missing Python packages: {', '.join(requirements)}. "
            f"Install them with: {install_command(requirements)}")
