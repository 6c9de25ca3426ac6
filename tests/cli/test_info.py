import re

from tests.cli.test_upscale import bsrn


def test_info_paper_x4_prints_parameters_within_five_percent_of_1216k():
    result = bsrn("info", "paper-x4")
    assert result.returncode == 0, result.stderr
    params = int(re.search(r"^parameters: ([\d,]+)", result.stdout, re.M).group(1).replace(",", ""))
    assert abs(params - 1_216_000) / 1_216_000 < 0.05
    assert "binary MACs" in result.stdout and "320x180 -> 1280x720" in result.stdout


def test_info_lists_registered_models():
    result = bsrn("info")
    assert result.returncode == 0
    for scale in (2, 3, 4):
        assert f"bsrn-fast-x{scale}" in result.stdout


def test_info_unknown_model_is_one_line():
    result = bsrn("info", "nonexistent-model")
    assert result.returncode == 1 and result.stderr.strip().startswith("error: unknown model")


def test_info_bad_size_is_a_usage_mistake():
    result = bsrn("info", "paper-x4", "--width", 0)
    assert (result.returncode, result.stderr) == (2, "error: --width/--height: must be positive; see bsrn info --help\n")
