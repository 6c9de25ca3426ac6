"""Command-line mistakes, end to end (subprocess): one line `error: <option>: <what>; <hint>`,
exit status 2, nothing written; Real-ESRGAN's habits (-i, -n, -t, --ext) understood or pointed
to our option; runtime failures keep exit status 1."""

import pytest
from PIL import Image

from tests.cli.test_upscale import bsrn, tiny_weights  # noqa: F401 (fixture)
from tests.conftest import write_image

HELP = "see bsrn upscale --help"


@pytest.mark.parametrize("args, line", [
    (["upscale", "-n", "realesrgan-x4plus"], "error: -n: no such option; did you mean -m/--model?"),
    (["upscale", "-t", "128"], "error: -t: no such option; did you mean --tile?"),
    (["upscale", "--ext", "jpg"], "error: --ext: no such option; did you mean --format?"),
    (["upscale", "--tiel", "128"], "error: --tiel: no such option; did you mean --tile?"),
    (["upscale", "--overwrit"], "error: --overwrit: no such option; did you mean --overwrite?"),
    (["upscale", "--zzz"], f"error: --zzz: no such option; {HELP}"),
    (["upscale", "-s", "two"], f"error: -s/--scale: 'two' is not a number; {HELP}"),
    (["upscale", "-s", "0.5"],
     f"error: -s/--scale: 0.5 is out of range: a fraction must be above 1 and at most 16; {HELP}"),
    (["upscale", "--quality=abc"], f"error: --quality: 'abc' is not a whole number; {HELP}"),
    (["upscale", "-s"], f"error: -s: needs a value; {HELP}"),
    (["upscale", "-s", "5"], f"error: -s/--scale: unsupported scale 5: choose 2, 3 or 4, or a fraction "
                             f"such as 3.5; {HELP}"),
    (["upscale", "--quality", "0"], f"error: --quality: 0 is out of range: choose 1 to 100; {HELP}"),
    (["upscale", "--format", "gif"],
     f"error: --format: 'gif' is not an output format: choose png, jpg, webp, tiff; {HELP}"),
    (["upscale", "--max-memory", "lots"],
     f"error: --max-memory: 'lots' is not a size: give one such as 2G, 512M or 1.5G; {HELP}"),
    (["upscale", "--alpha", "magic"], f"error: --alpha: 'magic' is not a mode: choose bicubic or model; {HELP}"),
])
def test_usage_mistakes_are_one_line_naming_the_option_with_exit_2(tmp_path, args, line):
    image = write_image(tmp_path / "photo.png", size=(8, 6))
    result = bsrn(args[0], image, *args[1:])
    assert (result.returncode, result.stderr) == (2, line + "\n")
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


@pytest.mark.parametrize("args, line", [
    (["upscale"], f"error: INPUTS: missing: give image files, video files or folders (or -i FILE); {HELP}"),
    (["photo.jpg"], "error: photo.jpg: no such command; did you mean bsrn upscale photo.jpg?"),
    (["upscal", "photo.jpg"], "error: upscal: no such command; did you mean bsrn upscale?"),
])
def test_missing_inputs_and_unknown_commands_are_one_line_with_exit_2(args, line):
    result = bsrn(*args)
    assert (result.returncode, result.stderr) == (2, line + "\n")


def test_input_option_is_taken_beside_positional_inputs(tmp_path, tiny_weights):
    a = write_image(tmp_path / "a.png", size=(8, 6))
    b = write_image(tmp_path / "b.png", size=(8, 6), seed=1)
    c = write_image(tmp_path / "c.png", size=(8, 6), seed=2)
    result = bsrn("upscale", a, "-i", b, "--input", c, "--model", tiny_weights, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "b_x2.png", "c_x2.png"]
    alone = bsrn("upscale", "-i", a, "--model", tiny_weights)
    assert alone.returncode == 0, alone.stderr
    with Image.open(tmp_path / "a_x2.png") as out:
        assert out.size == (16, 12)


def test_runtime_failures_keep_exit_1(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    result = bsrn("upscale", tmp_path / "x.png", "-s", 2)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_a_piped_batch_leaves_stderr_empty(tmp_path, tiny_weights):
    """No progress bar and no stray blank line when stderr is not a terminal."""
    write_image(tmp_path / "in" / "a.png", size=(8, 6))
    write_image(tmp_path / "in" / "b.png", size=(8, 6), seed=1)
    result = bsrn("upscale", tmp_path / "in", "--model", tiny_weights, "-o", tmp_path / "out")
    assert result.returncode == 0 and result.stderr == ""


def test_a_folder_or_several_inputs_with_o_naming_an_image_file_is_refused(tmp_path, tiny_weights):
    shots = tmp_path / "shots"
    a = write_image(shots / "a.png", size=(8, 6))
    b = write_image(shots / "b.png", size=(8, 6), seed=1)
    folder = bsrn("upscale", shots, "-s", 2, "-o", tmp_path / "one.png")
    assert (folder.returncode, folder.stderr) == (2, f"error: -o/--output: {tmp_path / 'one.png'} names a file, "
                                                     f"but the folder {shots} give several outputs; "
                                                     f"did you mean -o {tmp_path / 'one'}/?\n")
    several = bsrn("upscale", a, b, "--model", tiny_weights, "-o", tmp_path / "x.jpg")
    assert (several.returncode, several.stderr) == (2, f"error: -o/--output: {tmp_path / 'x.jpg'} names a file, "
                                                       f"but several inputs give several outputs; "
                                                       f"did you mean -o {tmp_path / 'x'}/?\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shots"]


def test_o_with_a_trailing_separator_is_a_folder_even_with_an_image_suffix(tmp_path, tiny_weights):
    image = write_image(tmp_path / "a.png", size=(8, 6))
    result = bsrn("upscale", image, "--model", tiny_weights, "-o", f"{tmp_path / 'big.png'}/")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "big.png").iterdir()) == ["a_x2.png"]
    (tmp_path / "many.png").mkdir()  # an existing folder stays a folder, for several inputs too
    both = bsrn("upscale", image, tmp_path / "big.png" / "a_x2.png", "--model", tiny_weights,
                "-o", tmp_path / "many.png")
    assert both.returncode == 0, both.stderr
    assert sorted(p.name for p in (tmp_path / "many.png").iterdir()) == ["a_x2.png", "a_x2_x2.png"]


@pytest.mark.parametrize("args,line", [
    (["--device", "quantum"], "error: --device: 'quantum' is not cpu, cuda or auto; see --help"),
    (["--threads", "-1"], "error: --threads: must be 0 (all cores) or positive; see --help"),
    (["--backend", "quantum"], "error: --backend: unknown backend 'quantum'; choose auto, packed, torch"),
    (["--tile", "-5"], "error: --tile: must be 0 (no tiling) or a positive number of input pixels; see --help"),
    (["--tile", "1"], "error: --tile: 1 is too small: tiles under 16 pixels spend most of their time on the overlap "
                      "around them; use 0 (no tiling) or 16 or more"),
])
def test_backend_option_mistakes_are_usage_mistakes(tmp_path, tiny_weights, args, line):
    image = write_image(tmp_path / "a.png", size=(8, 8))
    result = bsrn("upscale", image, "--model", tiny_weights, *args)
    assert (result.returncode, result.stderr) == (2, line + "\n")
    assert not (tmp_path / "a_x2.png").exists()
