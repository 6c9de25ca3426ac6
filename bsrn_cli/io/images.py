"""Image files in and out: decoding with one-line errors, orientation, modes, 16-bit, metadata.

Reading: Pillow checks and decodes the file (and refuses decompression bombs); 16-bit colour
PNG/TIFF, which Pillow would squash to 8 bits, is decoded by OpenCV. EXIF orientation is
applied to the pixels and the tag reset to 1. Writing: Pillow for 8-bit, OpenCV for 16-bit
(with the ICC profile and EXIF put back into the PNG as iCCP/eXIf chunks), always to a
temporary file renamed when complete.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bsrn_cli.errors import BsrnError
from bsrn_cli.io.atomic import atomic_write
from bsrn_cli.io.formats import FORMAT_SUFFIXES, IMAGE_SUFFIXES, OUTPUT_FORMATS, output_format  # noqa: F401

# Refuse images whose decoded size would exhaust memory (Pillow's bomb check, made an error).
MAX_PIXELS = 16384 * 16384
ORIENTATION = 0x0112
EXIF_IFD, EXIF_WIDTH, EXIF_HEIGHT = 0x8769, 0xA002, 0xA003
GPS_IFD = 0x8825
_SIXTEEN_BIT_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass
class LoadedImage:
    """RGB pixels for the network, plus what the output needs to get the input's shape back."""

    rgb: np.ndarray                 # uint8 or uint16, (h, w, 3), upright
    alpha: np.ndarray | None        # same dtype, (h, w), or None
    grayscale: bool
    icc: bytes | None = None        # the colour profile that applies to ``rgb``
    exif: Image.Exif | None = None  # orientation already reset to 1
    notes: list[str] = field(default_factory=list)  # what was dropped, for the user

    @property
    def bits(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8


@dataclass
class OutputImage:
    pixels: np.ndarray              # (H, W) gray or (H, W, 3) RGB, uint8 or uint16
    alpha: np.ndarray | None
    icc: bytes | None = None
    exif: Image.Exif | None = None


def check_input_file(path: Path, what: str) -> None:
    """One-line errors for inputs that are no file at all: a folder, nothing, zero bytes."""
    if path.is_dir():
        raise BsrnError(f"{path}: is a folder, not {what}")
    if not path.exists():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BsrnError(f"{path}: symbolic link loop (the link leads back to itself)") from None
            if exc.errno == errno.ENAMETOOLONG:
                raise BsrnError(f"{path}: name too long for this system") from None
        raise BsrnError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BsrnError(f"{path}: empty file")


def _open(path: Path) -> tuple[Image.Image, list[str]]:
    """The decoded image, and the first line of each warning the decoder gave (for a note)."""
    check_input_file(path, "an image")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
        warned = _first_lines(caught)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BsrnError(f"{path}: image too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise BsrnError(f"{path}: not a recognised image file") from exc
    except PermissionError as exc:
        raise BsrnError(f"{path}: permission denied") from exc
    except MemoryError as exc:
        raise BsrnError(f"{path}: not enough memory to decode this image") from exc
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise BsrnError(f"{path}: corrupt or truncated image ({exc})") from exc
    if image.format == "PNG":
        missing = _png_rows_missing(path)
        if missing:
            raise BsrnError(f"{path}: corrupt or truncated image (its pixel data ends {missing} bytes short of the "
                            f"{image.width}x{image.height} it declares)")
    return image, warned


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_rows_missing(path: Path) -> int:
    """How many bytes of filtered rows the PNG's compressed data lacks (0: all there). Pillow
    fills rows that a short but well-formed data stream does not hold with black, silently."""
    with open(path, "rb") as f:
        data = f.read()
    width, height, depth, colour, _, _, interlaced = struct.unpack(">IIBBBBB", data[16:29])
    bits = depth * _CHANNELS.get(colour, 4)
    if interlaced:
        passes = [(-(-(width - x0) // dx), -(-(height - y0) // dy)) for x0, y0, dx, dy in _ADAM7
                  if width > x0 and height > y0]
    else:
        passes = [(width, height)]
    expected = sum(rows * (1 + -(-cols * bits // 8)) for cols, rows in passes)
    inflate, got, at = zlib.decompressobj(), 0, 8
    while at + 8 <= len(data) and got < expected:
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            chunk = data[at + 8:at + 8 + length]
            while chunk and got < expected:
                got += len(inflate.decompress(chunk, 1 << 20))
                chunk = inflate.unconsumed_tail
        elif kind == b"IEND":
            break
        at += 12 + length
    return max(expected - got, 0)


def _is_sixteen_bit_colour(path: Path, image: Image.Image) -> bool:
    """16 bits per sample in a colour (or gray + alpha) PNG/TIFF/PPM, which Pillow reads as 8-bit."""
    if image.mode not in ("RGB", "RGBA", "LA"):
        return False
    if image.format == "PPM":
        with open(path, "rb") as f:
            fields = f.read(64).split()
        return len(fields) >= 4 and fields[3].isdigit() and int(fields[3]) > 255  # P6 width height maxval
    if image.format == "PNG":
        with open(path, "rb") as f:
            header = f.read(25)
        return len(header) == 25 and header[24] == 16  # IHDR bit depth
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        return all(b == 16 for b in (bits if isinstance(bits, tuple) else (bits,)))
    return False


def _read_sixteen_bit(path: Path) -> np.ndarray:
    import cv2

    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16:
        raise BsrnError(f"{path}: corrupt 16-bit image")
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    if pixels.ndim == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return pixels


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to (h, w, ...) pixels, as a viewer displays them."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }.get(orientation)
    return np.ascontiguousarray(pixels if turned is None else turned(pixels))


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _to_rgb(path: Path, image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Palette, CMYK and other modes -> RGB or RGBA; the profile that then applies."""
    if image.mode == "RGB" and "transparency" in image.info:  # a tRNS colour key: keep it as alpha
        return image.convert("RGBA"), icc
    if image.mode in ("RGB", "RGBA"):
        return image, icc
    if image.mode == "CMYK":
        if icc:  # convert through the file's own profile: its colours, not a naive formula
            from PIL import ImageCms

            try:
                converted = ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                                      ImageCms.createProfile("sRGB"), outputMode="RGB")
                return converted, _srgb_profile()
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass
        return image.convert("RGB"), None
    has_alpha = image.mode in ("RGBa", "PA") or "A" in image.getbands() or \
        (image.mode == "P" and "transparency" in image.info)
    try:
        return image.convert("RGBA" if has_alpha else "RGB"), icc
    except ValueError as exc:
        raise BsrnError(f"{path}: unsupported image mode {image.mode}") from exc


def load_image(path: str | os.PathLike) -> LoadedImage:
    path = Path(path)
    image, said = _open(path)  # what the decoder warned about is said once, as a note
    notes = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        what = "pages" if image.format == "TIFF" else "frames (animated)"
        notes.append(f"{path}: has {frames} {what}; only the first was upscaled")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exif = image.getexif()
            exif.get(ORIENTATION, 1)
        said += _first_lines(caught)
        broken = any(_about_exif(text) for text in said)
    except Exception:  # Pillow raises many kinds of errors on corrupt EXIF
        broken = True
    notes += [f"{path}: {text}" for text in dict.fromkeys(said) if not _about_exif(text)]
    if broken:
        exif = Image.Exif()
        notes.append(f"{path}: its EXIF metadata is corrupt and was left out of the output")
    orientation = exif.get(ORIENTATION, 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    icc = image.info.get("icc_profile") or None
    mode = image.mode
    alpha = None
    if _is_sixteen_bit_colour(path, image):
        pixels = _read_sixteen_bit(path)
        if pixels.ndim == 3 and pixels.shape[2] == 4:
            pixels, alpha = pixels[..., :3], pixels[..., 3]
        grayscale = mode == "LA" or pixels.ndim == 2
        gray = pixels[..., 0] if mode == "LA" and pixels.ndim == 3 else pixels
        rgb = np.repeat(gray[..., None], 3, axis=2) if grayscale else pixels
    elif mode in _SIXTEEN_BIT_GRAY:
        gray = np.asarray(image).astype(np.int64).clip(0, 65535).astype(np.uint16)
        rgb, grayscale = np.repeat(gray[..., None], 3, axis=2), True
    elif mode == "F":
        raise BsrnError(f"{path}: 32-bit float images are not supported; save it as 16-bit PNG or TIFF")
    elif mode in ("1", "L", "LA", "La"):
        gray_image = image.convert("LA")
        rgb = np.repeat(np.asarray(gray_image.getchannel("L"))[..., None], 3, axis=2)
        keyed = "transparency" in image.info  # a tRNS colour key: that gray value is transparent
        alpha = np.asarray(gray_image.getchannel("A")) if mode in ("LA", "La") or keyed else None
        grayscale = True
    else:
        image, icc = _to_rgb(path, image, icc)
        rgb = np.asarray(image.convert("RGB"))
        alpha = np.asarray(image.getchannel("A")) if image.mode == "RGBA" else None
        grayscale = False
    if exif.get(ORIENTATION, 1) != 1:
        exif[ORIENTATION] = 1
    return LoadedImage(rgb=orient(rgb, orientation), alpha=None if alpha is None else orient(alpha, orientation),
                       grayscale=grayscale, icc=icc, exif=exif if len(exif) else None, notes=notes)


def _first_lines(caught: list) -> list[str]:
    """The first line of each recorded warning's message (library warnings run over lines)."""
    return [str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()]


def _about_exif(warning: str) -> bool:
    """Pillow's warnings on a broken EXIF block (its tags and IFDs)."""
    return any(word in warning.lower() for word in ("exif", "tag", "ifd"))


def to_eight_bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.rint(pixels.astype(np.float32) / 257.0).clip(0, 255).astype(np.uint8)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """uint8 (h, w, 3) RGB pixels of an image file (16-bit reduced to 8)."""
    return to_eight_bit(load_image(path).rgb)


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """uint8 pixels as stored: (h, w) for grayscale, (h, w, 3) for colour (alpha dropped)."""
    loaded = load_image(path)
    rgb = to_eight_bit(loaded.rgb)
    return rgb[..., 0].copy() if loaded.grayscale else rgb


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> uint8 gray, the conversion Pillow applies for mode "L" (ITU-R 601 luma)."""
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))


def luma(rgb: np.ndarray) -> np.ndarray:
    """8- or 16-bit RGB -> gray of the same dtype (ITU-R 601 weights, rounded)."""
    if rgb.dtype == np.uint8:
        return rgb_to_gray(rgb)
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.rint(y).clip(0, 65535).astype(np.uint16)


def resize_bicubic(channel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One 8- or 16-bit channel to (width, height) with bicubic interpolation, in float."""
    peak = 65535 if channel.dtype == np.uint16 else 255
    resized = Image.fromarray(channel.astype(np.float32), "F").resize(size, Image.BICUBIC)
    return np.rint(np.asarray(resized)).clip(0, peak).astype(channel.dtype)


def resize_exact(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) 8- or 16-bit to (width, height): Pillow's Lanczos for 8 bits; bicubic per
    channel in float for 16 bits (Pillow has no 16-bit RGB mode), rounded back."""
    if pixels.dtype == np.uint8:
        return np.asarray(Image.fromarray(pixels, "RGB").resize(size, Image.LANCZOS))
    return np.dstack([resize_bicubic(pixels[..., c], size) for c in range(pixels.shape[2])])


def compose_output(rgb: np.ndarray, loaded: LoadedImage, scale: int,
                   alpha: np.ndarray | None = None) -> OutputImage:
    """Give the upscaled RGB the input's shape again: grayscale stays gray, alpha comes back
    (``alpha``, when the network upscaled it; else bicubic), bit depth and metadata kept."""
    pixels = luma(rgb) if loaded.grayscale else rgb
    if loaded.alpha is not None and alpha is None:
        alpha = resize_bicubic(loaded.alpha, (rgb.shape[1], rgb.shape[0]))
    exif = loaded.exif
    if exif is not None:
        exif_ifd = exif.get_ifd(EXIF_IFD)
        if EXIF_WIDTH in exif_ifd or EXIF_HEIGHT in exif_ifd:
            exif_ifd[EXIF_WIDTH], exif_ifd[EXIF_HEIGHT] = rgb.shape[1], rgb.shape[0]
    return OutputImage(pixels=pixels, alpha=alpha if loaded.alpha is not None else None, icc=loaded.icc, exif=exif)


def _exif_bytes(exif: Image.Exif | None) -> bytes | None:
    if exif is None:
        return None
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _add_png_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (both must precede the image data)."""
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif)
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunks + png[end_of_ihdr:]


def _encode_sixteen_bit(out: OutputImage, fmt: str) -> bytes:
    import cv2

    pixels = out.pixels
    if out.alpha is not None:
        rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
        array = cv2.cvtColor(np.dstack([rgb, out.alpha]), cv2.COLOR_RGBA2BGRA)
    else:
        array = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == "PNG" else []
    ok, encoded = cv2.imencode(".png" if fmt == "PNG" else ".tif", array, params)
    if not ok:
        raise BsrnError(f"could not encode a 16-bit {fmt}")
    data = encoded.tobytes()
    return _add_png_metadata(data, out.icc, _exif_bytes(out.exif)) if fmt == "PNG" else data


def _flatten_on_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    base = pixels.astype(np.float32) if pixels.ndim == 3 else pixels.astype(np.float32)[..., None]
    flat = np.rint(base * a + 255.0 * (1 - a)).clip(0, 255).astype(np.uint8)
    return flat if pixels.ndim == 3 else flat[..., 0]


def _tiff_exif(exif: Image.Exif) -> Image.Exif:
    """The EXIF tags a TIFF can take: the main ones, without the pointers to the Exif and GPS
    sub-IFDs, which Pillow's TIFF writer cannot write (libtiff refuses the whole file)."""
    flat = Image.Exif()
    for tag, value in exif.items():
        if tag not in (EXIF_IFD, GPS_IFD):
            flat[tag] = value
    return flat


def save_output_atomic(out: OutputImage, path: Path, quality: int = 95, replace: bool = True) -> None:
    """Write an upscaled image in the format its suffix names, with its profile and EXIF
    (``replace=False``: :class:`~bsrn_cli.io.atomic.OutputExists` if the file appeared meanwhile)."""
    fmt = output_format(path)
    if out.pixels.dtype == np.uint16 and fmt in ("PNG", "TIFF"):
        data = _encode_sixteen_bit(out, fmt)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), replace)
        return
    pixels = to_eight_bit(out.pixels)
    alpha = None if out.alpha is None else to_eight_bit(out.alpha)
    if fmt == "JPEG" and alpha is not None:  # JPEG has no alpha: show it as it looks on white
        pixels, alpha = _flatten_on_white(pixels, alpha), None
    image = Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    options: dict = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "TIFF":
        options["compression"] = "tiff_adobe_deflate"
    if fmt != "BMP":
        if out.icc:
            options["icc_profile"] = out.icc
        if out.exif is not None:
            options["exif"] = _tiff_exif(out.exif).tobytes() if fmt == "TIFF" else out.exif.tobytes()
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt, **options), replace)


def save_image_array(pixels: np.ndarray, path: Path) -> None:
    """Save uint8 (h, w) or (h, w, 3) pixels atomically."""
    save_image_atomic(Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB"), path)


def save_image_atomic(image: Image.Image, path: Path, quality: int = 95) -> None:
    """Write to a temporary file in the output folder, then rename: never a partial output."""
    fmt = output_format(path)
    if fmt == "JPEG" and image.mode in ("RGBA", "LA"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    atomic_write(path, lambda tmp: image.save(tmp, format=fmt, **options))
