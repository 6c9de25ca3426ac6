"""The backend registry (bsrn_cli/backends/__init__.py): what auto picks, what a named backend
refuses, and that only the chosen backend's module is loaded."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bsrn_cli import backends
from bsrn_cli.backends import Backend, bitpack, get_backend, make_upscaler, resolve_backend
from bsrn_cli.backends.base import Upscaler, model_options
from bsrn_cli.errors import BsrnError, UsageProblem
from tests.conftest import REPO, tiny_model


class DummyUpscaler(Upscaler):
    """Each pixel repeated s x s times."""

    def __init__(self, model, device, threads, *, overlap=None, **options):
        super().__init__(**model_options(model, overlap), **options)
        self.device, self.threads = device, threads

    def _run(self, tile):
        return tile.repeat(self.scale, 0).repeat(self.scale, 1)


def _register(monkeypatch, supports=None, available=True) -> list:
    """A dummy backend, first in the registry; returns the (architecture, method) pairs it was asked about."""
    asked = []

    def supports_(architecture, config):
        asked.append((architecture, config.method))
        return supports

    dummy = Backend("dummy", ("cpu",), f"{__name__}:DummyUpscaler", lambda: available, "the dummy library",
                    supports=supports_)
    monkeypatch.setattr(backends, "REGISTRY", (dummy, *backends.REGISTRY))
    return asked


def test_auto_picks_a_registered_backend_that_runs_the_model(monkeypatch):
    asked = _register(monkeypatch)
    upscaler = make_upscaler(tiny_model(2), "auto", "cpu", tile=0, threads=3)
    assert isinstance(upscaler, DummyUpscaler) and (upscaler.device, upscaler.threads) == ("cpu", 3)
    assert asked == [("bsrn", "bam")]
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(upscaler.upscale(image), image.repeat(2, 0).repeat(2, 1))
    assert isinstance(make_upscaler(tiny_model(2), "dummy", "auto"), DummyUpscaler)


def test_auto_skips_a_backend_that_does_not_run_the_model(monkeypatch):
    asked = _register(monkeypatch, supports="the dummy's dislikes")
    model = tiny_model(2)
    assert not isinstance(make_upscaler(model, "auto", "cpu"), DummyUpscaler)
    assert asked == [("bsrn", "bam")]
    first = "packed" if bitpack.available() else "torch"
    with pytest.raises(BsrnError, match=f"^--backend dummy does not run the dummy's dislikes; use --backend {first}$"):
        make_upscaler(model, "dummy", "cpu")


def test_auto_skips_a_backend_that_is_not_available(monkeypatch):
    asked = _register(monkeypatch, available=False)
    assert not isinstance(make_upscaler(tiny_model(2), "auto", "cpu"), DummyUpscaler)
    with pytest.raises(BsrnError, match="^--backend dummy needs the dummy library$"):
        make_upscaler(tiny_model(2), "dummy", "cpu")
    assert asked == []


def test_device_auto_prefers_an_accelerator_and_packed_stays_on_the_cpu(monkeypatch):
    """As if CUDA were present: auto runs torch on it, packed refuses it by name."""
    with_cuda = dataclasses.replace(get_backend("torch"), has_device=lambda device: True)
    monkeypatch.setattr(backends, "REGISTRY", (get_backend("packed"), with_cuda))
    model = tiny_model(2)
    entry, device = resolve_backend("auto", "auto", model)
    assert (entry.name, device) == ("torch", "cuda")
    with pytest.raises(UsageProblem) as caught:
        resolve_backend("packed", "cuda", model)
    assert str(caught.value) == "--backend: packed runs on the CPU only; use --backend torch for CUDA"
    entry, device = resolve_backend("packed", "auto", model)
    assert (entry.name, device) == ("packed", "cpu")


def test_unknown_names_are_usage_problems():
    with pytest.raises(UsageProblem, match=r"^--backend: unknown backend 'onnx'; choose auto, packed, torch$"):
        resolve_backend("onnx", "cpu", tiny_model(2))
    with pytest.raises(UsageProblem, match=r"^--device: 'tpu' is not cpu, cuda or auto; see --help$"):
        resolve_backend("auto", "tpu", tiny_model(2))


@pytest.mark.skipif(not bitpack.available(), reason="packed kernels not built")
def test_choosing_packed_never_loads_the_torch_backend():
    """base and the registry load no torch; creating the packed upscaler (device cpu, and auto
    on a machine without CUDA) does not load bsrn_cli.backends.torch_backend."""
    script = textwrap.dedent("""
        import sys
        import bsrn_cli.backends.base
        import bsrn_cli.backends
        assert "torch" not in sys.modules, "base or the registry loaded torch"
        from bsrn_cli.backends import make_upscaler
        from tests.conftest import tiny_model
        for device in ("cpu", "auto"):
            upscaler = make_upscaler(tiny_model(2), "auto", device)
            assert type(upscaler).__name__ == "PackedUpscaler", type(upscaler)
        assert "bsrn_cli.backends.torch_backend" not in sys.modules, "the torch backend was loaded"
        """)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
