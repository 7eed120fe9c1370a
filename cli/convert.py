"""The `vdp convert` command: official checkpoint formats -> the pack's diffusers folders.

Arguments are checked before torch is imported; a bad one exits with status 2 and a one-line message naming it.
"""

import functools
import os
import sys

from ._common import DTYPES


def add_commands(commands) -> None:
    """Adds `convert` (with its `repvideo` subcommand) to the `vdp` subcommands."""
    convert = commands.add_parser(
        "convert",
        help="convert an official checkpoint into a diffusers folder of the pack",
        description="Convert an official checkpoint format into a folder that the pack's diffusers classes load.",
    )
    kinds = convert.add_subparsers(dest="kind", required=True, parser_class=type(convert))
    repvideo = kinds.add_parser(
        "repvideo",
        help="the released RepVideo SwissArmyTransformer checkpoint -> CogVideoXRepVideoPipeline folder",
        description=(
            "Convert the released Vchitect/RepVideo SAT save folder (`latest` + <iteration>/mp_rank_00_model_states.pt) "
            "into a CogVideoXRepVideoPipeline folder, with the text encoder, tokenizer and VAE of a THUDM/CogVideoX-2b "
            "download; without --cogvideox, into a transformer folder only. The output is written to a temporary "
            "folder and renamed when complete."
        ),
    )
    repvideo.add_argument("--sat", required=True, help="SAT save folder holding `latest` (the Vchitect/RepVideo download)")
    repvideo.add_argument("--cogvideox", help="THUDM/CogVideoX-2b download with text_encoder/, tokenizer/ and vae/")
    repvideo.add_argument("-o", "--output", required=True, help="folder to create (must not exist)")
    repvideo.add_argument("--dtype", choices=tuple(DTYPES), help="dtype of the saved transformer weights (default: as stored)")
    repvideo.add_argument(
        "--allow-pickle", action="store_true",
        help="load the checkpoint with weights_only=False (only for a file you trust that the safe loader refuses)",
    )
    repvideo.set_defaults(run=functools.partial(_convert_repvideo, parser=repvideo))


def _convert_repvideo(args, parser) -> int:
    if not os.path.isdir(args.sat):
        parser.error(f"argument --sat: sat='{args.sat}' is not a folder")
    if not os.path.isfile(os.path.join(args.sat, "latest")):
        parser.error(f"argument --sat: sat='{args.sat}' has no `latest` file (not a SAT save folder)")
    if args.cogvideox is not None and not os.path.isdir(args.cogvideox):
        parser.error(f"argument --cogvideox: cogvideox='{args.cogvideox}' is not a folder")
    if os.path.exists(args.output):
        parser.error(f"argument -o/--output: output='{args.output}' already exists; give a new folder")
    parent = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(parent):
        parser.error(f"argument -o/--output: the parent folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        parser.error(f"argument -o/--output: the parent folder '{parent}' is not writable")

    from ..convert.repvideo_sat import (
        SatCheckpointError,
        convert_repvideo_sat_checkpoint,
    )

    try:
        output = convert_repvideo_sat_checkpoint(
            args.sat, args.output, cogvideox_dir=args.cogvideox, dtype=args.dtype, allow_pickle=args.allow_pickle
        )
    except SatCheckpointError as error:
        print(f"vdp convert repvideo: {error}", file=sys.stderr)
        return 1
    kind = "CogVideoXRepVideoPipeline" if args.cogvideox is not None else "CogVideoXRepVideoTransformer3DModel"
    print(f"wrote {output} ({kind})")
    return 0
