"""Folders (--recursive, resuming, summary), naming (--suffix, --format, --quality), safety."""

from PIL import Image

from tests.cli.test_upscale import _error_lines, bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import write_image


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_recursive_keeps_the_tree_and_a_rerun_resumes(tmp_path, tiny_weights):
    src = tmp_path / "shots"
    write_image(src / "a.png", size=(12, 10))
    write_image(src / "day1" / "b.jpg", size=(12, 10), seed=1)
    write_image(src / "day1" / "deep" / "c.png", size=(12, 10), seed=2)
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "big"
    first = bsrn("upscale", src, "-r", "--model", tiny_weights, "-o", out)
    assert first.returncode == 0, first.stderr
    assert _tree(out) == ["a_x2.png", "day1/b_x2.png", "day1/deep/c_x2.png"]
    assert "done 3, skipped 0, failed 0" in first.stdout
    (out / "day1" / "b_x2.png").unlink()  # as if the first run had been stopped there
    before = (out / "a_x2.png").stat().st_mtime_ns
    second = bsrn("upscale", src, "-r", "--model", tiny_weights, "-o", out)
    assert second.returncode == 0, second.stderr
    assert "done 1, skipped 2, failed 0" in second.stdout
    assert _tree(out) == ["a_x2.png", "day1/b_x2.png", "day1/deep/c_x2.png"]
    assert (out / "a_x2.png").stat().st_mtime_ns == before


def test_without_recursive_subfolders_are_not_entered(tmp_path, tiny_weights):
    write_image(tmp_path / "shots" / "a.png", size=(8, 8))
    write_image(tmp_path / "shots" / "sub" / "b.png", size=(8, 8))
    result = bsrn("upscale", tmp_path / "shots", "--model", tiny_weights)
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path / "shots_x2") == ["a_x2.png"]


def test_output_into_the_input_folder_with_empty_suffix_never_touches_inputs(tmp_path, tiny_weights):
    src = tmp_path / "in"
    write_image(src / "a.png", size=(8, 8))
    write_image(src / "b.jpg", size=(8, 8), seed=1)
    write_image(src / "b.png", size=(8, 8), seed=2)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    result = bsrn("upscale", src, "--model", tiny_weights, "-o", src, "--suffix", "", "--overwrite")
    assert result.returncode == 1
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    errors = _error_lines(result.stderr)
    assert len(errors) == 3 and all("would overwrite an input" in e for e in errors)


def test_output_into_the_input_folder_is_not_reprocessed_on_rerun(tmp_path, tiny_weights):
    src = tmp_path / "in"
    write_image(src / "a.png", size=(8, 8))
    assert bsrn("upscale", src, "--model", tiny_weights, "-o", src).returncode == 0
    again = bsrn("upscale", src, "--model", tiny_weights, "-o", src)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_x2.png"]
    assert "done 0, skipped 1, failed 0" in again.stdout


def test_format_quality_and_suffix(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(40, 40))
    runs = {"jpg": ["--quality", "30"], "webp": ["--quality", "90"], "tiff": [], "png": []}
    for fmt, extra in runs.items():
        result = bsrn("upscale", image, "--model", tiny_weights, "--format", fmt, "--suffix", "-big",
                      "-o", tmp_path / "out", *extra)
        assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "a-big.jpg") as jpg, Image.open(tmp_path / "out" / "a-big.webp") as webp, \
            Image.open(tmp_path / "out" / "a-big.tif") as tif, Image.open(tmp_path / "out" / "a-big.png") as png:
        assert [i.format for i in (jpg, webp, tif, png)] == ["JPEG", "WEBP", "TIFF", "PNG"]
        assert all(i.size == (80, 80) for i in (jpg, webp, tif, png))
    high = bsrn("upscale", image, "--model", tiny_weights, "--format", "jpg", "--quality", "95", "-o",
                tmp_path / "q95.jpg")
    assert high.returncode == 0, high.stderr
    assert (tmp_path / "out" / "a-big.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size


def test_bad_option_values_are_one_line(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(8, 8))
    for args, text in [(["--format", "gif"], "--format: 'gif'"), (["--quality", "0"], "--quality: 0"),
                       (["--alpha", "magic"], "--alpha: 'magic'"), (["--max-memory", "lots"], "--max-memory"),
                       (["--format", "jpg", "-o", tmp_path / "x.png"], "disagree")]:
        result = bsrn("upscale", image, "--model", tiny_weights, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr  # usage mistakes
        assert len(_error_lines(result.stderr)) == 1 and result.stderr.count("\n") == 1 and text in result.stderr, (args, result.stderr)


def test_max_memory_and_alpha_model_from_the_command_line(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(60, 50), mode="RGBA")
    whole = bsrn("upscale", image, "--model", tiny_weights, "--tile", "0", "-o", tmp_path / "whole.png")
    small = bsrn("upscale", image, "--model", tiny_weights, "--tile", "0", "--max-memory", "2M",
                 "-o", tmp_path / "small.png")
    model_alpha = bsrn("upscale", image, "--model", tiny_weights, "--alpha", "model", "-o", tmp_path / "m.png")
    for result in (whole, small, model_alpha):
        assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "whole.png") as a, Image.open(tmp_path / "small.png") as b, \
            Image.open(tmp_path / "m.png") as m:
        assert a.tobytes() == b.tobytes()  # tiles chosen for 2M give the same pixels
        assert m.mode == "RGBA" and m.getchannel("A").tobytes() != a.getchannel("A").tobytes()
