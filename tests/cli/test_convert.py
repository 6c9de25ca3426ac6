"""`bsrn convert`: a trusted torch.save'd state dict -> weights that load with the same tensors;
one-line refusals that leave nothing behind; code in a pickle is never run."""

import json
import pickle

import pytest
import torch
from PIL import Image

from bsrn_cli.pretrained.weights import load_weights, save_weights
from tests.cli.test_upscale import bsrn
from tests.conftest import tiny_model, write_image

TINY = ["-s", 2, "--config", json.dumps({"channels": 8, "hpb_blocks": 1})]


@pytest.fixture
def checkpoint(tmp_path):
    """A DataParallel-style checkpoint of tiny_model(2): the state dict under "state_dict", names with "module."."""
    path = tmp_path / "trusted.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tiny_model(2).state_dict().items()}, "epoch": 3}, path)
    return path


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_trusted_checkpoint_converts_to_weights_with_the_same_tensors_and_metadata(tmp_path, checkpoint):
    out = tmp_path / "converted.safetensors"
    result = bsrn("convert", checkpoint, "-o", out, *TINY)
    assert result.returncode == 0, result.stderr
    assert "can run code from the file" in result.stdout and "source you trust" in result.stdout
    assert f"wrote {out}" in result.stdout

    model = tiny_model(2)
    loaded, meta = load_weights(out)
    expected, got = model.state_dict(), loaded.state_dict()
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
    assert (meta["architecture"], meta["scale"], meta["config"]) == ("bsrn", 2, model.config.to_dict())
    assert meta["converted_from"] == {"file": "trusted.pth", "tool": "bsrn convert"}

    direct = tmp_path / "direct.safetensors"
    save_weights(model, direct)
    image = write_image(tmp_path / "in.png", size=(13, 9))
    for weights in (out, direct):
        upscaled = bsrn("upscale", image, "--model", weights, "-o", tmp_path / f"{weights.stem}.png")
        assert upscaled.returncode == 0, upscaled.stderr
    with Image.open(tmp_path / "converted.png") as a, Image.open(tmp_path / "direct.png") as b:
        assert a.size == (26, 18) and a.tobytes() == b.tobytes()


def test_help_says_it_unpickles_and_shows_an_example():
    result = bsrn("convert", "--help")
    assert result.returncode == 0
    assert "can run code from the file" in result.stdout and "source" in result.stdout
    assert "Example: bsrn convert model.pth -o model.safetensors -s 4" in result.stdout


@pytest.mark.parametrize("case, problem", [("missing", "no such checkpoint file"),
                                           ("not a checkpoint", "not a checkpoint that torch.load"),
                                           ("empty", "not a checkpoint that torch.load"),
                                           ("output exists", "exists (use --overwrite)")])
def test_refusals_are_one_line_naming_the_file_and_write_nothing(tmp_path, checkpoint, case, problem):
    out = tmp_path / "out.safetensors"
    source, named = checkpoint, checkpoint
    if case == "missing":
        source = named = tmp_path / "missing.pth"
    elif case in ("not a checkpoint", "empty"):
        source = named = tmp_path / "notes.pth"
        source.write_text("not a checkpoint\n" if case == "not a checkpoint" else "")
    else:
        out.write_bytes(b"keep me")
        named = out
    before = sorted(tmp_path.iterdir())
    result = bsrn("convert", source, "-o", out, *TINY)
    assert result.returncode == 1
    [line] = _error_lines(result.stderr)
    assert line.startswith(f"error: {named}: {problem}")
    assert sorted(tmp_path.iterdir()) == before  # no output, no temporary file
    if case == "output exists":
        assert out.read_bytes() == b"keep me"


def test_overwrite_replaces_an_output_but_never_the_checkpoint(tmp_path, checkpoint):
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"old")
    assert bsrn("convert", checkpoint, "-o", out, *TINY, "--overwrite").returncode == 0
    assert load_weights(out)[1]["converted_from"]["file"] == "trusted.pth"

    itself = checkpoint.rename(tmp_path / "trusted.safetensors")
    data = itself.read_bytes()
    result = bsrn("convert", itself, "-o", itself, *TINY, "--overwrite")
    assert result.returncode == 1 and _error_lines(result.stderr) == [
        f"error: {itself}: is the checkpoint itself; choose another -o"]
    assert itself.read_bytes() == data


class _Payload:
    """Unpickling this runs Python code: it creates the file named ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_code_in_a_pickle_is_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=2))  # torch.save's protocol
    result = bsrn("convert", evil, "-o", tmp_path / "out.safetensors", *TINY)
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    assert result.returncode == 1
    [line] = _error_lines(result.stderr)
    assert line == (f"error: {evil}: not a checkpoint that torch.load(weights_only=True) accepts "
                    "(Unsupported global: GLOBAL exec was not an allowed global by default)")


@pytest.mark.parametrize("case", ["other shapes", "a tensor missing"])
def test_tensors_that_do_not_fit_the_configuration_write_nothing(tmp_path, checkpoint, case):
    out = tmp_path / "wrong.safetensors"
    if case == "other shapes":
        result = bsrn("convert", checkpoint, "-o", out, "-s", 2)  # the default channels (48), not the tiny 8
    else:
        tensors = tiny_model(2).state_dict()
        tensors.pop(sorted(tensors)[0])
        torch.save(tensors, checkpoint)
        result = bsrn("convert", checkpoint, "-o", out, *TINY)
    [line] = _error_lines(result.stderr)
    assert result.returncode == 1 and line.startswith(f"error: {checkpoint}: the tensors do not fit the configuration")
    assert not out.exists()


def test_usage_mistakes_exit_2(checkpoint, tmp_path):
    out = tmp_path / "out.safetensors"
    for args, line in (((), "error: -s/--scale: missing; see bsrn convert --help"),
                       (("-s", 2, "--config", "[8]"),
                        "error: --config: must be a JSON object such as '{\"channels\": 48}'; see bsrn convert --help")):
        result = bsrn("convert", checkpoint, "-o", out, *args)
        assert (result.returncode, result.stderr) == (2, line + "\n")
    assert not out.exists()
