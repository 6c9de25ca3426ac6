"""Measure the shipped weights and bicubic with `bsrn eval --json`; print a Markdown table
with the published rows beside them.

Usage: python scripts/results_table.py DATASET_DIR... > table.md
"""

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bsrn_cli.pretrained.registry import default_model_name  # noqa: E402
from bsrn_cli.evaluation import truncated  # noqa: E402
from bsrn_cli.published import published_rows  # noqa: E402
from bsrn_cli.system import cpu_name  # noqa: E402

PUBLISHED_METHODS = ("Bicubic", "BSRN", "BBCU-L", "BBCU-M")


def evaluate(datasets: list[str], scale: int, model: str) -> dict[str, dict]:
    out = subprocess.run([sys.executable, "-m", "bsrn_cli", "eval", *datasets, "-s", str(scale), "--model", model,
                          "--json", "--device", "cpu", "--backend", "torch"], check=True, capture_output=True, text=True).stdout
    return {r["dataset"]: r for r in map(json.loads, out.splitlines())}


def trunc(value: float, digits: int) -> str:
    """Truncated, never rounded up."""
    return f"{truncated(value, digits):.{digits}f}"


def main(datasets: list[str]) -> None:
    names = [Path(d).name for d in datasets]
    print(f"| scale | model | " + " | ".join(f"{n} PSNR / SSIM" for n in names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for scale in (2, 3, 4):
        for label, model in (("bicubic (ours)", "bicubic"), (f"{default_model_name(scale)} (ours)",
                                                             default_model_name(scale))):
            results = evaluate(datasets, scale, model)
            cells = [f"{trunc(results[n]['psnr'], 2)} / {trunc(results[n]['ssim'], 4)}" for n in names]
            print(f"| x{scale} | {label} | " + " | ".join(cells) + " |")
        for method in PUBLISHED_METHODS:
            cells, source = [], ""
            for n in names:
                rows = [r for r in published_rows(n, scale) if r["method"] == method]
                if rows:
                    source = rows[0]["source"].split(" (")[0]
                    ssim = "" if rows[0]["ssim"] is None else f" / {rows[0]['ssim']:.4f}"
                    cells.append(f"{rows[0]['psnr']:.2f}{ssim}")
                else:
                    cells.append("")
            if any(cells):
                print(f"| x{scale} | {method} [{source}] | " + " | ".join(cells) + " |")
    import os
    import torch
    print(f"\nMeasured on {cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}, PyTorch CPU backend, "
          f"with `python scripts/results_table.py {' '.join(datasets)}`.")


if __name__ == "__main__":
    main(sys.argv[1:])
