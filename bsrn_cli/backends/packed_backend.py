"""The packed-bit CPU backend: the binary body in one fused C pass per block, the rest in torch.

Derived from a trained model at load time (no second copy of the weights): per binary conv
the packed signs of its effective BAM kernel and one float scale per output channel
(E(|W|) times the learned gain); each activation's BatchNorm folded into per-channel
thresholds, so sign(BN(.)) becomes a compare fused into the packing. The C driver
(kernels/bitconv.c, ``bsrn_body_run``) runs the whole body: per block and row the binary 3x3
conv, then per pixel the scale, RPReLU, skips, the BAM activation accumulation (b_scale and the
channel-mean map), the two binary 1x1 convs and the packing of the next block's input. The
float convolutions of the head and tail (head, body conv, upsampler convs) run in C too
(kernels/floatconv.c), with the same arithmetic for every pixel, so a tile's pixels equal the
whole image's bit for bit (tiled == untiled exactly); the pixel shuffle and the skips are
element-wise numpy, the bicubic image skip torch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from bsrn_cli.backends import bitpack
from bsrn_cli.backends.base import Upscaler, model_options
from bsrn_cli.errors import BsrnError
from bsrn_cli.networks.bsrn import BSRN, LB_KERNEL_SIZES
from bsrn_cli.system import cpu_cores


def to_pixels(maps: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> float32 (H*W, C) array, the layout of the packed body (a view
    when the tensor is channels_last)."""
    return maps[0].permute(1, 2, 0).reshape(-1, maps.shape[1]).contiguous().numpy()


class FloatConv:
    """A float 3x3 conv (padding 1) of the head or tail, run by the C kernel on NHWC maps."""

    def __init__(self, conv: torch.nn.Conv2d):
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1 \
                or conv.dilation != (1, 1):
            raise BsrnError("the packed backend runs float convs of 3x3, stride 1, padding 1 only")
        cout, cin = conv.weight.shape[:2]
        padded = (cout + 15) // 16 * 16  # the kernel's blocks of 16 output channels
        self.cout = cout
        self.weights = np.zeros((9, cin, padded), dtype=np.float32)
        self.weights[..., :cout] = conv.weight.detach().float().permute(2, 3, 1, 0).reshape(9, cin, cout).numpy()
        self.bias = np.zeros(padded, dtype=np.float32)
        if conv.bias is not None:
            self.bias[:cout] = conv.bias.detach().float().numpy()

    def __call__(self, maps: np.ndarray, out: np.ndarray, pool: ThreadPoolExecutor | None, threads: int) -> np.ndarray:
        """float32 (H, W, cin) -> ``out`` (H, W, cout), rows split over ``threads``."""
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


def export_body(model: BSRN, kernels: list[list[torch.Tensor]]):
    """The body as one ``_packed.Body`` (per-layer arrays stacked, layer = 3 * block + i)."""
    if tuple(LB_KERNEL_SIZES) != (3, 1, 1):
        raise BsrnError("the packed backend runs LB blocks of a 3x3 and two 1x1 binary convs")
    channels = model.config.channels
    if channels > bitpack._packed.MAX_CHANNELS:
        raise BsrnError(f"the packed backend supports up to {bitpack._packed.MAX_CHANNELS} channels")
    layers = [PackedLayer(k, block, i) for block, block_kernels in zip(model.body, kernels)
              for i, k in enumerate(block_kernels)]
    b = np.zeros((len(layers), 3), dtype=np.float32)
    for row, layer in zip(b, layers):
        row[:layer.n_terms] = layer.b[:layer.n_terms]
    stack = lambda values: np.stack(values).astype(np.float32)
    return bitpack._packed.Body(
        channels, model.config.fp_skip, layers[0].mode == "learned",
        None if layers[0].rprelu is None else tuple(stack([l.rprelu[k] for l in layers]) for k in range(3)),
        np.array([l.n_terms for l in layers], dtype=np.int32), b,
        stack([l.sign.direction for l in layers]), stack([l.sign.bound for l in layers]),
        stack([l.scale for l in layers]),
        [(l.conv.weights, l.conv.grouped, l.conv.tap_sum) for l in layers[0::3]],
        [l.conv.weights for i, l in enumerate(layers) if i % 3])


class PackedBSRN:
    """Runs a BSRN's forward pass with the body in the fused C driver.

    The body works on NHWC float32 maps flattened to (pixels, channels); head and tail run in
    torch on channels_last tensors that share memory with those maps.
    """

    def __init__(self, model: BSRN, threads: int = 1):
        if not bitpack.available():
            raise BsrnError("the packed backend is not built in this installation (pip install . builds it)")
        self.model = model.eval()
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        with torch.no_grad():
            self.kernels = model.binary_kernels()
        self.body = export_body(model, self.kernels)
        self.head = FloatConv(model.head)
        self.body_conv = FloatConv(model.body_conv) if model.body_conv is not None else None
        self.cubic_phases = _cubic_phases(model.scale)  # the bicubic image skip's offsets and weights
        self.upsampler = []  # FloatConv or a pixel-shuffle factor, in order
        for module in model.upsampler:
            if isinstance(module, torch.nn.Conv2d):
                self.upsampler.append(FloatConv(module))
            elif isinstance(module, torch.nn.PixelShuffle):
                self.upsampler.append(module.upscale_factor)
            else:
                raise BsrnError(f"the packed backend does not run a {type(module).__name__} in the upsampler")
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

    def _conv(self, conv: FloatConv, maps: np.ndarray, kind: str) -> np.ndarray:
        out = self._buffer(kind, maps.shape[:2] + (conv.cout,), np.float32)
        return conv(maps, out, self.pool, self.threads)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) float in [0, 1] -> (1, 3, h*s, w*s), the same values as the model's forward."""
        result = self.run_hwc(np.ascontiguousarray(x[0].permute(1, 2, 0).numpy()))
        return torch.from_numpy(result).permute(2, 0, 1).unsqueeze(0)

    def run_hwc(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (h, w, 3) in [0, 1] -> float32 (h*s, w*s, 3), unclamped: the model's forward in NHWC."""
        model = self.model
        height, width = pixels.shape[:2]
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        features = self._conv(self.head, pixels - np.float32(0.5), "head").reshape(height * width, -1)
        out = self._buffer("body", features.shape, np.float32)
        self.run_blocks(0, self.body.blocks, features, out, height, width)
        body = out.reshape(height, width, -1)
        if self.body_conv is not None:
            body = self._conv(self.body_conv, body, "body conv")
        maps = body + features.reshape(height, width, -1)
        for i, step in enumerate(self.upsampler):
            maps = self._conv(step, maps, f"upsampler {i}") if isinstance(step, FloatConv) \
                else pixel_shuffle(maps, step)
        skip = model.config.image_skip
        if skip == "bicubic":
            result = self._add_bicubic(pixels, maps)
        else:
            result = maps + np.float32(0.5)
            if skip != "none":  # nearest: each input pixel repeated s x s times
                upscaled = np.repeat(np.repeat(pixels, model.scale, axis=0), model.scale, axis=1)
                result = (result + upscaled) - np.float32(0.5)
        return result

    def _add_bicubic(self, pixels: np.ndarray, maps: np.ndarray) -> np.ndarray:
        """((maps + 0.5) + bicubic(pixels)) - 0.5, the model's output with its image skip, in C and in
        place (kernels/floatconv.c: the weights depend only on an output pixel's phase, never on its
        position, so a tile's pixels equal the whole image's)."""
        offsets, weights = self.cubic_phases
        result = np.ascontiguousarray(maps)
        bitpack.run_in_ranges(bitpack._packed.bicubic_add, result.shape[0], pixels, weights, offsets, result,
                              pool=self.pool, threads=self.threads)
        return result


class PackedUpscaler(Upscaler):
    """Tiled upscaling on the packed backend: the CPU only; ``threads`` 0 is one per core."""

    def __init__(self, model: BSRN, device: str = "cpu", threads: int = 0, *, overlap: int | None = None,
                 **options):
        if device != "cpu":
            raise BsrnError("the packed backend runs on the CPU only")
        super().__init__(**model_options(model, overlap), **options)
        self.network = PackedBSRN(model, threads or cpu_cores())

    def _run(self, tile: np.ndarray) -> np.ndarray:
        return self.network.run_hwc(tile)
