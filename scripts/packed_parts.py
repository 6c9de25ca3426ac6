"""CPU time of each part of the packed pass on one thread (time.thread_time, minimum of N passes).

Usage: python scripts/packed_parts.py [--kernels avx512|avx2] [--passes 7] [--width 320 --height 180]
       [--model bsrn-fast-x4] [--callgrind]

thread_time counts only this thread's CPU time, so other jobs on the machine change it far less
than wall-clock time (they still share caches and the core's frequency). Parts: float head,
the fused body (all blocks), body conv, upsampler conv(s), bicubic skip with the last pixel
shuffle folded in. With --callgrind: one pass of the whole network, for
`valgrind --tool=callgrind --toggle-collect=...` (no timing).
"""

import argparse
import time

import numpy as np

from bsrn_cli import _packed
from bsrn_cli.backends.packed_backend import FloatConv, PackedBSRN
from bsrn_cli.pretrained.loader import load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernels", default=None)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--model", default="bsrn-fast-x4")
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    if args.kernels:
        _packed.set_path(args.kernels)
    weights = load_model(args.model)[0]
    net = PackedBSRN(weights, threads=1)
    h, w = args.height, args.width
    pixels = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    if args.callgrind:
        net.run_hwc(pixels)
        return
    features = net._conv(net.head, pixels - np.float32(0.5), "head").reshape(h * w, -1)
    body = np.empty_like(features)
    maps = features.reshape(h, w, -1)
    ups = [s for s in net.upsampler if isinstance(s, FloatConv)]
    up_out = net._conv(ups[0], maps, "u") if ups else None
    parts = {
        "head": lambda: net._conv(net.head, pixels - np.float32(0.5), "head"),
        "body (all blocks)": lambda: net.run_blocks(0, net.body.blocks, features, body, h, w),
        "body conv": lambda: net._conv(net.body_conv, maps, "body conv"),
        "upsampler conv": lambda: net._conv(ups[0], maps, "u"),
        "bicubic + shuffle": lambda: net._add_bicubic(pixels, up_out, shuffled=False),
        "whole pass": lambda: net.run_hwc(pixels),
    }
    print(f"kernel path {_packed.path()}, 1 thread, {w}x{h}, thread_time min of {args.passes} passes (ms)")
    for name, fn in parts.items():
        fn()
        best = min(_time(fn) for _ in range(args.passes))
        print(f"{name:20s} {1e3 * best:8.2f}")


def _time(fn) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


if __name__ == "__main__":
    main()
