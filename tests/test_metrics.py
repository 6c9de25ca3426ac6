import math

import numpy as np
import pytest

from bsrn_cli.metrics import psnr_y, rgb_to_y, ssim_y


def test_identical_images_psnr_inf_ssim_one():
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr_y(image, image, 2) == math.inf
    assert ssim_y(image, image, 2) == pytest.approx(1.0)


def test_known_mse_on_gray_images():
    a = np.zeros((20, 20), np.uint8)
    b = a.copy()
    b[::2] = 10  # half the pixels off by 10: MSE 50
    assert psnr_y(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 50))


def test_constant_offset_on_y_and_border_crop():
    a = np.full((16, 16), 100, np.uint8)
    b = np.full((16, 16), 104, np.uint8)
    b[0, :] = 0  # outside the 2-pixel border crop
    assert psnr_y(a, b, border=2) == pytest.approx(10 * math.log10(255 ** 2 / 16))


def test_y_uses_matlab_coefficients():
    white = np.full((1, 1, 3), 255, np.uint8)
    assert rgb_to_y(white)[0, 0] == pytest.approx(16 + 65.481 + 128.553 + 24.966)


def test_ssim_drops_for_noise():
    rng = np.random.default_rng(2)
    a = np.tile(np.linspace(0, 255, 40), (40, 1)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim_y(a, b) < 0.9


def test_scores_are_truncated_never_rounded_up():
    from bsrn_cli.evaluation import truncated
    assert truncated(30.8489, 3) == 30.848 and truncated(0.75809, 4) == 0.758
    assert truncated(27.6499999, 2) == 27.64 and truncated(25.0, 3) == 25.0
