"""Videos in and out: frames read by OpenCV, upscaled, and piped to ffmpeg, which encodes them
(H.264 yuv420p by default) and carries the input's audio and subtitles over.

Frames are read one at a time (never the whole video in memory) and written as raw RGB to an
ffmpeg process that encodes them into a hidden temporary file beside the output; a second ffmpeg
run copies the input's audio and subtitle streams next to the new video stream (re-encoding them
to a codec the container takes when it refuses theirs) into another temporary file, renamed
onto the output when complete. ffmpeg is always called with an argument list.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from bsrn_cli.errors import BsrnError
from bsrn_cli.io.atomic import atomic_write, temporary_file
from bsrn_cli.io.formats import CODECS, VIDEO_SUFFIXES  # noqa: F401 (the video side's names)
from bsrn_cli.io.images import check_input_file

CONTAINER_CODECS = {".mp4": ("h264", "hevc", "vp9"), ".mkv": ("h264", "hevc", "vp9"), ".mov": ("h264", "hevc"),
                    ".avi": ("h264",), ".webm": ("vp9",)}
# What refused audio is re-encoded to, and subtitles converted to (None: the container holds none).
AUDIO_CODECS = {".webm": ("libopus", "Opus")}
DEFAULT_AUDIO = ("aac", "AAC")
SUBTITLE_CODECS = {".mp4": "mov_text", ".mov": "mov_text", ".webm": "webvtt", ".mkv": "copy", ".avi": None}
# Quiet OpenCV's ffmpeg: its messages on stderr would break "one line per bad file".
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


@dataclass
class VideoResult:
    frames: int
    note: str | None = None  # one line for the user about what could not be kept as it was


def find_ffmpeg() -> str | None:
    """The ffmpeg that imageio-ffmpeg (a dependency) ships, else one on PATH, else None."""
    import shutil

    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return shutil.which("ffmpeg")


def require_ffmpeg() -> str:
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        raise BsrnError("ffmpeg not found: videos need it (pip install imageio-ffmpeg)")
    return ffmpeg


def video_codec_for(target: Path, codec: str | None) -> str:
    """The --codec for ``target``'s container: the one asked (if the container takes it) or its default."""
    suffix = target.suffix.lower()
    if suffix not in CONTAINER_CODECS:
        raise BsrnError(f"{target}: unsupported video container; use one of {', '.join(sorted(VIDEO_SUFFIXES))}")
    allowed = CONTAINER_CODECS[suffix]
    if codec is None:
        return allowed[0]
    if codec not in allowed:
        raise BsrnError(f"{target}: {suffix} does not take --codec {codec}; use {' or '.join(allowed)}")
    return codec


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


def _encode_args(ffmpeg: str, size: tuple[int, int], fps: float, codec: str, crf: int | None, target: Path,
                 output: str) -> list[str]:
    encoder, default_crf, extra = CODECS[codec]
    w, h = size
    rate = Fraction(fps).limit_denominator(1001000)
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{w}x{h}", "-r", f"{rate.numerator}/{rate.denominator}", "-i", "-", "-an"]
    if w % 2 or h % 2:  # yuv420p holds even sizes only
        args += ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0"]
    args += ["-c:v", encoder, "-pix_fmt", "yuv420p", "-crf", str(default_crf if crf is None else crf), *extra]
    if codec == "hevc" and target.suffix.lower() in (".mp4", ".mov"):
        args += ["-tag:v", "hvc1"]  # the tag Apple players require
    return args + [output]


def _encode(frames, upscale: Callable[[np.ndarray], np.ndarray], fps: float, codec: str, crf: int | None,
            target: Path, output: str, on_frame: Callable[[int], None] | None) -> tuple[int, tuple[int, int]]:
    """Pipe every upscaled frame to ffmpeg; (frames written, output size)."""
    ffmpeg = require_ffmpeg()
    process = None
    count, size = 0, (0, 0)
    with tempfile.TemporaryFile() as log:
        try:
            for frame in frames:
                big = np.ascontiguousarray(upscale(frame))
                if process is None:
                    size = (big.shape[1], big.shape[0])
                    process = subprocess.Popen(_encode_args(ffmpeg, size, fps, codec, crf, target, output),
                                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
                try:
                    process.stdin.write(big.tobytes())
                except BrokenPipeError:
                    break
                count += 1
                if on_frame is not None:
                    on_frame(count)
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
            status = process.wait()
        finally:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if status != 0:
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
            raise BsrnError(f"{target}: ffmpeg could not encode the video ({codec})"
                            + (f": {lines[-1]}" if lines else ""))
    return count, size


def upscale_video(source: Path, target: Path, upscale: Callable[[np.ndarray], np.ndarray],
                  on_frame: Callable[[int], None] | None = None, codec: str | None = None,
                  crf: int | None = None, audio: bool = True, replace: bool = True) -> VideoResult:
    """Upscale every frame of ``source`` into ``target`` (its suffix picks the container; the
    video is ``codec``, default H.264, yuv420p), then carry the audio and subtitle streams over.
    Audio that neither copying nor re-encoding gets into the container fails the file, unless
    ``audio`` is False (no audio written). Nothing appears at ``target`` unless complete."""
    codec = video_codec_for(target, codec)
    require_ffmpeg()
    capture = _open_capture(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    video_only = temporary_file(target, "frames")
    try:
        fps, first, frames = _first_frame(source, capture)
        count, (w, h) = _encode(_chain(first, frames), upscale, fps, codec, crf, target, video_only, on_frame)
        capture.release()
        notes = [f"{target}: {w}x{h} cropped to {w - w % 2}x{h - h % 2} (yuv420p needs even sizes)"] \
            if w % 2 or h % 2 else []
        note = _finish(source, target, video_only, audio, replace)
        return VideoResult(frames=count, note="; ".join(notes + ([note] if note else [])) or None)
    finally:
        capture.release()
        Path(video_only).unlink(missing_ok=True)


def _chain(first: np.ndarray, rest) -> "iter[np.ndarray]":
    yield first
    yield from rest


def _mux(ffmpeg: str, video_only: str, source: Path, target: str, audio: str | None,
         subtitles: str | None) -> None:
    """The new video stream with the source's audio (``audio``: 'copy', an encoder, or None for
    none) and subtitles ('copy', a codec, or None); raises _MuxFailed when ffmpeg refuses."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", video_only, "-i", str(source),
            "-map", "0:v:0"]
    if audio is not None:
        args += ["-map", "1:a?"]
    if subtitles is not None:
        args += ["-map", "1:s?"]
    args += ["-c:v", "copy"]
    if audio is not None:
        args += ["-c:a", audio]
    if subtitles is not None:
        args += ["-c:s", subtitles]
    done = subprocess.run(args + [target], capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise _MuxFailed(lines[-1] if lines else f"ffmpeg exit status {done.returncode}")


def _finish(source: Path, target: Path, video_only: str, audio: bool, replace: bool = True) -> str | None:
    """Carry audio and subtitles from ``source`` beside ``video_only``'s stream into ``target``;
    returns a note on what changed, or raises when the audio cannot be carried."""
    ffmpeg = require_ffmpeg()
    suffix = target.suffix.lower()
    kinds = _stream_kinds(ffmpeg, source)
    has_audio, has_subtitles = audio and "Audio" in kinds, "Subtitle" in kinds
    encoder, name = AUDIO_CODECS.get(suffix, DEFAULT_AUDIO)
    subtitle_codec = SUBTITLE_CODECS.get(suffix)
    dropped = "subtitles left out (this container does not take them)" if has_subtitles else None
    audio_ways = [("copy", None), (encoder, f"audio re-encoded to {name} (its codec does not fit this container)")] \
        if has_audio else [(None, None)]
    subtitle_ways = ([(subtitle_codec, None)] if has_subtitles and subtitle_codec else []) + [(None, dropped)]
    reason = ""
    for audio_way, audio_note in audio_ways:
        for subtitle_way, subtitle_note in subtitle_ways:
            try:
                atomic_write(target, lambda tmp: _mux(ffmpeg, video_only, source, tmp, audio_way, subtitle_way),
                             replace)
            except _MuxFailed as exc:
                reason = str(exc)
                continue
            said = [n for n in (audio_note, subtitle_note) if n]
            return f"{target}: {'; '.join(said)}" if said else None
    if not has_audio:  # nothing to carry, yet ffmpeg failed: the disk, the folder, the container
        raise BsrnError(f"{source}: could not write {target} (ffmpeg: {reason})")
    raise BsrnError(f"{source}: its audio cannot be carried into {suffix} (copied or re-encoded to {name}; "
                    f"ffmpeg: {reason}); choose another container with -o, or --no-audio")


class _MuxFailed(Exception):
    pass


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
