"""One registry of named pretrained models (timm-style): name -> file, scale, sha256."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bsrn_cli.errors import BsrnError


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    scale: int
    filename: str
    sha256: str
    description: str

    def bundled_path(self) -> Path:
        return bundled_weights_dir() / self.filename


_REGISTRY: dict[str, PretrainedModel] = {}


def register_model(entry: PretrainedModel) -> PretrainedModel:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def bundled_weights_dir() -> Path:
    """The repository's ``weights/`` folder, installed as the ``bsrn_cli.weights`` package."""
    try:
        return Path(str(resources.files("bsrn_cli.weights")))
    except ModuleNotFoundError:  # running from a source tree that is not installed
        return Path(__file__).resolve().parents[2] / "weights"


def list_models(pattern: str = "*") -> list[PretrainedModel]:
    return [e for name, e in sorted(_REGISTRY.items()) if fnmatch.fnmatch(name, pattern)]


def get_entry(name: str) -> PretrainedModel:
    if name not in _REGISTRY:
        raise BsrnError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))} (or a .safetensors path)")
    return _REGISTRY[name]


def default_model_name(scale: int) -> str:
    return f"bsrn-fast-x{scale}"


# Preliminary weights; docs/training.md has the commands that made them.
register_model(PretrainedModel(
    name="bsrn-fast-x2", scale=2, filename="bsrn-fast-x2.safetensors",
    sha256="c6b4417534e8e472fdc0deb8729bad30b48c717f7da862749371c502b02610a7",
    description="BSRN 'fast' preset (BAM + FP skip + RPReLU, light upsampler), x2, preliminary"))
register_model(PretrainedModel(
    name="bsrn-fast-x3", scale=3, filename="bsrn-fast-x3.safetensors",
    sha256="e664256b801c145443a55b14933332be83508072e73d44158c2db76adbb66761",
    description="BSRN 'fast' preset (BAM + FP skip + RPReLU, light upsampler), x3, preliminary"))
register_model(PretrainedModel(
    name="bsrn-fast-x4", scale=4, filename="bsrn-fast-x4.safetensors",
    sha256="9c74e3922c24565b26e1fc93fcd0234c04f00045a1bd781a51bb15b83efcf7be",
    description="BSRN 'fast' preset (BAM + FP skip + RPReLU, light upsampler), x4, preliminary"))
