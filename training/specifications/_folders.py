"""Writing a pipeline export without leaving a half-written folder behind."""

import os
import shutil
import tempfile
from typing import Callable


def write_folder(output_dir: str, write: Callable[[str], None]) -> None:
    """Call ``write(folder)`` on a temporary sibling of ``output_dir``, then move what it wrote into ``output_dir``.

    Entries of ``output_dir`` with the same names are replaced; other entries (checkpoints of the run) are kept. If
    ``write`` fails, ``output_dir`` is left as it was.
    """
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.writing-", dir=parent)
    try:
        write(staging)
        os.makedirs(output_dir, exist_ok=True)
        for name in sorted(os.listdir(staging)):
            target = os.path.join(output_dir, name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.remove(target)
            os.replace(os.path.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
