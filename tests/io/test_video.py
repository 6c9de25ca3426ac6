"""Videos: frames streamed to ffmpeg and encoded H.264 yuv420p by default (HEVC, VP9 on request;
VP9 for .webm), audio kept with the same duration, frame count and rate preserved; frame pixels
are the model applied to each input frame, in order; audio packets are copied, or re-encoded to
a codec the container takes; audio that cannot be carried fails the file unless --no-audio."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from bsrn_cli.backends import bitpack
from bsrn_cli.errors import BsrnError
from bsrn_cli.io import video
from bsrn_cli.pretrained.loader import load_model
from bsrn_cli.pretrained.weights import save_weights
from tests.cli.test_upscale import bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import tiny_model
from tests.media import (audio_params, audio_samples, block_frames, decode_frames, encode_frames, frame_rate, make_clip,
                         packet_times, packets_md5, pixel_format, stream_kinds, video_codec)

# The backend `--backend auto` picks on this machine; the tests name it so the in-process run matches.
BACKEND = "packed" if bitpack.available() else "torch"


def _double(frame):
    return frame.repeat(2, 0).repeat(2, 1)


def test_video_with_audio_keeps_frames_rate_and_sound(tmp_path, tiny_weights):
    clip = make_clip(tmp_path / "clip.mp4", size=(32, 24), frames=12, fps=12)
    result = bsrn("upscale", clip, "--model", tiny_weights)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip_x2.mp4"
    frames, source_frames = decode_frames(out), decode_frames(clip)
    assert len(frames) == len(source_frames) == 12
    assert frame_rate(out) == frame_rate(clip) == 12
    assert frames[0].shape == (48, 64, 3)
    assert (video_codec(out), pixel_format(out)) == ("h264", "yuv420p")
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
        video.upscale_video(clip, out_dir / "clip_x2.mp4", interrupt_on_third)
    assert list(out_dir.iterdir()) == []


def test_without_ffmpeg_a_video_fails_with_one_line(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4", frames=6, fps=6)
    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    with pytest.raises(BsrnError, match=r"^ffmpeg not found: videos need it \(pip install imageio-ffmpeg\)$"):
        video.upscale_video(clip, tmp_path / "out" / "out.avi", _double)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_audio_only_and_text_files_are_one_line_errors(tmp_path):
    audio_only = make_clip(tmp_path / "tone.mp4", video=False)
    (tmp_path / "text.mp4").write_text("not a video")
    for path in (audio_only, tmp_path / "text.mp4"):
        with pytest.raises(BsrnError, match=path.name):
            video.upscale_video(path, tmp_path / "out" / path.name, _double)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_subtitles_are_copied_or_left_out_with_a_note(tmp_path):
    import subprocess

    from tests.media import ffmpeg

    make_clip(tmp_path / "c.mp4", size=(16, 16), frames=6, fps=6)
    (tmp_path / "s.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    subprocess.run([ffmpeg(), "-loglevel", "error", "-y", "-i", str(tmp_path / "c.mp4"), "-i", str(tmp_path / "s.srt"),
                    "-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt", str(tmp_path / "c.mkv")], check=True)
    for target in ("o.mkv", "o.mp4", "o.webm"):  # copied; converted to mov_text; to WebVTT (audio to Opus)
        kept = video.upscale_video(tmp_path / "c.mkv", tmp_path / target, _double)
        assert sorted(stream_kinds(tmp_path / target)) == ["Audio", "Subtitle", "Video"], target
        assert kept.note == (None if target != "o.webm" else
                             f"{tmp_path / target}: audio re-encoded to Opus (its codec does not fit this container)")
    dropped = video.upscale_video(tmp_path / "c.mkv", tmp_path / "o.avi", _double)
    assert dropped.note == f"{tmp_path / 'o.avi'}: subtitles left out (this container does not take them)"
    assert sorted(stream_kinds(tmp_path / "o.avi")) == ["Audio", "Video"]


def _apply(weights):
    """The model in ``weights`` run in-process on one whole (h, w, 3) uint8 RGB frame with BACKEND
    (frames here are smaller than a tile, so the CLI runs them whole too) -> uint8 RGB."""
    model, _, _ = load_model(str(weights))
    if BACKEND == "packed":
        from bsrn_cli.backends.packed_backend import PackedBSRN

        run = PackedBSRN(model)
    else:
        model = model.to(memory_format=torch.channels_last)
        kernels = model.binary_kernels()
        run = lambda x: model(x.contiguous(memory_format=torch.channels_last), kernels)  # noqa: E731

    def apply(rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255).unsqueeze(0)
        with torch.inference_mode():
            y = run(x)
        return y[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()

    return apply


@pytest.fixture(scope="module")
def smooth_weights(tmp_path_factory):
    """A tiny x2 model whose learned detail is faint (last conv x 0.1): the random tiny model's
    pixel-scale checkerboard does not survive lossy codecs (about 18 dB after mp4v), this one's
    output does, so frames can be told apart by content."""
    model = tiny_model(2)
    with torch.no_grad():
        model.upsampler[0].weight.mul_(0.1)
        model.upsampler[0].bias.mul_(0.1)
    path = tmp_path_factory.mktemp("weights") / "smooth-x2.safetensors"
    save_weights(model, path)
    return path


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# Measured on these clips at 64x48 (H.264 and HEVC at their default CRF, VP9 at CRF 31, all
# yuv420p): 27.1-31.1 dB for the right frame (4:2:0 chroma on colour-block edges is most of the
# loss), 7.7-11.2 dB for the R/B-swapped frame or a neighbouring frame's expectation.
MIN_PSNR, MIN_GAP = 24.0, 10.0


def _assert_frames_are(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    """Each decoded frame i is close to expected frame i, and far closer to it than to the same
    frame with R and B swapped and than to the expectations of frames i - 1 and i + 1."""
    assert len(got) == len(expected)
    for i, (frame, want) in enumerate(zip(got, expected)):
        assert frame.shape == want.shape
        score = _psnr(frame, want)
        wrong = [_psnr(frame, want[..., ::-1])] + [_psnr(frame, expected[j]) for j in (i - 1, i + 1)
                                                     if 0 <= j < len(expected)]
        assert score >= MIN_PSNR and score >= max(wrong) + MIN_GAP, (i, score, wrong)


def test_video_frames_are_the_model_applied_to_each_input_frame_in_order(tmp_path, smooth_weights):
    """Through the CLI: every frame of clip_x2.mp4 is the model applied to the decoded input frame
    with the same index (colours in RGB order, no frame lost, doubled or moved), written as H.264."""
    clip = encode_frames(tmp_path / "clip.mp4", block_frames(8), fps=12)
    result = bsrn("upscale", clip, "--model", smooth_weights, "--backend", BACKEND)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip_x2.mp4"
    apply = _apply(smooth_weights)
    _assert_frames_are(decode_frames(out), [apply(frame) for frame in decode_frames(clip)])
    assert (video_codec(out), pixel_format(out)) == ("h264", "yuv420p")
    assert "note:" not in result.stderr


@pytest.mark.parametrize("suffix, asked, codec", [(".mkv", None, "h264"), (".avi", None, "h264"),
                                                  (".mov", None, "h264"), (".webm", None, "vp9"),
                                                  (".mp4", "hevc", "hevc"), (".mkv", "vp9", "vp9")])
def test_other_containers_and_codecs_hold_the_model_frames_in_order(tmp_path, smooth_weights, suffix, asked, codec):
    """The same check for the other output containers (H.264 by default, VP9 in .webm) and for
    --codec hevc / vp9, with the model run in-process as the frame function; always yuv420p."""
    clip = encode_frames(tmp_path / "clip.mp4", block_frames(8), fps=12)
    apply = _apply(smooth_weights)
    out = tmp_path / f"clip_x2{suffix}"
    assert video.upscale_video(clip, out, apply, codec=asked).frames == 8
    _assert_frames_are(decode_frames(out), [apply(frame) for frame in decode_frames(clip)])
    assert (video_codec(out), pixel_format(out)) == (codec, "yuv420p")


@pytest.mark.parametrize("source, audio, rate, target", [
    (".mp4", ("-c:a", "aac"), 8000, ".mkv"),
    (".mp4", ("-c:a", "aac"), 8000, ".mov"),
    (".mkv", ("-c:a", "libmp3lame"), 22050, ".mp4"),
    (".avi", ("-c:a", "pcm_s16le"), 8000, ".mkv"),
])
def test_audio_is_copied_packet_for_packet(tmp_path, source, audio, rate, target):
    """The output's audio stream is the input's, copied: the same compressed packets (MD5 of the
    stream read with -c copy) and the same codec, sample rate and channels; no note. (mp3 at
    22050 Hz: the mp4 muxer refuses mp3 at 8000 Hz, which then goes the re-encode way.)"""
    clip = encode_frames(tmp_path / f"clip{source}", block_frames(6, (16, 16)), fps=12, audio_codec=audio,
                         audio_rate=rate)
    out = tmp_path / f"out{target}"
    result = video.upscale_video(clip, out, _double)
    assert result.note is None and result.frames == 6
    assert audio_params(out) == audio_params(clip)
    assert packets_md5(out) == packets_md5(clip)


def test_audio_the_container_refuses_is_reencoded_to_aac_with_a_note(tmp_path):
    """Opus does not go into .avi: the audio is re-encoded to AAC (same rate, channels and length)
    and the note names the output and says so."""
    clip = encode_frames(tmp_path / "clip.webm", block_frames(6, (16, 16)), fps=12,
                         video_codec=("-c:v", "libvpx"), audio_codec=("-c:a", "libopus"), audio_rate=48000)
    out = tmp_path / "out.avi"
    result = video.upscale_video(clip, out, _double)
    assert result.note == f"{out}: audio re-encoded to AAC (its codec does not fit this container)"
    assert audio_params(clip) == ("opus", 48000, "mono") and audio_params(out) == ("aac", 48000, "mono")
    assert abs(audio_samples(out) - audio_samples(clip)) <= 8000 * 0.05  # AAC frames pad the end


def test_webm_in_gives_webm_out_with_vp9_frames_and_the_opus_audio_copied(tmp_path, smooth_weights):
    """A .webm (VP8 + Opus) through the CLI gives clip_x2.webm: VP9 frames that are the model
    applied to each input frame in order, and the Opus packets copied unchanged, no note."""
    clip = encode_frames(tmp_path / "clip.webm", block_frames(8), fps=12, video_codec=("-c:v", "libvpx", "-b:v", "1M"),
                         audio_codec=("-c:a", "libopus"), audio_rate=48000)
    result = bsrn("upscale", clip, "--model", smooth_weights, "--backend", BACKEND)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip_x2.webm"
    apply = _apply(smooth_weights)
    _assert_frames_are(decode_frames(out), [apply(frame) for frame in decode_frames(clip)])
    assert video_codec(out) == "vp9"
    assert audio_params(out) == audio_params(clip) == ("opus", 48000, "mono")
    assert packets_md5(out) == packets_md5(clip)
    assert "note:" not in result.stderr


def test_webm_from_an_aac_source_keeps_the_audio_as_opus(tmp_path, tiny_weights):
    """-o clip.webm from .mp4 with AAC: WebM takes no AAC, so the audio is re-encoded to Opus
    (one note), as long as the source's; the video is VP9 with every frame."""
    clip = make_clip(tmp_path / "clip.mp4", size=(32, 24), frames=12, fps=12)
    out = tmp_path / "clip.webm"
    result = bsrn("upscale", clip, "--model", tiny_weights, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"note: {out}: audio re-encoded to Opus (its codec does not fit this container)\n"
    assert audio_params(clip)[0] == "aac" and audio_params(out)[0] == "opus"
    assert abs(audio_samples(out) - audio_samples(clip)) <= 8000 * 0.05
    assert video_codec(out) == "vp9" and len(decode_frames(out)) == 12


def test_audio_that_cannot_be_carried_fails_the_file_unless_no_audio(tmp_path, monkeypatch, tiny_weights):
    """Opus does not go into .avi and (here) the re-encode fails too: the file fails with one
    line and nothing is written; with --no-audio (audio=False) the video comes out without sound."""
    clip = encode_frames(tmp_path / "clip.webm", block_frames(6, (16, 16)), fps=12,
                         video_codec=("-c:v", "libvpx"), audio_codec=("-c:a", "libopus"), audio_rate=48000)
    monkeypatch.setattr(video, "DEFAULT_AUDIO", ("no-such-encoder", "nothing"))
    out = tmp_path / "out" / "out.avi"
    with pytest.raises(BsrnError) as failure:
        video.upscale_video(clip, out, _double)
    message = str(failure.value)
    assert message.startswith(f"{clip}: its audio cannot be carried into .avi (copied or re-encoded to "
                              "nothing; ffmpeg: ") and "\n" not in message
    assert message.endswith("); choose another container with -o, or --no-audio")
    assert "encoder" in message.lower()  # ffmpeg's own reason: the unknown encoder
    assert list(out.parent.iterdir()) == []
    silent = video.upscale_video(clip, out, _double, audio=False)
    assert silent.note is None and stream_kinds(out) == ["Video"] and len(decode_frames(out)) == 6
    cli = bsrn("upscale", clip, "--model", tiny_weights, "--no-audio", "-o", tmp_path / "cli.mp4")
    assert cli.returncode == 0, cli.stderr
    assert stream_kinds(tmp_path / "cli.mp4") == ["Video"]


VFR_TIMES = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_variable_frame_rate_becomes_constant_with_every_frame_once(tmp_path, suffix):
    """docs/usage.md: variable-frame-rate input becomes constant rate. Each input frame is in the
    output exactly once and in order, and the output's timestamps are evenly spaced at the rate
    OpenCV reports for the input."""
    clip = encode_frames(tmp_path / f"vfr{suffix}", block_frames(8), fps=10, times=VFR_TIMES)
    assert packet_times(clip) == pytest.approx(VFR_TIMES, abs=1e-3)  # the input really is uneven
    fps = frame_rate(clip)
    out = tmp_path / f"out{suffix}"
    assert video.upscale_video(clip, out, _double).frames == 8
    _assert_frames_are(decode_frames(out), [_double(frame) for frame in decode_frames(clip)])
    assert packet_times(out) == pytest.approx([i / fps for i in range(8)], abs=1e-3)


def _png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def test_frames_only_keeps_existing_frames_unless_overwrite(tmp_path, tiny_weights):
    """--frames-only: the PNGs are exactly the model applied to each decoded input frame. A rerun
    writes back a missing frame (identical to the first run's) and keeps a frame already there
    (even a wrong one); with --overwrite every frame is written again."""
    clip = encode_frames(tmp_path / "clip.mkv", block_frames(5, (16, 16)), fps=10, audio_codec=None)
    args = ("upscale", clip, "--model", tiny_weights, "--backend", BACKEND, "--frames-only", tmp_path / "frames")
    folder = tmp_path / "frames" / "clip"
    names = [f"frame_{i:06d}.png" for i in range(1, 6)]
    apply = _apply(tiny_weights)
    expected = [apply(frame) for frame in decode_frames(clip)]

    first = bsrn(*args)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in folder.iterdir()) == names
    for name, want in zip(names, expected):
        assert np.array_equal(_png(folder / name), want), name
    third = (folder / names[2]).read_bytes()
    (folder / names[2]).unlink()
    Image.fromarray(np.full_like(expected[0], (255, 0, 128))).save(folder / names[0])
    sentinel = (folder / names[0]).read_bytes()

    resumed = bsrn(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in folder.iterdir()) == names
    assert (folder / names[2]).read_bytes() == third and np.array_equal(_png(folder / names[2]), expected[2])
    assert (folder / names[0]).read_bytes() == sentinel

    replaced = bsrn(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    for name, want in zip(names, expected):
        assert np.array_equal(_png(folder / name), want), name


def test_stopped_frames_only_run_resumes_where_it_stopped(tmp_path):
    """A run stopped during frame 3 leaves frames 1-2 complete and no partial file; the next run
    upscales only frames 3-5 and the folder then holds every frame, each the right one."""
    clip = encode_frames(tmp_path / "clip.mp4", block_frames(5, (16, 16)), fps=10, audio_codec=None)
    folder = tmp_path / "frames"
    seen = []

    def stop_on_third(frame):
        seen.append(frame)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return _double(frame)

    with pytest.raises(KeyboardInterrupt):
        video.write_frames(clip, folder, stop_on_third, overwrite=False)
    assert sorted(p.name for p in folder.iterdir()) == ["frame_000001.png", "frame_000002.png"]
    later = []
    result = video.write_frames(clip, folder, lambda frame: later.append(frame) or _double(frame), overwrite=False)
    decoded = decode_frames(clip)
    assert result.frames == 5 and len(later) == 3
    assert all(np.array_equal(a, b) for a, b in zip(later, decoded[2:]))
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 6)]
    for i, frame in enumerate(decoded, 1):
        assert np.array_equal(_png(folder / f"frame_{i:06d}.png"), _double(frame))
