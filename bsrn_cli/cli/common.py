"""What every command shares: the consoles, option types, and one-line error reporting."""

from __future__ import annotations

import traceback
from typing import Annotated

import typer
from rich.console import Console

from bsrn_cli.backends.memory import MIN_TILE
from bsrn_cli.errors import BsrnError, UsageProblem

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Settings:
    debug = False


def report_error(exc: BaseException) -> None:
    """One line on stderr; the traceback only with --debug."""
    if Settings.debug:
        err_console.print(traceback.format_exc(), markup=False)
    message = str(exc) if isinstance(exc, BsrnError) else f"{type(exc).__name__}: {exc}"
    err_console.print(f"error: {message}", markup=False)


def check_scale(scale: int | None, command: str = "upscale") -> None:
    """A usage mistake (exit status 2) unless the scale is 2, 3 or 4 (or not given)."""
    if scale is not None and scale not in (2, 3, 4):
        raise UsageProblem("-s/--scale", f"unsupported scale {scale}: choose 2, 3 or 4", f"see bsrn {command} --help")


DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "packed", "torch")


def check_run_options(device: str, backend: str, threads: int, tile: int, overlap: int | None = None) -> None:
    """The options every command that runs a network shares, checked before anything heavy is imported."""
    if device not in DEVICES:
        raise UsageProblem("--device", f"{device!r} is not cpu, cuda or auto", "see --help")
    if backend not in BACKENDS:
        raise UsageProblem("--backend", f"unknown backend {backend!r}", f"choose {', '.join(BACKENDS)}")
    if backend == "packed" and device == "cuda":
        raise UsageProblem("--backend", "packed runs on the CPU only", "use --backend torch for CUDA")
    if threads < 0:
        raise UsageProblem("--threads", "must be 0 (all cores) or positive", "see --help")
    if tile < 0:
        raise UsageProblem("--tile", "must be 0 (no tiling) or a positive number of input pixels", "see --help")
    if 0 < tile < MIN_TILE:
        raise UsageProblem("--tile", f"{tile} is too small: tiles under {MIN_TILE} pixels spend most of their time "
                                     "on the overlap around them", f"use 0 (no tiling) or {MIN_TILE} or more")
    if overlap is not None and overlap < 0:
        raise UsageProblem("--tile-overlap", "must not be negative", "see --help")


ScaleOption = Annotated[int | None, typer.Option("--scale", "-s", help="Upscaling factor: 2, 3 or 4.")]
ModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", help="Registered model name (see `bsrn models list`) or a .safetensors path.")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu, cuda or auto (cuda when available).")]
BackendOption = Annotated[str, typer.Option(
    "--backend", help="auto (packed on the CPU when built, else torch), packed (XOR+popcount kernels), "
                      "or torch (PyTorch: CPU float reference, or CUDA).")]
ThreadsOption = Annotated[int, typer.Option(help="CPU threads (0: all cores).")]
TileOption = Annotated[int, typer.Option(help="Tile side in input pixels (0: whole image at once).")]
