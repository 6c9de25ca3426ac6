"""Media files the tests make on the fly: a model whose output is exact bicubic, PNGs built
chunk by chunk (for malformed ones), short clips with a tone made by ffmpeg (a test pattern, or
given frames at given times), and what ffmpeg and OpenCV read back from a clip."""

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
        from tests.conftest import skip_unless_local

        skip_unless_local("ffmpeg not available (pip install imageio-ffmpeg)")
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


def block_frames(count: int, size=(32, 24), seed: int = 0, block: int = 8) -> list[np.ndarray]:
    """``count`` (h, w, 3) uint8 frames of random-colour ``block`` x ``block`` squares, a new draw per
    frame: R, G and B differ, and neighbouring frames have nothing in common."""
    rng = np.random.default_rng(seed)
    w, h = size
    tile = np.ones((block, block, 1), np.uint8)
    return [np.kron(rng.integers(0, 256, (h // block, w // block, 3), dtype=np.uint8), tile) for _ in range(count)]


def encode_frames(path: Path, frames: list[np.ndarray], fps: int = 12, times: list[float] | None = None,
                  video_codec: tuple[str, ...] = ("-c:v", "mpeg4", "-q:v", "2"),
                  audio_codec: tuple[str, ...] | None = ("-c:a", "aac"), audio_rate: int = 8000) -> Path:
    """A clip of exactly these RGB frames at ``fps`` (or at ``times`` seconds each: variable frame
    rate, kept as given), with a 440 Hz tone as long as the video unless ``audio_codec`` is None."""
    h, w = frames[0].shape[:2]
    args = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    if audio_codec is not None:
        seconds = len(frames) / fps if times is None else times[-1] + 1 / fps
        args += ["-t", f"{seconds}", "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={audio_rate}"]
    args += ["-map", "0:v"] + (["-map", "1:a", *audio_codec] if audio_codec else [])
    if times is not None:
        pts = "+".join(f"eq(N\\,{i})*{t}" for i, t in enumerate(times))
        args += ["-vf", f"settb=1/1000,setpts=({pts})/TB", "-enc_time_base:v", "1:1000", "-fps_mode", "passthrough"]
    args += [*video_codec, "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(args, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True,
                   capture_output=True)
    return path


def frame_rate(path: Path) -> float:
    """The frame rate OpenCV reports for a video (what bsrn writes its output at)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()


def decode_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as (h, w, 3) RGB uint8, decoded by OpenCV."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def packets_md5(path: Path, stream: str = "a:0") -> str:
    """MD5 of the compressed packets of one stream, read without decoding (-c copy)."""
    result = subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}",
                             "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def audio_params(path: Path) -> tuple[str, int, str]:
    """(codec, sample rate, channel layout) of the first audio stream, as ffmpeg describes it."""
    probe = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    found = re.search(r"Stream #\d+:\d+.*?: Audio: (\w+).*?, (\d+) Hz, ([\w.()]+)", probe.stderr)
    assert found, probe.stderr
    return found[1], int(found[2]), found[3]


def video_codec(path: Path) -> str:
    """The codec of the first video stream, as ffmpeg names it (mpeg4, mjpeg, vp8, ...)."""
    probe = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    found = re.search(r"Stream #\d+:\d+.*?: Video: (\w+)", probe.stderr)
    assert found, probe.stderr
    return found[1]


def pixel_format(path: Path) -> str:
    """The pixel format of the first video stream (yuv420p, ...), as ffmpeg describes it."""
    probe = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    found = re.search(r"Stream #\d+:\d+.*?: Video: [^,]+, (\w+)", probe.stderr)
    assert found, probe.stderr
    return found[1]


def packet_times(path: Path, stream: str = "v:0") -> list[float]:
    """Presentation times in seconds of one stream's packets (as stored, no decoding), sorted."""
    result = subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}",
                             "-c", "copy", "-f", "framemd5", "-"], capture_output=True, text=True, check=True)
    num, den = map(int, re.search(r"#tb 0: (\d+)/(\d+)", result.stdout).groups())
    rows = [line.split(",") for line in result.stdout.splitlines() if line and not line.startswith("#")]
    return sorted(int(row[2]) * num / den for row in rows)
