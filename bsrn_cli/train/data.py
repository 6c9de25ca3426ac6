"""HR image folders -> aligned (LR, HR) patch batches, decoded once and kept in memory.

Each HR image is modcropped and its LR made once with the protocol's MATLAB bicubic
(:mod:`bsrn_cli.imresize`), so training sees exactly the degradation that evaluation uses.
Patches are cut at aligned positions and augmented (flips, 90-degree rotations) on the
device that trains, so a GPU is not starved by Python-side image work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bsrn_cli.errors import BsrnError
from bsrn_cli.imresize import imresize, modcrop
from bsrn_cli.io.images import IMAGE_SUFFIXES, read_image_rgb


def find_images(folders: list[str | Path]) -> list[Path]:
    """Image files under the given folders (recursively), sorted for reproducibility."""
    paths: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            paths.append(folder)
            continue
        if not folder.is_dir():
            raise BsrnError(f"{folder}: no such training folder")
        paths += [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise BsrnError(f"no training images found in {', '.join(map(str, folders))}")
    return sorted(paths)


@dataclass
class PatchSampler:
    """Random aligned patches from in-memory (LR, HR) pairs."""

    lr_images: list[torch.Tensor]  # uint8, (3, h, w)
    hr_images: list[torch.Tensor]  # uint8, (3, h*s, w*s)
    scale: int
    names: list[str]

    @classmethod
    def from_paths(cls, paths: list[Path], scale: int, lr_patch: int, device: str | torch.device = "cpu",
                   downscale_larger_than: int = 0) -> "PatchSampler":
        lrs, hrs, names = [], [], []
        for path in paths:
            hr = read_image_rgb(path)
            if downscale_larger_than and max(hr.shape[:2]) > downscale_larger_than:
                hr = imresize(hr, 0.5)
            hr = modcrop(hr, scale)
            if min(hr.shape[:2]) < lr_patch * scale:
                continue
            lr = imresize(hr, 1 / scale)
            lrs.append(torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).to(device))
            hrs.append(torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))).to(device))
            names.append(path.name)
        if not lrs:
            raise BsrnError(f"no training image is at least {lr_patch * scale} pixels on each side")
        return cls(lrs, hrs, scale, names)

    def __len__(self) -> int:
        return len(self.lr_images)

    def sample(self, batch: int, lr_patch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of float (LR, HR) patches in [0, 1] on the sampler's device."""
        s, hp = self.scale, lr_patch * self.scale
        picks = torch.randint(len(self), (batch,), generator=generator).tolist()
        transforms = torch.randint(8, (batch,), generator=generator).tolist()
        lr_out, hr_out = [], []
        for index, transform in zip(picks, transforms):
            lr_img, hr_img = self.lr_images[index], self.hr_images[index]
            _, h, w = lr_img.shape
            y = int(torch.randint(h - lr_patch + 1, (1,), generator=generator))
            x = int(torch.randint(w - lr_patch + 1, (1,), generator=generator))
            lr = lr_img[:, y:y + lr_patch, x:x + lr_patch]
            hr = hr_img[:, y * s:y * s + hp, x * s:x * s + hp]
            lr_out.append(_augment(lr, transform))
            hr_out.append(_augment(hr, transform))
        to_float = lambda xs: torch.stack(xs).float().div_(255.0)
        return to_float(lr_out), to_float(hr_out)


def _augment(patch: torch.Tensor, transform: int) -> torch.Tensor:
    """One of the 8 symmetries of the square: transform & 3 quarter turns, bit 2 a flip."""
    if transform & 4:
        patch = patch.flip(-1)
    return torch.rot90(patch, transform & 3, dims=(-2, -1))
