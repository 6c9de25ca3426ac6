import json

import pytest

from bsrn_cli.backends import bitpack
from tests.cli.test_upscale import bsrn

pytestmark = pytest.mark.skipif(not bitpack.available(), reason="packed kernels not built")


def test_bench_json_reports_both_backends_per_thread_count():
    result = bsrn("bench", "-s", 2, "--width", 24, "--height", 16, "--threads", 1, "--threads", 2,
                  "--rounds", 1, "--layers", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["input"] == [24, 16] and record["scale"] == 2
    assert [run["threads"] for run in record["runs"]] == [1, 2]
    for run in record["runs"]:
        assert run["packed_ms"] > 0 and run["torch_ms"] > 0
        assert run["speedup"] == pytest.approx(run["torch_ms"] / run["packed_ms"])
        assert {"binary 3x3 conv", "binary 1x1 conv"} <= set(run["packed_layers_ms"])


def test_bench_rejects_bad_sizes():
    result = bsrn("bench", "--width", 0)
    assert result.returncode == 1 and result.stderr.startswith("error:")
