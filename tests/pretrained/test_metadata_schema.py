"""Weights metadata is not trusted: wrong types, absurd sizes, deep nesting and NaN weights are
one line naming the file, checked before anything is built; a fuzz test over metadata values
runs under a memory limit; a network that gives NaN or infinite values writes no output."""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.numpy import save_file

from bsrn_cli.backends import make_upscaler
from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained.weights import load_weights, open_weights, save_weights
from tests.cli.test_upscale import _error_lines, bsrn
from tests.conftest import REPO, tiny_model, write_image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(tensors, metadata) of a tiny x2 BSRN."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_weights(tiny_model(2), path)
    weights = open_weights(path)
    return weights.tensors, weights.meta


def _write(path, tensors, meta):
    save_file({k: np.array(v) for k, v in tensors.items()}, str(path), metadata={"bsrn": json.dumps(meta)})
    return path


def _with(meta, **config):
    return {**meta, "config": {**meta["config"], **config}}


def _nested(depth):
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("change,message", [
    (lambda m: _with(m, hpb_blocks=10_000_000), "BSRN configuration field hpb_blocks is 10000000: must be between 1 "
                                                 "and 256"),
    (lambda m: _with(m, channels=100_000), "BSRN configuration field channels is 100000: must be between 1 and 512"),
    (lambda m: _with(m, channels="48"), "BSRN configuration field channels must be an integer, not '48'"),
    (lambda m: _with(m, fp_skip=1), "BSRN configuration field fp_skip must be true or false, not 1"),
    (lambda m: _with(m, residual_scale=math.inf), "BSRN configuration field residual_scale must be a finite number, "
                                                  "not inf"),
    (lambda m: _with(m, method=["bam"]), "BSRN configuration field method must be a short text, not a list"),
    (lambda m: _with(m, channels=16), "tensor shapes do not match the configuration in its metadata"),
    (lambda m: _with(m, hpb_blocks=3), "tensors do not match the configuration (missing"),
    (lambda m: {**m, "config": [1, 2]}, "bsrn metadata has no configuration"),
    (lambda m: {**m, "metrics": "great"}, "bsrn metadata field metrics must be dict, not str"),
    (lambda m: {**m, "metrics": {"Set5_psnr": [30]}}, "bsrn metadata metric Set5_psnr must be a number or text"),
    (lambda m: {**m, "training": _nested(40)}, "bsrn metadata is nested too deeply"),
    (lambda m: {**m, "architecture": {"x": 1}}, "unsupported weights format or architecture 'a dict'"),
])
def test_bad_metadata_is_one_line_naming_the_file(tmp_path, tiny, change, message):
    tensors, meta = tiny
    path = _write(tmp_path / "bad.safetensors", tensors, change(meta))
    with pytest.raises(BsrnError) as failure:
        load_weights(path)
    assert str(failure.value).startswith(f"{path}: ") and message in str(failure.value)
    assert "\n" not in str(failure.value)


def test_json_nested_beyond_the_parsers_limit_is_one_line(tmp_path, tiny):
    tensors, _ = tiny
    path = tmp_path / "deep.safetensors"
    save_file({k: np.array(v) for k, v in tensors.items()}, str(path),
              metadata={"bsrn": "[" * 100_000 + "]" * 100_000})
    result = bsrn("upscale", write_image(tmp_path / "a.png", size=(8, 8)), "--model", path)
    assert (result.returncode, _error_lines(result.stderr)) == (1, [f"error: {path}: bsrn metadata is nested too "
                                                                    "deeply"])


def test_nan_weights_are_refused_by_name(tmp_path, tiny):
    tensors, meta = tiny
    broken = dict(tensors)
    name = sorted(k for k in tensors if k.endswith("head.weight"))[0]
    broken[name] = np.full_like(tensors[name], np.nan)
    path = _write(tmp_path / "nan.safetensors", broken, meta)
    result = bsrn("upscale", write_image(tmp_path / "a.png", size=(8, 8)), "--model", path)
    assert (result.returncode, _error_lines(result.stderr)) == (
        1, [f"error: {path}: tensor {name} holds NaN or infinite values (broken weights)"])
    assert not (tmp_path / "a_x2.png").exists()


@pytest.mark.parametrize("backend", ["torch", "packed"])
def test_a_network_that_overflows_writes_no_output(tmp_path, tiny, backend):
    """Finite weights so large that the output overflows float32: one line, no file."""
    tensors, meta = tiny
    huge = {k: (np.full_like(v, 3e38) if k.startswith("upsampler") and k.endswith("weight") else v)
            for k, v in tensors.items()}
    path = _write(tmp_path / "huge.safetensors", huge, meta)
    upscaler = make_upscaler(open_weights(path), backend, "cpu", tile=0)
    with pytest.raises(BsrnError) as failure:
        upscaler.upscale(np.full((8, 8, 3), 200, np.uint8), "in.png")
    assert str(failure.value) == ("in.png: the network gave NaN or infinite values (its weights are broken or "
                                  "overflow); no output written")


FUZZ = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from hypothesis import HealthCheck, given, settings, strategies as st
    from safetensors.numpy import save_file
    from bsrn_cli.errors import BsrnError
    from bsrn_cli.backends.packed_export import export_bsrn
    from bsrn_cli.pretrained.weights import open_weights

    source = open_weights(sys.argv[1])
    folder = sys.argv[2]
    fields = sorted(source.meta["config"])
    # Everything that follows runs with at most 1.5 GiB more address space than now.
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    limit = used + (3 << 29)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    leaf = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                     st.text(max_size=80), st.none())
    value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                             max_size=3), max_leaves=8)
    counts = {"ok": 0, "refused": 0}

    @settings(max_examples=int(sys.argv[3]), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(st.sampled_from(fields + ["extra"]), value | st.integers(0, 10**9), min_size=1,
                           max_size=4), st.sampled_from(["config", "metrics", "training", "scale"]))
    def check(changes, where):
        meta = dict(source.meta)
        if where == "config":
            meta["config"] = {**meta["config"], **changes}
        else:
            meta[where] = changes if where != "scale" else changes.get(fields[0], 4)
        path = f"{folder}/fuzz.safetensors"
        save_file(source.tensors, path, metadata={"bsrn": json.dumps(meta)})
        try:
            weights = open_weights(path)
            weights.network()
            export_bsrn(weights.tensors, weights.config, path)
            counts["ok"] += 1
        except BsrnError as exc:
            text = str(exc)
            assert text.startswith(path + ": ") and "\\n" not in text, text
            counts["refused"] += 1

    check()
    print(json.dumps(counts))
""")


def test_fuzzed_metadata_ends_in_one_line_within_a_memory_limit(tmp_path, tiny):
    tensors, meta = tiny
    source = _write(tmp_path / "source.safetensors", tensors, meta)
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ)
    done = subprocess.run([sys.executable, str(script), str(source), str(tmp_path), "150"], capture_output=True,
                          text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["refused"] > 50 and counts["ok"] + counts["refused"] == 150


def test_lineage_records_nested_as_training_writes_them_still_load(tmp_path, tiny):
    """Each fine-tune keeps the earlier training record under init_from: files of a few
    generations nest a dozen levels deep and must load."""
    tensors, meta = tiny
    record = {"steps": 1}
    for generation in range(5):
        record = {"steps": generation, "degradation": {"jpeg_quality": [50, 95]}, "init_from": {"training": record}}
    path = _write(tmp_path / "lineage.safetensors", tensors, {**meta, "training": record})
    model, loaded = load_weights(path)
    assert loaded["training"]["init_from"]["training"]["steps"] == 3
