"""The weights format: safetensors tensors plus one JSON metadata record; pickles are refused.

Metadata (under the safetensors header key ``bsrn``): architecture, config, scale, and what
trained the weights (data, steps, device, minutes) and how good they are (Set5 PSNR...).

Reading a file (:func:`open_weights`) needs numpy only, so the packed backend runs without
torch; building the torch network from it (:meth:`Weights.network`, :func:`load_weights`) and
saving import torch when called.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open

from bsrn_cli.errors import BsrnError, require_torch
from bsrn_cli.io.atomic import atomic_write
from bsrn_cli.networks.configs import BSRNConfig, SRResNetConfig, VDSRConfig

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "bsrn-weights"
FORMAT_VERSION = 1
METADATA_KEY = "bsrn"
PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar"}
ARCHITECTURES = {"bsrn": BSRNConfig, "vdsr": VDSRConfig, "srresnet": SRResNetConfig}


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


def model_metadata(model, **extra) -> dict:
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "architecture": model.architecture,
            "scale": model.scale, "method": model.config.method_name, "config": model.config.to_dict(), **extra}


def atomic_save_file(tensors: dict[str, torch.Tensor], path: str | os.PathLike, header: dict[str, str]) -> None:
    """Write a safetensors file so that a crash never leaves a half-written file at ``path``."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def save_weights(model, path: str | os.PathLike, **metadata) -> dict:
    meta = model_metadata(model, **metadata)
    atomic_save_file(model.state_dict(), path, {METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return meta


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Tensors (numpy) and metadata of a weights file; one-line errors for anything else."""
    path = Path(path)
    if path.is_dir():
        raise BsrnError(f"{path}: is a folder, not a weights file")
    if not path.exists():
        raise BsrnError(f"{path}: no such weights file")
    refuse_pickle(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise BsrnError(f"{path}: not a readable safetensors file ({exc})") from exc
    if METADATA_KEY not in header:
        raise BsrnError(f"{path}: safetensors file without bsrn metadata (architecture and config unknown)")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise BsrnError(f"{path}: bsrn metadata is not valid JSON ({exc})") from exc
    except RecursionError:
        raise BsrnError(f"{path}: bsrn metadata is nested too deeply") from None
    architecture = meta.get("architecture") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME or not isinstance(architecture, str) \
            or architecture not in ARCHITECTURES:
        if architecture is not None and (not isinstance(architecture, str) or len(architecture) > 40):
            architecture = f"a {type(architecture).__name__}"
        raise BsrnError(f"{path}: unsupported weights format or architecture {architecture!r}")
    check_metadata(meta, path)
    for name, array in tensors.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise BsrnError(f"{path}: tensor {name} holds NaN or infinite values (broken weights)")
    return tensors, meta


# The metadata fields other than the configuration, and the JSON types they may have.
METADATA_TYPES = {"format_version": int, "scale": int, "method": str, "metrics": dict, "training": dict}
MAX_DEPTH = 32  # lineage records nest (init_from holds the earlier training record)


def _depth(value, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def check_metadata(meta: dict, path) -> None:
    """The metadata's fields have their types (one line naming the file if not); the
    configuration's fields are checked by its ``from_dict``. Nothing is built before this."""
    for key, kind in METADATA_TYPES.items():
        if key in meta and not (isinstance(meta[key], kind) and not isinstance(meta[key], bool)):
            raise BsrnError(f"{path}: bsrn metadata field {key} must be {kind.__name__}, "
                            f"not {type(meta[key]).__name__}")
    if _depth(meta) > MAX_DEPTH:
        raise BsrnError(f"{path}: bsrn metadata is nested too deeply")
    for name, value in (meta.get("metrics") or {}).items():
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            raise BsrnError(f"{path}: bsrn metadata metric {str(name)[:40]} must be a number or text, "
                            f"not {type(value).__name__}")


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors (torch) and metadata of a weights file; one-line errors for anything else."""
    import torch

    tensors, meta = read_arrays(path)
    return {name: torch.from_numpy(array) for name, array in tensors.items()}, meta


def config_from(meta: dict, path: str | os.PathLike | None = None):
    """The network configuration the metadata describes (a one-line error naming the file if it is wrong)."""
    config = meta.get("config")
    if not isinstance(config, dict):
        raise BsrnError(f"{path}: bsrn metadata has no configuration")
    try:
        return ARCHITECTURES[meta["architecture"]].from_dict(config)
    except BsrnError as exc:
        raise BsrnError(f"{path}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise BsrnError(f"{path}: bad configuration in its metadata ({exc})") from exc


@dataclass
class Weights:
    """A weights file as read, without torch: what backends are made from.

    ``config``, ``architecture``, ``scale`` and ``receptive_radius()`` are all a backend needs to
    decide whether it runs the model and how to tile; :meth:`network` builds the torch module."""

    path: Path
    tensors: dict[str, np.ndarray]
    meta: dict
    config: object
    _network: object = field(default=None, repr=False)

    @property
    def architecture(self) -> str:
        return self.meta["architecture"]

    @property
    def scale(self) -> int:
        return self.config.scale

    def receptive_radius(self) -> int:
        return self.config.receptive_radius()

    def network(self):
        """The torch module with these weights, in eval mode on the CPU (built once)."""
        if self._network is None:
            require_torch("the torch backend")
            self._network = _loaded_network(self.path, self.meta, self.tensors)
        return self._network


def open_weights(path: str | os.PathLike) -> Weights:
    """A weights file read and its configuration checked, without torch."""
    tensors, meta = read_arrays(path)
    return Weights(Path(path), tensors, meta, config_from(meta, path))


def build_model(meta: dict):
    """A fresh torch network of the architecture and configuration in ``meta``."""
    from bsrn_cli.networks.backbones import VDSR, SRResNet
    from bsrn_cli.networks.bsrn import BSRN

    model_class = {"bsrn": BSRN, "vdsr": VDSR, "srresnet": SRResNet}[meta["architecture"]]
    return model_class(ARCHITECTURES[meta["architecture"]].from_dict(meta["config"]))


def _loaded_network(path, meta: dict, arrays: dict[str, np.ndarray]):
    """The module built on torch's meta device (no memory), compared with the file's tensors
    name by name and shape by shape, then given the file's tensors: a configuration that asks
    for more than the file holds is refused before anything is allocated."""
    import torch

    with torch.device("meta"):
        model = build_model(meta)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    if missing or unexpected:
        raise BsrnError(f"{path}: tensors do not match the configuration "
                        f"(missing {len(missing)}, unexpected {len(unexpected)})")
    for name, tensor in expected.items():
        if tuple(tensor.shape) != tuple(arrays[name].shape):
            raise BsrnError(f"{path}: tensor shapes do not match the configuration in its metadata ({name} is "
                            f"{tuple(arrays[name].shape)}, the configuration makes {tuple(tensor.shape)})")
    try:
        model.load_state_dict({name: torch.from_numpy(np.array(arrays[name])).to(tensor.dtype)
                               for name, tensor in expected.items()}, assign=True)
    except RuntimeError as exc:
        raise BsrnError(f"{path}: tensors do not match the configuration in its metadata") from exc
    for name, buffer in [*model.named_parameters(), *model.named_buffers()]:
        if buffer.is_meta:  # a tensor the state dict does not hold: make it as a fresh module would
            return _materialised(path, meta, model)
    return model.eval()


def _materialised(path, meta: dict, loaded):
    """Fallback for a module with non-persistent buffers: build it for real, then load."""
    model = build_model(meta)
    model.load_state_dict({k: v.detach().clone() for k, v in loaded.state_dict().items()})
    return model.eval()


def load_weights(path: str | os.PathLike):
    """A ready torch model (eval mode, CPU) and its metadata."""
    weights = open_weights(path)
    return weights.network(), weights.meta
