"""The image pipeline on real files made here: orientation, profiles, EXIF, alpha, 16-bit, modes."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from bsrn_cli.backends.torch_backend import TorchUpscaler
from bsrn_cli.io.images import (compose_output, load_image, orient, resize_bicubic, save_output_atomic)
from tests.media import bicubic_model, bicubic_reference

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _pattern(h=12, w=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _upscale_file(source, target, scale=2, alpha=None):
    loaded = load_image(source)
    up = TorchUpscaler(bicubic_model(scale), tile=0)
    save_output_atomic(compose_output(up.upscale(loaded.rgb), loaded, scale, alpha), target)
    return loaded


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_what_viewers_show(tmp_path, orientation):
    image = Image.fromarray(_pattern())
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "a.png", exif=exif)
    with Image.open(tmp_path / "a.png") as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    np.testing.assert_array_equal(load_image(tmp_path / "a.png").rgb, expected)
    np.testing.assert_array_equal(orient(np.asarray(image), orientation), expected)


def test_rotated_jpeg_comes_out_upright_with_profile_and_exif(tmp_path):
    upright = np.zeros((16, 24, 3), np.uint8)
    upright[:8] = (230, 20, 20)  # red top half, blue bottom half
    upright[8:] = (20, 20, 230)
    stored = np.rot90(upright, 1)  # orientation 6 means "rotate 90 clockwise to display"
    image = Image.fromarray(np.ascontiguousarray(stored))
    exif = image.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "bsrn test camera"
    image.save(tmp_path / "photo.jpg", exif=exif, icc_profile=SRGB, quality=95)
    _upscale_file(tmp_path / "photo.jpg", tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.size == (48, 32)
        assert out.info.get("icc_profile") == SRGB
        assert out.getexif().get(0x0112) == 1 and out.getexif().get(0x010F) == "bsrn test camera"
        pixels = np.asarray(out.convert("RGB")).astype(int)
    assert pixels[:12, :, 0].mean() > 180 and pixels[:12, :, 2].mean() < 80   # red on top
    assert pixels[20:, :, 2].mean() > 180 and pixels[20:, :, 0].mean() < 80   # blue below


def test_rgba_keeps_a_correct_alpha(tmp_path):
    rgb = _pattern()
    alpha = np.zeros((12, 20), np.uint8)
    alpha[:, 10:] = 255
    alpha[6:9, 2:6] = 128
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "a.png")
    _upscale_file(tmp_path / "a.png", tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "RGBA" and out.size == (40, 24)
        out_alpha = np.asarray(out.getchannel("A"))
        out_rgb = np.asarray(out.convert("RGB")).astype(float)
    np.testing.assert_array_equal(out_alpha, resize_bicubic(alpha, (40, 24)))
    assert (out_alpha[:, 24:] == 255).all() and (out_alpha[:8, :16] <= 1).all()
    # colour is upscaled from the colour alone, never darkened by the alpha
    assert np.abs(out_rgb - bicubic_reference(rgb, 2, 255)).max() <= 1


def test_alpha_through_the_model(tmp_path):
    alpha = np.tile(np.linspace(0, 255, 20).astype(np.uint8), (12, 1))
    Image.fromarray(np.dstack([_pattern(), alpha]), "RGBA").save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    up = TorchUpscaler(bicubic_model(2), tile=0)
    through_model = up.upscale(np.repeat(loaded.alpha[..., None], 3, axis=2))[..., 0]
    save_output_atomic(compose_output(up.upscale(loaded.rgb), loaded, 2, through_model), tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        got = np.asarray(out.getchannel("A")).astype(float)
    expected = bicubic_reference(np.repeat(alpha[..., None], 3, axis=2), 2, 255)[..., 0]
    assert np.abs(got - expected).max() <= 1


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path):
    rng = np.random.default_rng(1)
    rgb16 = rng.integers(0, 65536, (10, 14, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    loaded = _upscale_file(tmp_path / "deep.png", tmp_path / "out.png")
    assert loaded.rgb.dtype == np.uint16
    np.testing.assert_array_equal(loaded.rgb, rgb16)
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (20, 28, 3)
    out_rgb = cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(float)
    # within 2 of 65535 of the float bicubic result: no 8-bit step anywhere (that would be 128 off)
    assert np.abs(out_rgb - bicubic_reference(rgb16, 2, 65535)).max() <= 2
    assert (out_rgb % 257 != 0).mean() > 0.9


def test_sixteen_bit_png_keeps_profile_and_alpha(tmp_path):
    rng = np.random.default_rng(2)
    rgba16 = rng.integers(0, 65536, (8, 8, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(rgba16, cv2.COLOR_RGBA2BGRA))
    loaded = load_image(tmp_path / "deep.png")
    loaded.icc = SRGB
    up = TorchUpscaler(bicubic_model(2), tile=0)
    save_output_atomic(compose_output(up.upscale(loaded.rgb), loaded, 2), tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.info.get("icc_profile") == SRGB
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (16, 16, 4)
    np.testing.assert_array_equal(out[..., 3], resize_bicubic(rgba16[..., 3], (16, 16)))


def test_sixteen_bit_gray_and_tiff(tmp_path):
    gray16 = np.random.default_rng(3).integers(0, 65536, (9, 7), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), gray16)
    _upscale_file(tmp_path / "g.png", tmp_path / "g_out.tif")
    out = cv2.imread(str(tmp_path / "g_out.tif"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (18, 14)
    rgb16 = np.random.default_rng(4).integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c.tif"), rgb16)
    assert load_image(tmp_path / "c.tif").rgb.dtype == np.uint16
    _upscale_file(tmp_path / "c.tif", tmp_path / "c_out.png")
    assert cv2.imread(str(tmp_path / "c_out.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_sixteen_bit_to_jpeg_is_reduced_to_eight(tmp_path):
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((6, 6, 3), 40000, np.uint16))
    _upscale_file(tmp_path / "deep.png", tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB" and abs(int(np.asarray(out).mean()) - round(40000 / 257)) <= 2


def test_palette_cmyk_la_and_bilevel_modes(tmp_path):
    rgb = Image.fromarray(_pattern())
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    transparent = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    transparent.info["transparency"] = 0
    transparent.save(tmp_path / "pt.png", transparency=0)
    rgb.convert("CMYK").save(tmp_path / "c.jpg")
    Image.fromarray(np.dstack([_pattern()[..., 0], _pattern(seed=1)[..., 0]]), "LA").save(tmp_path / "la.png")
    rgb.convert("1").save(tmp_path / "b.png")
    expected_modes = {"p.png": "RGB", "pt.png": "RGBA", "c.jpg": "RGB", "la.png": "LA", "b.png": "L"}
    for name, mode in expected_modes.items():
        _upscale_file(tmp_path / name, tmp_path / f"out_{name}.png")
        with Image.open(tmp_path / f"out_{name}.png") as out:
            assert (out.mode, out.size) == (mode, (40, 24)), name


def test_cmyk_with_profile_converts_through_it(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red ink
    cmyk.save(tmp_path / "c.tif")
    loaded = load_image(tmp_path / "c.tif")
    assert loaded.icc is None and tuple(loaded.rgb[0, 0]) == (255, 0, 0)


def test_float_images_are_refused_in_one_line(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32), "F").save(tmp_path / "f.tif")
    from bsrn_cli.errors import BsrnError

    with pytest.raises(BsrnError, match="f.tif: 32-bit float"):
        load_image(tmp_path / "f.tif")
