"""`bsrn info`: what a model is, how big, and how much work a 720p output costs."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from bsrn_cli.cli.common import console
from bsrn_cli.errors import UsageProblem, require_torch

PRESET_SPEC = re.compile(r"^(?P<preset>[a-z]+)-x(?P<scale>[234])$")


def _resolve(spec: str):
    from bsrn_cli.networks.bsrn import BSRN, PRESETS, preset_config
    from bsrn_cli.pretrained.loader import load_model

    match = PRESET_SPEC.match(spec)
    if match and match["preset"] in PRESETS:
        return BSRN(preset_config(match["preset"], int(match["scale"]))), {}, f"preset {spec} (untrained)"
    weights, meta, source = load_model(spec)
    return weights.network(), meta, source


def info_command(
    model: Annotated[str | None, typer.Argument(
        help="Registered name, .safetensors path, or a preset such as paper-x4 / fast-x2. "
             "Without it: list the registered models.")] = None,
    width: Annotated[int, typer.Option(help="Output width the MACs are counted for.")] = 1280,
    height: Annotated[int, typer.Option(help="Output height the MACs are counted for.")] = 720,
) -> None:
    """Parameters and MACs of a model (binary MACs counted separately), or the model list.

    Examples: bsrn info | bsrn info bsrn-fast-x4 | bsrn info paper-x4 --width 320 --height 180
    """
    from bsrn_cli.pretrained.registry import list_models

    if model is None:
        table = Table("name", "scale", "file", "description")
        for entry in list_models():
            table.add_row(entry.name, f"x{entry.scale}", entry.filename, entry.description)
        console.print(table)
        return
    if width < 1 or height < 1:
        raise UsageProblem("--width/--height", "must be positive", "see bsrn info --help")
    require_torch(f"bsrn info {model}")
    from bsrn_cli.networks.complexity import count

    net, meta, source = _resolve(model)
    c = count(net, (width, height))
    lines = [f"model: {model} ({source})", f"scale: x{net.scale}",
             *metadata_lines("configuration", net.config.to_dict()),
             f"parameters: {c.params:,} ({c.params / 1000:.1f}K)",
             f"  binary (1-bit at inference): {c.binary_params:,}",
             f"  full precision: {c.float_params:,}",
             f"input -> output: {c.input_size[0]}x{c.input_size[1]} -> {c.output_size[0]}x{c.output_size[1]}",
             f"float MACs: {c.float_macs / 1e9:.2f}G",
             f"binary MACs (bit ops): {c.binary_macs / 1e9:.2f}G",
             f"total, binary counted as full (paper): {c.total_macs / 1e9:.2f}G"]
    for key, title in (("training", "trained"), ("metrics", "measured")):
        if meta.get(key):
            lines += metadata_lines(title, meta[key])
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def metadata_lines(key: str, value, indent: int = 0) -> list[str]:
    """``key: value`` lines; a mapping's entries indented under ``key:``, a list's items as ``- ``."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = [f"{pad}{key}:"]
        for sub, item in value.items():
            lines += metadata_lines(str(sub), item, indent + 1)
        return lines
    if isinstance(value, (list, tuple)) and any(isinstance(item, (dict, list, tuple)) for item in value):
        lines = [f"{pad}{key}:"]
        for item in value:
            entries = item.items() if isinstance(item, dict) else enumerate(item)
            inner = [line for sub, v in entries for line in metadata_lines(str(sub), v, indent + 2)]
            lines += [f"{pad}  - {inner[0].lstrip()}"] + inner[1:] if inner else [f"{pad}  -"]
        return lines
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    return [f"{pad}{key}: {value}"]
