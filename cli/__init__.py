"""The `vdp` command: generate, edit and control videos, download and convert the official weights, report versions.

One module per command group (`generate`, `das`, `inpaint`, `weights`, `convert`), each adding its subcommands to
the parser; what they share is in `_common`. Building the parser, `--help` and every argument error import neither
torch nor diffusers: a command imports them only once its arguments are checked.
"""

import argparse

from .. import __version__
from . import convert, das, dataset, generate, inpaint, train, weights
from . import eval as eval_commands
from ._common import ArgumentParser, run_command

__all__ = ["build_parser", "main"]

# the command groups, in the order `vdp --help` lists them
_COMMAND_GROUPS = (generate, weights, das, inpaint, convert, dataset, train, eval_commands)


def build_parser() -> argparse.ArgumentParser:
    """The `vdp` argument parser with its subcommands (generate, info, download, das, track-video, inpaint, convert)."""
    parser = ArgumentParser(prog="vdp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"video_diffusion_pack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for group in _COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv=None) -> int:
    """Entry point of the `vdp` console script."""
    args = build_parser().parse_args(argv)
    return run_command(args.run, args, f"vdp {args.command}")
