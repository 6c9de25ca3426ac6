"""`bsrn info`: what a model is, how big, and how much work a 720p output costs."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from bsrn_cli.cli.common import console
from bsrn_cli.errors import BsrnError

PRESET_SPEC = re.compile(r"^(?P<preset>[a-z]+)-x(?P<scale>[234])$")


def _resolve(spec: str):
    from bsrn_cli.models.bsrn import BSRN, PRESETS, preset_config
    from bsrn_cli.models.loader import load_model

    match = PRESET_SPEC.match(spec)
    if match and match["preset"] in PRESETS:
        return BSRN(preset_config(match["preset"], int(match["scale"]))), {}, f"preset {spec} (untrained)"
    return load_model(spec)


def info_command(
    model: Annotated[str | None, typer.Argument(
        help="Registered name, .safetensors path, or a preset such as paper-x4 / fast-x2. "
             "Without it: list the registered models.")] = None,
    width: Annotated[int, typer.Option(help="Output width the MACs are counted for.")] = 1280,
    height: Annotated[int, typer.Option(help="Output height the MACs are counted for.")] = 720,
) -> None:
    """Parameters and MACs of a model (binary MACs counted separately), or the model list."""
    from bsrn_cli.models.complexity import count
    from bsrn_cli.models.registry import list_models

    if model is None:
        table = Table("name", "scale", "file", "description")
        for entry in list_models():
            table.add_row(entry.name, f"x{entry.scale}", entry.filename, entry.description)
        console.print(table)
        return
    if width < 1 or height < 1:
        raise BsrnError("--width and --height must be positive")
    net, meta, source = _resolve(model)
    c = count(net, (width, height))
    table = Table(title=f"{model}: {source}", show_header=False)
    table.add_row("scale", f"x{net.scale}")
    table.add_row("configuration", ", ".join(f"{k}={v}" for k, v in net.config.to_dict().items()))
    table.add_row("parameters", f"{c.params:,} ({c.params / 1000:.1f}K)")
    table.add_row("  binary (1-bit at inference)", f"{c.binary_params:,}")
    table.add_row("  full precision", f"{c.float_params:,}")
    table.add_row("input -> output", f"{c.input_size[0]}x{c.input_size[1]} -> {c.output_size[0]}x{c.output_size[1]}")
    table.add_row("float MACs", f"{c.float_macs / 1e9:.2f}G")
    table.add_row("binary MACs (bit ops)", f"{c.binary_macs / 1e9:.2f}G")
    table.add_row("total, binary counted as full (paper)", f"{c.total_macs / 1e9:.2f}G")
    if meta.get("training"):
        table.add_row("trained", ", ".join(f"{k}={v}" for k, v in meta["training"].items()))
    if meta.get("metrics"):
        table.add_row("measured", ", ".join(f"{k}={v}" for k, v in meta["metrics"].items()))
    console.print(table)
