"""--max-memory: the tile-size choice, and the retry with smaller tiles on out-of-memory."""

import numpy as np
import pytest

from bsrn_cli.backends.base import Upscaler
from bsrn_cli.backends.memory import choose_tile, parse_size, tile_bytes
from bsrn_cli.errors import BsrnError

GIB = 2**30


def test_sizes_parse():
    assert parse_size("2G") == 2 * GIB
    assert parse_size("512M") == 512 * 2**20
    assert parse_size("1.5g") == int(1.5 * GIB)
    assert parse_size("3000") == 3000
    assert parse_size("2GB") == 2 * GIB
    for bad in ("", "-1G", "lots", "0"):
        with pytest.raises(BsrnError, match="--max-memory"):
            parse_size(bad)


@pytest.mark.parametrize("budget", ["256M", "1G", "2G", "8G"])
@pytest.mark.parametrize("asked", [0, 256, 4096])
def test_an_8000_pixel_square_stays_under_the_budget(budget, asked):
    channels, scale, overlap = 48, 4, 43  # the shipped models
    limit = parse_size(budget)
    tile = choose_tile(channels, scale, 8000, 8000, limit, asked, overlap)
    assert 0 < tile <= (asked or 8000)
    assert tile_bytes(channels, scale, 8000, 8000, tile, overlap) <= limit
    if tile < (asked or 8000):  # the largest that fits: one pixel more does not
        assert tile_bytes(channels, scale, 8000, 8000, tile + 1, overlap) > limit


def test_small_images_run_whole_and_tiny_budgets_are_refused():
    assert choose_tile(48, 4, 100, 80, 2 * GIB, 0, 43) == 0
    assert choose_tile(48, 4, 100, 80, 2 * GIB, 256, 43) == 256
    with pytest.raises(BsrnError, match="too small"):
        choose_tile(48, 4, 8000, 8000, 2**20, 0, 43)


class ScarceMemory(Upscaler):
    """Nearest-neighbour 'network' that runs out of memory on tiles over ``limit`` pixels a side."""

    def __init__(self, limit: int, tile: int, **options):
        super().__init__(scale=2, overlap=2, channels=8, tile=tile, **options)
        self.limit, self.sides = limit, []

    def _run(self, tile):
        self.sides.append(max(tile.shape[:2]))
        if max(tile.shape[:2]) > self.limit:
            raise MemoryError
        return tile.repeat(2, 0).repeat(2, 1)


def test_out_of_memory_halves_the_tile_until_it_fits():
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    retries = []
    upscaler = ScarceMemory(limit=30, tile=0, on_retry=retries.append)
    out = upscaler.upscale(image)
    np.testing.assert_array_equal(out, image.repeat(2, 0).repeat(2, 1))
    assert upscaler.tile == 22  # 90 -> 45 -> 22: 22 + 2 * 2 overlap fits in 30
    assert len(retries) == 2 and "retrying with 45" in retries[0]


def test_out_of_memory_at_the_smallest_tile_is_one_error():
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(BsrnError, match="out of memory even with tiles of"):
        ScarceMemory(limit=5, tile=32).upscale(image)


def test_sixteen_bit_pixels_go_through_in_float():
    image = np.random.default_rng(1).integers(0, 65536, (20, 20, 3), dtype=np.uint16)
    out = ScarceMemory(limit=100, tile=8).upscale(image)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, image.repeat(2, 0).repeat(2, 1))


def test_each_image_gets_the_largest_tile_the_budget_allows():
    """With max_memory the tile is chosen per image by choose_tile, up to the one asked for."""
    budget = tile_bytes(8, 2, 100, 100, 40, 2)
    upscaler = ScarceMemory(limit=1000, tile=64, max_memory=budget)
    upscaler.upscale(np.zeros((100, 100, 3), np.uint8))
    assert upscaler.tile == choose_tile(8, 2, 100, 100, budget, 64, 2) == 40
    upscaler.upscale(np.zeros((30, 30, 3), np.uint8))  # fits whole: the tile asked for
    assert upscaler.tile == 64
    with pytest.raises(BsrnError, match="--max-memory .* is too small"):
        ScarceMemory(limit=1000, tile=64, max_memory=1000).upscale(np.zeros((100, 100, 3), np.uint8))
