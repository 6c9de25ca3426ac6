"""The SR evaluation protocol on a data set folder: modcrop, MATLAB-bicubic LR, Y PSNR/SSIM."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bsrn_cli.errors import BsrnError
from bsrn_cli.imresize import imresize, modcrop
from bsrn_cli.io.images import IMAGE_SUFFIXES, read_image_array, rgb_to_gray
from bsrn_cli.metrics import psnr_y, ssim_y


@dataclass
class EvalPair:
    name: str
    lr: np.ndarray  # uint8, (h, w) or (h, w, 3)
    hr: np.ndarray  # uint8, modcropped


def truncated(value: float, digits: int) -> float:
    """``value`` cut to ``digits`` decimals, never rounded up: how the project writes its scores."""
    factor = 10 ** digits
    return math.floor(value * factor) / factor


def load_pairs(dataset: str | Path, scale: int) -> list[EvalPair]:
    """Pairs from ``DATASET/HR`` (+ ``LR_bicubic/X{s}`` when present, or ``LR/X{s}``, the
    degraded LR that ``bsrn degrade`` writes) or a plain HR folder (LR made by MATLAB bicubic)."""
    dataset = Path(dataset)
    hr_dir = dataset / "HR" if (dataset / "HR").is_dir() else dataset
    if not hr_dir.is_dir():
        raise BsrnError(f"{dataset}: no such data set folder")
    lr_dir = dataset / "LR_bicubic" / f"X{scale}"
    if not lr_dir.is_dir():
        lr_dir = dataset / "LR" / f"X{scale}"
    paths = sorted(p for p in hr_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise BsrnError(f"{hr_dir}: no HR images")
    pairs = []
    for path in paths:
        hr = modcrop(read_image_array(path), scale)
        lr_path = lr_dir / path.name
        if lr_dir.is_dir():
            if not lr_path.is_file():
                raise BsrnError(f"{lr_path}: missing LR image for {path.name}")
            lr = read_image_array(lr_path)
            if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
                raise BsrnError(f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} is not the HR size / {scale}")
        else:
            lr = imresize(hr, 1 / scale)
        pairs.append(EvalPair(path.stem, lr, hr))
    return pairs


def score_image(name: str, sr: np.ndarray, hr: np.ndarray, scale: int) -> dict:
    return {"name": name, "psnr": psnr_y(sr, hr, scale), "ssim": ssim_y(sr, hr, scale)}


def score(pairs: list[EvalPair], upscale: Callable[[np.ndarray], np.ndarray], scale: int) -> list[dict]:
    """Per-image PSNR/SSIM of ``upscale`` (uint8 LR -> uint8 SR, same channel layout)."""
    return [score_image(pair.name, upscale(pair.lr), pair.hr, scale) for pair in pairs]


def as_network_input(upscale_rgb: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap an RGB upscaler so grayscale LR goes in as R=G=B and comes out single-channel."""
    def run(lr: np.ndarray) -> np.ndarray:
        if lr.ndim == 2:
            return rgb_to_gray(upscale_rgb(np.repeat(lr[..., None], 3, axis=2)))
        return upscale_rgb(lr)
    return run
