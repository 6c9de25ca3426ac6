"""File kinds by suffix and the video codecs, importable at once (no numpy, Pillow or OpenCV), so
the command line checks its options before any heavy import."""

from __future__ import annotations

from pathlib import Path

from bsrn_cli.errors import BsrnError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".tga", ".ppm", ".pgm"}
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
                  ".tiff": "TIFF", ".bmp": "BMP"}
FORMAT_SUFFIXES = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif"}  # --format
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm"}
# --codec: ffmpeg encoder, default --crf (about the same visual quality), extra arguments.
CODECS = {"h264": ("libx264", 18, ("-preset", "medium")),
          "hevc": ("libx265", 22, ("-preset", "medium", "-x265-params", "log-level=error")),
          "vp9": ("libvpx-vp9", 31, ("-b:v", "0", "-row-mt", "1"))}


def output_format(path: Path) -> str:
    """Pillow's format name for an output file's suffix; a one-line error for others."""
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BsrnError(f"{path}: unsupported output format {path.suffix!r}; use one of "
                        f"{', '.join(sorted(OUTPUT_FORMATS))}")
    return fmt
