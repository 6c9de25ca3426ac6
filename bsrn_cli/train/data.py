"""HR image folders -> aligned (LR, HR) patch batches, decoded once and kept in memory.

Each HR image is modcropped and its LR made once with the protocol's MATLAB bicubic
(:mod:`bsrn_cli.imresize`), so training sees exactly the degradation that evaluation uses.
Patches are cut at aligned positions and augmented (flips, 90-degree rotations) on the
device that trains, so a GPU is not starved by Python-side image work. With a random
degradation (:mod:`bsrn_cli.degrade`, ``degradation = "real"``), each LR patch is made on the
fly from its HR patch instead (blur, random downscaling kernel, noise, JPEG).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bsrn_cli.degrade import Degradation
from bsrn_cli.errors import BsrnError
from bsrn_cli.imresize import imresize, modcrop
from bsrn_cli.io.images import IMAGE_SUFFIXES, read_image_rgb


def _hr_folders(folder: Path) -> list[Path]:
    """A DIV2K-style folder (``*_HR/`` beside ``*_LR_bicubic/``) trains on its HR folders only."""
    hr = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.upper().endswith("_HR"))
    return hr or [folder]


def find_images(folders: list[str | Path]) -> list[Path]:
    """HR image files under the given folders (recursively), sorted for reproducibility."""
    paths: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            paths.append(folder)
            continue
        if not folder.is_dir():
            raise BsrnError(f"{folder}: no such training folder")
        for root in _hr_folders(folder):
            paths += [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                      and not p.name.startswith(".")]
    if not paths:
        raise BsrnError(f"no training images found in {', '.join(map(str, folders))}")
    return sorted(paths)


def div2k_lr_file(hr_path: Path, scale: int) -> Path | None:
    """``X_HR/0001.png`` -> ``X_LR_bicubic/X4/0001x4.png`` when that file exists (DIV2K's own LR)."""
    folder = hr_path.parent
    if not folder.name.upper().endswith("_HR"):
        return None
    lr_root = folder.with_name(folder.name[:-3] + "_LR_bicubic") / f"X{scale}"
    candidate = lr_root / f"{hr_path.stem}x{scale}{hr_path.suffix}"
    return candidate if candidate.is_file() else None


@dataclass
class PatchSampler:
    """Random aligned patches from in-memory (LR, HR) pairs, cut and augmented with numpy.

    Images stay in host memory as uint8 HWC arrays; a batch is one uint8 array moved to the
    training device in one copy and turned into floats there (NHWC, so channels_last for free).
    """

    lr_images: list[np.ndarray | None]  # uint8, (h, w, 3); None when LR is made on the fly
    hr_images: list[np.ndarray]  # uint8, (h*s, w*s, 3)
    scale: int
    names: list[str]
    degradation: Degradation | None = None  # None: the fixed MATLAB-bicubic LR

    @classmethod
    def from_paths(cls, paths: list[Path], scale: int, lr_patch: int, downscale_larger_than: int = 0,
                   degradation: Degradation | None = None) -> "PatchSampler":
        lrs, hrs, names = [], [], []
        for path in paths:
            hr = read_image_rgb(path)
            if downscale_larger_than and max(hr.shape[:2]) > downscale_larger_than:
                hr = imresize(hr, 0.5)
            hr = modcrop(hr, scale)
            if min(hr.shape[:2]) < lr_patch * scale:
                continue
            hrs.append(np.ascontiguousarray(hr))
            names.append(path.name)
            if degradation is not None:  # LR patches are made from HR patches as they are cut
                lrs.append(None)
                continue
            lr = None
            given = None if downscale_larger_than else div2k_lr_file(path, scale)
            if given is not None:  # DIV2K ships MATLAB-bicubic LR files: use them if they fit
                lr = read_image_rgb(given)
                if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
                    lr = None
            if lr is None:
                lr = imresize(hr, 1 / scale)
            lrs.append(np.ascontiguousarray(lr))
        if not hrs:
            raise BsrnError(f"no training image is at least {lr_patch * scale} pixels on each side")
        return cls(lrs, hrs, scale, names, degradation)

    def __len__(self) -> int:
        return len(self.lr_images)

    def sample_uint8(self, batch: int, lr_patch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (batch, p, p, 3) LR and (batch, p*s, p*s, 3) HR patches, aligned, augmented."""
        s, hp = self.scale, lr_patch * self.scale
        lr_out = np.empty((batch, lr_patch, lr_patch, 3), np.uint8)
        hr_out = np.empty((batch, hp, hp, 3), np.uint8)
        picks = rng.integers(len(self), size=batch)
        transforms = rng.integers(8, size=batch)
        for i, (index, transform) in enumerate(zip(picks, transforms)):
            lr_img, hr_img = self.lr_images[index], self.hr_images[index]
            h, w = hr_img.shape[0] // s, hr_img.shape[1] // s
            y = int(rng.integers(h - lr_patch + 1))
            x = int(rng.integers(w - lr_patch + 1))
            hr_out[i] = _augment(hr_img[y * s:y * s + hp, x * s:x * s + hp], transform)
            if self.degradation is None:
                lr_out[i] = _augment(lr_img[y:y + lr_patch, x:x + lr_patch], transform)
            else:
                lr_out[i] = self.degradation(hr_out[i], s, rng)
        return lr_out, hr_out

    def sample(self, batch: int, lr_patch: int, rng: np.random.Generator,
               device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of float (LR, HR) patches in [0, 1], (N, 3, H, W) in channels_last layout."""
        return to_device(*self.sample_uint8(batch, lr_patch, rng), device=device)


def to_device(*arrays: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """uint8 NHWC batches (numpy, or tensors already in pinned memory) -> float NCHW views in [0, 1]."""
    device = torch.device(device)
    out = []
    for array in arrays:
        tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
        if device.type == "cuda":
            if not tensor.is_pinned():
                tensor = tensor.pin_memory()
            tensor = tensor.to(device, non_blocking=True)
        out.append(tensor.permute(0, 3, 1, 2).float().div_(255.0))
    return tuple(out)


def _augment(patch: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 symmetries of the square (HWC): transform & 3 quarter turns, bit 2 a flip."""
    if transform & 4:
        patch = patch[:, ::-1]
    return np.rot90(patch, int(transform) & 3, axes=(0, 1))
