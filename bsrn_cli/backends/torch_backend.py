"""The torch backend: the model run by PyTorch, on the CPU (the float reference) or CUDA."""

from __future__ import annotations

import numpy as np
import torch

from bsrn_cli.backends.base import Upscaler, model_options
from bsrn_cli.networks.bsrn import BSRN
from bsrn_cli.pretrained.weights import Weights

# What a failed CPU allocation says (torch's DefaultCPUAllocator raises it as a plain RuntimeError).
CPU_ALLOCATION_FAILED = ("can't allocate memory", "not enough memory")


def tensor_to_uint8(t: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) float in [0, 1] -> (h, w, 3) uint8, rounding to nearest."""
    return t[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


class TorchUpscaler(Upscaler):
    """The model run by PyTorch on a device (CPU: the float reference, channels_last).

    ``threads`` > 0 sets torch's CPU thread count (0 leaves it as it is)."""

    def __init__(self, model: BSRN, device: torch.device | str = "cpu", threads: int = 0, *,
                 overlap: int | None = None, **options):
        super().__init__(**model_options(model, overlap), **options)
        if threads:
            torch.set_num_threads(threads)
        if isinstance(model, Weights):
            model = model.network()
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        with torch.no_grad():  # the BAM kernels are fixed at inference: compute them once
            self.kernels = self.model.binary_kernels()

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Also CUDA's out-of-memory and the CPU allocator's failures."""
        return (super().is_out_of_memory(exc) or isinstance(exc, torch.OutOfMemoryError)
                or isinstance(exc, RuntimeError) and any(text in str(exc) for text in CPU_ALLOCATION_FAILED))

    @torch.inference_mode()
    def _run(self, tile: np.ndarray) -> np.ndarray:
        lr = torch.from_numpy(tile).permute(2, 0, 1).unsqueeze(0).to(self.device)
        lr = lr.contiguous(memory_format=torch.channels_last if self.device.type == "cpu" else torch.contiguous_format)
        try:
            sr = self.model(lr, self.kernels)
        except torch.OutOfMemoryError:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # hand the failed tile's cached blocks back before the retry
            raise
        return sr[0].permute(1, 2, 0).cpu().numpy()
