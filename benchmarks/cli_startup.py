"""Start-up time of the `vdp` command: `--help`, a command's `--help` and an argument error, each in a fresh process.

Each case runs `repeats` times in a new interpreter (`python -c "...main([...])"`, what the console script runs) and
the median wall time is printed, with the heavy modules (torch, diffusers) the process imported. Side by side:
- the same cases on another commit of the pack (`--baseline REF`: its tree is taken with `git archive` into a
  temporary folder and put first on PYTHONPATH), and
- `import torch`, the cost a command would pay if its parser imported torch.
The installed `vdp` console script is timed too (`vdp --help`), as a user starts it.

    python benchmarks/cli_startup.py [--repeats 7] [--baseline be2e71b]
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "vdp --help": ["--help"],
    "vdp generate --help": ["generate", "--help"],
    "vdp convert repvideo --help": ["convert", "repvideo", "--help"],
    "vdp generate (bad --height)": ["generate", "a cat", "-o", "clip.mp4", "--height", "500"],
}
_PROBE = """
import sys
from video_diffusion_pack.cli import main
try:
    main({arguments!r})
except SystemExit:
    pass
print("heavy:" + ",".join(name for name in ("torch", "diffusers") if name in sys.modules), file=sys.stderr)
"""


def timed(command, env, cwd) -> tuple:
    """(seconds, heavy modules) of one run of `command`."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    seconds = time.perf_counter() - start
    lines = [line for line in result.stderr.splitlines() if line.startswith("heavy:")]
    heavy = lines[-1].removeprefix("heavy:") if lines else "?"
    return seconds, heavy or "-"


def median_run(command, env, cwd, repeats: int) -> tuple:
    runs = [timed(command, env, cwd) for _ in range(repeats)]
    return statistics.median(seconds for seconds, _ in runs), runs[-1][1]


def baseline_tree(ref: str, scratch: Path) -> Path:
    """A folder holding `video_diffusion_pack/` as it is at commit `ref`."""
    package = scratch / "video_diffusion_pack"
    package.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", ref], capture_output=True,
                             check=True).stdout
    with tempfile.TemporaryFile() as file:
        file.write(archive)
        file.seek(0)
        with tarfile.open(fileobj=file) as tar:
            tar.extractall(package, filter="data")
    found = subprocess.run([sys.executable, "-c", "import video_diffusion_pack; print(video_diffusion_pack.__file__)"],
                           capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(scratch)))
    if not Path(found.stdout.strip()).is_relative_to(scratch):
        raise SystemExit(f"the baseline tree is not the one imported: {found.stdout.strip()}")
    return scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs per case; the median is reported (default: 7)")
    parser.add_argument("--baseline", help="a commit of the pack to time side by side (e.g. be2e71b)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="vdp_cli_startup_"))
    try:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        trees = {"this tree": env}
        if args.baseline is not None:
            trees[args.baseline] = dict(env, PYTHONPATH=str(baseline_tree(args.baseline, scratch / "baseline")))
        work = scratch / "cwd"
        work.mkdir()

        rows = []
        for case, arguments in CASES.items():
            command = [sys.executable, "-c", _PROBE.format(arguments=arguments)]
            row = [case]
            for tree_env in trees.values():
                seconds, heavy = median_run(command, tree_env, work, args.repeats)
                row += [f"{seconds:.2f}", heavy]
            rows.append(row)
        vdp = shutil.which("vdp")
        if vdp is not None:
            seconds, _ = median_run([vdp, "--help"], env, work, args.repeats)
            rows.append(["installed `vdp --help`", f"{seconds:.2f}", "?"] + ["", ""] * (len(trees) - 1))
        seconds, _ = median_run([sys.executable, "-c", "import torch"], env, work, args.repeats)
        rows.append(["python -c 'import torch'", f"{seconds:.2f}", "torch"] + ["", ""] * (len(trees) - 1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    header = ["case"]
    for name in trees:
        header += [f"{name}: median s", f"{name}: imports"]
    widths = [max(len(row[column]) for row in [header] + rows) for column in range(len(header))]
    print(f"# vdp start-up, {args.repeats} runs per case, {platform.node()} ({os.cpu_count()} CPUs), "
          f"python {platform.python_version()}, {datetime.date.today()}")
    for row in [header] + rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()
