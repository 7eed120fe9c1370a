"""Specification of the distribution: `pip install .` ships every subpackage and data file of the checkout."""

import json
import pathlib

import pytest
from helpers import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

PACKAGE_NAME = "video_diffusion_pack"
# folders of the checkout that are not part of the installed package
NOT_SHIPPED = {"tests", "benchmarks", "build"}


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def packages_in_checkout():
    """Dotted names of the folders with an ``__init__.py`` that belong to the package."""
    for init in REPO_ROOT.rglob("__init__.py"):
        parts = init.parent.relative_to(REPO_ROOT).parts
        if parts and (parts[0] in NOT_SHIPPED or any(part.startswith(".") for part in parts)):
            continue
        yield ".".join((PACKAGE_NAME, *parts))


def test_every_subpackage_of_the_checkout_is_listed_for_the_wheel():
    listed = set(pyproject()["tool"]["setuptools"]["packages"])

    missing = set(packages_in_checkout()) - listed

    assert missing == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"


def test_example_workflows_and_their_thumbnails_are_shipped_as_package_data():
    patterns = pyproject()["tool"]["setuptools"]["package-data"][PACKAGE_NAME]
    files = sorted(path.relative_to(REPO_ROOT) for path in (REPO_ROOT / "example_workflows").iterdir())

    assert {path.suffix for path in files} == {".json", ".jpg"}, "the checkout has templates and thumbnails"
    assert [path for path in files if not any(path.match(pattern) for pattern in patterns)] == []


def test_weights_manifest_and_its_schema_are_shipped_as_package_data():
    patterns = pyproject()["tool"]["setuptools"]["package-data"][PACKAGE_NAME]

    for name in ("weights_manifest.json", "weights_manifest.schema.json"):
        assert (REPO_ROOT / name).is_file()
        assert any(pathlib.PurePath(name).match(pattern) for pattern in patterns), f"{name} is not in package-data"


def test_console_script_points_at_the_cli():
    assert pyproject()["project"]["scripts"] == {"vdp": f"{PACKAGE_NAME}.cli:main"}


def test_registry_metadata_names_the_publisher_and_an_icon_of_the_checkout():
    comfy = pyproject()["tool"]["comfy"]
    repository = pyproject()["project"]["urls"]["Repository"].removeprefix("https://github.com/")
    icon_prefix = f"https://raw.githubusercontent.com/{repository}/main/"

    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert comfy["Icon"].startswith(icon_prefix)
    assert (REPO_ROOT / comfy["Icon"].removeprefix(icon_prefix)).is_file()


def test_registry_models_are_the_weights_manifest_entries_at_their_comfyui_folders():
    manifest = json.loads((REPO_ROOT / "weights_manifest.json").read_text())["entries"]
    expected = [{"location": "/" + entry["comfyui_folder"].removeprefix("models/"),
                 "model_url": f"https://huggingface.co/{entry['repo_id']}" if entry["repo_id"] else entry["urls"][0]["url"]}
                for entry in manifest]

    assert pyproject()["tool"]["comfy"]["Models"] == expected
