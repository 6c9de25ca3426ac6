"""The packed-bit CPU backend: binary convs as XOR + popcount in C, the float work in torch.

Derived from a trained model at load time (no second copy of the weights): per binary conv
the packed signs of its effective BAM kernel and one float scale per output channel
(E(|W|) times the learned gain); each activation's BatchNorm folded into per-channel
thresholds, so sign(BN(.)) becomes a compare fused into the packing. The BAM activation
accumulation (b_scale and the channel-mean map), RPReLU, the residuals, the head and the tail
stay float, in torch.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from bsrn_cli.backends import bitpack
from bsrn_cli.backends.torch_backend import TiledUpscaler
from bsrn_cli.errors import BsrnError
from bsrn_cli.models.bsrn import BSRN


def to_pixels(maps: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> float32 (H*W, C) array, the layout of the packed body."""
    return maps[0].permute(1, 2, 0).reshape(-1, maps.shape[1]).contiguous().numpy()


class PackedLayer:
    """One binary conv of an LB block, exported for the kernels."""

    def __init__(self, kernel: torch.Tensor, block, index: int):
        accumulator = block.act_acc[index]
        self.conv = bitpack.BinaryConv(kernel)
        gain = block.gains[index].detach().flatten()
        self.scale = (kernel.detach().abs().flatten(1).amax(1) * gain).float().contiguous().numpy()
        self.sign = bitpack.FoldedSign(accumulator.norm)
        self.n_terms = accumulator.n_terms
        if accumulator.mode == "learned":
            self.mode, self.b = "learned", accumulator.b_scale.detach().float().contiguous().numpy()
        else:  # "ones" sums the terms; "none" has one term, which the same sum passes through
            self.mode, self.b = "ones", np.ones(self.n_terms, dtype=np.float32)
        self.rprelu = None
        if block.rprelu is not None:
            r = block.rprelu[index]
            self.rprelu = tuple(t.detach().float().flatten().contiguous().numpy()
                                for t in (r.shift_in, r.prelu.weight, r.shift_out))


class PackedBSRN:
    """Runs a BSRN's forward pass with the body on packed bits and fused C passes.

    The body works on NHWC float32 maps flattened to (pixels, channels); per binary conv three
    passes: accumulation + BN threshold + packing, the XOR-popcount conv, and the output pass
    (scale, RPReLU, residual). Head, body conv and upsampler run in torch.
    """

    def __init__(self, model: BSRN, threads: int = 1):
        if not bitpack.available():
            raise BsrnError("the packed backend is not built in this installation (pip install . builds it)")
        self.model = model.eval()
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        with torch.no_grad():
            kernels = model.binary_kernels()
        self.layers = [[PackedLayer(k, block, i) for i, k in enumerate(block_kernels)]
                       for block, block_kernels in zip(model.body, kernels)]
        self.timings: dict[str, float] | None = None  # per layer type, when profiling
        self._buffers: dict[tuple, list[np.ndarray]] = {}
        self._next_slot = 0

    # Maps live in a ring of reused buffers instead of fresh multi-megabyte arrays per layer.
    # A block writes at most 4 maps; a ring of 5 never overwrites the block's input.
    RING = 5

    def _buffer(self, kind: str, shape: tuple, dtype) -> np.ndarray:
        # One flat buffer per kind and slot, grown to the largest tile seen and viewed in the
        # shape asked: edge tiles of other shapes reuse it instead of adding buffers of their own.
        key = (kind, np.dtype(dtype).str)
        size = int(np.prod(shape))
        if key not in self._buffers or self._buffers[key][0].size < size:
            count = self.RING if kind == "map" else 1
            self._buffers[key] = [np.empty(size, dtype=dtype) for _ in range(count)]
        buffers = self._buffers[key]
        if kind != "map":
            return buffers[0][:size].reshape(shape)
        self._next_slot = (self._next_slot + 1) % self.RING
        return buffers[self._next_slot][:size].reshape(shape)

    @contextmanager
    def _timed(self, category: str):
        if self.timings is None:
            yield
            return
        start = time.perf_counter()
        yield
        self.timings[category] = self.timings.get(category, 0.0) + time.perf_counter() - start

    def block(self, index: int, h: np.ndarray, height: int, width: int) -> np.ndarray:
        """One LB block: float32 (pixels, C) in and out."""
        fp_skip = self.model.config.fp_skip
        pixels = h.shape[0]
        activations = [h]
        current = h
        for layer in self.layers[index]:
            with self._timed("accumulate + BN sign + pack"):
                bits = self._buffer("bits", (height, width, bitpack.words_for(h.shape[1])), np.uint64)
                bitpack.run_in_ranges(bitpack._packed.accumulate, pixels, activations[-layer.n_terms:], layer.b,
                                      layer.mode, layer.sign.threshold, layer.sign.above, layer.sign.constant,
                                      bits.reshape(pixels, -1), pool=self.pool, threads=self.threads)
            size = layer.conv.kernel_size
            with self._timed(f"binary {size}x{size} conv"):
                counts = layer.conv(bits, self.pool, self.threads,
                                    out=self._buffer("counts", (height, width, layer.conv.cout), np.int32))
            with self._timed("output pass (scale, RPReLU, residual)"):
                result = self._buffer("map", (pixels, layer.conv.cout), np.float32)
                bitpack.run_in_ranges(bitpack._packed.finish, pixels, counts.reshape(pixels, -1), layer.scale,
                                      layer.rprelu, current if fp_skip else None, result,
                                      pool=self.pool, threads=self.threads)
            current = result
            activations.append(current)
        if fp_skip:
            return current
        with self._timed("output pass (scale, RPReLU, residual)"):
            return np.add(h, current, out=self._buffer("map", h.shape, np.float32))

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        _, _, height, width = x.shape
        with self._timed("float head"):
            features = model.head(x - 0.5)
        with self._timed("layout (NCHW <-> NHWC)"):
            h = to_pixels(features)
        for index in range(len(self.layers)):
            h = self.block(index, h, height, width)
        with self._timed("layout (NCHW <-> NHWC)"):
            body = torch.from_numpy(h).view(1, height, width, -1).permute(0, 3, 1, 2).contiguous()
        with self._timed("float tail (body conv, upsampler, image skip)"):
            out = model.tail(body, features, x)
        return out


class PackedUpscaler(TiledUpscaler):
    """Tiled upscaling on the packed backend (CPU only)."""

    def __init__(self, model: BSRN, tile: int = 256, overlap: int | None = None, threads: int = 1):
        super().__init__(model, tile, overlap)
        self.network = PackedBSRN(model, threads)

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        return self.network(lr)
