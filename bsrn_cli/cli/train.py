"""`bsrn train`: train a BSRN on folders of HR images (minimal loop; grows into the full pipeline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bsrn_cli.cli.common import check_scale, console
from bsrn_cli.errors import BsrnError


def train_command(
    data: Annotated[list[Path], typer.Argument(help="Folders (or files) of HR training images.")],
    scale: Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor: 2, 3 or 4.")] = 4,
    preset: Annotated[str, typer.Option(help="Network preset: fast (shipped) or paper.")] = "fast",
    model_set: Annotated[list[str], typer.Option(
        "--set", help="Override one BSRN configuration field, e.g. --set upsampler=edsr.")] = [],
    steps: Annotated[int, typer.Option(help="Number of optimisation steps.")] = 10000,
    batch: Annotated[int, typer.Option(help="Patches per step.")] = 16,
    patch: Annotated[int, typer.Option(help="LR patch side in pixels.")] = 48,
    lr: Annotated[float, typer.Option(help="Peak learning rate (Adam).")] = 5e-4,
    time_budget: Annotated[float, typer.Option(help="Stop cleanly after this many seconds (0: no limit).")] = 0.0,
    val: Annotated[Path | None, typer.Option(help="Validation data set folder (HR/, LR_bicubic/).")] = None,
    val_every: Annotated[int, typer.Option(help="Validate every N steps.")] = 1000,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (log, checkpoints, best weights).")] =
        Path("runs/bsrn"),
    init: Annotated[Path | None, typer.Option(help="Start from the matching tensors of these weights.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.safetensors if present.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    threads: Annotated[int, typer.Option(help="CPU threads (0: torch default).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    downscale_larger_than: Annotated[int, typer.Option(
        help="Halve HR images whose longer side exceeds this (soft multi-megapixel photos).")] = 0,
) -> None:
    """Train weights: random aligned patches, MATLAB-bicubic LR, L1 loss, Adam, cosine schedule.

    Example: bsrn train data/train -s 4 --time-budget 1500 --val ../shared/data/Set5 -o runs/x4
    """
    from bsrn_cli.train.loop import TrainConfig, train

    check_scale(scale)
    overrides = {}
    for item in model_set:
        if "=" not in item:
            raise BsrnError(f"--set {item!r}: expected FIELD=VALUE")
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value) if value in ("true", "false") or value.lstrip("-").replace(".", "", 1).isdigit() else value
    config = TrainConfig(data=[str(d) for d in data], scale=scale, preset=preset, model_overrides=overrides,
                         steps=steps, batch=batch, lr_patch=patch, lr=lr, time_budget=time_budget,
                         val_data=str(val) if val else None, val_every=val_every, out=str(out),
                         init=str(init) if init else None, resume=resume, device=device, threads=threads,
                         seed=seed, downscale_larger_than=downscale_larger_than)
    summary = train(config, log=lambda line: console.print(line, markup=False, highlight=False))
    console.print(f"best weights: {summary['best']}")
