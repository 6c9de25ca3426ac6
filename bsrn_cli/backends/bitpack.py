"""Packing of ±1 tensors and binary convolutions through the C kernels (bsrn_cli._packed).

The kernels work on NHWC maps with the channels of a pixel packed into 64-bit words (bit = 1
for -1). These helpers convert to and from torch/numpy layouts and split rows over threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

try:
    from bsrn_cli import _packed
except ImportError:  # the extension was not built (e.g. a source tree without pip install)
    _packed = None


def available() -> bool:
    return _packed is not None


def words_for(channels: int) -> int:
    return (channels + 63) // 64


def pack_hwc(x: np.ndarray) -> np.ndarray:
    """float32 (H, W, C) -> uint64 (H, W, words), bit = 1 where x < 0."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape[:2] + (words_for(x.shape[2]),), dtype=np.uint64)
    _packed.pack(x, out)
    return out


def pack_kernel(kernel: torch.Tensor) -> tuple[np.ndarray, int]:
    """Signs of a (cout, cin, k, k) kernel -> uint64 (cout, k*k*words), tap-major; and cin."""
    cout, cin, kh, kw = kernel.shape
    signs = kernel.detach().permute(0, 2, 3, 1).reshape(cout * kh * kw, 1, cin).float().cpu().numpy()
    packed = pack_hwc(signs)  # (cout*taps, 1, words)
    return packed.reshape(cout, kh * kw * packed.shape[-1]), cin


def run_in_ranges(function, length: int, *args, pool: ThreadPoolExecutor | None = None, threads: int = 1) -> None:
    """Run ``function(*args, begin, end)`` over ``threads`` slices of range(length): the first in
    this thread, the others on ``pool`` (the kernels release the GIL, so a pool of threads - 1
    workers is enough); in one call without a pool."""
    if pool is None or threads <= 1 or length < 2:
        function(*args, 0, length)
        return
    bounds = np.linspace(0, length, min(threads, length) + 1).astype(np.int64)
    jobs = [pool.submit(function, *args, int(a), int(b)) for a, b in zip(bounds[1:-1], bounds[2:])]
    function(*args, int(bounds[0]), int(bounds[1]))
    for job in jobs:
        job.result()


class BinaryConv:
    """One binary conv with packed weights: integer ±1 dot products, optionally threaded."""

    def __init__(self, kernel: torch.Tensor):
        self.cout, _, self.kernel_size, _ = kernel.shape
        self.weights, self.cin = pack_kernel(kernel)
        # 3x3: the AVX2 layout (taps concatenated) and the per-tap sums for the border correction
        self.grouped, self.tap_sum = (_packed.prepare3x3(self.weights, self.cin) if self.kernel_size == 3
                                      else (None, None))

    def __call__(self, act: np.ndarray, pool: ThreadPoolExecutor | None = None, threads: int = 1,
                 out: np.ndarray | None = None) -> np.ndarray:
        """act: packed (H, W, words) -> int32 (H, W, cout), written into ``out`` if given."""
        height, width = act.shape[:2]
        if out is None:
            out = np.empty((height, width, self.cout), dtype=np.int32)
        run_in_ranges(_packed.conv, height, act, self.weights, self.grouped, self.tap_sum, self.cin,
                      self.kernel_size, out, pool=pool, threads=threads)
        return out


class FoldedSign:
    """sign(BN(x)) as a per-channel compare: the eval-mode BatchNorm folded into thresholds.

    BN(x) = g (x - mean) / sqrt(var + eps) + b is negative where x < t (g > 0) or x > t
    (g < 0), with t = mean - b sqrt(var + eps) / g; where g = 0 the sign is that of b.
    """

    def __init__(self, norm: torch.nn.BatchNorm2d):
        gain = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().double()
        bias = norm.bias.detach().double()
        mean = norm.running_mean.detach().double()
        safe_gain = torch.where(gain == 0, torch.ones_like(gain), gain)
        self.threshold = (mean - bias / safe_gain).float().numpy()
        self.above = (gain < 0).to(torch.uint8).numpy()
        self.constant = torch.where(gain == 0, (bias < 0).to(torch.int8), torch.full_like(bias, -1, dtype=torch.int8)).numpy()
        # The same as one branch-free compare: bit = direction * x < bound, with direction +1
        # (g > 0), -1 (g < 0: -x < -t is x > t) or 0 (g = 0: 0 < +1 or 0 < -1, the constant sign).
        self.direction = np.where(self.constant >= 0, 0.0, np.where(self.above == 1, -1.0, 1.0)).astype(np.float32)
        self.bound = np.where(self.constant == 1, 1.0, np.where(self.constant == 0, -1.0,
                                                                self.direction * self.threshold)).astype(np.float32)
