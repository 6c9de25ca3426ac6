"""`bsrn bench --layers`: where a packed forward pass spends its time.

Bench code, outside the backend: it times the public parts of ``PackedBSRN`` one call at a
time (the head conv, the fused body, a whole pass) and the body's binary convs alone, with the
same kernels and thread count over maps of the same size.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from bsrn_cli.backends import bitpack
from bsrn_cli.backends.packed_backend import PackedBSRN

BODY_REST = "fused float work in the body (BAM accumulation, signs, scale, RPReLU, skips, sync)"
TAIL = "float tail (body conv, upsampler, image skip)"


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def profile_packed(network: PackedBSRN, pixels: np.ndarray) -> dict[str, float]:
    """Seconds per part of one forward pass on float32 (h, w, 3) ``pixels``: the head, the
    binary 3x3 and 1x1 convs, the rest of the body (the fused float work), and the tail (a
    whole pass less head and body)."""
    height, width = pixels.shape[:2]
    whole = _seconds(lambda: network.run_hwc(pixels))
    features = np.empty((height, width, network.head.cout), dtype=np.float32)
    head = _seconds(lambda: network.head(pixels - np.float32(0.5), features, network.pool, network.threads))
    features = features.reshape(height * width, -1)
    out = np.empty_like(features)
    body = _seconds(lambda: network.run_blocks(0, network.body.blocks, features, out, height, width))
    binary = _binary_convs(network, height, width)
    return {"float head": head, **binary, BODY_REST: max(body - sum(binary.values()), 0.0),
            TAIL: max(whole - head - body, 0.0)}


def _binary_convs(network: PackedBSRN, height: int, width: int) -> dict[str, float]:
    """Seconds of all the body's binary 3x3 convs, then of all its 1x1 convs, on random bits."""
    channels = network.body.channels
    words = bitpack.words_for(channels)
    bits = np.random.default_rng(0).integers(0, 2**63, (height, width, words), dtype=np.uint64)
    bits[..., -1] &= np.uint64((1 << (channels - 64 * (words - 1))) - 1 if channels % 64 else 2**64 - 1)
    counts = np.empty((height, width, channels), dtype=np.int32)
    convs: dict[int, list[bitpack.BinaryConv]] = {3: [], 1: []}
    for conv in network.binary_convs:
        convs[conv.kernel_size].append(conv)
    timings = {}
    for size in (3, 1):
        start = time.perf_counter()
        for conv in convs[size]:
            conv(bits, network.pool, network.threads, out=counts)
        timings[f"binary {size}x{size} conv"] = time.perf_counter() - start
    return timings
