"""A batch of good files and a corpus of malformed ones, made here: every good file comes out,
every bad one gets exactly one error line that names the file and the reason (no traceback,
no partial output), exit status 1."""

import os
import subprocess
import zlib

import cv2
import numpy as np
from PIL import Image

from tests.cli.test_upscale import _error_lines, bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import write_image
from tests.io.test_images import write_complete_png
from tests.media import ffmpeg, make_clip, png_bytes, png_chunk

CORRUPT, UNKNOWN, EMPTY = "corrupt or truncated image", "not a recognised image file", "empty file"
TOO_LARGE, NO_VIDEO = "image too large to decode safely", "not a readable video"


def _clip_without_frame_data(path):
    """An MP4 whose header (moov, written first) lists frames but whose data box is empty."""
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=16x16:rate=6", "-frames:v", "6", "-c:v", "mpeg4", "-movflags", "+faststart",
                    str(path)], check=True, capture_output=True)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"mdat") + 4])


def _hostile_corpus(folder):
    """name -> what its error line must say after "error: <path>: ", or None if the file
    must come out correctly."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    good_png = write_image(folder / ".good.png", size=(20, 16)).read_bytes()
    Image.open(folder / ".good.png").convert("RGB").save(folder / ".good.jpg", quality=90)
    good_jpg = (folder / ".good.jpg").read_bytes()
    rows = b"".join(b"\x00" + bytes(12) for _ in range(4))
    huge_text = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(64 << 20)))  # over Pillow's text limit
    files = {
        "truncated.png": (good_png[: len(good_png) // 2], CORRUPT),
        # well-formed, but its data holds 3 of the 16 rows it declares (Pillow would fill black)
        "short_rows.png": (png_bytes(20, 16, b"".join(b"\x00" + bytes(60) for _ in range(3))), CORRUPT),
        "header_only.png": (good_png[:33], UNKNOWN),  # signature and IHDR only: Pillow cannot identify it
        "truncated_jpeg.jpg": (good_jpg[: len(good_jpg) // 2], CORRUPT),
        "header_only_jpeg.jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", UNKNOWN),
        "zero.png": (b"", EMPTY), "zero_jpeg.jpg": (b"", EMPTY), "zero.mp4": (b"", EMPTY),
        "random.png": (rng.bytes(3000), UNKNOWN), "random_jpeg.jpg": (rng.bytes(3000), UNKNOWN),
        "random_webp.webp": (rng.bytes(3000), UNKNOWN), "random_tiff.tif": (rng.bytes(3000), UNKNOWN),
        "random_bmp.bmp": (rng.bytes(3000), UNKNOWN), "random.mkv": (rng.bytes(3000), NO_VIDEO),
        "bomb.png": (png_bytes(100000, 100000, rows), TOO_LARGE),      # over twice the limit
        "bomb_20k.png": (png_bytes(20000, 20000, rows), TOO_LARGE),    # over the limit, under twice it
        "huge_text.png": (png_bytes(4, 4, rows, huge_text), CORRUPT),
        "bad_crc.png": (bytes(b ^ 0xFF if i == len(good_png) - 20 else b for i, b in enumerate(good_png)), CORRUPT),
        "text.png": (b"this is not an image\n", UNKNOWN),
        "text.mp4": (b"this is not a video\n", NO_VIDEO),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    expected = {name: reason for name, (_, reason) in files.items()}
    # complete and valid, 268435457 x 1 pixels: one pixel over the limit, refused before decoding
    # (one row: 32 KB to store; were it decoded, Pillow's own row-size check would stop it in seconds)
    write_complete_png(folder / "bomb_complete.png", 16384 * 16384 + 1, 1)
    expected["bomb_complete.png"] = TOO_LARGE
    (folder / "x.png").mkdir()
    expected["x.png"] = "is a folder, not an image or video"
    os.symlink(folder / "nowhere.png", folder / "dangling.png")
    expected["dangling.png"] = "no such file"
    os.symlink(folder / "loop.png", folder / "loop.png")  # cannot be resolved: it must fail alone
    expected["loop.png"] = "symbolic link loop"
    write_image(folder / "clash.jpg", size=(9, 7), seed=5)  # both would be clash_x2.png: the later fails
    write_image(folder / "clash.png", size=(9, 7), seed=6)
    expected["clash.jpg"] = None
    expected["clash.png"] = "output"
    locked = write_image(folder / "unreadable.png", size=(8, 8))
    locked.chmod(0)
    expected["unreadable.png"] = "permission denied" if os.geteuid() != 0 else None  # root reads it anyway
    writer = cv2.VideoWriter(str(folder / "no_frames.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (16, 16))
    writer.release()
    expected["no_frames.mp4"] = NO_VIDEO  # OpenCV writes a stub with no video track
    _clip_without_frame_data(folder / "no_frame_data.mp4")
    expected["no_frame_data.mp4"] = "video has no frames"
    make_clip(folder / "tone_only.mp4", video=False)
    expected["tone_only.mp4"] = NO_VIDEO
    write_image(folder / "one_pixel.png", size=(1, 1))
    expected["one_pixel.png"] = None
    write_image(folder / "smaller_than_overlap.png", size=(5, 3), mode="RGBA")
    expected["smaller_than_overlap.png"] = None
    (folder / ".good.png").unlink()
    (folder / ".good.jpg").unlink()
    return expected


def test_hostile_corpus_with_good_files(tmp_path, tiny_weights):
    batch = tmp_path / "batch"
    expected = _hostile_corpus(batch)
    bad = {name: reason for name, reason in expected.items() if reason is not None}
    assert len(expected) >= 20 and len(bad) >= 20
    write_image(batch / "good_a.png", size=(24, 18))
    write_image(batch / "good_b.jpg", size=(17, 11), seed=3)
    make_clip(batch / "good_clip.mp4", size=(16, 16), frames=6, fps=6)
    out = tmp_path / "out"
    result = bsrn("upscale", batch, "--model", tiny_weights, "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    for name, reason in bad.items():
        lines = [line for line in errors if line.startswith(f"error: {batch / name}: ")]
        assert len(lines) == 1, (name, errors)
        assert lines[0].startswith(f"error: {batch / name}: {reason}"), (name, reason, lines[0])
    assert len(errors) == len(bad)
    assert [line for line in result.stderr.splitlines() if line.strip()] == errors  # nothing else
    produced = sorted(p.name for p in out.iterdir())  # hidden temporary files would show here too
    good = ["clash_x2.png", "good_a_x2.png", "good_b_x2.png", "good_clip_x2.mp4", "one_pixel_x2.png",
            "smaller_than_overlap_x2.png"]
    if expected["unreadable.png"] is None:
        good.append("unreadable_x2.png")
    assert produced == sorted(good)
    with Image.open(out / "one_pixel_x2.png") as one, Image.open(out / "smaller_than_overlap_x2.png") as small:
        assert one.size == (2, 2) and small.size == (10, 6) and small.mode == "RGBA"
    assert f"failed {len(bad)}" in result.stdout and "done " + str(len(good)) in result.stdout
