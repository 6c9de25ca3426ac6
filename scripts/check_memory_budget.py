"""Check --max-memory against what the network really allocates, and the out-of-memory retry.

For each budget: the tile bsrn chooses for a SIZE x SIZE image, the working set the estimate
gives (bsrn_cli/backends/memory.py), and the peak measured while upscaling the whole image
(CUDA: torch.cuda.max_memory_allocated above the model's own memory; CPU: the growth of the
process's peak RSS, less the output array). With --oom-check (CUDA): caps the process's
GPU memory, asks for the whole image at once, and checks that the retries with halved tiles
give the same pixels as a run at the final tile size.

Usage: python scripts/check_memory_budget.py --device cuda --size 8000 --budget 512M --budget 2G --oom-check
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bsrn_cli.backends import make_upscaler  # noqa: E402
from bsrn_cli.backends.memory import parse_size, tile_bytes  # noqa: E402
from bsrn_cli.backends.torch_backend import TorchUpscaler  # noqa: E402
from bsrn_cli.pretrained.weights import load_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", default="torch", choices=["torch", "packed"])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--budget", action="append", default=[])
    parser.add_argument("--oom-check", action="store_true")
    args = parser.parse_args()
    model, _ = load_weights(Path(__file__).resolve().parents[1] / "weights" / f"bsrn-fast-x{args.scale}.safetensors")
    channels, overlap = model.config.channels, model.receptive_radius()
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    cuda = args.device == "cuda"
    for budget_text in args.budget:
        budget = parse_size(budget_text)
        upscaler = make_upscaler(model, args.backend, args.device, tile=0, max_memory=budget)
        upscaler.upscale(image[:32, :32])  # warm up: kernels, allocator, buffers
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        start = time.perf_counter()
        out = upscaler.upscale(image)
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base - out.nbytes
        tile = upscaler.tile
        print(json.dumps({"device": torch.cuda.get_device_name() if cuda else "cpu", "backend": args.backend,
                          "size": args.size, "scale": args.scale, "budget": budget, "tile": tile,
                          "estimate": tile_bytes(channels, args.scale, args.size, args.size, tile, overlap),
                          "measured_peak": peak, "within_budget": peak <= budget,
                          "seconds": round(time.perf_counter() - start, 2)}), flush=True)
        del out
    if args.oom_check and cuda:
        size = 4000
        small = image[:size, :size]
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction((2 * 2**30 + torch.cuda.memory_allocated()) / total)
        retries: list[str] = []
        upscaler = TorchUpscaler(model, args.device, tile=0, on_retry=retries.append)
        out = upscaler.upscale(small)
        final = upscaler.tile
        reference = TorchUpscaler(model, args.device, tile=final).upscale(small)
        print(json.dumps({"oom_check": True, "size": size, "gpu_cap_bytes": 2 * 2**30, "retries": retries,
                          "final_tile": final, "same_as_direct_run": bool(np.array_equal(out, reference))}),
              flush=True)


if __name__ == "__main__":
    main()
