"""Independent reference implementations for the tests: written from the definitions, never
calling the code under test, so an expectation cannot share a bug with what it checks."""

from __future__ import annotations

import numpy as np


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5, the one Pillow's BICUBIC filter uses)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def _resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of a separable bicubic resize to a larger size: output pixel
    i samples the input at (i + 0.5) * size_in / size_out - 0.5; taps outside the image are
    dropped and the remaining weights renormalised to sum 1 (Pillow's edge rule)."""
    scale = size_in / size_out
    support = 2.0 * max(scale, 1.0)
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        centre = (i + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), size_in)
        taps = np.arange(first, last)
        weights = _cubic((taps - centre + 0.5) / max(scale, 1.0))
        matrix[i, first:last] = weights / weights.sum()
    return matrix


def bicubic_resize(channel: np.ndarray, width: int, height: int) -> np.ndarray:
    """One channel (h, w) -> float64 (height, width), bicubic, no rounding or clipping."""
    rows = _resize_matrix(channel.shape[0], height)
    cols = _resize_matrix(channel.shape[1], width)
    return rows @ channel.astype(np.float64) @ cols.T


def luma601(rgb: np.ndarray) -> np.ndarray:
    """8-bit RGB -> 8-bit gray by ITU-R 601 (0.299, 0.587, 0.114) in 16-bit fixed point,
    rounded half up: the gray an 8-bit "L" conversion gives."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
