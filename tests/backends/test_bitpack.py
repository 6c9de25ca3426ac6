"""The packed kernels equal a float convolution on ±1 data exactly, on every dispatch path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bsrn_cli.backends import bitpack

pytestmark = pytest.mark.skipif(not bitpack.available(), reason="packed kernels not built")


def _reference(act: np.ndarray, kernel: torch.Tensor) -> np.ndarray:
    x = torch.from_numpy(act).permute(2, 0, 1)[None].double()
    k = kernel.double()
    return F.conv2d(x, k, padding=k.shape[-1] // 2)[0].permute(1, 2, 0).round().int().numpy()


def _random_pm1(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9), cin=st.integers(1, 150), cout=st.integers(1, 13),
       kernel_size=st.sampled_from([1, 3]), seed=st.integers(0, 2**31 - 1))
def test_binary_conv_equals_float_conv_on_pm1(height, width, cin, cout, kernel_size, seed):
    from bsrn_cli import _packed
    rng = np.random.default_rng(seed)
    act = _random_pm1(rng, (height, width, cin))
    kernel = torch.from_numpy(_random_pm1(rng, (cout, cin, kernel_size, kernel_size)))
    expected = _reference(act, kernel)
    conv = bitpack.BinaryConv(kernel)
    for path in ("portable", "popcnt", "avx2"):
        _packed.set_path(path)
        assert np.array_equal(conv(bitpack.pack_hwc(act)), expected), path
    _packed.set_path("avx2")


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
