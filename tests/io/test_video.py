"""Videos: frames streamed, audio kept with the same duration, frame count and rate preserved."""

import cv2
import numpy as np
import pytest

from bsrn_cli.errors import BsrnError
from bsrn_cli.io import video
from tests.cli.test_upscale import bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.media import audio_samples, make_clip, stream_kinds


def _frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def _double(frame):
    return frame.repeat(2, 0).repeat(2, 1)


def test_video_with_audio_keeps_frames_rate_and_sound(tmp_path, tiny_weights):
    clip = make_clip(tmp_path / "clip.mp4", size=(32, 24), frames=12, fps=12)
    result = bsrn("upscale", clip, "--model", tiny_weights)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip_x2.mp4"
    frames, fps = _frames(out)
    source_frames, source_fps = _frames(clip)
    assert len(frames) == len(source_frames) == 12
    assert fps == source_fps == 12
    assert frames[0].shape == (48, 64, 3)
    assert stream_kinds(out).count("Audio") == 1
    assert audio_samples(out) == audio_samples(clip) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_x2.mp4"]


def test_frames_only_writes_pngs(tmp_path, tiny_weights):
    clip = make_clip(tmp_path / "clip.mkv", size=(16, 16), frames=5, fps=10, tone=False)
    result = bsrn("upscale", clip, "--model", tiny_weights, "--frames-only", tmp_path / "frames")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "frames" / "clip").iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(1, 6)]
    assert cv2.imread(str(tmp_path / "frames" / "clip" / names[0])).shape == (32, 32, 3)


def test_interrupted_video_leaves_nothing(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=8, fps=8)
    out_dir = tmp_path / "out"
    calls = []

    def interrupt_on_third(frame):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _double(frame)

    with pytest.raises(KeyboardInterrupt):
        video.upscale_video(clip, out_dir / "clip_x2.mp4", interrupt_on_third, 2)
    assert list(out_dir.iterdir()) == []


def test_without_ffmpeg_the_video_comes_out_silent_with_a_note(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4", frames=6, fps=6)
    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    result = video.upscale_video(clip, tmp_path / "out.avi", _double, 2)
    assert result.frames == 6 and "ffmpeg not found" in result.note
    frames, fps = _frames(tmp_path / "out.avi")
    assert len(frames) == 6 and fps == 6


def test_audio_only_and_text_files_are_one_line_errors(tmp_path):
    audio_only = make_clip(tmp_path / "tone.mp4", video=False)
    (tmp_path / "text.mp4").write_text("not a video")
    for path in (audio_only, tmp_path / "text.mp4"):
        with pytest.raises(BsrnError, match=path.name):
            video.upscale_video(path, tmp_path / "out" / path.name, _double, 2)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_subtitles_are_copied_or_left_out_with_a_note(tmp_path):
    import subprocess

    from tests.media import ffmpeg

    make_clip(tmp_path / "c.mp4", size=(16, 16), frames=6, fps=6)
    (tmp_path / "s.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-i", str(tmp_path / "c.mp4"), "-i", str(tmp_path / "s.srt"),
                    "-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt", str(tmp_path / "c.mkv")], check=True)
    kept = video.upscale_video(tmp_path / "c.mkv", tmp_path / "o.mkv", _double, 2)
    assert kept.note is None and sorted(stream_kinds(tmp_path / "o.mkv")) == ["Audio", "Subtitle", "Video"]
    dropped = video.upscale_video(tmp_path / "c.mkv", tmp_path / "o.avi", _double, 2)
    assert "subtitles" in dropped.note and sorted(stream_kinds(tmp_path / "o.avi")) == ["Audio", "Video"]
