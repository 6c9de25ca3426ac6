"""The packed kernels equal a float convolution on ±1 data exactly, on every dispatch path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bsrn_cli.backends import bitpack
from tests.backends.conftest import KERNEL_PATHS, force_path

pytestmark = pytest.mark.skipif(not bitpack.available(), reason="packed kernels not built")


def _reference(act: np.ndarray, kernel: torch.Tensor) -> np.ndarray:
    x = torch.from_numpy(act).permute(2, 0, 1)[None].double()
    k = kernel.double()
    return F.conv2d(x, k, padding=k.shape[-1] // 2)[0].permute(1, 2, 0).round().int().numpy()


def _random_pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("path", KERNEL_PATHS)
@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9), cin=st.integers(1, 150), cout=st.integers(1, 13),
       kernel_size=st.sampled_from([1, 3]), seed=st.integers(0, 2**31 - 1))
def test_binary_conv_equals_float_conv_on_pm1(path, height, width, cin, cout, kernel_size, seed):
    from bsrn_cli import _packed
    before = _packed.path()
    force_path(path)
    try:
        rng = np.random.default_rng(seed)
        act = _random_pm1(rng, (height, width, cin))
        kernel = torch.from_numpy(_random_pm1(rng, (cout, cin, kernel_size, kernel_size)))
        assert np.array_equal(bitpack.BinaryConv(kernel)(bitpack.pack_hwc(act)), _reference(act, kernel))
    finally:
        _packed.set_path(before)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_binary_conv_exact_at_the_shipped_width(dispatch_path, kernel_size):
    """48 channels in and out (the shipped models' width; 7 words for the nine 3x3 taps), on a map
    with borders on every side and interior pixels."""
    rng = np.random.default_rng(48 + kernel_size)
    act = _random_pm1(rng, (9, 13, 48))
    kernel = torch.from_numpy(_random_pm1(rng, (48, 48, kernel_size, kernel_size)))
    assert np.array_equal(bitpack.BinaryConv(kernel)(bitpack.pack_hwc(act)), _reference(act, kernel))


def test_a_path_this_cpu_lacks_is_refused_not_replaced():
    """With the paths capped (BSRN_KERNEL_PATH, as on a CPU without AVX2), forcing avx2 raises
    instead of running another path, and the default is the best path left."""
    import subprocess
    import sys
    code = ("from bsrn_cli import _packed as p\n"
            "print(p.available_paths(), p.path())\n"
            "try:\n    p.set_path('avx2')\nexcept ValueError as e:\n    print('refused:', e)\n"
            "print(p.path())\n")
    env = {**__import__("os").environ, "BSRN_KERNEL_PATH": "popcnt"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.splitlines() == ["['portable', 'popcnt'] popcnt",
                                "refused: kernel path 'avx2' is not available on this CPU; available: portable, popcnt",
                                "popcnt"]


def test_threads_split_rows_without_changing_the_result(dispatch_path):
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(1)
    act = _random_pm1(rng, (37, 11, 48))
    kernel = torch.from_numpy(_random_pm1(rng, (48, 48, 3, 3)))
    conv = bitpack.BinaryConv(kernel)
    with ThreadPoolExecutor(3) as pool:
        assert np.array_equal(conv(bitpack.pack_hwc(act), pool, threads=3), _reference(act, kernel))


def test_zero_packs_as_plus_one():
    packed = bitpack.pack_hwc(np.array([[[0.0, -0.0, -1e-30, 2.0]]], dtype=np.float32))
    assert packed[0, 0, 0] == 0b0100


@pytest.mark.parametrize("cin,cout", [(3, 8), (3, 48), (8, 12), (13, 27), (48, 48), (48, 3), (70, 17)])
def test_float_conv_matches_torch_and_a_crop_gives_identical_pixels(dispatch_path, cin, cout):
    """The C float 3x3 conv of the head and tail: equal to torch's within float rounding, and
    bit-identical on the interior of any crop (the arithmetic never depends on the position)."""
    from bsrn_cli.backends.packed_backend import FloatConv
    from bsrn_cli.backends.packed_export import FloatConvWeights

    torch.manual_seed(cin * 100 + cout)
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
    maps = torch.randn(1, cin, 11, 14)
    with torch.no_grad():
        expected = conv(maps)[0].permute(1, 2, 0).numpy()
    layer = FloatConv(FloatConvWeights(conv.weight.detach().numpy(), conv.bias.detach().numpy()))
    hwc = np.ascontiguousarray(maps[0].permute(1, 2, 0).numpy())
    whole = layer(hwc, np.empty((11, 14, cout), np.float32), None, 1)
    assert np.allclose(whole, expected, atol=1e-5)
    for y0, y1, x0, x1 in ((0, 5, 0, 7), (2, 11, 3, 14), (1, 9, 1, 12), (4, 7, 5, 11)):
        crop = np.ascontiguousarray(hwc[y0:y1, x0:x1])
        got = layer(crop, np.empty((y1 - y0, x1 - x0, cout), np.float32), None, 1)
        inner = (slice(1 if y0 else 0, -1 if y1 < 11 else None), slice(1 if x0 else 0, -1 if x1 < 14 else None))
        assert np.array_equal(got[inner], whole[y0:y1, x0:x1][inner]), (y0, y1, x0, x1)


@pytest.mark.parametrize("cin,cout", [(3, 48), (13, 27), (48, 48)])
def test_float_conv_avx512_equals_avx2_bit_for_bit(cin, cout):
    """The avx512 float conv (16 channels per register, 12 pixels per pass) does each output
    channel's multiply-adds in the AVX2 tiles' order: identical maps, on rows of several passes."""
    from bsrn_cli import _packed
    from bsrn_cli.backends.packed_backend import FloatConv
    from bsrn_cli.backends.packed_export import FloatConvWeights

    rng = np.random.default_rng(cin * 100 + cout)
    layer = FloatConv(FloatConvWeights(rng.standard_normal((cout, cin, 3, 3), dtype=np.float32),
                                       rng.standard_normal(cout, dtype=np.float32)))
    hwc = rng.standard_normal((7, 29, cin), dtype=np.float32)
    before = _packed.path()
    try:
        got = {}
        for path in ("avx2", "avx512"):
            force_path(path)
            got[path] = layer(hwc, np.empty((7, 29, cout), np.float32), None, 1)
    finally:
        _packed.set_path(before)
    assert np.array_equal(got["avx2"], got["avx512"])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_skip_matches_torch_and_a_crop_gives_identical_pixels(scale):
    """The C bicubic image skip, added in place: out = ((out + 0.5) + bicubic(lr)) - 0.5, equal to
    torch's bicubic within float rounding and bit-identical on the interior of a crop."""
    from bsrn_cli import _packed
    from bsrn_cli.backends.packed_backend import _cubic_phases
    s = scale
    image = torch.rand(1, 3, 9, 13, generator=torch.Generator().manual_seed(scale))
    expected = F.interpolate(image, scale_factor=scale, mode="bicubic", align_corners=False)[0].permute(1, 2, 0)
    hwc = np.ascontiguousarray(image[0].permute(1, 2, 0).numpy())
    upsampled = np.random.default_rng(scale).random((9 * s, 13 * s, 3), dtype=np.float32)
    offsets, weights = _cubic_phases(scale)
    whole = upsampled.copy()
    _packed.bicubic_add(hwc, weights, offsets, whole, 0, 9 * s)
    assert np.allclose(whole, (upsampled + 0.5) + expected.numpy() - 0.5, atol=3e-6)
    crop = np.ascontiguousarray(upsampled[2 * s:8 * s, 3 * s:12 * s])
    _packed.bicubic_add(np.ascontiguousarray(hwc[2:8, 3:12]), weights, offsets, crop, 0, 6 * s)
    assert np.array_equal(crop[2 * s:4 * s, 2 * s:7 * s], whole[4 * s:6 * s, 5 * s:10 * s])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_skip_with_the_pixel_shuffle_folded_in_equals_shuffle_then_skip(scale):
    """The tail's last pixel shuffle read straight from the upsampler's output by the bicubic
    skip kernel: the same values as the shuffle followed by the skip, also over split row ranges."""
    from bsrn_cli import _packed
    from bsrn_cli.backends.packed_backend import _cubic_phases, pixel_shuffle

    rng = np.random.default_rng(scale)
    lr = rng.random((5, 7, 3), dtype=np.float32)
    maps = rng.standard_normal((5, 7, 3 * scale * scale), dtype=np.float32)
    offsets, weights = _cubic_phases(scale)
    expected = np.ascontiguousarray(pixel_shuffle(maps, scale))
    _packed.bicubic_add(lr, weights, offsets, expected, 0, 5 * scale)
    got = np.full_like(expected, np.nan)
    _packed.bicubic_shuffle_add(lr, weights, offsets, maps, got, 0, 3)
    _packed.bicubic_shuffle_add(lr, weights, offsets, maps, got, 3, 5 * scale)
    assert np.array_equal(got, expected)


def _bicubic_in_the_kernels_order(lr: np.ndarray, before: np.ndarray, scale: int) -> np.ndarray:
    """((before + 0.5) + bicubic(lr)) - 0.5 one float32 operation at a time, in the order every
    path uses: per output phase the column of four source rows ((w0 r0 + w1 r1) + w2 r2) + w3 r3
    (edges repeated), then the row of four of those columns the same way."""
    from bsrn_cli.backends.packed_backend import _cubic_phases

    offsets, weights = _cubic_phases(scale)
    h, w, _ = lr.shape
    rows = np.stack([np.clip(np.arange(h * scale) // scale + offsets[np.arange(h * scale) % scale] + b, 0, h - 1)
                     for b in range(4)])
    cols = np.stack([np.clip(np.arange(w * scale) // scale + offsets[np.arange(w * scale) % scale] + b, 0, w - 1)
                     for b in range(4)])
    wy = weights[np.arange(h * scale) % scale][:, :, None, None]  # (H s, 4, 1, 1)
    wx = weights[np.arange(w * scale) % scale][:, :, None]  # (W s, 4, 1)
    column = ((wy[:, 0] * lr[rows[0]] + wy[:, 1] * lr[rows[1]]) + wy[:, 2] * lr[rows[2]]) + wy[:, 3] * lr[rows[3]]
    value = ((wx[:, 0] * column[:, cols[0]] + wx[:, 1] * column[:, cols[1]]) + wx[:, 2] * column[:, cols[2]]) \
        + wx[:, 3] * column[:, cols[3]]
    return ((before + np.float32(0.5)) + value) - np.float32(0.5)


@settings(max_examples=30, deadline=None)
@given(scale=st.integers(2, 4), channels=st.integers(1, 5), height=st.integers(1, 7), width=st.integers(1, 45),
       seed=st.integers(0, 2**31 - 1))
def test_bicubic_skip_is_exact_on_every_path(scale, channels, height, width, seed):
    """The vectorised bicubic skip (column sums, then per phase the row sums over the columns whose
    sources lie inside the image, the edge columns one by one) does each output's float operations
    in one order on every path: equal bit for bit to the same operations in numpy, with and
    without the pixel shuffle folded in, over split row ranges, at widths from 1 (every column an
    edge) to more than a 16-float register of interior."""
    from bsrn_cli import _packed
    from bsrn_cli.backends.packed_backend import _cubic_phases, pixel_shuffle

    rng = np.random.default_rng(seed)
    lr = rng.random((height, width, channels), dtype=np.float32)
    maps = rng.standard_normal((height, width, channels * scale * scale), dtype=np.float32)
    offsets, weights = _cubic_phases(scale)
    expected = _bicubic_in_the_kernels_order(lr, pixel_shuffle(maps, scale), scale)
    split = int(rng.integers(0, height * scale + 1))
    before = _packed.path()
    try:
        for path in _packed.available_paths():
            _packed.set_path(path)
            added = np.array(pixel_shuffle(maps, scale), order="C")  # a copy: maps stays as it is
            _packed.bicubic_add(lr, weights, offsets, added, 0, split)
            _packed.bicubic_add(lr, weights, offsets, added, split, height * scale)
            folded = np.full_like(added, np.nan)
            _packed.bicubic_shuffle_add(lr, weights, offsets, maps, folded, 0, split)
            _packed.bicubic_shuffle_add(lr, weights, offsets, maps, folded, split, height * scale)
            assert np.array_equal(added, expected), path
            assert np.array_equal(folded, expected), path
    finally:
        _packed.set_path(before)


def _mean_in_the_kernels_order(row: np.ndarray) -> np.float32:
    """The channel mean in the order every path's fused pass uses (mean_floats in bitconv.c), one
    float32 operation at a time: 16 partial sums over the 16-channel chunks, folded to 8 (l + l + 8),
    a last 8-channel chunk added, ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)), the rest one by
    one, divided by the count."""
    f = np.float32
    n, c = len(row), 0
    part = [f(0)] * 8
    if n >= 16:
        wide = [row[l] for l in range(16)]
        for c in range(16, n // 16 * 16, 16):
            wide = [f(wide[l] + row[c + l]) for l in range(16)]
        c = n // 16 * 16
        part = [f(wide[l] + wide[l + 8]) for l in range(8)]
        if c + 8 <= n:
            part = [f(part[l] + row[c + l]) for l in range(8)]
            c += 8
    elif n >= 8:
        part, c = [row[l] for l in range(8)], 8
    total = f(f(f(part[0] + part[4]) + f(part[2] + part[6])) + f(f(part[1] + part[5]) + f(part[3] + part[7])))
    for k in range(c, n):
        total = f(total + row[k])
    return f(total / f(n))


@pytest.mark.parametrize("channels", [5, 8, 13, 16, 24, 40, 48, 64, 70])
def test_channel_means_in_one_order_on_every_path(dispatch_path, channels):
    """The BAM channel means decide sign bits, so every path must sum the channels in one order
    (the vector passes' registers as mean_floats does): bit for bit the same as the reference."""
    rng = np.random.default_rng(channels)
    x = (rng.standard_normal((64, channels)) * 10.0 ** rng.integers(-3, 4, (64, channels))).astype(np.float32)
    expected = np.array([_mean_in_the_kernels_order(row) for row in x], dtype=np.float32)
    assert np.array_equal(bitpack._packed.channel_means(x), expected)


def test_float_conv_with_the_residual_added_equals_conv_then_numpy_add(dispatch_path):
    """float_conv3x3_add (the body conv with the long skip added row by row in its threads) gives
    the conv's output plus the residual exactly as numpy adds them, for any row split."""
    rng = np.random.default_rng(5)
    h, w, cin, cout = 7, 11, 24, 20
    maps = rng.standard_normal((h, w, cin), dtype=np.float32)
    weights = np.zeros((9, cin, 32), dtype=np.float32)
    weights[..., :cout] = rng.standard_normal((9, cin, cout), dtype=np.float32)
    bias = rng.standard_normal(32, dtype=np.float32)
    residual = rng.standard_normal((h, w, cout), dtype=np.float32)
    conv = np.empty((h, w, cout), dtype=np.float32)
    bitpack._packed.float_conv3x3(maps, weights, bias, conv, 0, h)
    got = np.full((h, w, cout), np.nan, dtype=np.float32)
    for begin, end in [(0, 3), (3, 4), (4, 7)]:
        bitpack._packed.float_conv3x3_add(maps, weights, bias, residual, got, begin, end)
    assert np.array_equal(got, conv + residual)
