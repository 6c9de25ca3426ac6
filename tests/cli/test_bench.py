import itertools
import json
import os
import subprocess
import sys

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
    assert result.returncode == 2
    assert result.stderr == "error: --rounds/--width/--height/--threads: must be positive; see bsrn bench --help\n"


def run_bench(*args, env: dict | None = None):
    """`bsrn bench` in a subprocess with an 80-column terminal width."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "80", **(env or {})}
    full_env.pop("BSRN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "bsrn_cli", "bench", *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=600)


TINY = ("-s", 4, "--width", 16, "--height", 16, "--threads", 1, "--rounds", 2)


def test_bench_kernels_forces_the_path_and_reports_it():
    result = run_bench(*TINY, "--kernels", "portable", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["kernel_path"] == "portable" and record["kernel_path_forced"] is True
    assert record["kernel_paths_available"] == bitpack._packed.available_paths()
    table = run_bench(*TINY, "--kernels", "portable")
    assert table.returncode == 0, table.stderr
    assert "kernels: portable (forced)" in table.stdout


def test_bench_unavailable_kernel_path_is_one_line_naming_the_available_ones():
    result = run_bench(*TINY, "--kernels", "avx2", env={"BSRN_KERNEL_PATH": "portable"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: --kernels: kernel path 'avx2' is not available") \
        and result.stderr.strip().endswith("available: portable")
    unknown = run_bench(*TINY, "--kernels", "sse9")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: --kernels: unknown kernel path 'sse9'")
    assert "avx512" in unknown.stderr and unknown.stderr.strip().count("\n") == 0


def test_bench_json_is_alone_on_stdout_and_progress_on_stderr():
    result = run_bench(*TINY, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)  # nothing else on stdout
    assert record["spread_limit"] == 0.2 and set(record["runs"][0]["spread"]) == \
        {"packed", "torch", "block packed", "block torch"}
    for line in ("loading the default x4 model", "timing whole network, 1 thread, round 1/2",
                 "timing whole network, 1 thread, round 2/2", "timing one block, 1 thread, round 2/2"):
        assert line in result.stderr, result.stderr


def test_bench_tables_fit_80_columns_with_whole_headers():
    result = run_bench(*TINY, "--threads", 2, "--peers")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert "…" not in result.stdout
    for header in ("threads", "packed ms", "torch ms", "speed-up", "packed MP/s", "torch MP/s", "params",
                   "Set5 dB", "source", "front"):
        assert header in result.stdout, header
    assert "speed and quality, 2 thread(s), x4" in result.stdout


def test_bench_peers_pareto_rows_and_plot(tmp_path):
    from PIL import Image

    from bsrn_cli.cli.bench import PLOT_SIZE
    from bsrn_cli.pretrained.registry import get_entry

    plot = tmp_path / "front.png"
    result = run_bench(*TINY, "--peers", "--plot", plot, "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)["runs"][0]["pareto"]}
    assert set(rows) == {"packed", "torch", "ESPCN", "FSRCNN", "IMDN", "RLFN"}
    assert rows["FSRCNN"]["psnr"] == 30.71 and "Dong2016" in rows["FSRCNN"]["psnr_source"]
    assert rows["RLFN"]["params"] == 543_740 and rows["IMDN"]["params"] == 715_176
    ours = get_entry("bsrn-fast-x4").quality["Set5_psnr"]
    assert rows["packed"]["psnr"] == rows["torch"]["psnr"] == ours and rows["packed"]["ours"]
    for row in rows.values():
        assert row["ms"] > 0 and row["mpix_per_s"] == pytest.approx(64 * 64 / row["ms"] / 1e3)
        beaten = any(o["ms"] < row["ms"] and o["psnr"] >= row["psnr"] for o in rows.values() if o is not row)
        assert row["front"] is (not beaten), row
    assert "wrote" in result.stderr
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size == PLOT_SIZE
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 10  # axes, grid, text and the coloured points
    assert any(c[1] == (200, 30, 30) for c in colours) and any(c[1] == (30, 60, 200) for c in colours)


def test_bench_plot_needs_peers_and_peers_need_room(tmp_path):
    result = run_bench("--plot", tmp_path / "p.png")
    assert result.returncode == 2 and result.stderr.startswith("error: --plot: needs --peers")
    small = run_bench("--peers", "--width", 8, "--height", 8)
    assert small.returncode == 2 and "--peers: needs an input of at least 15x15" in small.stderr


def _bench_in_process(monkeypatch, capsys, timings, as_json=True):
    import torch

    from bsrn_cli.cli import bench

    values = itertools.cycle(timings)
    monkeypatch.setattr(bench, "_time_call", lambda run: next(values))
    before = torch.get_num_threads()
    try:
        bench.bench_command(model=None, scale=4, width=16, height=16, threads=[1], rounds=2, layers=False,
                            kernels=None, peers=False, plot=None, as_json=as_json)
    finally:
        torch.set_num_threads(before)
    return capsys.readouterr()


def test_bench_warns_when_rounds_spread(monkeypatch, capsys):
    # two callables per stage: round 1 takes 0.1 s each, round 2 0.2 s: spread 0.1 / 0.15 = 67%
    captured = _bench_in_process(monkeypatch, capsys, [0.1, 0.1, 0.2, 0.2])
    record = json.loads(captured.out)
    run = record["runs"][0]
    assert run["spread"]["packed"] == pytest.approx(2 / 3) and run["spread"]["block torch"] == pytest.approx(2 / 3)
    assert len(run["warnings"]) == 4 and record["warnings"] == run["warnings"]
    assert "warning: packed rounds spread 67% with 1 thread" in captured.err
    assert captured.err.count("warning:") == 4
    table = _bench_in_process(monkeypatch, capsys, [0.1, 0.1, 0.2, 0.2], as_json=False)
    assert "1.00x*" in table.out and "not reliable" in table.out


def test_bench_steady_rounds_give_no_warning(monkeypatch, capsys):
    captured = _bench_in_process(monkeypatch, capsys, [0.1, 0.11])
    record = json.loads(captured.out)
    assert record["warnings"] == [] and "warning" not in captured.err
    assert record["runs"][0]["speedup"] == pytest.approx(1.1)


def test_pareto_front_and_spread():
    from bsrn_cli.cli.bench import pareto_front, spread

    rows = [{"ms": 10, "psnr": 30.7}, {"ms": 20, "psnr": 30.7}, {"ms": 30, "psnr": 32.2}, {"ms": 40, "psnr": 32.0},
            {"ms": 5, "psnr": None}]
    assert pareto_front(rows) == [True, False, True, False, None]
    assert spread([1.0]) == 0 and spread([1.0, 1.5, 2.0]) == pytest.approx(2 / 3)
