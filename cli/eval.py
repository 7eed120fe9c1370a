"""`vdp eval`: score generated videos. One subcommand a bed, each in its own module of this package."""

import importlib

# modules of this package that add one `vdp eval <name>` subcommand each through `add_subcommand(subcommands)`
_SUBCOMMAND_MODULES = ("eval_vbench", "eval_shapes", "eval_ab")


def add_commands(commands) -> None:
    parser = commands.add_parser("eval", help="score generated videos (the subcommands name the bed)",
                                 description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(dest="eval_command", required=True, parser_class=type(parser))
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_subcommand(subcommands)
