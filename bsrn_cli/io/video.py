"""Videos in and out: frames streamed through OpenCV, audio and subtitles copied by ffmpeg.

Frames are read one at a time (never the whole video in memory), upscaled and written by
OpenCV into a hidden temporary file beside the output; ffmpeg then copies the input's audio
and subtitle streams next to the new video stream into a second temporary file, which is
renamed onto the output when complete. ffmpeg is always called with an argument list.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bsrn_cli.errors import BsrnError
from bsrn_cli.io.atomic import atomic_write
from bsrn_cli.io.images import check_input_file

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm"}
FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
# Quiet OpenCV's ffmpeg: its messages on stderr would break "one line per bad file".
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


@dataclass
class VideoResult:
    frames: int
    note: str | None = None  # one line for the user when audio or subtitles could not be kept


def find_ffmpeg() -> str | None:
    """The ffmpeg that imageio-ffmpeg ships, else one on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return shutil.which("ffmpeg")


@contextmanager
def _quiet_stderr():
    """Silence native libraries that print on fd 2 (OpenCV's codec-tag fallback notice)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _open_capture(path: Path):
    import cv2

    check_input_file(path, "a video")
    if not os.access(path, os.R_OK):
        raise BsrnError(f"{path}: permission denied")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise BsrnError(f"{path}: not a readable video")
    return capture


def _frames(capture) -> "iter[np.ndarray]":
    import cv2

    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def video_info(path: Path) -> tuple[float, int]:
    """(frames per second, frame count as the container states it, 0 if unknown)."""
    import cv2

    capture = _open_capture(path)
    try:
        return capture.get(cv2.CAP_PROP_FPS), max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        capture.release()


def _first_frame(path: Path, capture) -> tuple[float, np.ndarray, "iter[np.ndarray]"]:
    import cv2

    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = _frames(capture)
    first = next(frames, None)
    if first is None:
        raise BsrnError(f"{path}: video has no frames")
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise BsrnError(f"{path}: video has no frame rate")
    return fps, first, frames


def _stream_kinds(ffmpeg: str, path: Path) -> set[str]:
    """Which stream kinds ('Audio', 'Subtitle', ...) a file holds, from ffmpeg's description."""
    probe = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True,
                           errors="replace")
    return set(re.findall(r"Stream #\d+:\d+.*?: (Audio|Subtitle|Video|Data):", probe.stderr))


def _mux(ffmpeg: str, video_only: str, source: Path, target: str, subtitles: bool, reencode_audio: bool) -> bool:
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", video_only, "-i", str(source),
            "-map", "0:v:0", "-map", "1:a?"]
    if subtitles:
        args += ["-map", "1:s?"]
    args += ["-c:v", "copy", "-c:a", "aac" if reencode_audio else "copy"]
    if subtitles:
        args += ["-c:s", "mov_text" if Path(target).suffix.lower() in (".mp4", ".mov") else "copy"]
    args += [target]
    return subprocess.run(args, capture_output=True).returncode == 0


def upscale_video(source: Path, target: Path, upscale: Callable[[np.ndarray], np.ndarray],
                  on_frame: Callable[[int], None] | None = None) -> VideoResult:
    """Upscale every frame of ``source`` into ``target`` (its suffix picks the container),
    then copy the audio and subtitle streams. Nothing appears at ``target`` unless complete."""
    import cv2

    fourcc = FOURCC.get(target.suffix.lower())
    if fourcc is None:
        raise BsrnError(f"{target}: unsupported video container; use one of {', '.join(sorted(VIDEO_SUFFIXES))}")
    capture = _open_capture(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, video_only = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".frames{target.suffix}", dir=target.parent)
    os.close(fd)
    try:
        fps, first, frames = _first_frame(source, capture)
        big = upscale(first)  # the output size is the first upscaled frame's
        with _quiet_stderr():
            writer = cv2.VideoWriter(video_only, cv2.VideoWriter_fourcc(*fourcc), fps, (big.shape[1], big.shape[0]))
        if not writer.isOpened():
            raise BsrnError(f"{target}: OpenCV cannot write this container here")
        count = 0
        try:
            for frame in _chain(first, frames):
                writer.write(cv2.cvtColor(big if count == 0 else upscale(frame), cv2.COLOR_RGB2BGR))
                count += 1
                if on_frame is not None:
                    on_frame(count)
        finally:
            writer.release()
        capture.release()
        note = _finish(source, target, video_only)
        return VideoResult(frames=count, note=note)
    finally:
        capture.release()
        Path(video_only).unlink(missing_ok=True)


def _chain(first: np.ndarray, rest) -> "iter[np.ndarray]":
    yield first
    yield from rest


def _finish(source: Path, target: Path, video_only: str) -> str | None:
    """Copy audio and subtitles from ``source`` beside ``video_only``'s stream into ``target``."""
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        atomic_write(target, lambda tmp: shutil.copyfile(video_only, tmp))
        return f"{target}: written without audio or subtitles: ffmpeg not found (pip install imageio-ffmpeg)"
    kinds = _stream_kinds(ffmpeg, source)
    if not kinds & {"Audio", "Subtitle"}:
        atomic_write(target, lambda tmp: shutil.copyfile(video_only, tmp))
        return None
    has_subtitles = "Subtitle" in kinds
    dropped = "; subtitles could not be copied into this container and were left out" if has_subtitles else ""
    attempts = [(True, False, None)] if has_subtitles else []
    attempts += [(False, False, dropped[2:] or None),
                 (False, True, "audio re-encoded to AAC (its codec does not fit this container)" + dropped)]
    for subtitles, reencode, note in attempts:
        try:
            atomic_write(target, lambda tmp: _check(_mux(ffmpeg, video_only, source, tmp, subtitles, reencode)))
        except _MuxFailed:
            continue
        return None if note is None else f"{target}: {note}"
    atomic_write(target, lambda tmp: shutil.copyfile(video_only, tmp))
    return f"{target}: written without audio: ffmpeg could not copy the audio stream"


class _MuxFailed(Exception):
    pass


def _check(ok: bool) -> None:
    if not ok:
        raise _MuxFailed


def write_frames(source: Path, folder: Path, upscale: Callable[[np.ndarray], np.ndarray], overwrite: bool,
                 on_frame: Callable[[int], None] | None = None) -> VideoResult:
    """--frames-only: every upscaled frame as ``folder/frame_000001.png`` (each written atomically;
    frames already there are kept unless ``overwrite``, so a stopped run resumes)."""
    from PIL import Image

    capture = _open_capture(source)
    try:
        _, first, frames = _first_frame(source, capture)
        count = 0
        for frame in _chain(first, frames):
            count += 1
            path = folder / f"frame_{count:06d}.png"
            if overwrite or not path.exists():
                image = Image.fromarray(upscale(frame), "RGB")
                atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
            if on_frame is not None:
                on_frame(count)
        return VideoResult(frames=count)
    finally:
        capture.release()
