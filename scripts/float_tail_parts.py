"""Time the packed backend's float head and tail parts (C) against torch's, on one input size.

Usage: python scripts/float_tail_parts.py [--threads 2] [--width 320 --height 180] [--rounds 5]

Prints, per part, the median milliseconds of the C version (what the packed backend runs) and of
the torch layer of the same model (channels_last, what the packed backend ran before), shipped
bsrn-fast-x4, random input. Also one 48 -> 48 3x3 conv on one thread in GFLOP/s.
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from bsrn_cli import _packed
from bsrn_cli.backends.packed_backend import PackedBSRN, pixel_shuffle
from bsrn_cli.pretrained.loader import load_model


def median_ms(function, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("bsrn-fast-x4")[0].network()
    net = PackedBSRN(model, threads=args.threads)
    h, w, s = args.height, args.width, model.scale
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 3, h, w), dtype=np.float32))
    pixels = np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
    maps = rng.standard_normal((h, w, model.config.channels), dtype=np.float32)
    maps_t = torch.from_numpy(maps).permute(2, 0, 1).unsqueeze(0)  # a channels_last view
    upsampled = rng.random((h * s, w * s, 3), dtype=np.float32)
    r = args.rounds
    print(f"kernel path {_packed.path()}, {args.threads} thread(s), {w}x{h} -> {w * s}x{h * s}, medians of {r}")
    with torch.inference_mode():
        rows = [
            ("head conv", lambda: net._conv(net.head, pixels, "head"),
             lambda: model.head(x.contiguous(memory_format=torch.channels_last))),
            ("body conv", lambda: net._conv(net.body_conv, maps, "body conv"), lambda: model.body_conv(maps_t)),
            ("upsampler conv + pixel shuffle", lambda: pixel_shuffle(net._conv(net.upsampler[0], maps, "u"), s),
             lambda: model.upsampler(maps_t)),
            ("bicubic image skip", lambda: net._add_bicubic(pixels, upsampled.copy()),
             lambda: F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)),
        ]
        print("| part | C (ms) | torch (ms) |\n| --- | --- | --- |")
        for name, c_version, torch_version in rows:
            print(f"| {name} | {median_ms(c_version, r):.1f} | {median_ms(torch_version, r):.1f} |")
    out = np.empty_like(maps)
    seconds = median_ms(lambda: _packed.float_conv3x3(maps, net.body_conv.weights, net.body_conv.bias, out, 0, h),
                        r) / 1e3
    print(f"one 48 -> 48 3x3 conv, one thread: {h * w * 48 * 48 * 9 * 2 / seconds / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
