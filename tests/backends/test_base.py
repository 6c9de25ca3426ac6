"""The backend interface (bsrn_cli/backends/base.py): pixel conversion, tiling, out-of-memory retries."""

import numpy as np
import pytest
import torch

from bsrn_cli.backends.base import Upscaler, to_float, to_pixels
from bsrn_cli.errors import BsrnError, UsageProblem


class Nearest(Upscaler):
    """Each pixel repeated 2 x 2 times; out of memory (MemoryError) on tiles over ``limit`` a side."""

    def __init__(self, limit: int = 10**6, overlap: int = 1, **options):
        super().__init__(scale=2, overlap=overlap, channels=8, **options)
        self.limit = limit

    def _run(self, tile):
        if max(tile.shape[:2]) > self.limit:
            raise MemoryError
        return tile.repeat(2, 0).repeat(2, 1)


def _values(seed: int, peak: int) -> np.ndarray:
    """float32 (h, w, 3) with what the conversion must get right: exact halves k + 0.5 (ties to
    even), values out of [0, 1], the ends, and random values."""
    rng = np.random.default_rng(seed)
    halves = (rng.integers(0, peak, 3000) + np.float32(0.5)).astype(np.float32) / np.float32(peak)
    ties = (np.arange(peak, dtype=np.float32) + np.float32(0.5)) / np.float32(peak)
    edges = np.array([-1, -1e-8, 0, 1e-8, 0.5, 1 - 1e-7, 1, 1 + 1e-7, 2, np.inf, -np.inf], dtype=np.float32)
    noise = rng.uniform(-0.1, 1.1, 20000).astype(np.float32)
    flat = np.concatenate([halves, ties[:30000], edges, noise])
    flat = np.concatenate([flat, np.zeros(-len(flat) % 3, np.float32)])
    return flat.reshape(1, -1, 3)


@pytest.mark.parametrize("dtype,peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_pixel_conversion_is_bit_identical_to_torch(dtype, peak):
    """to_pixels equals the torch expression the backends used before (clamp, mul, round in
    float32, round half to even), and to_float equals torch's float division."""
    values = _values(peak, peak)
    expected = torch.from_numpy(values).clamp(0, 1).mul(peak).round().to(torch.int32).numpy().astype(dtype)
    got = to_pixels(values, dtype)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    finite = values[np.isfinite(values)]
    assert (finite * peak % 1 == 0.5).sum() > 1000  # the ties are there, and rounded to even below
    assert to_pixels(np.array([[[0.5 / peak, 1.5 / peak, 2.5 / peak]]], np.float32), dtype).tolist() == [[[0, 2, 2]]]
    pixels = np.random.default_rng(1).integers(0, peak + 1, (50, 40, 3)).astype(dtype)
    pixels[0, :3] = [[0, 0, 0], [peak, peak, peak], [1, peak - 1, peak // 2]]
    expected = torch.from_numpy(pixels.astype(np.int32)).float().div_(peak).numpy()
    np.testing.assert_array_equal(to_float(pixels), expected)


def test_tiles_cover_the_image_and_report_progress():
    image = np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8)
    progress, per_call = [], []
    upscaler = Nearest(tile=8, on_tile=lambda done, total: progress.append((done, total)))
    np.testing.assert_array_equal(upscaler.upscale(image), image.repeat(2, 0).repeat(2, 1))
    assert progress == [(done, 15) for done in range(1, 16)]  # 3 rows x 5 columns of tiles
    upscaler.upscale(image, on_tile=lambda done, total: per_call.append(done))
    assert per_call == list(range(1, 16)) and len(progress) == 15  # the per-call callback replaces the default


def test_out_of_memory_retries_and_later_images_keep_the_smaller_tile():
    image = np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    retries = []
    upscaler = Nearest(limit=40, tile=64, on_retry=retries.append)
    np.testing.assert_array_equal(upscaler.upscale(image), image.repeat(2, 0).repeat(2, 1))
    assert retries == ["out of memory with tiles of 60 pixels; retrying with 30"] and upscaler.tile == 30
    upscaler.upscale(image[:50])
    assert upscaler.tile == 30 and len(retries) == 1


def test_giving_up_is_one_error_naming_the_input():
    with pytest.raises(BsrnError) as caught:
        Nearest(limit=0, tile=0).upscale(np.zeros((40, 30, 3), np.uint8), name="shots/a.png")
    assert str(caught.value) == ("shots/a.png: out of memory even with tiles of 20 pixels; "
                                 "lower --max-memory or free memory")
    assert isinstance(caught.value.__cause__, MemoryError)


def test_other_errors_are_not_retried():
    class Broken(Nearest):
        def _run(self, tile):
            raise RuntimeError("a bug")

    retries = []
    with pytest.raises(RuntimeError, match="a bug"):
        Broken(tile=0, on_retry=retries.append).upscale(np.zeros((40, 40, 3), np.uint8))
    assert retries == []


def test_bad_options_and_pixels_are_refused():
    with pytest.raises(UsageProblem, match="--tile"):
        Nearest(tile=-1)
    with pytest.raises(UsageProblem, match="--tile-overlap"):
        Nearest(overlap=-1)
    with pytest.raises(BsrnError, match="8- or 16-bit"):
        Nearest().upscale(np.zeros((4, 4, 3), np.float32))
