"""Published PSNR/SSIM rows (a copy of the papers' tables shipped with the package)."""

from __future__ import annotations

import csv
from importlib import resources


def published_rows(dataset: str, scale: int) -> list[dict]:
    text = resources.files("bsrn_cli").joinpath("data/published.csv").read_text()
    rows = []
    for row in csv.DictReader(text.splitlines()):
        if row["dataset"].lower() == dataset.lower() and int(row["scale"]) == scale:
            rows.append({"source": row["source"], "method": row["method"], "psnr": float(row["psnr"]),
                         "ssim": float(row["ssim"]) if row["ssim"] else None})
    return rows
