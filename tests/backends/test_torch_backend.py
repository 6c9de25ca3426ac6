import numpy as np
import pytest

from bsrn_cli.backends.torch_backend import TorchUpscaler
from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained.loader import load_model
from bsrn_cli.pretrained.registry import default_model_name
from tests.conftest import tiny_model


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.float64)
    smooth = np.kron(base, np.ones((4, 4, 1)))[:h, :w]
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


def _assert_within_the_torch_bound(whole, tiled):
    """The documented bound of the torch backend (docs/usage.md, "Tiling"): PyTorch's float
    convolutions may round differently for another tile shape, so a pixel may differ by one grey
    level, on at most 1 in 2000 pixel values."""
    difference = np.abs(whole.astype(int) - tiled.astype(int))
    assert difference.max() <= 1 and (difference > 0).sum() <= difference.size / 2000, \
        (difference.max(), (difference > 0).sum())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_equals_untiled_with_default_overlap_tiny_model(scale):
    model = tiny_model(scale, channels=48, seed=scale)
    image = _image(45, 61)
    whole = TorchUpscaler(model, tile=0).upscale(image)
    tiled = TorchUpscaler(model, tile=16).upscale(image)
    assert whole.shape == tiled.shape == (45 * scale, 61 * scale, 3)
    _assert_within_the_torch_bound(whole, tiled)
    short = TorchUpscaler(model, tile=16, overlap=model.receptive_radius() - 1).upscale(image)
    assert np.abs(whole.astype(int) - short.astype(int)).max() >= 2  # one pixel short: outside the bound


def test_tiled_equals_untiled_shipped_x4_on_image_larger_than_a_tile():
    model, _, _ = load_model(default_model_name(4))
    image = _image(100, 90, seed=3)
    whole = TorchUpscaler(model, tile=0).upscale(image)
    tiled = TorchUpscaler(model, tile=48).upscale(image)
    assert tiled.shape == (400, 360, 3)
    _assert_within_the_torch_bound(whole, tiled)


def test_too_small_overlap_shows_seams():
    model = tiny_model(2)
    image = _image(40, 40)
    whole = TorchUpscaler(model, tile=0).upscale(image)
    tiled = TorchUpscaler(model, tile=10, overlap=0).upscale(image)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() > 1


def test_negative_tile_is_rejected():
    with pytest.raises(BsrnError):
        TorchUpscaler(tiny_model(2), tile=-1)
