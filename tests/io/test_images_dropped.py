"""Nothing dropped without a word: extra frames and pages, corrupt EXIF and short PNG data are
said; a PNG colour key (tRNS) becomes alpha; 16-bit PPM stays 16-bit."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from bsrn_cli.errors import BsrnError
from bsrn_cli.io.images import load_image
from tests.cli.test_upscale import bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.media import png_bytes, png_chunk


def _frames(count, size=(8, 6)):
    return [Image.new("RGB", size, (40 * i, 100, 200 - 40 * i)) for i in range(count)]


@pytest.mark.parametrize("name,words", [("anim.gif", "3 frames (animated)"), ("anim.png", "3 frames (animated)"),
                                        ("pages.tif", "3 pages")])
def test_extra_frames_and_pages_are_said(tmp_path, name, words):
    first, *rest = _frames(3)
    path = tmp_path / name
    first.save(path, save_all=True, append_images=rest)
    loaded = load_image(path)
    assert loaded.notes == [f"{path}: has {words}; only the first was upscaled"]
    assert tuple(loaded.rgb[0, 0]) == first.getpixel((0, 0))
    assert load_image(tmp_path / "one.png" if first.save(tmp_path / "one.png") is None else None).notes == []


def test_upscale_prints_the_note_for_an_animation(tmp_path, tiny_weights):
    first, *rest = _frames(2)
    first.save(tmp_path / "anim.gif", save_all=True, append_images=rest)
    result = bsrn("upscale", tmp_path / "anim.gif", "--model", tiny_weights)
    assert result.returncode == 0, result.stderr
    assert f"note: {tmp_path / 'anim.gif'}: has 2 frames (animated); only the first was upscaled" in result.stderr


def test_a_colour_key_becomes_alpha_in_rgb_and_gray_pngs(tmp_path):
    pixels = np.full((4, 5, 3), (10, 20, 30), np.uint8)
    pixels[0, 0] = (200, 100, 50)
    Image.fromarray(pixels).save(tmp_path / "rgb.png", transparency=(10, 20, 30))
    rgb = load_image(tmp_path / "rgb.png")
    assert rgb.alpha is not None and rgb.alpha[0, 0] == 255 and rgb.alpha[1, 1] == 0
    gray = np.full((4, 5), 7, np.uint8)
    gray[2, 3] = 90
    Image.fromarray(gray).save(tmp_path / "gray.png", transparency=7)
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.grayscale and loaded.alpha[2, 3] == 255 and loaded.alpha[0, 0] == 0


def test_sixteen_bit_ppm_stays_sixteen_bit(tmp_path):
    pixels = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000 + 7).astype(np.uint16)  # RGB
    cv2.imwrite(str(tmp_path / "deep.ppm"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    loaded = load_image(tmp_path / "deep.ppm")
    assert loaded.bits == 16 and np.array_equal(loaded.rgb, pixels)


def test_corrupt_exif_is_a_note_not_a_library_warning(tmp_path, recwarn):
    path = tmp_path / "exif.jpg"
    # one IFD entry (Make, 100 ASCII bytes) whose data lies past the end of the EXIF block
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHII", 0x010F, 2, 100, 0x1000) + bytes(4)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, exif=b"Exif\x00\x00" + tiff)
    loaded = load_image(path)
    assert loaded.notes == [f"{path}: its EXIF metadata is corrupt and was left out of the output"]
    assert loaded.exif is None and len(recwarn) == 0


@pytest.mark.parametrize("interlaced", [False, True])
def test_png_data_that_ends_early_is_an_error(tmp_path, interlaced):
    """A PNG cut inside its data: Pillow itself notices."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 20, 3), np.uint8))
    image.save(tmp_path / "full.png", interlace=interlaced)
    assert load_image(tmp_path / "full.png").rgb.shape == (16, 20, 3)  # complete: accepted
    data = (tmp_path / "full.png").read_bytes()
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    rows = zlib.decompress(data[start + 8:start + 8 + length])
    short = data[:start] + png_chunk(b"IDAT", zlib.compress(rows[: len(rows) * 2 // 3])) + png_chunk(b"IEND", b"")
    (tmp_path / "short.png").write_bytes(short)
    with pytest.raises(BsrnError, match=r"short\.png: corrupt or truncated image \("):
        load_image(tmp_path / "short.png")


def test_a_well_formed_png_with_fewer_rows_than_it_declares_is_an_error(tmp_path):
    """A complete zlib stream holding 3 of the 16 rows declared: Pillow fills the rest with black
    without a word; our check counts the rows' bytes."""
    rows = b"".join(b"\x00" + bytes(range(60)) for _ in range(3))
    (tmp_path / "short.png").write_bytes(png_bytes(20, 16, rows))
    with pytest.raises(BsrnError) as failure:
        load_image(tmp_path / "short.png")
    assert str(failure.value) == (f"{tmp_path / 'short.png'}: corrupt or truncated image (its pixel data ends "
                                  f"{13 * 61} bytes short of the 20x16 it declares)")
    (tmp_path / "full.png").write_bytes(png_bytes(20, 16, rows * 5 + b"\x00" + bytes(60)))
    assert load_image(tmp_path / "full.png").rgb.shape == (16, 20, 3)
