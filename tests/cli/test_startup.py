"""What `bsrn upscale` imports: the packed path runs without torch, and options are checked before
anything heavy is imported (both seen through ``python -X importtime`` in a fresh process)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

HEAVY = ("torch", "numpy", "PIL", "cv2", "safetensors", "huggingface_hub")


def imported_modules(*args: str, cwd) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime -m bsrn_cli ARGS``; the process and the top-level modules it imported."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "bsrn_cli", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in run.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return run, modules


@pytest.fixture
def tiny_png(tmp_path):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


def test_the_packed_upscale_never_imports_torch(tiny_png, tmp_path):
    run, modules = imported_modules("upscale", str(tiny_png), "-s", "4", "-o", str(tmp_path / "out.png"),
                                    "--backend", "packed", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert Image.open(tmp_path / "out.png").size == (64, 64)
    assert "bsrn_cli" in modules and "numpy" in modules  # the import log was read
    assert "torch" not in modules
    # Typer's pydantic conversion is replaced for plain options (bsrn_cli/cli/coerce.py): ~130 ms
    assert "pydantic" not in modules


@pytest.mark.parametrize("args, message", [
    (["-s", "5"], "error: -s/--scale: unsupported scale 5: choose 2, 3 or 4"),
    (["--device", "tpu"], "error: --device: 'tpu' is not cpu, cuda or auto; see --help"),
    (["--backend", "onnx"], "error: --backend: unknown backend 'onnx'; choose auto, packed, torch"),
    (["--threads", "-1"], "error: --threads: must be 0 (all cores) or positive; see --help"),
    (["--tile", "-3"], "error: --tile: must be 0 (no tiling)"),
    (["--max-memory", "1X"], "--max-memory"),
    (["--quality", "0"], "--quality"),
])
def test_bad_options_are_refused_before_any_heavy_import(tiny_png, tmp_path, args, message):
    run, modules = imported_modules("upscale", str(tiny_png), *args, cwd=tmp_path)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith(message) if message.startswith("error:") \
        else message in errors[0], errors
    assert not modules & set(HEAVY), modules & set(HEAVY)
    assert not (tmp_path / "tiny_x4.png").exists()


def run_without_torch(*args: str, cwd) -> subprocess.CompletedProcess:
    """``bsrn ARGS`` in a process where ``import torch`` fails, as in an install without it."""
    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['bsrn', *sys.argv[1:]]; "
            "from bsrn_cli.cli import main; main()")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_without_torch_the_packed_upscale_writes_the_same_pixels(tiny_png, tmp_path):
    blocked = run_without_torch("upscale", str(tiny_png), "-s", "2", "-o", str(tmp_path / "a.png"), cwd=tmp_path)
    assert blocked.returncode == 0, blocked.stderr
    normal = subprocess.run([sys.executable, "-m", "bsrn_cli", "upscale", str(tiny_png), "-s", "2", "-o",
                             str(tmp_path / "b.png"), "--backend", "torch", "--device", "cpu"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert normal.returncode == 0, normal.stderr
    packed, reference = (np.asarray(Image.open(tmp_path / name)).astype(float) for name in ("a.png", "b.png"))
    assert packed.shape == (32, 32, 3)
    assert 10 * np.log10(255**2 / max(np.mean((packed - reference) ** 2), 1e-12)) > 50  # the torch backend's image


@pytest.mark.parametrize("args, message", [
    (["train", "data", "-s", "4"], "error: bsrn train needs PyTorch, which is not installed: pip install 'bsrn[train]'"),
    (["bench", "--rounds", "1"], "error: bsrn bench (it times the PyTorch float network against the packed one) "
                                 "needs PyTorch, which is not installed: pip install 'bsrn[torch]'"),
    (["info", "bsrn-fast-x2"], "error: bsrn info bsrn-fast-x2 needs PyTorch, which is not installed: "
                               "pip install 'bsrn[torch]'"),
    (["upscale", "TINY", "--backend", "torch"], "error: --backend torch needs PyTorch (pip install 'bsrn[torch]')"),
])
def test_commands_that_need_torch_say_so_in_one_line_with_the_install_command(tiny_png, tmp_path, args, message):
    run = run_without_torch(*[str(tiny_png) if a == "TINY" else a for a in args], cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "tiny_x4.png").exists()
