import numpy as np
import pytest

from bsrn_cli.backends.torch_backend import TorchUpscaler
from bsrn_cli.errors import BsrnError
from bsrn_cli.models.loader import load_model
from bsrn_cli.models.registry import default_model_name
from tests.conftest import tiny_model


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.float64)
    smooth = np.kron(base, np.ones((4, 4, 1)))[:h, :w]
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("scale", [2, 3])
def test_tiled_equals_untiled_with_default_overlap_tiny_model(scale):
    model = tiny_model(scale)
    image = _image(45, 61)
    whole = TorchUpscaler(model, tile=0).upscale(image)
    tiled = TorchUpscaler(model, tile=16).upscale(image)
    assert whole.shape == tiled.shape == (45 * scale, 61 * scale, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_tiled_equals_untiled_shipped_x4_on_image_larger_than_a_tile():
    model, _, _ = load_model(default_model_name(4))
    image = _image(100, 90, seed=3)
    whole = TorchUpscaler(model, tile=0).upscale(image)
    tiled = TorchUpscaler(model, tile=48).upscale(image)
    assert tiled.shape == (400, 360, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_too_small_overlap_shows_seams():
    model = tiny_model(2)
    image = _image(40, 40)
    whole = TorchUpscaler(model, tile=0).upscale(image)
    tiled = TorchUpscaler(model, tile=10, overlap=0).upscale(image)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() > 1


def test_negative_tile_is_rejected():
    with pytest.raises(BsrnError):
        TorchUpscaler(tiny_model(2), tile=-1)
