"""`bsrn eval`: PSNR/SSIM on standard data sets by the SR protocol, beside the published rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bsrn_cli.cli.common import (BackendOption, DeviceOption, ModelOption, ScaleOption, ThreadsOption, TileOption,
                                 check_run_options, check_scale, console)
from bsrn_cli.errors import UsageProblem


def _upscaler(model: str | None, scale: int, backend: str, device: str, tile: int, threads: int):
    """A uint8 LR -> uint8 SR function (grayscale in, grayscale out) and the model's name."""
    from bsrn_cli.backends import check_backend
    from bsrn_cli.evaluation import as_network_input
    from bsrn_cli.imresize import imresize

    check_backend(backend)
    if model == "bicubic":
        return (lambda lr: imresize(lr, float(scale))), "bicubic"
    from bsrn_cli.backends import make_upscaler
    from bsrn_cli.pretrained.loader import load_model

    net, _, source = load_model(model, scale)
    upscaler = make_upscaler(net, backend, device, tile=tile, threads=threads)
    return as_network_input(upscaler.upscale), source


def eval_command(
    datasets: Annotated[list[Path], typer.Argument(help="Data set folders (HR/ [+ LR_bicubic/X{s}/]) or HR folders.")],
    scale: ScaleOption = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
    threads: ThreadsOption = 0,
    tile: TileOption = 256,
    save_sr: Annotated[Path | None, typer.Option(help="Write the SR images into this folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per data set.")] = False,
) -> None:
    """Evaluate a model (or --model bicubic) on data sets: Y-PSNR/SSIM, s-pixel border crop.

    Example: bsrn eval data/Set5 data/Set14 -s 4
    """
    import numpy as np

    from bsrn_cli.evaluation import load_pairs, score_image
    from bsrn_cli.io.images import save_image_array
    from bsrn_cli.published import published_rows

    check_scale(scale, "eval")
    check_run_options(device, backend, threads, tile)
    if scale is None:
        raise UsageProblem("-s/--scale", "missing", "give -s 2, 3 or 4 (or --model FILE)")
    upscale, model_name = _upscaler(model, scale, backend, device, tile, threads)
    for dataset in datasets:
        pairs = load_pairs(dataset, scale)
        name = dataset.resolve().name if dataset.resolve().name != "HR" else dataset.resolve().parent.name
        rows = []
        for pair in pairs:
            sr = upscale(pair.lr)
            rows.append(score_image(pair.name, sr, pair.hr, scale))
            if save_sr is not None:
                save_image_array(sr, save_sr / name / f"{pair.name}_x{scale}.png")
        mean_psnr = float(np.mean([r["psnr"] for r in rows]))
        mean_ssim = float(np.mean([r["ssim"] for r in rows]))
        if as_json:
            print(json.dumps({"dataset": name, "scale": scale, "model": model_name, "psnr": mean_psnr,
                              "ssim": mean_ssim, "images": rows}))
            continue
        table = Table(title=f"{name} x{scale}: {model_name}")
        table.add_column("image")
        table.add_column("PSNR (dB)", justify="right")
        table.add_column("SSIM", justify="right")
        for row in rows:
            table.add_row(row["name"], f"{row['psnr']:.3f}", f"{row['ssim']:.4f}")
        table.add_section()
        table.add_row("mean", f"{mean_psnr:.3f}", f"{mean_ssim:.4f}", style="bold")
        published = published_rows(name, scale)
        if published:
            table.add_section()
            for row in published:
                ssim = "" if row["ssim"] is None else f"{row['ssim']:.4f}"
                table.add_row(f"{row['method']} [{row['source']}]", f"{row['psnr']:.2f}", ssim, style="dim")
        console.print(table)
