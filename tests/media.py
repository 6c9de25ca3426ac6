"""Media files the tests make on the fly: a model whose output is exact bicubic, PNGs built
chunk by chunk (for malformed ones), and short clips with a tone made by ffmpeg."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bsrn_cli.io.video import find_ffmpeg
from tests.conftest import tiny_model


def bicubic_model(scale: int = 2):
    """A tiny BSRN whose last conv is zero: its output is exactly bicubic(x) (image skip)."""
    model = tiny_model(scale)
    with torch.no_grad():
        model.upsampler[0].weight.zero_()
        model.upsampler[0].bias.zero_()
    return model


def bicubic_reference(pixels: np.ndarray, scale: int, peak: int) -> np.ndarray:
    """(h, w, 3) integers -> float (h*s, w*s, 3) in pixel units: what bicubic_model computes."""
    x = torch.from_numpy(pixels.astype(np.float32).transpose(2, 0, 1)).unsqueeze(0) / peak
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    return y[0].permute(1, 2, 0).numpy() * peak


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, rows: bytes, extra_chunks: bytes = b"") -> bytes:
    """An 8-bit RGB PNG with the given (filter byte + pixels per row) data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + extra_chunks
            + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def ffmpeg() -> str:
    path = find_ffmpeg()
    if path is None:
        import pytest

        pytest.skip("ffmpeg not available (pip install imageio-ffmpeg)")
    return path


def make_clip(path: Path, size=(32, 24), frames: int = 12, fps: int = 12, tone: bool = True,
              video: bool = True) -> Path:
    """A test-pattern clip with (optionally) a 440 Hz tone lasting exactly as long."""
    seconds = frames / fps
    args = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc=size={size[0]}x{size[1]}:rate={fps}"]
    if tone:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"]
    if video:
        args += ["-frames:v", str(frames), "-c:v", "mpeg4", "-pix_fmt", "yuv420p"]
    if tone:
        args += ["-t", f"{seconds}", "-c:a", "aac"]
    subprocess.run(args + [str(path)], check=True, capture_output=True)
    return path


def audio_samples(path: Path, rate: int = 8000) -> int:
    """Samples in the first audio stream, decoded to mono 16-bit at ``rate`` (0 if none)."""
    decoded = subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
                              "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"], capture_output=True)
    return len(decoded.stdout) // 2 if decoded.returncode == 0 else 0


def stream_kinds(path: Path) -> list[str]:
    probe = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return re.findall(r"Stream #\d+:\d+.*?: (Audio|Video|Subtitle):", probe.stderr)
