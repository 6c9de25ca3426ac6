import numpy as np
import pytest
import torch

from bsrn_cli.backends.torch_backend import TorchUpscaler
from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained.loader import load_model
from bsrn_cli.pretrained.registry import default_model_name
from tests.conftest import tiny_model
from tests.media import bicubic_model


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


ALLOCATION_FAILED = ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123456789 bytes. "
                     "Error code 12 (Cannot allocate memory)")


class _CpuAllocationFails(TorchUpscaler):
    """Fails as torch's CPU allocator does on tiles (with their overlap) over ``limit`` pixels a side."""

    def __init__(self, model, limit: int, **options):
        super().__init__(model, **options)
        self.limit, self.sides = limit, []

    def _run(self, tile):
        self.sides.append(max(tile.shape[:2]))
        if self.sides[-1] > self.limit:
            raise RuntimeError(ALLOCATION_FAILED)
        return super()._run(tile)


def test_a_failed_cpu_allocation_halves_the_tile_and_the_pixels_stay_the_same():
    model = bicubic_model(2)  # exactly bicubic: tiled == untiled on the torch backend too
    overlap = model.receptive_radius()
    image = _image(60, 50)
    retries = []
    upscaler = _CpuAllocationFails(model, limit=30 + 2 * overlap, tile=0, on_retry=retries.append)
    out = upscaler.upscale(image)
    assert retries == ["out of memory with tiles of 60 pixels; retrying with 30"] and upscaler.tile == 30
    assert upscaler.sides[0] == 60 and max(upscaler.sides[1:]) <= 30 + 2 * overlap
    np.testing.assert_array_equal(out, TorchUpscaler(model, tile=0).upscale(image))


def test_an_allocation_that_always_fails_is_one_error_naming_the_input():
    upscaler = _CpuAllocationFails(bicubic_model(2), limit=0, tile=0)
    with pytest.raises(BsrnError) as caught:
        upscaler.upscale(_image(32, 24), name="in/a.png")
    assert str(caught.value) == ("in/a.png: out of memory even with tiles of 16 pixels; "
                                 "lower --max-memory or free memory")


def test_what_counts_as_out_of_memory_on_the_torch_backend():
    upscaler = TorchUpscaler(tiny_model(2))
    assert upscaler.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert upscaler.is_out_of_memory(RuntimeError(ALLOCATION_FAILED))
    assert upscaler.is_out_of_memory(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8"))
    assert upscaler.is_out_of_memory(MemoryError())
    assert not upscaler.is_out_of_memory(RuntimeError("Given groups=1, weight of size [8, 3, 3, 3], expected input"))
