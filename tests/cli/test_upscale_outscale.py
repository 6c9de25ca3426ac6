"""Fractional -s, as Real-ESRGAN's --outscale: the smallest network scale >= the factor, then a
high-quality resize (Pillow's Lanczos; bicubic for 16 bits) to round(w*f) x round(h*f)."""

import numpy as np
from PIL import Image

from tests.cli.test_upscale import bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import write_image


def test_three_and_a_half_is_the_x4_network_then_lanczos_to_350x280(tmp_path):
    image = write_image(tmp_path / "photo.png", size=(100, 80))
    result = bsrn("upscale", image, "-s", "3.5")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    x4 = bsrn("upscale", image, "-s", "4", "-o", tmp_path / "x4.png")
    assert x4.returncode == 0, x4.stderr
    with Image.open(tmp_path / "photo_x3.5.png") as got, Image.open(tmp_path / "x4.png") as big:
        assert got.size == (350, 280)
        assert got.tobytes() == big.resize((350, 280), Image.LANCZOS).tobytes()


def test_a_fraction_with_a_model_file_resizes_its_output(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(21, 13), mode="RGBA")
    result = bsrn("upscale", image, "--model", tiny_weights, "-s", "1.5")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    x2 = bsrn("upscale", image, "--model", tiny_weights, "-o", tmp_path / "x2.png")
    assert x2.returncode == 0, x2.stderr
    with Image.open(tmp_path / "a_x1.5.png") as got, Image.open(tmp_path / "x2.png") as big:
        assert got.size == (32, 20) and got.mode == "RGBA"  # 31.5 and 19.5 round up
        expected = big.convert("RGB").resize((32, 20), Image.LANCZOS)
        assert got.convert("RGB").tobytes() == expected.tobytes()


def test_above_four_is_x4_then_resized_up_with_one_note(tmp_path):
    image = write_image(tmp_path / "a.png", size=(10, 8))
    result = bsrn("upscale", image, "-s", "4.5", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("note: x4.5 is above the network's x4: upscaled x4, then resized up "
                             "(interpolated, no new detail)\n")
    with Image.open(tmp_path / "out" / "a_x4.5.png") as got:
        assert got.size == (45, 36)


def test_sixteen_bit_stays_sixteen_bit_with_a_fraction(tmp_path, tiny_weights):
    import cv2

    pixels = np.random.default_rng(0).integers(0, 65536, (10, 12, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), pixels)
    result = bsrn("upscale", tmp_path / "deep.png", "--model", tiny_weights, "-s", "1.25")
    assert result.returncode == 0, result.stderr
    out = cv2.imread(str(tmp_path / "deep_x1.25.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (13, 15, 3)  # 12.5 rounds up to 13
