"""Image files in and out: decoding with one-line errors, atomic writes, mode handling."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bsrn_cli.errors import BsrnError
from bsrn_cli.io.atomic import atomic_write

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".tga", ".ppm", ".pgm"}
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".bmp": "BMP"}
# Refuse images whose decoded size would exhaust memory (Pillow's bomb check, made an error).
MAX_PIXELS = 16384 * 16384


@dataclass
class LoadedImage:
    """RGB pixels for the network, plus what is needed to give the output the input's shape."""

    rgb: np.ndarray            # uint8, (h, w, 3)
    alpha: np.ndarray | None   # uint8, (h, w) or None
    grayscale: bool


def _open(path: Path) -> Image.Image:
    if path.is_dir():
        raise BsrnError(f"{path}: is a folder, not an image")
    if not path.exists():
        raise BsrnError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BsrnError(f"{path}: empty file")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BsrnError(f"{path}: image too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise BsrnError(f"{path}: not a recognised image file") from exc
    except PermissionError as exc:
        raise BsrnError(f"{path}: permission denied") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BsrnError(f"{path}: corrupt or truncated image ({exc})") from exc
    return ImageOps.exif_transpose(image)


def load_image(path: str | os.PathLike) -> LoadedImage:
    path = Path(path)
    image = _open(path)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    grayscale = image.mode in ("L", "LA", "1", "I;16", "I", "I;16B", "I;16L")
    alpha = np.asarray(image.convert("RGBA").getchannel("A")) if has_alpha else None
    if image.mode.startswith("I"):  # 16/32-bit gray: scale to 8 bits for now
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257.0).round().clip(0, 255).astype(np.uint8))
    rgb = np.asarray(image.convert("RGB"))
    return LoadedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, grayscale=grayscale)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """uint8 (h, w, 3) RGB pixels of an image file."""
    return load_image(path).rgb


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """uint8 pixels as stored: (h, w) for grayscale, (h, w, 3) for colour (alpha dropped)."""
    loaded = load_image(path)
    return loaded.rgb[..., 0].copy() if loaded.grayscale else loaded.rgb


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BsrnError(f"{path}: unsupported output format {path.suffix!r}; use one of "
                        f"{', '.join(sorted(OUTPUT_FORMATS))}")
    return fmt


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> uint8 gray, the conversion Pillow applies for mode "L" (ITU-R 601 luma)."""
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))


def compose_output(rgb: np.ndarray, loaded: LoadedImage, scale: int) -> Image.Image:
    """Give the upscaled RGB the input's shape again: grayscale stays gray, alpha comes back."""
    out = Image.fromarray(rgb, "RGB")
    if loaded.grayscale:
        out = out.convert("L")
    if loaded.alpha is not None:
        alpha = Image.fromarray(loaded.alpha, "L").resize(out.size, Image.BICUBIC)
        out.putalpha(alpha)
    return out


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
