"""`bsrn bench`: the packed backend against PyTorch float on the same weights, same process;
with --peers, also the float networks a user would pick instead (a speed/quality table and plot)."""

from __future__ import annotations

import json
import math
import resource
import statistics
import time
from pathlib import Path
from typing import Annotated, Callable

import typer
from rich.table import Table

from bsrn_cli.cli.common import ModelOption, console, err_console
from bsrn_cli.errors import BsrnError, UsageProblem, require_torch
from bsrn_cli.system import cpu_name


PAUSE_SECONDS = 0.05
SPREAD_LIMIT = 0.2  # (max - min) / median of a backend's rounds above this: warn, the ratio is not solid
KNOWN_KERNEL_PATHS = ("portable", "popcnt", "avx2", "avx512", "neon")
PLOT_SIZE = (900, 560)
OURS = ("packed", "torch")


def say(message: str) -> None:
    """One progress line on stderr (stdout stays the table or the JSON)."""
    err_console.print(message, markup=False, highlight=False)


def _time_call(run: Callable[[], object]) -> float:
    """Seconds of one call, after a short pause.

    torch's OpenMP workers keep spinning for a while after a parallel region, and on a 2-core
    machine they would otherwise take the cores from whatever runs next (a short packed call
    measured right after a torch call lost up to a third of its speed to them). Every callable
    gets the same pause, outside its timing."""
    time.sleep(PAUSE_SECONDS)
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _interleaved_samples(runs: dict[str, Callable[[], object]], rounds: int, stage: str) -> dict[str, list[float]]:
    """Seconds of each callable per round, run in turns (one warm-up each first), with progress lines."""
    say(f"warming up {stage}: {', '.join(runs)}")
    for run in runs.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for index in range(rounds):
        say(f"timing {stage}, round {index + 1}/{rounds}")
        for name, run in runs.items():
            samples[name].append(_time_call(run))
    return samples


def spread(values: list[float]) -> float:
    """(max - min) / median of the rounds: 0 for one round."""
    return (max(values) - min(values)) / statistics.median(values)


def pareto_front(rows: list[dict]) -> list[bool | None]:
    """Per row: on the front (no other row both faster and at least as good), or None without a PSNR."""
    flags: list[bool | None] = []
    for row in rows:
        if row["psnr"] is None:
            flags.append(None)
            continue
        flags.append(not any(other is not row and other["psnr"] is not None and other["ms"] < row["ms"]
                             and other["psnr"] >= row["psnr"] for other in rows))
    return flags


def _choose_kernels(name: str | None, packed) -> tuple[str, list[str]]:
    """Force a kernel path by name (None: the default); (path in use, paths available)."""
    available = list(packed.available_paths())
    if name is not None:
        name = name.strip().lower()
        if name not in KNOWN_KERNEL_PATHS and name not in available:
            raise UsageProblem("--kernels", f"unknown kernel path {name!r}", f"known: {', '.join(KNOWN_KERNEL_PATHS)}")
        if name not in available:
            raise UsageProblem("--kernels", f"kernel path {name!r} is not available on this CPU (or is above "
                               "BSRN_KERNEL_PATH)", f"available: {', '.join(available)}")
        packed.set_path(name)
    return packed.path(), available


def _published_psnr(method: str, scale: int) -> tuple[float | None, str]:
    from bsrn_cli.published import published_rows

    rows = [r for r in published_rows("Set5", scale) if r["method"] == method]
    return (rows[0]["psnr"], rows[0]["source"]) if rows else (None, "no published Set5 figure at this scale")


def _pareto_rows(run: dict, out_pixels: int, params: dict[str, int], ours_psnr: float | None,
                 ours_source: str, scale: int) -> list[dict]:
    rows = []
    for name, ms in run["models_ms"].items():
        if name in OURS:
            psnr, source = ours_psnr, ours_source
        else:
            psnr, source = _published_psnr(name, scale)
        rows.append({"model": name, "ours": name in OURS, "params": params[name], "ms": ms,
                     "mpix_per_s": out_pixels / ms / 1e3, "psnr": psnr, "psnr_source": source,
                     "spread": run["spread"][name]})
    for row, front in zip(rows, pareto_front(rows)):
        row["front"] = front
    return rows


def draw_plot(path: Path, rows: list[dict], title: str, size: tuple[int, int] = PLOT_SIZE) -> None:
    """PSNR against ms (log time axis) as a PNG drawn with Pillow: ours in red, peers in blue,
    the front joined by a grey step line; rows without a PSNR are listed under the title."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    left, right, top, bottom = 70, 30, 50, 55
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((left, 12), title, fill="black", font=font)
    points = [r for r in rows if r["psnr"] is not None]
    missing = [r["model"] for r in rows if r["psnr"] is None]
    if missing:
        draw.text((left, 28), "no Set5 PSNR at this scale: " + ", ".join(missing), fill="grey", font=font)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text((left + (width - left - right) // 2 - 60, height - 22), "ms per image (log scale)", fill="black", font=font)
    draw.text((6, top - 16), "Set5 PSNR (dB)", fill="black", font=font)
    if not points:
        image.save(path)
        return
    lo_ms, hi_ms = min(r["ms"] for r in points), max(r["ms"] for r in points)
    lo_x, hi_x = math.log10(lo_ms) - 0.15, math.log10(hi_ms) + 0.15
    lo_db, hi_db = min(r["psnr"] for r in points) - 0.3, max(r["psnr"] for r in points) + 0.3

    def xy(ms: float, db: float) -> tuple[float, float]:
        x = left + (math.log10(ms) - lo_x) / (hi_x - lo_x) * (width - left - right)
        y = height - bottom - (db - lo_db) / (hi_db - lo_db) * (height - top - bottom)
        return x, y

    for exponent in range(math.floor(lo_x), math.ceil(hi_x) + 1):
        for mantissa in (1, 2, 5):
            ms = mantissa * 10.0 ** exponent
            if lo_x <= math.log10(ms) <= hi_x:
                x, _ = xy(ms, lo_db)
                draw.line([x, top, x, height - bottom], fill=(225, 225, 225))
                draw.text((x - 10, height - bottom + 6), f"{ms:g}", fill="black", font=font)
    step = 0.5 if hi_db - lo_db <= 4 else 1.0
    db = math.ceil(lo_db / step) * step
    while db <= hi_db:
        _, y = xy(lo_ms, db)
        draw.line([left, y, width - right, y], fill=(225, 225, 225))
        draw.text((left - 40, y - 6), f"{db:.1f}", fill="black", font=font)
        db += step
    front = sorted((r for r in points if r["front"]), key=lambda r: r["ms"])
    for a, b in zip(front, front[1:]):
        (x0, y0), (x1, y1) = xy(a["ms"], a["psnr"]), xy(b["ms"], b["psnr"])
        draw.line([x0, y0, x1, y0, x1, y1], fill=(150, 150, 150), width=2)
    taken: list[tuple[float, float, float, float]] = []
    for row in sorted(points, key=lambda r: r["ms"]):
        x, y = xy(row["ms"], row["psnr"])
        colour = (200, 30, 30) if row["ours"] else (30, 60, 200)
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
        label = f"{'bsrn ' + row['model'] + ' (ours)' if row['ours'] else row['model']} {row['ms']:.0f} ms"
        box = draw.textbbox((0, 0), label, font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        lx = x + 8 if x + 8 + w < width - 4 else x - 8 - w
        for dy in (-14, 6, -28, 20, -42, 34):  # the first free slot near the point
            ly = y + dy
            if not any(lx < b[2] and b[0] < lx + w and ly < b[3] and b[1] < ly + h for b in taken):
                break
        taken.append((lx, ly, lx + w, ly + h))
        draw.text((lx, ly), label, fill=colour, font=font)
    image.save(path)


def _print_tables(results: dict, peers_rows: list[tuple[int, list[dict]]]) -> None:
    """The tables, each narrow enough for an 80-column terminal."""
    scale, (width, height) = results["scale"], results["input"]
    forced = " (forced)" if results["kernel_path_forced"] else ""
    console.print(f"{results['model']} x{scale}, input {width}x{height} -> {width * scale}x{height * scale}",
                  markup=False, highlight=False)
    console.print(f"{results['cpu']}; kernels: {results['kernel_path']}{forced}; torch {results['torch']}",
                  markup=False, highlight=False)
    shaky = False
    whole = Table(title="whole network")
    for column in ("threads", "packed ms", "torch ms", "speed-up", "packed MP/s", "torch MP/s"):
        whole.add_column(column, justify="right")
    block = Table(title="one LB block")
    for column in ("threads", "packed ms", "torch ms", "speed-up"):
        block.add_column(column, justify="right")
    for run in results["runs"]:
        mark = "*" if max(run["spread"]["packed"], run["spread"]["torch"]) > SPREAD_LIMIT else ""
        block_mark = "*" if max(run["spread"]["block packed"], run["spread"]["block torch"]) > SPREAD_LIMIT else ""
        shaky |= bool(mark or block_mark)
        whole.add_row(str(run["threads"]), f"{run['packed_ms']:.1f}", f"{run['torch_ms']:.1f}",
                      f"{run['speedup']:.2f}x{mark}", f"{run['packed_mpix_per_s']:.2f}", f"{run['torch_mpix_per_s']:.2f}")
        block.add_row(str(run["threads"]), f"{run['block_packed_ms']:.2f}", f"{run['block_torch_ms']:.2f}",
                      f"{run['block_speedup']:.2f}x{block_mark}")
    console.print(whole)
    console.print(block)
    if shaky:
        console.print(f"* a backend's rounds spread by more than {SPREAD_LIMIT:.0%}: this ratio is not reliable",
                      markup=False, highlight=False)
    console.print(f"medians of {results['rounds']} interleaved rounds; peak RSS of the process "
                  f"{results['peak_rss_mib']:.0f} MiB", markup=False, highlight=False)
    for run in results["runs"]:
        if run["packed_layers_ms"]:
            console.print(f"packed, {run['threads']} thread(s), one pass: " +
                          ", ".join(f"{k} {v} ms" for k, v in run["packed_layers_ms"].items()),
                          markup=False, highlight=False)
    for threads, rows in peers_rows:
        table = Table(title=f"speed and quality, {threads} thread(s), x{scale}")
        for column in ("model", "params", "ms", "MP/s", "Set5 dB", "source", "front"):
            table.add_column(column, justify="left" if column == "model" else "right")
        sources: list[str] = []
        for row in sorted(rows, key=lambda r: r["ms"]):
            if row["psnr_source"] not in sources:
                sources.append(row["psnr_source"])
            name = f"bsrn {row['model']}" if row["ours"] else row["model"]
            mark = "*" if row["spread"] > SPREAD_LIMIT else ""
            table.add_row(name, f"{row['params'] / 1e3:.1f}K", f"{row['ms']:.1f}{mark}", f"{row['mpix_per_s']:.2f}",
                          "-" if row["psnr"] is None else f"{row['psnr']:.2f}", f"[{sources.index(row['psnr_source']) + 1}]",
                          {True: "yes", False: "", None: "?"}[row["front"]], style="bold" if row["ours"] else None)
        console.print(table)
        for number, source in enumerate(sources, 1):
            console.print(f"[{number}] {source}", markup=False, highlight=False)
    if peers_rows:
        console.print("front: no other model is both faster and at least as good on Set5 x"
                      f"{scale}; peers run with random weights (speed does not depend on them), their PSNR is "
                      "the published one; ours is measured (weights' metadata).", markup=False, highlight=False)


def bench_command(
    model: ModelOption = None,
    scale: Annotated[int, typer.Option("--scale", "-s", help="Scale of the default model.")] = 4,
    width: Annotated[int, typer.Option(help="Input width (default 320: 1280 wide at x4).")] = 320,
    height: Annotated[int, typer.Option(help="Input height (default 180: 720 high at x4).")] = 180,
    threads: Annotated[list[int], typer.Option(help="Thread counts to measure (repeatable).")] = [1, 2],
    rounds: Annotated[int, typer.Option(help="Timed rounds per backend (median reported).")] = 5,
    layers: Annotated[bool, typer.Option("--layers", help="Break the packed time down per layer type.")] = False,
    kernels: Annotated[str | None, typer.Option(
        "--kernels", help="Force the packed kernel path: portable, popcnt, avx2 or avx512 (one this CPU has; "
                          "default: the fastest; the env var BSRN_KERNEL_PATH=NAME caps them).")] = None,
    peers: Annotated[bool, typer.Option(
        "--peers", help="Also time ESPCN, FSRCNN, IMDN and RLFN (float, random weights) in the same rounds and "
                        "print a speed/quality table with the Pareto front.")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="With --peers: write PSNR against ms (log time axis) to this PNG (last thread count).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (progress still on stderr).")] = False,
) -> None:
    """Time packed vs PyTorch float (channels_last) on the CPU, whole network and one block.

    Progress goes to stderr; a backend whose rounds spread by more than 20% gets a warning.

    Example: bsrn bench -s 4 --threads 2 --rounds 5 --peers --plot front.png
    """
    if rounds < 1 or width < 1 or height < 1 or any(t < 1 for t in threads):
        raise UsageProblem("--rounds/--width/--height/--threads", "must be positive", "see bsrn bench --help")
    if plot is not None and not peers:
        raise UsageProblem("--plot", "needs --peers (it plots our models against the peers)", "add --peers")
    require_torch("bsrn bench (it times the PyTorch float network against the packed one)")
    import torch

    from bsrn_cli.backends import bitpack
    from bsrn_cli.backends.packed_backend import PackedBSRN, to_pixels
    from bsrn_cli.backends.profile import profile_packed
    from bsrn_cli.pretrained.loader import load_model
    from bsrn_cli.networks.peers import MIN_SIDE, PEERS, build_peer, parameter_count

    if not bitpack.available():
        raise BsrnError("the packed kernels are not built in this installation")
    if peers and min(width, height) < MIN_SIDE:
        raise UsageProblem("--peers", f"needs an input of at least {MIN_SIDE}x{MIN_SIDE} (RLFN's attention pools 7x7)",
                           f"use --width and --height of {MIN_SIDE} or more")
    kernel_path, available_paths = _choose_kernels(kernels, bitpack._packed)
    say(f"loading {model or f'the default x{scale} model'}")
    weights, meta, source = load_model(model, None if model else scale)
    net = weights.network()
    float_net = net.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    x_hwc = x_cl[0].permute(1, 2, 0).numpy()
    out_pixels = width * net.scale * height * net.scale
    with torch.no_grad():
        kernels_fp = net.binary_kernels()
        features = net.head(x - 0.5)
    features_cl = features.contiguous(memory_format=torch.channels_last)
    features_hwc = to_pixels(features)
    peer_nets = {}
    if peers:
        say(f"building {', '.join(PEERS)} (x{net.scale}, random weights, channels_last)")
        peer_nets = {name: build_peer(name, net.scale).to(memory_format=torch.channels_last) for name in PEERS}
    params = {"packed": parameter_count(net), "torch": parameter_count(net),
              **{name: parameter_count(p) for name, p in peer_nets.items()}}
    ours_psnr = (meta.get("metrics") or {}).get("Set5_psnr")
    ours_source = f"ours: measured with bsrn eval, from {source}'s metadata" if ours_psnr is not None \
        else f"ours: no Set5 PSNR in {source}'s metadata"
    results = {"model": source, "scale": net.scale, "input": [width, height], "cpu": cpu_name(),
               "torch": torch.__version__, "kernel_path": kernel_path, "kernel_path_forced": kernels is not None,
               "kernel_paths_available": available_paths, "rounds": rounds, "spread_limit": SPREAD_LIMIT,
               "runs": [], "warnings": []}
    peers_rows: list[tuple[int, list[dict]]] = []
    for count in threads:
        torch.set_num_threads(count)
        packed = PackedBSRN(net, threads=count)
        tag = f"{count} thread{'s' if count > 1 else ''}"
        with torch.inference_mode():
            whole_runs = {"packed": lambda: packed(x), "torch": lambda: float_net(x_cl, kernels_fp)}
            whole_runs.update({name: (lambda p=p: p(x_cl)) for name, p in peer_nets.items()})
            whole = _interleaved_samples(whole_runs, rounds, f"whole network, {tag}")
            block = _interleaved_samples({"packed": lambda: packed.block(0, features_hwc, height, width),
                                          "torch": lambda: net.body[0](features_cl, kernels_fp[0])},
                                         rounds, f"one block, {tag}")
            breakdown = {}
            if layers:
                say(f"profiling the packed layers, {tag}")
                breakdown = {k: round(v * 1000, 2) for k, v in profile_packed(packed, x_hwc).items()}
        medians = {name: statistics.median(v) for name, v in whole.items()}
        spreads = {**{name: spread(v) for name, v in whole.items()},
                   **{f"block {name}": spread(v) for name, v in block.items()}}
        warnings = [f"{name} rounds spread {value:.0%} with {tag} ((max-min)/median over {rounds} rounds, limit "
                    f"{SPREAD_LIMIT:.0%}): the machine is busy; its times and ratios are not reliable"
                    for name, value in spreads.items() if value > SPREAD_LIMIT]
        for warning in warnings:
            err_console.print(f"warning: {warning}", markup=False, highlight=False)
        run = {
            "threads": count,
            "packed_ms": medians["packed"] * 1000, "torch_ms": medians["torch"] * 1000,
            "speedup": medians["torch"] / medians["packed"],
            "packed_mpix_per_s": out_pixels / medians["packed"] / 1e6,
            "torch_mpix_per_s": out_pixels / medians["torch"] / 1e6,
            "block_packed_ms": statistics.median(block["packed"]) * 1000,
            "block_torch_ms": statistics.median(block["torch"]) * 1000,
            "block_speedup": statistics.median(block["torch"]) / statistics.median(block["packed"]),
            "packed_layers_ms": breakdown, "spread": spreads, "warnings": warnings,
            "models_ms": {name: value * 1000 for name, value in medians.items()}}
        if peers:
            run["pareto"] = _pareto_rows(run, out_pixels, params, ours_psnr, ours_source, net.scale)
            peers_rows.append((count, run["pareto"]))
        results["runs"].append(run)
        results["warnings"] += warnings
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if plot is not None:
        count, rows = peers_rows[-1]
        draw_plot(plot, rows, f"{source} x{net.scale}, {width}x{height} -> {width * net.scale}x"
                              f"{height * net.scale}, {count} thread(s), kernels {kernel_path}; {results['cpu']}")
        results["plot"] = str(plot)
        say(f"wrote {plot}")
    if as_json:
        print(json.dumps(results))
        return
    _print_tables(results, peers_rows)
