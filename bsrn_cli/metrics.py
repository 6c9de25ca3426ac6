"""PSNR and SSIM on the Y channel with a border crop, as the SR literature measures them."""

from __future__ import annotations

import cv2
import numpy as np


# MATLAB rgb2ycbcr's Y = 16 + the weighted sum of R, G, B in [0, 1] (ITU-R BT.601); the training
# loss's luminance (bsrn_cli/train/step.py) uses the same weights.
Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr's Y for an RGB image with values in [0, 255], in float64."""
    rgb = image.astype(np.float64) / 255.0
    wr, wg, wb = Y_WEIGHTS
    return 16.0 + wr * rgb[..., 0] + wg * rgb[..., 1] + wb * rgb[..., 2]


def _evaluation_channel(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.shape[2] == 1:
        return image[..., 0].astype(np.float64)
    return rgb_to_y(image[..., :3])


def _prepare(sr: np.ndarray, hr: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape[:2] != hr.shape[:2]:
        raise ValueError(f"size mismatch: {sr.shape[:2]} vs {hr.shape[:2]}")
    a, b = _evaluation_channel(sr), _evaluation_channel(hr)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return a, b


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """Y-channel PSNR in dB (single-channel images: their own channel), float64."""
    a, b = _prepare(sr, hr, border)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _gaussian_filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    full = cv2.filter2D(x, -1, window, borderType=cv2.BORDER_REFLECT)
    r = window.shape[0] // 2
    return full[r:-r, r:-r]


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, L 255) on Y."""
    a, b = _prepare(sr, hr, border)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T
    mu_a, mu_b = _gaussian_filter_valid(a, window), _gaussian_filter_valid(b, window)
    var_a = _gaussian_filter_valid(a * a, window) - mu_a ** 2
    var_b = _gaussian_filter_valid(b * b, window) - mu_b ** 2
    cov = _gaussian_filter_valid(a * b, window) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())
