"""`bsrn upscale`: images and folders in, images s times larger out, never a partial file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bsrn_cli.cli.common import (BackendOption, DeviceOption, ModelOption, ScaleOption, ThreadsOption, TileOption,
                                 check_scale, console, err_console, report_error)
from bsrn_cli.errors import BsrnError
from bsrn_cli.io.images import IMAGE_SUFFIXES, output_format

DEFAULT_SCALE = 4


@dataclass
class Job:
    source: Path
    target: Path


def _expand(inputs: list[Path]) -> tuple[list[tuple[Path, Path | None]], list[BsrnError]]:
    """(file, the folder it came from or None) to process, and the inputs that do not exist."""
    files, problems = [], []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not found:
                problems.append(BsrnError(f"{item}: folder contains no images"))
            files += [(p, item) for p in found]
        elif item.exists() or item.is_symlink():
            files.append((item, None))
        else:
            problems.append(BsrnError(f"{item}: no such file or folder"))
    return files, problems


def plan_jobs(inputs: list[Path], files: list[tuple[Path, Path | None]], output: Path | None,
              scale: int) -> list[Job]:
    """Where each output goes. Without -o: a file's output goes beside it, a folder's outputs
    into a sibling folder ``<folder>_x<s>`` (so a rerun does not take them for inputs). With
    -o: into it if it is (or must be) a folder, else to that file."""
    default_name = lambda p: f"{p.stem}_x{scale}.png"
    many = len(files) > 1 or any(i.is_dir() for i in inputs)
    if output is None:
        return [Job(f, f.with_name(default_name(f)) if folder is None
                    else folder.resolve().parent / f"{folder.resolve().name}_x{scale}" / default_name(f))
                for f, folder in files]
    as_folder = output.is_dir() or str(output).endswith(os.sep) or many or output.suffix == ""
    if as_folder:
        if output.exists() and not output.is_dir():
            raise BsrnError(f"{output}: exists and is not a folder, but several outputs go there")
        return [Job(f, output / default_name(f)) for f, _ in files]
    output_format(output)
    return [Job(f, output) for f, _ in files]


def _check_target(job: Job, inputs: set[Path], written: set[Path], overwrite: bool) -> None:
    target = job.target.resolve()
    if target in inputs:
        raise BsrnError(f"{job.source}: output {job.target} would overwrite an input; choose another -o")
    if target in written:
        raise BsrnError(f"{job.source}: output {job.target} was already written by another input in this run")
    if job.target.exists() and not overwrite:
        raise BsrnError(f"{job.target}: output exists (use --overwrite to replace it)")
    output_format(job.target)


def upscale_command(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images.")],
    scale: ScaleOption = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output file (one input) or folder. Default: <stem>_x<s>.png beside the input.")] = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
    threads: ThreadsOption = 0,
    tile: TileOption = 256,
    tile_overlap: Annotated[int | None, typer.Option(
        help="Context pixels around each tile (default: the network's receptive radius, exact).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files (never inputs).")] = False,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality of the output.")] = 95,
) -> None:
    """Upscale images by 2, 3 or 4.

    Examples: bsrn upscale photo.jpg -s 4 | bsrn upscale shots/ -s 2 -o big/ | bsrn upscale a.png -o a4.webp
    """
    from bsrn_cli.backends import make_upscaler
    from bsrn_cli.io.images import compose_output, load_image, save_image_atomic
    from bsrn_cli.models.loader import load_model

    check_scale(scale)
    if scale is None and model is None:
        scale = DEFAULT_SCALE
    files, problems = _expand(inputs)
    for problem in problems:
        report_error(problem)
    net, _, _ = load_model(model, scale)
    scale = net.scale
    jobs = plan_jobs(inputs, files, output, scale)
    upscaler = make_upscaler(net, backend, device, tile=tile, overlap=tile_overlap, threads=threads)

    input_paths = {f.resolve() for f, _ in files}
    written: set[Path] = set()
    failed = len(problems)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err_console, disable=len(jobs) <= 1, transient=False)
    with progress:
        task = progress.add_task("upscaling", total=len(jobs))
        for job in jobs:
            try:
                _check_target(job, input_paths, written, overwrite)
                loaded = load_image(job.source)
                result = compose_output(upscaler.upscale(loaded.rgb), loaded, scale)
                save_image_atomic(result, job.target, quality=quality)
                written.add(job.target.resolve())
            except (BsrnError, OSError, ValueError, RuntimeError) as exc:
                failed += 1
                report_error(exc)
            progress.advance(task)
    if len(jobs) > 1 or failed:
        console.print(f"upscaled {len(written)}, failed {failed}", highlight=False)
    if failed:
        raise typer.Exit(1)
