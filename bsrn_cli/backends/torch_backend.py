"""Run a model with PyTorch, tile by tile so memory stays bounded on large images.

Tiles are cut in LR space with ``overlap`` pixels of context on every inner side; only each
tile's centre is kept. With an overlap at least the network's receptive radius, every kept
pixel sees exactly the inputs it sees in an untiled run, so tiled == untiled.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from bsrn_cli.errors import BsrnError, UsageProblem
from bsrn_cli.networks.bsrn import BSRN
from bsrn_cli.pretrained.weights import Weights

DEFAULT_TILE = 256


def pick_device(requested: str | None) -> torch.device:
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise BsrnError("--device cuda: no CUDA device is available")
    if requested not in ("cpu", "cuda"):
        raise UsageProblem("--device", f"{requested!r} is not cpu, cuda or auto", "see --help")
    return torch.device(requested)


def default_overlap(model: BSRN) -> int:
    return model.receptive_radius()


def _tile_starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile)) if tile > 0 else [0]


def tensor_to_uint8(t: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) float in [0, 1] -> (h, w, 3) uint8, rounding to nearest."""
    return t[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def _peak(dtype: np.dtype) -> int:
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    raise BsrnError(f"pixels must be 8- or 16-bit, not {dtype}")


# What running out of memory raises: torch (CUDA, and the CPU allocator) and numpy.
OUT_OF_MEMORY = (torch.OutOfMemoryError, MemoryError)
MIN_TILE = 16


class TiledUpscaler:
    """Upscales 8- or 16-bit RGB arrays tile by tile; subclasses say how one tile runs (``_run``).

    The network always sees float32 in [0, 1]; 16-bit pixels stay 16-bit (no 8-bit step).
    On out-of-memory the tile side is halved and the image redone, down to ``MIN_TILE``;
    ``on_retry(message)`` hears about each retry, ``on_tile(done, total)`` about each finished tile.
    """

    def __init__(self, model: BSRN, tile: int = DEFAULT_TILE, overlap: int | None = None):
        if tile < 0:
            raise UsageProblem("--tile", "must be 0 (no tiling) or a positive number of input pixels", "see --help")
        self.device = torch.device("cpu")
        self.scale = model.scale
        self.tile = tile
        self.overlap = default_overlap(model) if overlap is None else overlap
        if self.overlap < 0:
            raise UsageProblem("--tile-overlap", "must not be negative", "see --help")
        self.on_retry = None
        self.on_tile: Callable[[int, int], None] | None = None

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 or uint16 (h, w, 3) -> the same dtype, (h*s, w*s, 3)."""
        h, w = rgb.shape[:2]
        out = np.empty((h * self.scale, w * self.scale, 3), dtype=rgb.dtype)
        while True:
            try:
                self._upscale_into(rgb, out, self.tile)
                return out
            except OUT_OF_MEMORY as exc:
                tried = self.tile if 0 < self.tile < max(h, w) else max(h, w)
                if tried // 2 < MIN_TILE:
                    raise BsrnError(f"out of memory even with tiles of {tried} pixels; "
                                    "lower --max-memory or free memory on the device") from exc
                self.tile = tried // 2
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if self.on_retry is not None:
                    self.on_retry(f"out of memory with tiles of {tried} pixels; retrying with {self.tile}")

    def _tile_to_device(self, rgb: np.ndarray, peak: int) -> torch.Tensor:
        lr = torch.from_numpy(np.array(rgb.transpose(2, 0, 1), order="C")).float().div_(peak).unsqueeze(0)
        return lr.to(self.device)

    def _upscale_into(self, rgb: np.ndarray, out: np.ndarray, tile: int) -> None:
        h, w = rgb.shape[:2]
        s = self.scale
        peak = _peak(rgb.dtype)
        if tile == 0 or (h <= tile and w <= tile):
            out[:] = _to_pixels(self._run(self._tile_to_device(rgb, peak)), peak, out.dtype)
            if self.on_tile is not None:
                self.on_tile(1, 1)
            return
        o = self.overlap
        starts = [(y, x) for y in _tile_starts(h, tile) for x in _tile_starts(w, tile)]
        for done, (y, x) in enumerate(starts, 1):
            y1, x1 = min(y + tile, h), min(x + tile, w)
            ty0, tx0 = max(y - o, 0), max(x - o, 0)
            ty1, tx1 = min(y1 + o, h), min(x1 + o, w)
            sr = self._run(self._tile_to_device(rgb[ty0:ty1, tx0:tx1], peak))
            keep = sr[:, :, (y - ty0) * s:(y1 - ty0) * s, (x - tx0) * s:(x1 - tx0) * s]
            out[y * s:y1 * s, x * s:x1 * s] = _to_pixels(keep, peak, out.dtype)
            if self.on_tile is not None:
                self.on_tile(done, len(starts))


def _to_pixels(t: torch.Tensor, peak: int, dtype: np.dtype) -> np.ndarray:
    """(1, 3, h, w) float in [0, 1] -> (h, w, 3) integers of ``dtype``, rounding to nearest."""
    if peak == 255:
        return tensor_to_uint8(t)
    return t[0].clamp(0, 1).mul(peak).round().to(torch.int32).permute(1, 2, 0).cpu().numpy().astype(dtype)


class TorchUpscaler(TiledUpscaler):
    """The model run by PyTorch on a device (CPU: the float reference, channels_last)."""

    def __init__(self, model: BSRN, device: torch.device | str = "cpu", tile: int = DEFAULT_TILE,
                 overlap: int | None = None):
        super().__init__(model, tile, overlap)
        if isinstance(model, Weights):
            model = model.network()
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        with torch.no_grad():  # the BAM kernels are fixed at inference: compute them once
            self.kernels = self.model.binary_kernels()

    @torch.inference_mode()
    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            lr = lr.contiguous(memory_format=torch.channels_last)
        return self.model(lr, self.kernels)
