"""Whole-process cost of `bsrn upscale` on a tiny image: wall seconds and peak RSS, median of N runs.

Runs, in fresh processes: a 16x16 upscale x4 on the packed backend (what one small photo costs
before any pixel work), a usage mistake (`-s 5`, answered before any heavy import), and
`--version`. Peak RSS from getrusage of each child (Linux: KiB).

    python scripts/startup_time.py --runs 5 [--json results/bench/startup-DATE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def measure(command: list[str], cwd: str) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, exit status) of one fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return wall, usage.ru_maxrss / 1024, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Write the figures here too.")
    args = parser.parse_args()
    bsrn = shutil.which("bsrn")
    if bsrn is None:
        sys.exit("bsrn is not on PATH: pip install . first")
    with tempfile.TemporaryDirectory() as work:
        tiny = Path(work) / "tiny.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tiny)
        cases = {
            "upscale 16x16 -s 4 (packed)": [bsrn, "upscale", str(tiny), "-s", "4", "-o", f"{work}/out.png",
                                            "--overwrite", "-q"],
            "upscale -s 5 (usage mistake)": [bsrn, "upscale", str(tiny), "-s", "5"],
            "--version": [bsrn, "--version"],
        }
        results = {}
        for name, command in cases.items():
            measure(command, work)  # warm the file cache
            runs = [measure(command, work) for _ in range(args.runs)]
            results[name] = {"wall_s": [round(r[0], 3) for r in runs], "rss_mib": [round(r[1], 1) for r in runs],
                             "exit": sorted({r[2] for r in runs}),
                             "median_wall_s": round(statistics.median(r[0] for r in runs), 3),
                             "median_rss_mib": round(statistics.median(r[1] for r in runs), 1)}
            print(f"{name:32s} median {results[name]['median_wall_s']:.3f} s, "
                  f"{results[name]['median_rss_mib']:.1f} MiB peak RSS (exit {results[name]['exit']})")
    try:
        import torch  # noqa: F401
        torch_installed = True
    except ImportError:
        torch_installed = False
    from bsrn_cli.system import cpu_name

    record = {"command": " ".join(sys.argv), "machine": cpu_name(),
              "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch_installed": torch_installed,
              "runs": args.runs, "results": results}
    if args.json:
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
