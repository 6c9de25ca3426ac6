"""`bsrn convert`: a trusted PyTorch checkpoint -> bsrn weights (the one place a pickle is loaded on purpose)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from bsrn_cli.cli.common import check_scale, console
from bsrn_cli.errors import BsrnError, UsageProblem, require_torch

NESTED_KEYS = ("state_dict", "model", "params", "params_ema", "net")
HINT = "see bsrn convert --help"
WEIGHTS_ONLY_ERROR = "WeightsUnpickler error:"  # what torch's message says before the reason


def _load_checkpoint(path: Path):
    """``torch.load(weights_only=True)``: tensors and plain containers only; one-line errors."""
    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not for the user
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails in many ways on a file that is no checkpoint
        raise BsrnError(f"{path}: not a checkpoint that torch.load(weights_only=True) accepts ({_reason(exc)})") \
            from exc


def _reason(exc: Exception) -> str:
    """Why torch.load failed, in one line: the weights-only unpickler's reason without its advice."""
    text = str(exc).strip()
    if WEIGHTS_ONLY_ERROR in text:
        return text.partition(WEIGHTS_ONLY_ERROR)[2].strip().split("\n")[0].split(". ")[0]
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _state_dict(checkpoint, key: str | None, path: Path) -> dict:
    """The tensors: under ``key`` when given, else the checkpoint itself or its usual nested entry;
    a ``module.`` prefix (DataParallel) is dropped."""
    import torch

    if not isinstance(checkpoint, dict):
        raise BsrnError(f"{path}: holds a {type(checkpoint).__name__}, not a state dict")
    if key is not None:
        if not isinstance(checkpoint.get(key), dict):
            raise BsrnError(f"{path}: has no state dict under {key!r}; entries include "
                            f"{', '.join(sorted(map(str, checkpoint))[:5])}")
        checkpoint = checkpoint[key]
    elif not any(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        found = [k for k in NESTED_KEYS if isinstance(checkpoint.get(k), dict)]
        if not found:
            raise BsrnError(f"{path}: no tensors at the top level and none of {', '.join(NESTED_KEYS)}; give --key")
        checkpoint = checkpoint[found[0]]
    tensors = {k.removeprefix("module."): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise BsrnError(f"{path}: holds no tensors")
    return tensors


def _fit(model, tensors: dict, path: Path) -> None:
    """Load ``tensors`` into ``model``, or say which do not fit its configuration."""
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        raise BsrnError(f"{path}: the tensors do not fit the configuration: "
                        f"{str(exc).splitlines()[-1].strip()}") from exc
    if missing or unexpected:
        raise BsrnError(f"{path}: the tensors do not fit the configuration: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(unexpected)[:5]}")


def convert_command(
    checkpoint: Annotated[Path, typer.Argument(help="A PyTorch checkpoint (.pt, .pth...) from a source you trust.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The weights file to write (.safetensors).")],
    scale: Annotated[int, typer.Option(
        "--scale", "-s", help="Upscaling factor the checkpoint was trained for: 2, 3 or 4.")],
    preset: Annotated[str, typer.Option(help="BSRN network preset the tensors fit: fast or paper.")] = "fast",
    config: Annotated[str, typer.Option(
        help="JSON object of configuration overrides (the names `bsrn info` shows), e.g. '{\"channels\": 48}'.")] =
        "{}",
    key: Annotated[Optional[str], typer.Option(
        help="Entry of the checkpoint that holds the state dict (default: the top level, or state_dict, model, "
             "params, params_ema, net).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists (never the checkpoint).")] = False,
) -> None:
    """Convert a PyTorch checkpoint you trust into bsrn weights (.safetensors plus bsrn metadata).

    The only command that unpickles a file. It uses torch.load(weights_only=True), which accepts tensors and
    plain containers only, but unpickling can run code from the file: convert only checkpoints from a source
    you trust. The tensors must fit the BSRN configuration given by --scale, --preset and --config; nothing is
    written when they do not.

    Example: bsrn convert model.pth -o model.safetensors -s 4 --preset fast --config '{"channels": 48}'
    """
    require_torch("bsrn convert")
    from bsrn_cli.networks.bsrn import BSRN, preset_config
    from bsrn_cli.pretrained.weights import save_weights

    check_scale(scale, "convert")
    try:
        overrides = json.loads(config)
    except json.JSONDecodeError as exc:
        raise UsageProblem("--config", f"not JSON ({exc})", HINT) from exc
    if not isinstance(overrides, dict):
        raise UsageProblem("--config", "must be a JSON object such as '{\"channels\": 48}'", HINT)
    if output.suffix != ".safetensors":
        raise BsrnError(f"{output}: weights are written as .safetensors")
    if checkpoint.is_dir():
        raise BsrnError(f"{checkpoint}: is a folder, not a checkpoint file")
    if not checkpoint.is_file():
        raise BsrnError(f"{checkpoint}: no such checkpoint file")
    if output.exists() and output.samefile(checkpoint):
        raise BsrnError(f"{output}: is the checkpoint itself; choose another -o")
    if output.exists() and not overwrite:
        raise BsrnError(f"{output}: exists (use --overwrite)")
    model = BSRN(preset_config(preset, scale, **overrides))
    console.print(f"note: unpickling {checkpoint} (torch.load, weights_only=True); unpickling can run code from "
                  "the file, so convert only checkpoints from a source you trust", markup=False, highlight=False,
                  soft_wrap=True)
    _fit(model, _state_dict(_load_checkpoint(checkpoint), key, checkpoint), checkpoint)
    meta = save_weights(model.eval(), output, converted_from={"file": checkpoint.name, "tool": "bsrn convert"})
    console.print(f"wrote {output}: {meta['architecture']} x{meta['scale']} {meta['method']}, preset {preset}",
                  markup=False, highlight=False, soft_wrap=True)
