"""A batch of good files and a corpus of malformed ones, made here: every good file comes out,
every bad one gets exactly one error line (no traceback, no partial output), exit status 1."""

import os
import zlib

import cv2
import numpy as np
from PIL import Image

from tests.cli.test_upscale import _error_lines, bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import write_image
from tests.media import make_clip, png_bytes, png_chunk


def _hostile_corpus(folder):
    """name -> True if it must fail with one error line, False if it must come out correctly."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    good_png = write_image(folder / ".good.png", size=(20, 16)).read_bytes()
    Image.open(folder / ".good.png").convert("RGB").save(folder / ".good.jpg", quality=90)
    good_jpg = (folder / ".good.jpg").read_bytes()
    rows = b"".join(b"\x00" + bytes(12) for _ in range(4))
    files = {
        "truncated.png": good_png[: len(good_png) // 2],
        "header_only.png": good_png[:33],
        "truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "header_only.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
        "zero.png": b"", "zero.jpg": b"", "zero.mp4": b"",
        "random.png": rng.bytes(3000), "random.jpg": rng.bytes(3000), "random.webp": rng.bytes(3000),
        "random.tif": rng.bytes(3000), "random.bmp": rng.bytes(3000), "random.mkv": rng.bytes(3000),
        "bomb.png": png_bytes(100000, 100000, rows),
        "bomb_20k.png": png_bytes(20000, 20000, rows),
        "huge_text.png": png_bytes(4, 4, rows, png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(64 << 20)))),
        "bad_crc.png": bytes(b ^ 0xFF if i == len(good_png) - 20 else b for i, b in enumerate(good_png)),
        "text.png": b"this is not an image\n",
        "text.mp4": b"this is not a video\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    expected = {name: True for name in files}
    (folder / "x.png").mkdir()
    expected["x.png"] = True
    os.symlink(folder / "nowhere.png", folder / "dangling.png")
    expected["dangling.png"] = True
    locked = write_image(folder / "unreadable.png", size=(8, 8))
    locked.chmod(0)
    expected["unreadable.png"] = os.geteuid() != 0  # root reads it anyway: then it must come out right
    writer = cv2.VideoWriter(str(folder / "no_frames.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (16, 16))
    writer.release()
    expected["no_frames.mp4"] = True
    make_clip(folder / "tone_only.mp4", video=False)
    expected["tone_only.mp4"] = True
    write_image(folder / "one_pixel.png", size=(1, 1))
    expected["one_pixel.png"] = False
    write_image(folder / "smaller_than_overlap.png", size=(5, 3), mode="RGBA")
    expected["smaller_than_overlap.png"] = False
    (folder / ".good.png").unlink()
    (folder / ".good.jpg").unlink()
    return expected


def test_hostile_corpus_with_good_files(tmp_path, tiny_weights):
    batch = tmp_path / "batch"
    expected = _hostile_corpus(batch)
    bad = [name for name, fails in expected.items() if fails]
    assert len(expected) >= 20 and len(bad) >= 20
    write_image(batch / "good_a.png", size=(24, 18))
    write_image(batch / "good_b.jpg", size=(17, 11), seed=3)
    make_clip(batch / "good_clip.mp4", size=(16, 16), frames=6, fps=6)
    out = tmp_path / "out"
    result = bsrn("upscale", batch, "--model", tiny_weights, "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    for name in bad:
        assert sum(f"{os.sep}{name}:" in line for line in errors) == 1, (name, errors)
    assert len(errors) == len(bad)
    assert [line for line in result.stderr.splitlines() if line.strip()] == errors  # nothing else
    produced = sorted(p.name for p in out.iterdir())  # hidden temporary files would show here too
    good = ["good_a_x2.png", "good_b_x2.png", "good_clip_x2.mp4", "one_pixel_x2.png", "smaller_than_overlap_x2.png"]
    if not expected["unreadable.png"]:
        good.append("unreadable_x2.png")
    assert produced == sorted(good)
    with Image.open(out / "one_pixel_x2.png") as one, Image.open(out / "smaller_than_overlap_x2.png") as small:
        assert one.size == (2, 2) and small.size == (10, 6) and small.mode == "RGBA"
    assert f"failed {len(bad)}" in result.stdout and "done " + str(len(good)) in result.stdout
