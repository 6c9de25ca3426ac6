"""The image pipeline on real files made here: orientation, profiles, EXIF, alpha, 16-bit, modes,
and the decompression-bomb guard on complete, valid files at and over its limit."""

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

import bsrn_cli.io.images as images
from bsrn_cli.backends.torch_backend import TorchUpscaler
from bsrn_cli.errors import BsrnError
from bsrn_cli.io.images import compose_output, load_image, orient, save_output_atomic
from tests.icc import cmyk_profile, lab_to_srgb, profile_lab
from tests.media import bicubic_model, bicubic_reference, png_chunk
from tests.reference import bicubic_resize

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def write_complete_png(path: Path, width: int, height: int, row_byte: int = 0) -> Path:
    """A valid 1-bit grayscale PNG with every row present (each row's bytes all ``row_byte``),
    deflated in a stream so that even 16384 x 16385 pixels take a few MB of memory and ~0.2 s."""
    row = b"\x00" + bytes([row_byte]) * ((width + 7) // 8)  # filter type 0, then the packed pixels
    rows_per_block = max(1, (1 << 20) // len(row))
    deflate = zlib.compressobj(9)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)))
        for first in range(0, height, rows_per_block):
            data = deflate.compress(row * min(rows_per_block, height - first))
            if data:
                f.write(png_chunk(b"IDAT", data))
        f.write(png_chunk(b"IDAT", deflate.flush()) + png_chunk(b"IEND", b""))
    return path


def _png_pixel_data_size(path: Path) -> int:
    """Bytes the IDAT stream inflates to, read chunk by chunk with every CRC checked; raises
    unless the zlib stream is complete and the file ends with IEND."""
    data = path.read_bytes()
    inflate, size, at, kind = zlib.decompressobj(), 0, 8, b""
    while kind != b"IEND":
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            while body:
                size += len(inflate.decompress(body, 1 << 24))
                body = inflate.unconsumed_tail
        at += 12 + length
    assert inflate.eof and at == len(data)
    return size


class _DecoderReached(Exception):
    """Raised by the recording stand-in for the decoder: the guard let the image through."""


def _record_decoding(monkeypatch, decode: bool) -> list:
    """Make Pillow's ImageFile.load (the PNG decoder's entry) record the size of each image it
    is asked to decode (calls on an image already decoded are no-ops and not recorded); it then
    decodes (``decode``) or stops with _DecoderReached instead."""
    calls, real_load = [], ImageFile.ImageFile.load

    def load(self):
        if self.tile:
            calls.append(self.size)
        if not decode:
            raise _DecoderReached
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


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
    expected_alpha = np.rint(bicubic_resize(alpha, 40, 24)).clip(0, 255)
    np.testing.assert_array_equal(out_alpha, expected_alpha)
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
    # bicubic alpha, rounded: the float32 resize may round a value within ~0.004 of a half either way
    exact = bicubic_resize(rgba16[..., 3], 16, 16).clip(0, 65535)
    assert np.abs(out[..., 3] - exact).max() <= 0.51


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


def _without_date_and_id(icc: bytes) -> bytes:
    """A profile without its creation date and ID (lcms stamps the time on every one it makes)."""
    return icc[:24] + icc[36:84] + icc[100:]


@pytest.mark.parametrize("suffix", [".tif", ".jpg"])
def test_cmyk_with_profile_shows_the_profiles_colours(tmp_path, suffix):
    """A CMYK file is converted through its own ICC profile: the pixels are the sRGB of the
    L*a*b* the profile gives (computed here from the published formulas), not a naive
    formula's, and the result carries an sRGB profile."""
    rng = np.random.default_rng(5)
    if suffix == ".tif":  # lossless: every pixel a different ink combination
        cmyk = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
        cmyk[0, :4] = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 255, 0), (0, 0, 0, 255)]
        options = {"compression": "tiff_deflate"}
    else:  # lossy: flat 16 x 16 blocks, which JPEG at quality 100 keeps within a level
        inks = np.array([(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 255, 0), (128, 40, 200, 64)], np.uint8)
        cmyk = np.kron(inks.reshape(2, 2, 4), np.ones((16, 16, 1), np.uint8))
        options = {"quality": 100}
    Image.fromarray(cmyk, "CMYK").save(tmp_path / f"c{suffix}", icc_profile=cmyk_profile(), **options)
    with Image.open(tmp_path / f"c{suffix}") as stored:
        assert stored.mode == "CMYK" and stored.info["icc_profile"] == cmyk_profile()
    loaded = load_image(tmp_path / f"c{suffix}")
    expected = lab_to_srgb(profile_lab(cmyk.astype(float)))
    assert loaded.rgb.dtype == np.uint8 and not loaded.grayscale
    assert np.abs(loaded.rgb - expected).max() <= 3  # littleCMS's precalculated 8-bit grid, rounding
    assert np.abs(loaded.rgb - np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB"), float)).max() > 100
    assert _without_date_and_id(loaded.icc) == _without_date_and_id(SRGB)


def test_cmyk_without_profile_uses_the_naive_formula(tmp_path):
    """Without a profile, CMYK becomes RGB = (255 - ink) * (255 - K) / 255, with no profile."""
    cmyk = np.random.default_rng(6).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
    loaded = load_image(tmp_path / "c.tif")
    ink = cmyk.astype(float)
    expected = (255 - ink[..., :3]) * (255 - ink[..., 3:]) / 255
    assert loaded.icc is None and np.abs(loaded.rgb - expected).max() <= 1


def test_bomb_guard_at_the_real_limit(tmp_path, monkeypatch):
    """Complete, valid PNGs: 16384 x 16385 pixels (one row over MAX_PIXELS) is refused in one
    line before the decoder runs; 16384 x 16384 (exactly at it) goes on to be decoded."""
    assert images.MAX_PIXELS == 16384 * 16384
    over = write_complete_png(tmp_path / "over.png", 16384, 16385)
    at = write_complete_png(tmp_path / "at.png", 16384, 16384)
    assert _png_pixel_data_size(over) == 16385 * (1 + 16384 // 8)  # every row is there
    assert _png_pixel_data_size(at) == 16384 * (1 + 16384 // 8)
    calls = _record_decoding(monkeypatch, decode=False)  # decoding 268 M pixels is not needed
    with pytest.raises(BsrnError, match=r"over\.png: image too large to decode safely"):
        load_image(over)
    assert calls == []
    with pytest.raises(_DecoderReached):
        load_image(at)
    assert calls == [(16384, 16384)]


@pytest.mark.parametrize("size, accepted", [((8, 8), True), ((9, 8), False), ((16, 9), False)])
def test_bomb_guard_decodes_at_the_limit_and_refuses_over_it(tmp_path, monkeypatch, size, accepted):
    """With MAX_PIXELS lowered to 64, complete small PNGs: 64 pixels decode to the right pixels;
    72 (over the limit: Pillow's warning, made an error) and 144 (over twice the limit: Pillow's
    own error) are refused in one line and never decoded."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the guard sets it; restore
    monkeypatch.setattr(images, "MAX_PIXELS", 64)
    path = write_complete_png(tmp_path / "p.png", *size, row_byte=0b00001111)
    calls = _record_decoding(monkeypatch, decode=True)
    if not accepted:
        with pytest.raises(BsrnError, match=r"p\.png: image too large to decode safely"):
            load_image(path)
        assert calls == []
        return
    loaded = load_image(path)
    stripes = np.unpackbits(np.array([0b00001111], np.uint8))[: size[0]] * 255
    assert calls == [size] and loaded.grayscale
    np.testing.assert_array_equal(loaded.rgb, np.broadcast_to(stripes[None, :, None], (8, 8, 3)))


def test_float_images_are_refused_in_one_line(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32), "F").save(tmp_path / "f.tif")
    from bsrn_cli.errors import BsrnError

    with pytest.raises(BsrnError, match="f.tif: 32-bit float"):
        load_image(tmp_path / "f.tif")
