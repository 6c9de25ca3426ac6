"""Wall time of `bsrn upscale FOLDER` in one process against `--ray local` on the same folder,
in one run (alternating, several rounds), so the overhead of the cluster is known.

Usage: python scripts/ray_throughput.py [--images 60] [--size 320x180] [--scale 4] [--rounds 3]
                                        [--json results/bench/ray-DATE.json]
The images are made here (random smooth content; speed does not depend on it). Each Ray round
starts a new local cluster, as a user's run does; its start-up is part of its time.
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


def make_images(folder: Path, count: int, width: int, height: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.BICUBIC).save(folder / f"im{i:03d}.png")


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bsrn-ray-"))
    try:
        make_images(work / "in", args.images, width, height)
        base = [sys.executable, "-m", "bsrn_cli", "upscale", str(work / "in"), "-s", str(args.scale)]
        local, ray = [], []
        for round_ in range(args.rounds):
            for kind, times, extra in (("local", local, []), ("ray", ray, ["--ray", "local"])):
                out = work / f"{kind}{round_}"
                times.append(timed(base + ["-o", str(out)] + extra))
                print(f"round {round_ + 1}: {kind} {times[-1]:.2f} s", file=sys.stderr)
        same = all((work / "local0" / p.name).read_bytes() == p.read_bytes() for p in (work / "ray0").iterdir())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "images": args.images, "size": args.size, "scale": args.scale, "rounds": args.rounds,
              "local_s": local, "ray_s": ray, "local_median_s": statistics.median(local),
              "ray_median_s": statistics.median(ray),
              "ray_over_local": statistics.median(ray) / statistics.median(local),
              "outputs_identical": same}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
