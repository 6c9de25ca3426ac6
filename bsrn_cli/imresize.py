"""MATLAB-compatible bicubic ``imresize`` (numpy, vectorised): the degradation of the SR protocol.

Keys cubic (a = -0.5); when shrinking, the kernel is widened by the scale (antialiasing);
borders replicate; dimension 0 (rows) is resized first, then dimension 1; uint8 images are
rounded and clipped after each 1-D pass. This reproduces MATLAB's LR test files bit for bit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _contributions(in_length: int, out_length: int, scale: float):
    """Source indices and weights of every output sample along one dimension."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if antialias else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    indices = np.clip(indices, 1, in_length).astype(np.int64) - 1
    keep = np.any(weights != 0, axis=0)
    return indices[:, keep], weights[:, keep]


@lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int) -> np.ndarray:
    """The same 1-D resampling as a dense float32 (out_length, in_length) matrix (borders
    folded in): ``matrix @ rows`` resizes dimension 0 without rounding. For many small images
    of one size (training patches) this is much faster than the gather of :func:`imresize`."""
    indices, weights = _contributions(in_length, out_length, out_length / in_length)
    matrix = np.zeros((out_length, in_length), np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_length), indices.shape[1]), indices.ravel()), weights.ravel())
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def _resize_axis(image: np.ndarray, axis: int, out_length: int, scale: float) -> np.ndarray:
    indices, weights = _contributions(image.shape[axis], out_length, scale)
    moved = np.moveaxis(image, axis, 0).astype(np.float64)
    gathered = moved[indices]  # (out, taps, ...)
    w = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    return np.moveaxis((gathered * w).sum(axis=1), 0, axis)


def imresize(image: np.ndarray, scale: float | None = None, output_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Resize an HxW or HxWxC image like MATLAB's ``imresize(image, scale, 'bicubic')``.

    uint8 in -> uint8 out (rounded after each pass); float in -> float64 out (no rounding).
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale and output_shape")
    h, w = image.shape[:2]
    if output_shape is None:
        out_h, out_w = int(np.ceil(h * scale)), int(np.ceil(w * scale))
        scales = (scale, scale)
    else:
        out_h, out_w = output_shape
        scales = (out_h / h, out_w / w)
    is_uint8 = image.dtype == np.uint8
    result = image
    for axis, out_length, axis_scale in ((0, out_h, scales[0]), (1, out_w, scales[1])):
        result = _resize_axis(result, axis, out_length, axis_scale)
        if is_uint8:
            # MATLAB rounds halves away from zero (numpy's round would go to even).
            result = np.clip(np.floor(result + 0.5), 0, 255).astype(np.uint8)
    return result


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop top-left so both sides are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]
