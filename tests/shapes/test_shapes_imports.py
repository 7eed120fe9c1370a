"""The shapes world is drawn and written without torch: `vdp dataset shapes` (help, argument errors and a real
write) imports neither torch nor diffusers."""

from tests.cli.test_cli_imports import heavy_modules_after


def test_the_shapes_help_and_an_argument_error_import_neither_torch_nor_diffusers():
    assert heavy_modules_after("build_parser().parse_args(['dataset', 'shapes', '--help'])") == []
    assert heavy_modules_after("main(['dataset', 'shapes', '-o', 'out', '--videos', '0'])") == []


def test_writing_the_world_imports_neither_torch_nor_diffusers(tmp_path):
    call = f"main(['dataset', 'shapes', '-o', {str(tmp_path / 'out')!r}, '--videos', '1'])"
    assert heavy_modules_after(call) == []
    assert (tmp_path / "out" / "metadata.jsonl").is_file()
