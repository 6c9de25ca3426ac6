"""Documented behaviours of `bsrn upscale` (docs/usage.md) that need their own test: folders
(hidden files, symbolic links, clashing names), -o as a folder, the memory guards, EXIF sizes,
and Ctrl-C in the middle of a run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from bsrn_cli import cli
from bsrn_cli.backends.base import Upscaler
from bsrn_cli.backends.packed_backend import PackedUpscaler
from bsrn_cli.cli import upscale as upscale_module
from bsrn_cli.cli.upscale import Job, Runner
from tests.cli.test_upscale import _error_lines, bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import tiny_model, write_image


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def test_hidden_files_and_folders_are_ignored(tmp_path, tiny_weights):
    src = tmp_path / "shots"
    write_image(src / "a.png", size=(8, 6))
    write_image(src / ".hidden.png", size=(8, 6), seed=1)
    write_image(src / ".cache" / "b.png", size=(8, 6), seed=2)
    result = bsrn("upscale", src, "-r", "--model", tiny_weights, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert _files(tmp_path / "out") == ["a_x2.png"]
    assert "done 1, skipped 0, failed 0" in result.stdout


def test_recursive_does_not_follow_symbolic_links_to_folders(tmp_path, tiny_weights):
    src = tmp_path / "shots"
    write_image(src / "day1" / "a.png", size=(8, 6))
    write_image(tmp_path / "elsewhere" / "b.png", size=(8, 6), seed=1)
    os.symlink(tmp_path / "elsewhere", src / "linked")
    result = bsrn("upscale", src, "-r", "--model", tiny_weights, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert _files(tmp_path / "out") == ["day1/a_x2.png"]


def test_two_inputs_with_one_output_name_are_refused(tmp_path, tiny_weights):
    """a.jpg and a.png both map to a_x2.png: the first (in name order) is written, the second
    gets one error line and leaves it alone; a rerun (a.jpg's output now exists and is skipped)
    reports the clash again and exits 1, rather than "skipped 2"."""
    src = tmp_path / "in"
    write_image(src / "a.jpg", size=(8, 6))
    write_image(src / "a.png", size=(8, 6), seed=1)
    result = bsrn("upscale", src, "--model", tiny_weights, "-o", tmp_path / "out")
    assert result.returncode == 1
    clash = [f"error: {src / 'a.png'}: output {tmp_path / 'out' / 'a_x2.png'} is also the output of "
             f"{src / 'a.jpg'}; give one of them another name, or use --suffix/--format"]
    assert _error_lines(result.stderr) == clash
    rerun = bsrn("upscale", src, "--model", tiny_weights, "-o", tmp_path / "out")
    assert (rerun.returncode, _error_lines(rerun.stderr)) == (1, clash)
    assert "done 0, skipped 1, failed 1" in rerun.stdout
    alone = bsrn("upscale", src / "a.jpg", "--model", tiny_weights, "-o", tmp_path / "alone.png")
    assert alone.returncode == 0, alone.stderr
    with Image.open(tmp_path / "out" / "a_x2.png") as got, Image.open(tmp_path / "alone.png") as expected:
        assert got.tobytes() == expected.tobytes()
    assert "done 1, skipped 0, failed 1" in result.stdout


@pytest.mark.parametrize("output", ["out" + os.sep, "out"])
def test_output_ending_in_a_separator_or_without_suffix_is_a_folder(tmp_path, tiny_weights, output):
    image = write_image(tmp_path / "a.png", size=(8, 6))
    result = bsrn("upscale", image, "--model", tiny_weights, "-o", str(tmp_path / output))
    assert result.returncode == 0, result.stderr
    assert _files(tmp_path / "out") == ["a_x2.png"]
    with Image.open(tmp_path / "out" / "a_x2.png") as out:
        assert out.size == (16, 12)


def _run_main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["bsrn", *map(str, args)])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_output_larger_than_memory_is_refused_before_any_work(tmp_path, tiny_weights, monkeypatch, capsys):
    image = write_image(tmp_path / "a.png", size=(40, 30))
    monkeypatch.setattr(upscale_module, "physical_memory", lambda: 20_000)  # 80x60x3 bytes = 14,400: fits

    def never(*_):
        raise AssertionError("the network ran")

    small = _run_main(monkeypatch, capsys, "upscale", image, "--model", tiny_weights, "-o", tmp_path / "ok.png")
    assert small[0] == 0, small
    monkeypatch.setattr(upscale_module, "physical_memory", lambda: 10_000)
    monkeypatch.setattr(Upscaler, "upscale", never)
    code, out, err = _run_main(monkeypatch, capsys, "upscale", image, "--model", tiny_weights, "-o",
                               tmp_path / "big.png")
    assert code == 1
    assert err.strip() == (f"error: {image}: the 80x60 output needs 14.1K, more than this machine's 9.8K of memory")
    assert "done 0, skipped 0, failed 1" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "ok.png"]


class _FailsOnLargeTiles(PackedUpscaler):
    """Raises MemoryError for any tile (with its overlap) larger than ``limit`` input pixels."""

    def __init__(self, model, limit, **options):
        super().__init__(model, **options)
        self.limit, self.sizes = limit, []

    def _run(self, tile):
        self.sizes.append(max(tile.shape[:2]))
        if self.sizes[-1] > self.limit:
            raise MemoryError
        return super()._run(tile)


def test_after_an_out_of_memory_retry_later_images_keep_the_smaller_tile(tmp_path):
    model = tiny_model(2)
    overlap = model.receptive_radius()
    notes = []
    upscaler = _FailsOnLargeTiles(model, limit=30 + 2 * overlap, tile=64, max_memory=2 ** 30, on_retry=notes.append)
    runner = Runner(upscaler, notes, alpha="bicubic", quality=95, overwrite=False)
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 256, (60, 60, 3), dtype=np.uint8) for _ in range(2))
    for name, pixels in (("first.png", first), ("second.png", second)):
        Image.fromarray(pixels).save(tmp_path / name)
    runner.image(Job(tmp_path / "first.png", tmp_path / "first_x2.png"))
    assert runner.notes == ["out of memory with tiles of 60 pixels; retrying with 30"]
    assert upscaler.tile == 30
    whole = PackedUpscaler(model, tile=0)
    assert np.array_equal(_read(tmp_path / "first_x2.png"), whole.upscale(first))  # the retried image is complete
    upscaler.sizes.clear()
    runner.notes.clear()
    runner.image(Job(tmp_path / "second.png", tmp_path / "second_x2.png"))
    assert np.array_equal(_read(tmp_path / "second_x2.png"), whole.upscale(second))
    assert runner.notes == [] and max(upscaler.sizes) <= 30 + 2 * overlap  # no new failed attempt


def _read(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_running_out_of_memory_even_with_the_smallest_tile_names_the_file(tmp_path, tiny_weights, monkeypatch,
                                                                          capsys):
    """Through the CLI: one error line naming the input (then the note of the retry before), the
    batch goes on, exit status 1."""
    image = write_image(tmp_path / "a.png", size=(40, 30))
    other = write_image(tmp_path / "b.png", size=(8, 6), seed=1)
    run = PackedUpscaler._run

    def fails_above_8_pixels(self, tile):  # every tile of a.png, even at the smallest size; b.png runs whole
        if max(tile.shape[:2]) > 8:
            raise MemoryError
        return run(self, tile)

    monkeypatch.setattr(PackedUpscaler, "_run", fails_above_8_pixels)
    code, out, err = _run_main(monkeypatch, capsys, "upscale", image, other, "--model", tiny_weights,
                               "--backend", "packed", "-o", tmp_path / "out")
    assert code == 1
    assert err.splitlines() == [f"error: {image}: out of memory even with tiles of 20 pixels; "
                                "lower --max-memory or free memory",
                                "note: out of memory with tiles of 40 pixels; retrying with 20"]
    assert "done 1, skipped 0, failed 1" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_x2.png"]


def test_exif_pixel_sizes_are_updated_to_the_output_size(tmp_path, tiny_weights):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x010F] = "bsrn test camera"
    exif.get_ifd(0x8769).update({0xA002: 8, 0xA003: 6})
    image.save(tmp_path / "a.jpg", exif=exif, quality=95)
    for name in ("out.jpg", "out.png", "out.webp", "out.tif"):
        result = bsrn("upscale", tmp_path / "a.jpg", "--model", tiny_weights, "-o", tmp_path / name)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        with Image.open(tmp_path / name) as out:
            written = out.getexif()
            assert out.size == (16, 12), name
            assert written.get(0x010F) == "bsrn test camera", name
            if name != "out.tif":  # a TIFF gets the main tags only (docs/usage.md, "Metadata")
                assert written.get_ifd(0x8769) == {0xA002: 16, 0xA003: 12}, name


def test_ctrl_c_during_a_run_keeps_finished_outputs_and_leaves_no_partial_file(tmp_path):
    """SIGINT while the second image is being upscaled: the first output stays complete, nothing
    else appears (no hidden temporary file), exit status 130, no traceback; a rerun resumes."""
    src = tmp_path / "in"
    write_image(src / "a.png", size=(8, 6))
    write_image(src / "b.png", size=(300, 300), seed=1)  # seconds with the float backend
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("BSRN_DEBUG", None)
    process = subprocess.Popen([sys.executable, "-m", "bsrn_cli", "upscale", str(src), "-o", str(out),
                                "--backend", "torch", "--tile", "64"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (out / "a_x4.png").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "aborted" in stderr
    assert [p.name for p in out.iterdir()] == ["a_x4.png"]
    with Image.open(out / "a_x4.png") as first:
        first.load()
        assert first.size == (32, 24)
    again = bsrn("upscale", src / "a.png", src / "b.png", "-o", out, "--tile", "64")
    assert again.returncode == 0, again.stderr
    assert "done 1, skipped 1, failed 0" in again.stdout
