"""Packing of ±1 tensors and binary convolutions through the C kernels (bsrn_cli._packed).

The kernels work on NHWC maps with the channels of a pixel packed into 64-bit words (bit = 1
for -1). These helpers pack numpy arrays and split rows over threads; nothing here needs torch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

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


def as_array(values) -> np.ndarray:
    """float32 numpy array of a numpy array or a (CPU) torch tensor, without importing torch."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def pack_kernel(kernel) -> tuple[np.ndarray, int]:
    """Signs of a (cout, cin, k, k) kernel -> uint64 (cout, k*k*words), tap-major; and cin."""
    kernel = as_array(kernel)
    cout, cin, kh, kw = kernel.shape
    signs = np.ascontiguousarray(kernel.transpose(0, 2, 3, 1)).reshape(cout * kh * kw, 1, cin)
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

    def __init__(self, kernel):
        """``kernel``: (cout, cin, k, k), numpy or torch; only its signs matter (x < 0 is -1)."""
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

    def __init__(self, weight, bias, running_mean, running_var, eps: float = 1e-5):
        """The BatchNorm's parameters and statistics, numpy or torch. The gain in float32 as the
        BatchNorm computes it, the threshold from it in float64."""
        gain = (as_array(weight) / np.sqrt(as_array(running_var) + np.float32(eps))).astype(np.float64)
        bias, mean = as_array(bias).astype(np.float64), as_array(running_mean).astype(np.float64)
        safe_gain = np.where(gain == 0, 1.0, gain)
        self.threshold = (mean - bias / safe_gain).astype(np.float32)
        self.above = (gain < 0).astype(np.uint8)
        self.constant = np.where(gain == 0, (bias < 0).astype(np.int8), np.int8(-1)).astype(np.int8)
        # The same as one branch-free compare: bit = direction * x < bound, with direction +1
        # (g > 0), -1 (g < 0: -x < -t is x > t) or 0 (g = 0: 0 < +1 or 0 < -1, the constant sign).
        self.direction = np.where(self.constant >= 0, 0.0, np.where(self.above == 1, -1.0, 1.0)).astype(np.float32)
        self.bound = np.where(self.constant == 1, 1.0, np.where(self.constant == 0, -1.0,
                                                                self.direction * self.threshold)).astype(np.float32)
