"""`bsrn train` (any backbone x any binarization method) and `bsrn export` (run -> weights file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from bsrn_cli.cli.common import console
from bsrn_cli.errors import require_torch
from bsrn_cli.train import preset_names



def train_command(
    data: Annotated[Optional[list[Path]], typer.Argument(
        help="Folders (or files) of HR images; a DIV2K-style folder uses its *_HR/ images.")] = None,
    config: Annotated[Optional[str], typer.Option(
        "--config", "-c", help=f"TOML file, or a shipped preset: {', '.join(preset_names())}.")] = None,
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", help="Upscaling factor: 2, 3 or 4.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="bsrn, vdsr or srresnet.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="BSRN network preset: fast (shipped) or paper.")] = None,
    method: Annotated[Optional[str], typer.Option(
        help="fp, bnn, dorefa, abc, ma, bam, bam-w1, bam-w2, bam-a1, bam-a2.")] = None,
    sets: Annotated[list[str], typer.Option(
        "--set", help="KEY=VALUE for any training or model field, e.g. --set fp_skip=true --set betas=[0.9,0.99].")] = [],
    steps: Annotated[Optional[int], typer.Option(help="Number of optimisation steps.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Patches per step (per process under torchrun).")] = None,
    patch: Annotated[Optional[int], typer.Option(help="LR patch side in pixels.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (Adam).")] = None,
    ema: Annotated[Optional[float], typer.Option(help="EMA decay of the weights (0: off), e.g. 0.999.")] = None,
    time_budget: Annotated[Optional[float], typer.Option(
        help="Stop cleanly after this many seconds (0: no limit).")] = None,
    val: Annotated[Optional[Path], typer.Option(help="Validation data set folder (HR/, LR_bicubic/).")] = None,
    val_every: Annotated[Optional[int], typer.Option(help="Validate every N steps.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Write OUT/last.safetensors every N steps.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder (log, checkpoints, best weights).")] = None,
    init: Annotated[Optional[list[Path]], typer.Option(
        help="Start from the matching tensors of these weights (repeatable: each tensor from the first "
             "file that has it, e.g. an x4 body, then an x2 upsampler).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.safetensors if present.")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda or auto.")] = None,
    compile: Annotated[Optional[str], typer.Option(
        help="torch.compile: auto, on (= blocks), off, blocks (each binary block) or model (the whole network).")] = None,
    precision: Annotated[Optional[str], typer.Option(
        help="fp32, bf16 (autocast) or auto (bf16 on CUDA and on CPUs with bf16 instructions).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Threads cutting batches ahead on CUDA (0: 2).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (0: torch default).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    downscale_larger_than: Annotated[Optional[int], typer.Option(
        help="Halve HR images whose longer side exceeds this (soft multi-megapixel photos).")] = None,
) -> None:
    """Train weights: aligned random patches, MATLAB-bicubic LR, L1, Adam; checkpoints, resume, budget.

    Examples: bsrn train data/train -c fast -s 4 --time-budget 1500 -o runs/x4;
    bsrn train data/train --backbone vdsr --method abc --steps 300 -o runs/vdsr-abc;
    torchrun --nproc_per_node 2 -m bsrn_cli train ... (DistributedDataParallel).
    """
    require_torch("bsrn train", "train")
    from bsrn_cli.train.config import make_config
    from bsrn_cli.train.loop import train

    options = {"data": [str(d) for d in data] if data else None, "scale": scale, "backbone": backbone,
               "preset": preset, "method": method, "steps": steps, "batch": batch, "lr_patch": patch, "lr": lr,
               "ema": ema, "time_budget": time_budget, "val_data": str(val) if val else None,
               "val_every": val_every, "checkpoint_every": checkpoint_every, "out": str(out) if out else None,
               "init": (str(init[0]) if len(init) == 1 else [str(p) for p in init]) if init else None,
               "resume": resume or None, "device": device,
               "compile": compile, "precision": precision, "workers": workers, "threads": threads, "seed": seed,
               "downscale_larger_than": downscale_larger_than}
    settings = make_config(config, options, sets)
    log = lambda line: console.print(line, markup=False, highlight=False)  # noqa: E731
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 speaks
        log = lambda line: None  # noqa: E731
        train(settings, log=log)
        return
    if console.is_terminal:
        summary = _train_with_progress(settings, log)
    else:
        summary = train(settings, log=log)
    if summary.get("stopped_early"):
        log(f"stopped at step {summary['step']} of {settings.steps}; --resume continues")
    log(f"best weights: {summary['best']}")


def _train_with_progress(settings, log) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bsrn_cli.train.loop import train

    columns = (TextColumn("train"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}  PSNR {task.fields[psnr]}  {task.fields[rate]} it/s  ETA"),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("train", total=settings.steps, loss="-", psnr="-", rate="-")

        def update(record: dict) -> None:
            fields = {}
            if "loss" in record:
                fields.update(loss=f"{record['loss']:.4f}", rate=f"{record['it_per_s']:.2f}")
            if "psnr" in record:
                fields["psnr"] = f"{record['psnr']:.2f}"
            total = settings.steps
            if "eta_seconds" in record and settings.time_budget:
                total = min(settings.steps, int(record["step"] + record["eta_seconds"] * max(record["it_per_s"], 0)))
            bar.update(task, completed=record["step"], total=max(total, record["step"]), **fields)

        return train(settings, log=bar.console.print, progress=update)


def export_command(
    run: Annotated[Path, typer.Argument(help="A run folder of bsrn train, or a checkpoint/weights file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The weights file to write (.safetensors).")],
    source: Annotated[str, typer.Option("--from", help="best (validated weights) or last (checkpoint; EMA if kept).")] =
        "best",
    val: Annotated[Optional[Path], typer.Option(help="Evaluate on this data set and record it in the metadata.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Export a training run's best or last (EMA) weights to the shipped weights format.

    Example: bsrn export runs/x4 -o my-x4.safetensors --from last
    """
    require_torch("bsrn export", "train")
    from bsrn_cli.train.export import export_run

    meta = export_run(run, output, source=source, val=val, overwrite=overwrite)
    training = meta.get("training", {})
    console.print(f"wrote {output}: {meta['architecture']} x{meta['scale']} {meta.get('method', '')}, "
                  f"{training.get('steps', '?')} steps" +
                  "".join(f", {k} {v}" for k, v in meta.get("metrics", {}).items()), markup=False, highlight=False)

