"""`python -m video_diffusion_pack.training ARGS` and `accelerate launch -m video_diffusion_pack.training ARGS`: the
`vdp train` command (the same arguments), on one process or on each process accelerate launches."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
