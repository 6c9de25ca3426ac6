"""Training checkpoints in safetensors: model, optimizer state and loop state, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained.weights import atomic_save_file, refuse_pickle

CHECKPOINT_KEY = "bsrn_checkpoint"


def read_checkpoint_header(path: Path) -> dict:
    refuse_pickle(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if CHECKPOINT_KEY not in meta:
        raise BsrnError(f"{path}: not a bsrn training checkpoint")
    return json.loads(meta[CHECKPOINT_KEY])


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                    ema: torch.nn.Module | None = None) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    optim_state = optimizer.state_dict()
    for index, values in optim_state["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    header = {"param_groups": optim_state["param_groups"], "loop": state,
              "model": {"architecture": getattr(model, "architecture", ""), "config": model.config.to_dict()}}
    atomic_save_file(tensors, path, {CHECKPOINT_KEY: json.dumps(header)})


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    ema: torch.nn.Module | None = None) -> dict:
    """Restore model, optimizer and EMA in place (each if given); return the loop state that was saved."""
    refuse_pickle(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if CHECKPOINT_KEY not in meta:
            raise BsrnError(f"{path}: not a bsrn training checkpoint")
        header = json.loads(meta[CHECKPOINT_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError as exc:
        raise BsrnError(f"{path}: checkpoint does not match this model's configuration") from exc
    if ema is not None:
        saved = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        ema.load_state_dict(saved if saved else model.state_dict())
    if optimizer is None:
        return header["loop"]
    state: dict[int, dict] = {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            param = params[int(index)] if int(index) < len(params) else None
            if param is not None and value.dim() and value.shape != param.shape and value.numel() == param.numel():
                value = value.reshape(param.shape)  # per-channel vectors saved as (1, C, 1, 1) before
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    return header["loop"]
