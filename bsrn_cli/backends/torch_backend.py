"""Run a model with PyTorch, tile by tile so memory stays bounded on large images.

Tiles are cut in LR space with ``overlap`` pixels of context on every inner side; only each
tile's centre is kept. With an overlap at least the network's receptive radius, every kept
pixel sees exactly the inputs it sees in an untiled run, so tiled == untiled.
"""

from __future__ import annotations

import numpy as np
import torch

from bsrn_cli.errors import BsrnError
from bsrn_cli.models.bsrn import BSRN

DEFAULT_TILE = 256


def pick_device(requested: str | None) -> torch.device:
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise BsrnError("--device cuda: no CUDA device is available")
    if requested not in ("cpu", "cuda"):
        raise BsrnError(f"--device must be cpu, cuda or auto, not {requested!r}")
    return torch.device(requested)


def default_overlap(model: BSRN) -> int:
    return model.receptive_radius()


def _tile_starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile)) if tile > 0 else [0]


def tensor_to_uint8(t: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) float in [0, 1] -> (h, w, 3) uint8, rounding to nearest."""
    return t[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


class TiledUpscaler:
    """Upscales uint8 RGB arrays tile by tile; subclasses say how one tile runs (``_run``)."""

    def __init__(self, model: BSRN, tile: int = DEFAULT_TILE, overlap: int | None = None):
        if tile < 0:
            raise BsrnError("--tile must be 0 (no tiling) or a positive number of input pixels")
        self.device = torch.device("cpu")
        self.scale = model.scale
        self.tile = tile
        self.overlap = default_overlap(model) if overlap is None else overlap
        if self.overlap < 0:
            raise BsrnError("--tile-overlap must not be negative")

    def _run(self, lr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (h, w, 3) -> uint8 (h*s, w*s, 3)."""
        h, w = rgb.shape[:2]
        s = self.scale
        lr = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255).unsqueeze(0)
        if self.tile == 0 or (h <= self.tile and w <= self.tile):
            return tensor_to_uint8(self._run(lr.to(self.device)))
        out = np.empty((h * s, w * s, 3), dtype=np.uint8)
        o = self.overlap
        for y in _tile_starts(h, self.tile):
            for x in _tile_starts(w, self.tile):
                y1, x1 = min(y + self.tile, h), min(x + self.tile, w)
                ty0, tx0 = max(y - o, 0), max(x - o, 0)
                ty1, tx1 = min(y1 + o, h), min(x1 + o, w)
                sr = self._run(lr[:, :, ty0:ty1, tx0:tx1].to(self.device))
                keep = sr[:, :, (y - ty0) * s:(y1 - ty0) * s, (x - tx0) * s:(x1 - tx0) * s]
                out[y * s:y1 * s, x * s:x1 * s] = tensor_to_uint8(keep)
        return out


class TorchUpscaler(TiledUpscaler):
    """The model run by PyTorch on a device (CPU: the float reference, channels_last)."""

    def __init__(self, model: BSRN, device: torch.device | str = "cpu", tile: int = DEFAULT_TILE,
                 overlap: int | None = None):
        super().__init__(model, tile, overlap)
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
