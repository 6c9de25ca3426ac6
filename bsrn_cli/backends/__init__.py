"""Inference backends, and the registry that picks one for a model and a device.

A backend is one ``Backend`` entry in ``REGISTRY``: its ``--backend`` name, the devices it runs
on, whether this installation can run it, which networks it runs (judged from the configuration
alone), and its ``Upscaler`` subclass (bsrn_cli/backends/base.py), imported only once the backend
is chosen, so choosing packed never loads the torch backend. ``auto`` takes the first entry that
is available and runs the model on the device. Adding a backend is a module with an Upscaler
subclass plus one line here (docs/architecture.md, "The backend interface").
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Callable

from bsrn_cli.backends.memory import DEFAULT_TILE

if TYPE_CHECKING:  # the base imports numpy: not needed to check options
    from bsrn_cli.backends.base import Upscaler
from bsrn_cli.errors import BsrnError, UsageProblem


def _runs_any(architecture: str, config) -> str | None:
    return None


def _cpu_present(device: str) -> bool:
    return device == "cpu"


@dataclass(frozen=True)
class Backend:
    """One backend: ``supports(architecture, config)`` says why it cannot run a network (None: it
    can); ``has_device(device)`` whether one of its devices is present on this machine."""

    name: str
    devices: tuple[str, ...]            # what it runs on, in order of preference
    upscaler: str                       # "module:Class", created as Class(model, device, threads, **options)
    available: Callable[[], bool]       # this installation can run it
    requires: str                       # what ``available`` checks, for the error when it is missing
    supports: Callable[[str, object], str | None] = _runs_any
    has_device: Callable[[str], bool] = _cpu_present

    def create(self, model, device: str, threads: int, **options) -> Upscaler:
        module, _, name = self.upscaler.partition(":")
        return getattr(import_module(module), name)(model, device, threads, **options)


def _kernels_built() -> bool:
    try:
        from bsrn_cli import _packed  # noqa: F401 (built or not)
    except ImportError:
        return False
    return True


def _packed_supports(architecture: str, config) -> str | None:
    from bsrn_cli.backends.packed_export import packed_unsupported

    return packed_unsupported(architecture, config)


def _torch_installed() -> bool:
    try:
        return find_spec("torch") is not None
    except ValueError:  # a module entry without a spec: torch blocked in sys.modules
        return False


def _cuda_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver, found without importing torch (so that a
    machine without one never pays for importing torch to learn that CUDA is absent)."""
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version")
    if sys.platform == "darwin":
        return False
    import ctypes.util

    return ctypes.util.find_library("nvcuda") is not None


def _torch_has_device(device: str) -> bool:
    if device == "cpu":
        return True
    if device == "cuda" and not _cuda_driver_present():
        return False
    import torch

    return torch.cuda.is_available()


REGISTRY: tuple[Backend, ...] = (
    Backend("packed", ("cpu",), "bsrn_cli.backends.packed_backend:PackedUpscaler", _kernels_built,
            "its C kernels built (pip install . builds them)", supports=_packed_supports),
    Backend("torch", ("cuda", "cpu"), "bsrn_cli.backends.torch_backend:TorchUpscaler", _torch_installed,
            "PyTorch (pip install 'bsrn[torch]')", has_device=_torch_has_device),
)


def backend_names() -> tuple[str, ...]:
    """What --backend accepts."""
    return ("auto", *(entry.name for entry in REGISTRY))


def check_backend(backend: str) -> None:
    if backend not in backend_names():
        raise UsageProblem("--backend", f"unknown backend {backend!r}", f"choose {', '.join(backend_names())}")


def get_backend(name: str) -> Backend:
    check_backend(name)
    return next(entry for entry in REGISTRY if entry.name == name)


def _devices() -> list[str]:
    """Every backend's devices, accelerators first (in registry order), the CPU last."""
    names = [device for entry in REGISTRY for device in entry.devices if device != "cpu"]
    return [*dict.fromkeys(names), "cpu"]


def _present(device: str) -> bool:
    return any(device in entry.devices and entry.available() and entry.has_device(device) for entry in REGISTRY)


def _only(entry: Backend) -> str:
    return f"{entry.name} runs on the {'/'.join(name.upper() for name in entry.devices)} only"


def _why_not(entry: Backend, device: str, architecture: str, config) -> str | None:
    """Why ``entry`` cannot run the network on ``device`` here, or None if it can."""
    if device not in entry.devices:
        return _only(entry)
    if not entry.available():
        return f"{entry.name} needs {entry.requires}"
    why_not = entry.supports(architecture, config)
    if why_not is not None:
        return f"{entry.name} does not run {why_not}"
    if not entry.has_device(device):
        return f"{entry.name}: no {device.upper()} device is available"
    return None


def resolve_backend(backend: str, device: str | None, model) -> tuple[Backend, str]:
    """The backend and the device to run ``model`` on.

    Device ``auto`` (or None) is the first device present, accelerators before the CPU; backend
    ``auto`` the first registered backend that runs the model there."""
    check_backend(backend)
    if device in (None, "auto"):
        wanted = _devices()
    elif device not in _devices():
        raise UsageProblem("--device", f"{device!r} is not {', '.join(sorted(_devices()))} or auto", "see --help")
    elif not _present(device):
        raise BsrnError(f"--device {device}: no {device.upper()} device is available")
    else:
        wanted = [device]
    architecture, config = model.architecture, model.config
    if backend != "auto":
        return _explicit(get_backend(backend), wanted, device, architecture, config)
    for name in wanted:
        for entry in REGISTRY:
            if _why_not(entry, name, architecture, config) is None:
                return entry, name
    reasons = "; ".join(_why_not(entry, wanted[-1], architecture, config) for entry in REGISTRY)
    raise BsrnError(f"no backend runs this {architecture} network here ({reasons})")


def _explicit(entry: Backend, wanted: list[str], device: str | None, architecture: str,
              config) -> tuple[Backend, str]:
    """``entry`` asked for by name: the device it runs the model on, or why it cannot."""
    runs_on = [name for name in wanted if name in entry.devices]
    if not runs_on:
        others = [other.name for other in REGISTRY if device in other.devices]
        raise UsageProblem("--backend", _only(entry), f"use --backend {others[0]} for {device.upper()}")
    if not entry.available():
        raise BsrnError(f"--backend {entry.name} needs {entry.requires}")
    why_not = entry.supports(architecture, config)
    if why_not is not None:
        others = [other.name for other in REGISTRY if other.supports(architecture, config) is None]
        hint = f"; use --backend {others[0]}" if others else ""
        raise BsrnError(f"--backend {entry.name} does not run {why_not}{hint}")
    for name in runs_on:
        if entry.has_device(name):
            return entry, name
    raise BsrnError(f"--backend {entry.name}: none of its devices ({', '.join(entry.devices)}) is available")


def make_upscaler(model, backend: str = "auto", device: str | None = "auto", tile: int = DEFAULT_TILE,
                  overlap: int | None = None, threads: int = 0, max_memory: int | None = None,
                  on_retry: Callable[[str], None] | None = None,
                  on_tile: Callable[[int, int], None] | None = None) -> Upscaler:
    """The Upscaler of the backend ``resolve_backend`` picks (base.Upscaler has the options)."""
    if threads < 0:
        raise UsageProblem("--threads", "must be 0 (all cores) or positive", "see --help")
    entry, chosen = resolve_backend(backend, device, model)
    return entry.create(model, chosen, threads, tile=tile, overlap=overlap, max_memory=max_memory,
                        on_retry=on_retry, on_tile=on_tile)
