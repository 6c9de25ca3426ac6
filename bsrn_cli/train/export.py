"""A training run -> one weights file in the shipped format (safetensors + JSON metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bsrn_cli.errors import BsrnError
from bsrn_cli.evaluation import load_pairs
from bsrn_cli.pretrained.weights import METADATA_KEY, build_model, load_weights, read_weights, save_weights
from bsrn_cli.train.checkpoint import CHECKPOINT_KEY, load_checkpoint, read_checkpoint_header
from bsrn_cli.train.step import loss_description


def _run_files(run: Path, source: str) -> Path:
    if run.is_file():
        return run
    if not run.is_dir():
        raise BsrnError(f"{run}: no such run folder or file")
    if source not in ("best", "last"):
        raise BsrnError(f"--from must be best or last, not {source!r}")
    path = run / f"{source}.safetensors"
    if not path.is_file():
        raise BsrnError(f"{run}: has no {path.name} (did the run validate and save?)")
    return path


def export_run(run: str | Path, output: str | Path, source: str = "best", val: str | Path | None = None,
               overwrite: bool = False) -> dict:
    """Write ``output`` from a run's best weights or last checkpoint (its EMA weights if kept)."""
    run, output = Path(run), Path(output)
    if output.suffix != ".safetensors":
        raise BsrnError(f"{output}: weights are written as .safetensors")
    if output.exists() and not overwrite:
        raise BsrnError(f"{output}: exists (use --overwrite)")
    path = _run_files(run, source)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if METADATA_KEY in header:
        model, meta = load_weights(path)
        training, metrics = meta.get("training", {}), dict(meta.get("metrics", {}))
    elif CHECKPOINT_KEY in header:
        info = read_checkpoint_header(path)
        model = build_model({"architecture": info["model"]["architecture"], "config": info["model"]["config"]})
        ema = build_model({"architecture": info["model"]["architecture"], "config": info["model"]["config"]})
        loop = load_checkpoint(path, model, None, ema)
        with safe_open(str(path), framework="pt") as f:
            has_ema = any(k.startswith("ema.") for k in f.keys())
        model = (ema if has_ema else model).eval()
        config_file = path.parent / "config.json"
        settings = json.loads(config_file.read_text()) if config_file.is_file() else {}
        training = {"backbone": getattr(model, "architecture", ""), "method": model.config.method_name,
                    "data": settings.get("data"), "steps": loop.get("step"),
                    "minutes": round(loop.get("seconds", 0.0) / 60, 2), "images": loop.get("images"),
                    "batch": settings.get("batch"), "lr_patch": settings.get("lr_patch"), "ema": has_ema,
                    "loss": loss_description(settings.get("loss_y_weight", 0.0)),
                    "degradation": settings.get("degradation", "bicubic"), "init_from": loop.get("init_from")}
        metrics = {}
    else:
        raise BsrnError(f"{path}: neither bsrn weights nor a bsrn training checkpoint")
    if val is not None:
        from bsrn_cli.train.loop import validate

        val = Path(val)
        result = validate(model, load_pairs(val, model.scale), torch.device("cpu"))
        metrics[f"{val.name}_psnr"] = round(result["psnr"], 3)
        metrics[f"{val.name}_ssim"] = round(result["ssim"], 4)
    meta = save_weights(model, output, training=training, metrics=metrics)
    read_weights(output)  # what we wrote loads
    return meta
