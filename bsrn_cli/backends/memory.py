"""How large a tile may be so that running the network stays under a memory budget.

The working set of one tile is the network's feature maps: float32, ``channels`` maps per LR
pixel several times over (block inputs kept for the activation accumulation, the conv
output, RPReLU temporaries), plus the upsampler's and the image skip's ``3*s*s`` values per
LR pixel. ``WORK_MAPS`` and ``IMAGE_MAPS`` bound what both backends were measured to use
(docs/usage.md, "Memory"), with a margin.
"""

from __future__ import annotations

import os
import re

from bsrn_cli.errors import BsrnError

DEFAULT_MAX_MEMORY = "2G"
DEFAULT_TILE = 256
WORK_MAPS = 20
IMAGE_MAPS = 20
MIN_TILE = 16
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """'2G', '512M', '1.5G', '3000000' -> bytes (K, M, G, T are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match or float(match.group(1)) <= 0:
        raise BsrnError(f"--max-memory {text!r}: give a size such as 2G, 512M or 1.5G")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_size(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.1f}{unit}"
    return f"{n}B"


def bytes_per_pixel(channels: int, scale: int) -> int:
    """Working bytes per LR pixel of a tile (float32 maps)."""
    return 4 * (WORK_MAPS * channels + IMAGE_MAPS * 3 * scale * scale)


def tile_bytes(channels: int, scale: int, height: int, width: int, tile: int, overlap: int) -> int:
    """Working bytes of the largest tile (with its overlap) of a height x width image."""
    th = height if tile == 0 else min(height, tile + 2 * overlap)
    tw = width if tile == 0 else min(width, tile + 2 * overlap)
    return th * tw * bytes_per_pixel(channels, scale)


def choose_tile(channels: int, scale: int, height: int, width: int, budget: int, tile: int, overlap: int) -> int:
    """The largest tile side, at most ``tile`` (0: the whole image), whose working set fits ``budget``.

    Returns 0 when the whole image fits and no tiling was asked for.
    """
    if tile_bytes(channels, scale, height, width, tile, overlap) <= budget:
        return tile
    low, high = MIN_TILE, (tile if tile > 0 else max(height, width))
    if tile_bytes(channels, scale, height, width, low, overlap) > budget:
        raise BsrnError(f"--max-memory {format_size(budget)} is too small: even {low}-pixel tiles need "
                        f"{format_size(tile_bytes(channels, scale, height, width, low, overlap))}")
    while low < high:  # largest fitting side, by bisection (tile_bytes grows with the side)
        middle = (low + high + 1) // 2
        if tile_bytes(channels, scale, height, width, middle, overlap) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
