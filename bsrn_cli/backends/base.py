"""The backend interface: ``Upscaler`` runs a network over 8- or 16-bit RGB images, tile by tile.

The base owns what does not depend on how a tile is computed: the float conversion, the tiles
and their overlap, the tile size the memory budget allows, and the retry with smaller tiles on
out-of-memory. A backend subclasses it and implements ``_run`` (one float tile in, its upscaled
float tile out). Tiles are cut in LR space with ``overlap`` pixels of context on every inner
side and only each tile's centre is kept: with an overlap at least the network's receptive
radius, every kept pixel sees the inputs it sees in an untiled run.

numpy only (no torch, not even indirectly): backends that do not need torch never load it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

from bsrn_cli.backends.memory import DEFAULT_TILE, MIN_TILE, choose_tile
from bsrn_cli.errors import BsrnError, UsageProblem

TileProgress = Callable[[int, int], None]


def model_options(model, overlap: int | None = None) -> dict:
    """The Upscaler arguments a network fixes: its scale, its width (the memory estimate) and,
    unless given, its receptive radius as the overlap. The one place the interface reads a model."""
    return {"scale": model.scale, "channels": model.config.channels,
            "overlap": model.receptive_radius() if overlap is None else overlap}


def peak(dtype: np.dtype) -> int:
    """The largest pixel value of 8- or 16-bit pixels."""
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    raise BsrnError(f"pixels must be 8- or 16-bit, not {dtype}")


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 or uint16 (h, w, 3) -> float32 in [0, 1], C-contiguous."""
    values = pixels.astype(np.float32)
    values /= np.float32(peak(pixels.dtype))
    return values


def to_pixels(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 -> integers of ``dtype``: clipped to [0, 1], scaled to the peak and rounded half to
    even, all in float32 (the same arithmetic, bit for bit, as torch's clamp, mul and round)."""
    scaled = np.clip(values, np.float32(0), np.float32(1))
    scaled *= np.float32(peak(dtype))
    return np.rint(scaled, out=scaled).astype(dtype)


class NonFiniteOutput(ArithmeticError):
    """The network gave NaN or infinite values (broken weights, or an overflow)."""


def _finite(values: np.ndarray) -> np.ndarray:
    if not np.isfinite(values).all():
        raise NonFiniteOutput
    return values


def _tile_starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile)) if tile > 0 else [0]


class Upscaler(ABC):
    """Upscales uint8 or uint16 RGB arrays by ``scale``; subclasses say how one tile runs (``_run``).

    ``tile``: the largest tile side in input pixels (0: the whole image). With ``max_memory``
    (bytes) each image's tile is the largest, up to that, whose working set (estimated from
    ``channels``, bsrn_cli/backends/memory.py) fits the budget. On out-of-memory
    (``is_out_of_memory``) the tile side is halved and the image redone, down to ``MIN_TILE``;
    later images keep the smaller tile. ``on_retry(message)`` hears about each retry,
    ``on_tile(done, total)`` about each finished tile (``upscale`` may give its own).
    """

    def __init__(self, *, scale: int, overlap: int, channels: int, tile: int = DEFAULT_TILE,
                 max_memory: int | None = None, on_retry: Callable[[str], None] | None = None,
                 on_tile: TileProgress | None = None):
        if tile < 0:
            raise UsageProblem("--tile", "must be 0 (no tiling) or a positive number of input pixels", "see --help")
        if overlap < 0:
            raise UsageProblem("--tile-overlap", "must not be negative", "see --help")
        self.scale, self.overlap, self.channels = scale, overlap, channels
        self.max_memory = max_memory
        self.on_retry, self.on_tile = on_retry, on_tile
        self._cap = tile   # the largest tile allowed: the one asked for, lowered by out-of-memory retries
        self._tile = tile

    @property
    def tile(self) -> int:
        """The tile side the last image ran with (0: whole); before any image, the one asked for."""
        return self._tile

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` means a tile did not fit in memory (backends add their own errors)."""
        return isinstance(exc, MemoryError)

    @abstractmethod
    def _run(self, tile: np.ndarray) -> np.ndarray:
        """float32 (h, w, 3) in [0, 1] -> float32 (h*s, w*s, 3), unclamped."""

    def upscale(self, rgb: np.ndarray, name: str | os.PathLike | None = None,
                on_tile: TileProgress | None = None) -> np.ndarray:
        """uint8 or uint16 (h, w, 3) -> the same dtype, (h*s, w*s, 3).

        ``name`` (the input file) starts the error when even the smallest tile runs out of
        memory; ``on_tile`` replaces the constructor's progress callback for this image."""
        h, w = rgb.shape[:2]
        out = np.empty((h * self.scale, w * self.scale, 3), dtype=rgb.dtype)
        tile = self._cap
        if self.max_memory is not None:
            tile = choose_tile(self.channels, self.scale, h, w, self.max_memory, tile, self.overlap)
        while True:
            try:
                self._upscale_into(rgb, out, tile, on_tile or self.on_tile)
                self._tile = tile
                return out
            except NonFiniteOutput:
                where = "" if name is None else f"{name}: "
                raise BsrnError(f"{where}the network gave NaN or infinite values (its weights are broken or "
                                "overflow); no output written") from None
            except Exception as exc:
                if not self.is_out_of_memory(exc):
                    raise
                tried = tile if 0 < tile < max(h, w) else max(h, w)
                if tried // 2 < MIN_TILE:
                    where = "" if name is None else f"{name}: "
                    raise BsrnError(f"{where}out of memory even with tiles of {tried} pixels; "
                                    "lower --max-memory or free memory") from exc
                tile = self._cap = tried // 2
                if self.on_retry is not None:
                    self.on_retry(f"out of memory with tiles of {tried} pixels; retrying with {tile}")

    def _upscale_into(self, rgb: np.ndarray, out: np.ndarray, tile: int, on_tile: TileProgress | None) -> None:
        h, w = rgb.shape[:2]
        s = self.scale
        if tile == 0 or (h <= tile and w <= tile):
            out[:] = to_pixels(_finite(self._run(to_float(rgb))), out.dtype)
            if on_tile is not None:
                on_tile(1, 1)
            return
        o = self.overlap
        starts = [(y, x) for y in _tile_starts(h, tile) for x in _tile_starts(w, tile)]
        for done, (y, x) in enumerate(starts, 1):
            y1, x1 = min(y + tile, h), min(x + tile, w)
            ty0, tx0 = max(y - o, 0), max(x - o, 0)
            ty1, tx1 = min(y1 + o, h), min(x1 + o, w)
            sr = self._run(to_float(rgb[ty0:ty1, tx0:tx1]))
            keep = sr[(y - ty0) * s:(y1 - ty0) * s, (x - tx0) * s:(x1 - tx0) * s]
            out[y * s:y1 * s, x * s:x1 * s] = to_pixels(_finite(keep), out.dtype)
            if on_tile is not None:
                on_tile(done, len(starts))
