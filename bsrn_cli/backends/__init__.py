"""Inference backends: packed (XOR + popcount C kernels, CPU) and torch (CPU float reference, CUDA)."""

from __future__ import annotations

from bsrn_cli.errors import BsrnError, UsageProblem

BACKENDS = ("auto", "packed", "torch")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageProblem("--backend", f"unknown backend {backend!r}", f"choose {', '.join(BACKENDS)}")


def packed_unsupported(model) -> str | None:
    """Why the packed backend cannot run this model, or None if it can.

    It runs BSRN with BAM (ablations included): sign activations after a BatchNorm threshold.
    Other backbones and methods (VDSR, SRResNet, DoReFa's {0, 1} activations, ABC's bases,
    float activations) run on the torch backend.
    """
    if getattr(model, "architecture", "") != "bsrn":
        return f"the {getattr(model, 'architecture', '?')} backbone"
    if model.config.method != "bam":
        return f"the {model.config.method} method"
    if model.config.threshold:
        return "learned thresholds"
    return None


def resolve_backend(backend: str, device, model=None) -> str:
    """'auto' is packed on the CPU when the kernels are built and support the model, else torch."""
    from bsrn_cli.backends import bitpack

    check_backend(backend)
    why_not = packed_unsupported(model) if model is not None else None
    if backend == "auto":
        return "packed" if device.type == "cpu" and bitpack.available() and why_not is None else "torch"
    if backend == "packed" and device.type != "cpu":
        raise UsageProblem("--backend", "packed runs on the CPU only", "use --backend torch for CUDA")
    if backend == "packed" and why_not is not None:
        raise BsrnError(f"--backend packed does not run {why_not}; use --backend torch")
    return backend


def make_upscaler(model, backend: str = "auto", device: str | None = "auto", tile: int = 256,
                  overlap: int | None = None, threads: int = 0):
    """An object with ``scale`` and ``upscale(uint8 RGB array) -> uint8 RGB array``."""
    import torch

    from bsrn_cli.backends.torch_backend import TorchUpscaler, pick_device

    if threads < 0:
        raise UsageProblem("--threads", "must be 0 (all cores) or positive", "see --help")
    if threads:
        torch.set_num_threads(threads)
    torch_device = pick_device(device)
    if resolve_backend(backend, torch_device, model) == "packed":
        from bsrn_cli.backends.packed_backend import PackedUpscaler

        return PackedUpscaler(model, tile=tile, overlap=overlap, threads=threads or torch.get_num_threads())
    return TorchUpscaler(model, torch_device, tile=tile, overlap=overlap)
