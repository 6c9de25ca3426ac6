"""`bsrn bench`: the packed backend against PyTorch float on the same weights, same process."""

from __future__ import annotations

import json
import resource
import statistics
import time
from typing import Annotated

import typer
from rich.table import Table

from bsrn_cli.cli.common import ModelOption, console
from bsrn_cli.errors import BsrnError
from bsrn_cli.system import cpu_name


PAUSE_SECONDS = 0.05


def _interleaved_medians(runs: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each callable, run in turns (one warm-up each first).

    Each timed call starts after a short pause: torch's OpenMP workers keep spinning for a
    while after a parallel region, and on a 2-core machine they would otherwise take the cores
    from whatever runs next (a short packed call measured right after a torch call lost up to a
    third of its speed to them). Every callable gets the same pause, outside its timing."""
    for run in runs.values():
        run()
    samples = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(PAUSE_SECONDS)
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_command(
    model: ModelOption = None,
    scale: Annotated[int, typer.Option("--scale", "-s", help="Scale of the default model.")] = 4,
    width: Annotated[int, typer.Option(help="Input width (default 320: 1280 wide at x4).")] = 320,
    height: Annotated[int, typer.Option(help="Input height (default 180: 720 high at x4).")] = 180,
    threads: Annotated[list[int], typer.Option(help="Thread counts to measure (repeatable).")] = [1, 2],
    rounds: Annotated[int, typer.Option(help="Timed rounds per backend (median reported).")] = 5,
    layers: Annotated[bool, typer.Option("--layers", help="Break the packed time down per layer type.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time packed vs PyTorch float (channels_last) on the CPU, whole network and one block.

    Example: bsrn bench -s 4 --threads 1 --threads 2 --rounds 5 --layers
    """
    import torch

    from bsrn_cli.backends import bitpack
    from bsrn_cli.backends.packed_backend import PackedBSRN, to_pixels
    from bsrn_cli.models.loader import load_model

    if not bitpack.available():
        raise BsrnError("the packed kernels are not built in this installation")
    if rounds < 1 or width < 1 or height < 1 or any(t < 1 for t in threads):
        raise BsrnError("--rounds, --width, --height and --threads must be positive")
    net, _, source = load_model(model, None if model else scale)
    net = net.eval()
    float_net = net.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    out_pixels = width * net.scale * height * net.scale
    with torch.no_grad():
        kernels = net.binary_kernels()
        features = net.head(x - 0.5)
    features_cl = features.contiguous(memory_format=torch.channels_last)
    features_hwc = to_pixels(features)
    results = {"model": source, "scale": net.scale, "input": [width, height], "cpu": cpu_name(),
               "torch": torch.__version__, "kernel_path": bitpack._packed.path(), "rounds": rounds, "runs": []}
    for count in threads:
        torch.set_num_threads(count)
        packed = PackedBSRN(net, threads=count)
        with torch.inference_mode():
            whole = _interleaved_medians({"packed": lambda: packed(x), "torch": lambda: float_net(x_cl, kernels)}, rounds)
            block = _interleaved_medians({"packed": lambda: packed.block(0, features_hwc, height, width),
                                          "torch": lambda: net.body[0](features_cl, kernels[0])}, rounds)
            breakdown = {}
            if layers:
                packed.timings = {}
                packed(x)
                breakdown = {k: round(v * 1000, 2) for k, v in packed.timings.items()}
                packed.timings = None
        results["runs"].append({
            "threads": count,
            "packed_ms": whole["packed"] * 1000, "torch_ms": whole["torch"] * 1000,
            "speedup": whole["torch"] / whole["packed"],
            "packed_mpix_per_s": out_pixels / whole["packed"] / 1e6,
            "torch_mpix_per_s": out_pixels / whole["torch"] / 1e6,
            "block_packed_ms": block["packed"] * 1000, "block_torch_ms": block["torch"] * 1000,
            "block_speedup": block["torch"] / block["packed"],
            "packed_layers_ms": breakdown})
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if as_json:
        print(json.dumps(results))
        return
    table = Table(title=f"{source} x{net.scale}, input {width}x{height} -> "
                        f"{width * net.scale}x{height * net.scale}; {results['cpu']}; kernels: {results['kernel_path']}")
    for column in ("threads", "packed ms", "torch ms", "speed-up", "packed MP/s", "torch MP/s",
                   "1 block packed ms", "1 block torch ms", "block speed-up"):
        table.add_column(column, justify="right")
    for run in results["runs"]:
        table.add_row(str(run["threads"]), f"{run['packed_ms']:.1f}", f"{run['torch_ms']:.1f}",
                      f"{run['speedup']:.2f}x", f"{run['packed_mpix_per_s']:.2f}", f"{run['torch_mpix_per_s']:.2f}",
                      f"{run['block_packed_ms']:.2f}", f"{run['block_torch_ms']:.2f}", f"{run['block_speedup']:.2f}x")
    console.print(table)
    console.print(f"medians of {rounds} interleaved rounds; peak RSS of the process {results['peak_rss_mib']:.0f} MiB")
    for run in results["runs"]:
        if run["packed_layers_ms"]:
            console.print(f"packed, {run['threads']} thread(s), one pass: " +
                          ", ".join(f"{k} {v} ms" for k, v in run["packed_layers_ms"].items()))
