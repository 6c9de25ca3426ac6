"""The packed backend reproduces the PyTorch float backend on the same weights."""

import numpy as np
import pytest
import torch

from bsrn_cli.backends import bitpack, make_upscaler
from bsrn_cli.backends.packed_backend import PackedBSRN, PackedUpscaler
from bsrn_cli.backends.torch_backend import TorchUpscaler
from bsrn_cli.errors import BsrnError
from bsrn_cli.evaluation import load_pairs
from bsrn_cli.metrics import psnr_y
from bsrn_cli.pretrained.loader import load_model
from bsrn_cli.pretrained.registry import default_model_name
from tests.conftest import tiny_model

pytestmark = pytest.mark.skipif(not bitpack.available(), reason="packed kernels not built")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_weights_packed_vs_torch_at_least_50_db_on_every_set5_image(set5, scale):
    model, _, _ = load_model(default_model_name(scale))
    reference, packed = TorchUpscaler(model), PackedUpscaler(model, threads=2)
    for pair in load_pairs(set5, scale):
        a, b = reference.upscale(pair.lr), packed.upscale(pair.lr)
        assert a.shape == b.shape == (pair.lr.shape[0] * scale, pair.lr.shape[1] * scale, 3)
        assert psnr_y(a, b) >= 50, pair.name


@pytest.mark.parametrize("preset", ["paper", "fast"])
@pytest.mark.parametrize("activation_accumulation", ["learned", "ones", "none"])
def test_every_configuration_matches_in_float(preset, activation_accumulation):
    model = tiny_model(3, preset, rprelu=preset == "fast", activation_accumulation=activation_accumulation)
    x = torch.rand(1, 3, 13, 7)
    with torch.no_grad():
        expected = model(x)
    got = PackedBSRN(model)(x)
    assert torch.allclose(got, expected, atol=1e-4)


def test_negative_and_zero_bn_gains_fold_correctly():
    model = tiny_model(2, "paper")
    with torch.no_grad():
        for block in model.body:
            for acc in block.act_acc:
                acc.norm.weight[0] = -abs(acc.norm.weight[0]) - 0.5
                acc.norm.weight[1] = 0.0
                acc.norm.bias[1] = -0.3
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(PackedBSRN(model)(x), expected, atol=1e-4)


@pytest.mark.parametrize("channels", [8, 48])
def test_negative_and_zero_bn_gains_in_the_shipped_configuration(dispatch_path, channels):
    """The shipped configuration ("fast") with one negative and one zero BN gain in a single layer:
    the avx512 pass's instance for the shipped configuration assumes every direction +1 and must
    not be taken here (48 channels: that pass; 8: the 8-float pass)."""
    model = _model("fast", channels)
    with torch.no_grad():
        acc = model.body[1].act_acc[2]
        acc.norm.weight[3] = -abs(acc.norm.weight[3]) - 0.5
        acc.norm.weight[5] = 0.0
        acc.norm.bias[5] = -0.3
    x = torch.rand(1, 3, 9, 21, generator=torch.Generator().manual_seed(channels))
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(PackedBSRN(model, threads=2)(x), expected, atol=1e-4)


def test_auto_backend_is_packed_on_cpu_and_packed_refuses_cuda():
    model = tiny_model(2)
    assert isinstance(make_upscaler(model, "auto", "cpu"), PackedUpscaler)
    assert isinstance(make_upscaler(model, "torch", "cpu"), TorchUpscaler)
    if not torch.cuda.is_available():
        with pytest.raises(BsrnError):
            make_upscaler(model, "packed", "cuda")


def _noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [8, 48])
def test_packed_tiling_equals_untiled_exactly(dispatch_path, scale, channels):
    """Every pixel of every tile is computed with the same arithmetic as in the whole image
    (binary body, C float convs, phase-based bicubic skip): 0 difference, not 1 grey level."""
    model = tiny_model(scale, channels=channels, seed=scale)
    image = _noise(45, 61, seed=scale)
    whole = PackedUpscaler(model, tile=0).upscale(image)
    for tile, threads in ((16, 1), (12, 2), (23, 3)):
        assert np.array_equal(PackedUpscaler(model, tile=tile, threads=threads).upscale(image), whole), (tile, threads)


def test_packed_tiling_equals_untiled_exactly_with_the_shipped_x4():
    model, _, _ = load_model(default_model_name(4))
    image = _noise(100, 90, seed=3)
    assert np.array_equal(PackedUpscaler(model, tile=48, threads=2).upscale(image),
                          PackedUpscaler(model, tile=0, threads=2).upscale(image))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_an_overlap_one_pixel_short_is_caught(scale):
    """The default overlap is the receptive radius, and it is not larger than needed: one pixel
    less changes pixels along the tile seams."""
    model = tiny_model(scale, channels=48, seed=scale)
    image = _noise(45, 61, seed=scale)
    radius = model.receptive_radius()
    assert PackedUpscaler(model, tile=16).overlap == radius
    whole = PackedUpscaler(model, tile=0).upscale(image)
    short = PackedUpscaler(model, tile=16, overlap=radius - 1).upscale(image)
    assert (short != whole).any(axis=2).sum() >= 20


# 8, 16 and 48 channels: the unrolled AVX2 pass (the shipped configuration fixed at compile time for
# "fast", read at run time for "paper"; 48 is the shipped width); 13: the generic AVX2 pass with
# scalar tail channels; 70: two words per pixel (POPCNT kernels under the AVX2 path).
def _model(preset: str, channels: int):
    """tiny_model with another channel count (same non-trivial random weights and BN statistics)."""
    return tiny_model(2, preset, channels=channels, seed=channels)


@pytest.mark.parametrize("channels", [8, 13, 16, 48, 70])
@pytest.mark.parametrize("preset", ["fast", "paper"])
@pytest.mark.parametrize("threads", [1, 3])
def test_fused_body_matches_torch_on_every_path(dispatch_path, channels, preset, threads):
    model = _model(preset, channels)
    x = torch.rand(1, 3, 11, 6, generator=torch.Generator().manual_seed(channels))
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(PackedBSRN(model, threads=threads)(x), expected, atol=1e-4)


@pytest.mark.parametrize("height,width", [(1, 1), (1, 9), (9, 1), (2, 3), (7, 5)])
def test_fused_body_on_thin_maps(dispatch_path, height, width):
    model = tiny_model(2, "fast")
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height * 10 + width))
    with torch.no_grad():
        expected = model(x)
    for threads in (1, 2):
        assert torch.allclose(PackedBSRN(model, threads=threads)(x), expected, atol=1e-4)


def test_one_block_equals_the_torch_block():
    from bsrn_cli.backends.packed_backend import to_pixels
    model = tiny_model(2, "fast")
    features = torch.rand(1, 8, 10, 7, generator=torch.Generator().manual_seed(3)) - 0.5
    packed = PackedBSRN(model, threads=2)
    with torch.no_grad():
        kernels = model.binary_kernels()
        for index, block in enumerate(model.body):
            expected = block(features, kernels[index])
            got = packed.block(index, to_pixels(features), 10, 7)
            assert np.allclose(got.reshape(10, 7, 8), expected[0].permute(1, 2, 0).numpy(), atol=1e-5)


@pytest.mark.parametrize("channels", [16, 24, 48, 64])
def test_avx512_and_avx2_paths_give_the_same_image_bit_for_bit(channels):
    """The avx512 fused pass (16 floats per register, 8 output channels per popcount register,
    chunks of 16 pixels) and float convs (12 pixels per pass) do the AVX2 path's arithmetic in
    the same order: the same image bit for bit, on a map with several chunks per row (24: the
    avx512 path's 8-float pass), and the torch network's within float rounding."""
    from bsrn_cli import _packed
    from tests.backends.conftest import force_path

    before = _packed.path()
    model = _model("fast", channels)
    x = torch.rand(1, 3, 13, 37, generator=torch.Generator().manual_seed(channels))
    try:
        got = {}
        for path in ("avx2", "avx512"):
            force_path(path)
            got[path] = PackedBSRN(model, threads=2)(x)
    finally:
        _packed.set_path(before)
    assert torch.equal(got["avx2"], got["avx512"])
    with torch.no_grad():
        assert torch.allclose(got["avx512"], model(x), atol=1e-4)
