"""Shared test helpers: paths of the checkout, the `vdp` runner, a fake Hub, a real ComfyUI harness, tiny diffusers videos."""

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTS_ROOT = REPO_ROOT / "tests"
FIXTURES = TESTS_ROOT / "fixtures"
# ComfyUI templates (UI-format graphs and their thumbnails), and the API-format copies the tests queue
EXAMPLE_WORKFLOWS = REPO_ROOT / "example_workflows"
WORKFLOWS = TESTS_ROOT / "workflows"
