"""The packed-bit CPU backend: the binary body in one fused C pass per block, the rest in C too.

Built from a BSRN's weights with numpy alone (packed_export.py: the packed signs of each binary
conv's effective BAM kernel and one float scale per output channel, each activation's
BatchNorm folded into per-channel thresholds), so this backend never imports torch. The C
driver (kernels/bitconv.c, ``bsrn_body_run``) runs the whole body: per block and row the binary
3x3 conv, then per pixel the scale, RPReLU, skips, the BAM activation accumulation (b_scale and
the channel-mean map), the two binary 1x1 convs and the packing of the next block's input. The
float convolutions of the head and tail (head, body conv, upsampler convs) and the bicubic
image skip run in C too (kernels/floatconv.c), with the same arithmetic for every pixel, so a
tile's pixels equal the whole image's bit for bit (tiled == untiled exactly); the pixel
shuffle and the other skips are element-wise numpy.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bsrn_cli.backends import bitpack
from bsrn_cli.backends.base import Upscaler, model_options
from bsrn_cli.backends.packed_export import BSRNExport, FloatConvWeights, export_bsrn
from bsrn_cli.errors import BsrnError
from bsrn_cli.system import cpu_cores


def to_pixels(maps) -> np.ndarray:
    """(1, C, H, W) tensor -> float32 (H*W, C) array, the layout of the packed body (a view
    when the tensor is channels_last)."""
    return maps[0].permute(1, 2, 0).reshape(-1, maps.shape[1]).contiguous().numpy()


class FloatConv:
    """A float 3x3 conv (padding 1) of the head or tail, run by the C kernel on NHWC maps."""

    def __init__(self, conv: FloatConvWeights):
        cout, cin = conv.weight.shape[:2]
        padded = (cout + 15) // 16 * 16  # the kernel's blocks of 16 output channels
        self.cout = cout
        self.weights = np.zeros((9, cin, padded), dtype=np.float32)
        self.weights[..., :cout] = conv.weight.transpose(2, 3, 1, 0).reshape(9, cin, cout)
        self.bias = np.zeros(padded, dtype=np.float32)
        self.bias[:cout] = conv.bias

    def __call__(self, maps: np.ndarray, out: np.ndarray, pool: ThreadPoolExecutor | None, threads: int,
                 residual: np.ndarray | None = None) -> np.ndarray:
        """float32 (H, W, cin) -> ``out`` (H, W, cout), rows split over ``threads``; plus ``residual``
        (H, W, cout) when given, added to each row as it is computed (the same float adds as numpy's)."""
        if residual is not None:
            bitpack.run_in_ranges(bitpack._packed.float_conv3x3_add, maps.shape[0], maps, self.weights, self.bias,
                                  residual, out, pool=pool, threads=threads)
        else:
            bitpack.run_in_ranges(bitpack._packed.float_conv3x3, maps.shape[0], maps, self.weights, self.bias, out,
                                  pool=pool, threads=threads)
        return out


def pixel_shuffle(maps: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C * f * f) -> (H * f, W * f, C), the NHWC form of torch's PixelShuffle."""
    height, width, channels = maps.shape
    c = channels // (factor * factor)
    return np.ascontiguousarray(maps.reshape(height, width, c, factor, factor).transpose(0, 3, 1, 4, 2)
                                ).reshape(height * factor, width * factor, c)


def _cubic_phases(scale: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output phase i (output index = scale * k + i): the offset of its first source
    pixel from k and its four cubic weights (a = -0.75, half-pixel centres: torch's bicubic)."""
    a = -0.75
    near = lambda t: ((a + 2) * t - (a + 3)) * t * t + 1
    far = lambda t: ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    offsets, weights = [], []
    for i in range(scale):
        real = (i + 0.5) / scale - 0.5
        first = int(np.floor(real))
        t = real - first
        offsets.append(first - 1)
        weights.append([far(t + 1), near(t), near(1 - t), far(2 - t)])
    return np.array(offsets, dtype=np.int32), np.array(weights, dtype=np.float32)


def body_of(export: BSRNExport):
    """The body as one ``_packed.Body`` (per-layer arrays stacked, layer = 3 * block + i), and
    its binary convs."""
    channels = export.config.channels
    if channels > bitpack._packed.MAX_CHANNELS:
        raise BsrnError(f"the packed backend supports up to {bitpack._packed.MAX_CHANNELS} channels")
    layers = export.layers
    convs = [bitpack.BinaryConv(layer.kernel) for layer in layers]
    b = np.zeros((len(layers), 3), dtype=np.float32)
    for row, layer in zip(b, layers):
        row[:layer.n_terms] = layer.b[:layer.n_terms]
    stack = lambda values: np.stack(values).astype(np.float32)
    return convs, bitpack._packed.Body(
        channels, export.config.fp_skip, layers[0].learned,
        None if layers[0].rprelu is None else tuple(stack([l.rprelu[k] for l in layers]) for k in range(3)),
        np.array([l.n_terms for l in layers], dtype=np.int32), b,
        stack([l.sign.direction for l in layers]), stack([l.sign.bound for l in layers]),
        stack([l.scale for l in layers]),
        [(conv.weights, conv.grouped, conv.tap_sum) for conv in convs[0::3]],
        [conv.weights for i, conv in enumerate(convs) if i % 3])


def export_of(source) -> BSRNExport:
    """The packed export of weights read from a file (``pretrained.weights.Weights``), of a torch
    BSRN (its state dict; tests and bench compare it with the torch backend), or an export."""
    if isinstance(source, BSRNExport):
        return source
    if hasattr(source, "state_dict"):  # a torch module: numpy copies of its tensors
        tensors = {name: value.detach().cpu().numpy() for name, value in source.state_dict().items()}
        return export_bsrn(tensors, source.config, f"the {type(source).__name__} module")
    return export_bsrn(source.tensors, source.config, str(source.path))


class PackedBSRN:
    """Runs a BSRN's forward pass: the body in the fused C driver, head and tail in C.

    The body works on NHWC float32 maps flattened to (pixels, channels)."""

    def __init__(self, source, threads: int = 1):
        if not bitpack.available():
            raise BsrnError("the packed backend is not built in this installation (pip install . builds it)")
        export = export_of(source)
        self.config = export.config
        self.scale = export.config.scale
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self.binary_convs, self.body = body_of(export)
        self.head = FloatConv(export.head)
        self.body_conv = FloatConv(export.body_conv) if export.body_conv is not None else None
        self.cubic_phases = _cubic_phases(self.scale)  # the bicubic image skip's offsets and weights
        self.upsampler = [FloatConv(step) if isinstance(step, FloatConvWeights) else step
                          for step in export.upsampler]  # FloatConv or a pixel-shuffle factor, in order
        self._buffers: dict[tuple, np.ndarray] = {}

    def _buffer(self, kind: str, shape: tuple, dtype) -> np.ndarray:
        """A reused scratch array (fresh multi-megabyte arrays per call pay in page faults).

        One flat buffer per kind, grown to the largest tile seen and viewed in the shape asked:
        edge tiles of other shapes reuse it instead of keeping buffers of their own (memory
        budget). Each kind is used once per forward pass, so views never alias live data."""
        key = (kind, np.dtype(dtype).str)
        size = int(np.prod(shape))
        if key not in self._buffers or self._buffers[key].size < size:
            self._buffers[key] = np.empty(size, dtype=dtype)
        return self._buffers[key][:size].reshape(shape)

    def run_blocks(self, first: int, count: int, inp: np.ndarray, out: np.ndarray, height: int, width: int) -> None:
        """Blocks [first, first + count) on the (pixels, C) map ``inp`` into ``out`` (may be ``inp``).

        The threads of the C driver take (block, row) items in wavefront order and wait only for
        the items each one reads."""
        threads = max(1, min(self.threads, height))
        ring = self._buffer("ring", (self.body.ring_size(count, width),), np.uint64)
        sync = np.zeros(self.body.sync_size(count, height), dtype=np.int64)
        args = (first, count, inp, out, height, width, ring, sync)
        jobs = [self.pool.submit(self.body.run, *args, threads) for _ in range(1, threads)]
        self.body.run(*args, threads)
        for job in jobs:
            job.result()

    def block(self, index: int, h: np.ndarray, height: int, width: int) -> np.ndarray:
        """One LB block: float32 (pixels, C) in, a new map out (the input is left as it is)."""
        out = self._buffer("block", h.shape, np.float32)
        self.run_blocks(index, 1, h, out, height, width)
        return out

    def _conv(self, conv: FloatConv, maps: np.ndarray, kind: str, residual: np.ndarray | None = None) -> np.ndarray:
        out = self._buffer(kind, maps.shape[:2] + (conv.cout,), np.float32)
        return conv(maps, out, self.pool, self.threads, residual)

    def __call__(self, x):
        """(1, 3, h, w) torch tensor in [0, 1] -> (1, 3, h*s, w*s), the same values as the torch
        model's forward (for tests and bench; upscaling calls :meth:`run_hwc`)."""
        import torch

        result = self.run_hwc(np.ascontiguousarray(x[0].detach().permute(1, 2, 0).cpu().numpy()))
        return torch.from_numpy(result).permute(2, 0, 1).unsqueeze(0)

    def run_hwc(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (h, w, 3) in [0, 1] -> float32 (h*s, w*s, 3), unclamped: the model's forward in NHWC."""
        height, width = pixels.shape[:2]
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        features = self._conv(self.head, pixels - np.float32(0.5), "head").reshape(height * width, -1)
        out = self._buffer("body", features.shape, np.float32)
        self.run_blocks(0, self.body.blocks, features, out, height, width)
        body = out.reshape(height, width, -1)
        if self.body_conv is not None:  # the long skip added in the conv's threads, row by row
            maps = self._conv(self.body_conv, body, "body conv", residual=features.reshape(height, width, -1))
        else:
            maps = body + features.reshape(height, width, -1)
        skip = self.config.image_skip
        # a last pixel shuffle by the model's scale followed by the bicubic skip: both in one C pass
        fold = skip == "bicubic" and not isinstance(self.upsampler[-1], FloatConv) and self.upsampler[-1] == self.scale
        for i, step in enumerate(self.upsampler[:-1] if fold else self.upsampler):
            maps = self._conv(step, maps, f"upsampler {i}") if isinstance(step, FloatConv) \
                else pixel_shuffle(maps, step)
        if fold:
            result = self._add_bicubic(pixels, maps, shuffled=False)
        elif skip == "bicubic":
            result = self._add_bicubic(pixels, maps)
        else:
            result = maps + np.float32(0.5)
            if skip != "none":  # nearest: each input pixel repeated s x s times
                upscaled = np.repeat(np.repeat(pixels, self.scale, axis=0), self.scale, axis=1)
                result = (result + upscaled) - np.float32(0.5)
        return result

    def _add_bicubic(self, pixels: np.ndarray, maps: np.ndarray, shuffled: bool = True) -> np.ndarray:
        """((maps + 0.5) + bicubic(pixels)) - 0.5, the model's output with its image skip, in C and in
        place (kernels/floatconv.c: the weights depend only on an output pixel's phase, never on its
        position, so a tile's pixels equal the whole image's). ``shuffled`` False: ``maps`` is the
        upsampler's output before its pixel shuffle by the model's scale, done in the same pass."""
        offsets, weights = self.cubic_phases
        if not shuffled:
            height, width = pixels.shape[:2]
            result = np.empty((height * self.scale, width * self.scale, pixels.shape[2]), dtype=np.float32)
            bitpack.run_in_ranges(bitpack._packed.bicubic_shuffle_add, result.shape[0], pixels, weights, offsets,
                                  np.ascontiguousarray(maps), result, pool=self.pool, threads=self.threads)
            return result
        result = np.ascontiguousarray(maps)
        bitpack.run_in_ranges(bitpack._packed.bicubic_add, result.shape[0], pixels, weights, offsets, result,
                              pool=self.pool, threads=self.threads)
        return result


class PackedUpscaler(Upscaler):
    """Tiled upscaling on the packed backend: the CPU only; ``threads`` 0 is one per core."""

    def __init__(self, model, device: str = "cpu", threads: int = 0, *, overlap: int | None = None,
                 **options):
        if device != "cpu":
            raise BsrnError("the packed backend runs on the CPU only")
        super().__init__(**model_options(model, overlap), **options)
        self.network = PackedBSRN(model, threads or cpu_cores())

    def _run(self, tile: np.ndarray) -> np.ndarray:
        return self.network.run_hwc(tile)
