"""The weights format: safetensors tensors plus one JSON metadata record; pickles are refused.

Metadata (under the safetensors header key ``bsrn``): architecture, config, scale, and what
trained the weights (data, steps, device, minutes) and how good they are (Set5 PSNR...).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from bsrn_cli.errors import BsrnError
from bsrn_cli.io.atomic import atomic_write
from bsrn_cli.networks.backbones import VDSR, SRResNet, SRResNetConfig, VDSRConfig
from bsrn_cli.networks.bsrn import BSRN, BSRNConfig

FORMAT_NAME = "bsrn-weights"
FORMAT_VERSION = 1
METADATA_KEY = "bsrn"
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar"}
ARCHITECTURES = {"bsrn": (BSRN, BSRNConfig), "vdsr": (VDSR, VDSRConfig), "srresnet": (SRResNet, SRResNetConfig)}


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    # A safetensors file starts with its header length (8 bytes, little-endian) and then "{";
    # that length's first byte may be anything, 0x80 included, so check for it first.
    if len(head) == 9 and head[8:9] == b"{":
        return False
    # zip (torch.save since 1.6) or a pickle protocol 2+ opcode.
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES or (path.is_file() and _looks_like_pickle(path)):
        converted = path.with_suffix(".safetensors")
        raise BsrnError(
            f"{path}: refusing to load a pickle/torch checkpoint (loading one can run arbitrary code); "
            f"if you trust its source, convert it once with `bsrn convert {path} -o {converted} -s SCALE` "
            "(see bsrn convert --help)")


def model_metadata(model: BSRN, **extra) -> dict:
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "architecture": model.architecture,
            "scale": model.scale, "method": model.config.method_name, "config": model.config.to_dict(), **extra}


def atomic_save_file(tensors: dict[str, torch.Tensor], path: str | os.PathLike, header: dict[str, str]) -> None:
    """Write a safetensors file so that a crash never leaves a half-written file at ``path``."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def save_weights(model: BSRN, path: str | os.PathLike, **metadata) -> dict:
    meta = model_metadata(model, **metadata)
    atomic_save_file(model.state_dict(), path, {METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return meta


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a weights file; one-line errors for anything else."""
    path = Path(path)
    if path.is_dir():
        raise BsrnError(f"{path}: is a folder, not a weights file")
    if not path.exists():
        raise BsrnError(f"{path}: no such weights file")
    refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise BsrnError(f"{path}: not a readable safetensors file ({exc})") from exc
    if METADATA_KEY not in header:
        raise BsrnError(f"{path}: safetensors file without bsrn metadata (architecture and config unknown)")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise BsrnError(f"{path}: bsrn metadata is not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT_NAME or meta.get("architecture") not in ARCHITECTURES:
        raise BsrnError(f"{path}: unsupported weights format or architecture {meta.get('architecture')!r}")
    return tensors, meta


def build_model(meta: dict) -> BSRN:
    model_class, config_class = ARCHITECTURES[meta["architecture"]]
    return model_class(config_class.from_dict(meta["config"]))


def load_weights(path: str | os.PathLike) -> tuple[BSRN, dict]:
    """A ready model (eval mode, CPU) and its metadata."""
    tensors, meta = read_weights(path)
    model = build_model(meta)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:
        raise BsrnError(f"{path}: tensor shapes do not match the configuration in its metadata") from exc
    if missing or unexpected:
        raise BsrnError(f"{path}: tensors do not match the configuration "
                        f"(missing {len(missing)}, unexpected {len(unexpected)})")
    return model.eval(), meta
