"""Help that reads well: no value placeholders on flags or `<list[...]>` types, defaults shown
(-s too), --model pointing to `bsrn models list`; `bsrn info MODEL` as `key: value` lines."""

import re

from tests.cli.test_upscale import bsrn


def test_help_has_no_bool_or_list_placeholders_and_shows_the_scale_default():
    root, upscale = bsrn("--help"), bsrn("upscale", "--help")
    assert root.returncode == 0 and upscale.returncode == 0
    for shown in (root.stdout, upscale.stdout):
        assert "<bool>" not in shown and "<list[" not in shown, shown
    lines = upscale.stdout.splitlines()
    scale = next(i for i, line in enumerate(lines) if "--scale" in line)
    assert "[default: (4, or the --model file's)]" in " ".join(lines[scale:scale + 3])
    assert re.search(r"--overwrite\s+--no-overwrite\s+Replace", upscale.stdout)
    assert re.search(r"--debug\s+Show full tracebacks", root.stdout)
    assert "(see `bsrn models list`)" in upscale.stdout
    assert re.search(r"--input\s+-i\s+<path>", upscale.stdout)
    assert "Examples:" in upscale.stdout and "bsrn upscale -i photo.jpg -s 3.5" in upscale.stdout


def test_info_prints_key_value_lines_not_python_dicts():
    result = bsrn("info", "bsrn-fast-x4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "{" not in result.stdout and "│" not in result.stdout and "[" not in result.stdout
    assert all(re.fullmatch(r"( *)(- )?[^:]+:( .+)?", line) for line in lines), lines
    assert lines[:2] == ["model: bsrn-fast-x4 (bsrn-fast-x4)", "scale: x4"]
    assert "  channels: 48" in lines and "parameters: 1,091,732 (1091.7K)" in lines
    assert "measured:" in lines and any(line.startswith("  Set5_psnr: ") for line in lines)
