"""End-to-end runs of the real `bsrn` entry point in a subprocess (stderr, exit status, files)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bsrn_cli.pretrained.weights import save_weights
from tests.conftest import tiny_model, write_image


def bsrn(*args, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("BSRN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "bsrn_cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny-x2.safetensors"
    save_weights(tiny_model(2), path)
    return path


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_set5_x4_folder_gives_five_images_four_times_larger(set5, tmp_path):
    lr_dir = set5 / "LR_bicubic" / "X4"
    result = bsrn("upscale", lr_dir, "-s", 4, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    outputs = sorted((tmp_path / "out").iterdir())
    assert len(outputs) == 5
    for out in outputs:
        source = lr_dir / out.name.replace("_x4.png", ".png")
        with Image.open(source) as a, Image.open(out) as b:
            assert b.size == (a.size[0] * 4, a.size[1] * 4)


def test_default_output_goes_beside_the_input(tmp_path, tiny_weights):
    image = write_image(tmp_path / "photo.jpg", size=(21, 13))
    result = bsrn("upscale", image, "--model", tiny_weights)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "photo_x2.png") as out:
        assert out.size == (42, 26) and out.mode == "RGB"


def test_bad_inputs_fail_one_line_each_and_the_rest_still_comes_out(tmp_path, tiny_weights):
    src = tmp_path / "in"
    write_image(src / "good.png")
    (src / "text.png").write_text("this is not an image")
    good_bytes = (src / "good.png").read_bytes()
    (src / "truncated.png").write_bytes(good_bytes[: len(good_bytes) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "folder.png").mkdir()
    out = tmp_path / "out"
    result = bsrn("upscale", src, tmp_path / "missing.png", "--model", tiny_weights, "-o", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 5
    for name in ("text.png", "truncated.png", "empty.jpg", "missing.png", "folder.png"):
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert sorted(p.name for p in out.iterdir()) == ["good_x2.png"]


def test_unsupported_scale_is_one_line(tmp_path):
    image = write_image(tmp_path / "a.png")
    result = bsrn("upscale", image, "-s", 5)
    assert result.returncode == 2
    assert result.stderr == ("error: -s/--scale: unsupported scale 5: choose 2, 3 or 4, or a fraction such as 3.5; "
                             "see bsrn upscale --help\n")
    assert not (tmp_path / "a_x5.png").exists()


def test_existing_output_is_skipped_unless_overwrite(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png")
    target = tmp_path / "a_x2.png"
    target.write_bytes(b"keep me")
    skipped = bsrn("upscale", image, "--model", tiny_weights)
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped 1" in skipped.stdout and "--overwrite" in skipped.stdout
    assert target.read_bytes() == b"keep me"
    replaced = bsrn("upscale", image, "--model", tiny_weights, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    with Image.open(target) as out:
        assert out.size == (80, 60)


def test_input_is_never_overwritten(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png")
    before = image.read_bytes()
    result = bsrn("upscale", image, "--model", tiny_weights, "-o", image, "--overwrite")
    assert result.returncode == 1 and "would overwrite an input" in result.stderr
    assert image.read_bytes() == before


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "x.png").write_text("nope")
    plain = bsrn("upscale", tmp_path / "x.png", "-s", 2)
    debug = bsrn("--debug", "upscale", tmp_path / "x.png", "-s", 2)
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr


def test_pickle_model_is_refused(tmp_path):
    image = write_image(tmp_path / "a.png")
    (tmp_path / "model.pth").write_bytes(b"\x80\x04K\x01.")
    result = bsrn("upscale", image, "--model", tmp_path / "model.pth")
    assert result.returncode == 1
    assert len(_error_lines(result.stderr)) == 1 and "refusing to load a pickle" in result.stderr


def test_no_temporary_files_are_left(tmp_path, tiny_weights):
    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "b.png", seed=1)
    result = bsrn("upscale", tmp_path / "in", "--model", tiny_weights, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "b_x2.png"]


def test_grayscale_stays_gray_and_alpha_is_kept(tmp_path, tiny_weights):
    gray = write_image(tmp_path / "g.png", mode="L")
    rgba = write_image(tmp_path / "t.png", mode="RGBA")
    result = bsrn("upscale", gray, rgba, "--model", tiny_weights, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "g_x2.png") as g, Image.open(tmp_path / "out" / "t_x2.png") as t:
        assert g.mode == "L" and g.size == (80, 60)
        assert t.mode == "RGBA" and t.size == (80, 60)


def test_output_file_name_sets_the_format(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png")
    result = bsrn("upscale", image, "--model", tiny_weights, "-o", tmp_path / "big.jpg")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "big.jpg") as out:
        assert out.format == "JPEG" and out.size == (80, 60)


def test_folder_without_output_goes_to_a_sibling_folder(tmp_path, tiny_weights):
    write_image(tmp_path / "shots" / "a.png")
    first = bsrn("upscale", tmp_path / "shots", "--model", tiny_weights)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "shots_x2").iterdir()) == ["a_x2.png"]
    assert sorted(p.name for p in (tmp_path / "shots").iterdir()) == ["a.png"]
