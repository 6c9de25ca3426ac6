"""The avx512 kernel path on a CPU without AVX-512: the extension built again with
BSRN_EMULATE_AVX512 (the same code, each 512-bit operation done on two AVX2 halves and VPOPCNTQ
with the AVX2 lookup) runs every avx512-parametrised kernel test. The path's dispatch, layouts
and fused pass are thereby tested on any x86 machine; on an AVX-512 CPU the ordinary tests run it natively."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from bsrn_cli.backends import bitpack
from tests.conftest import REPO, SHARED_DATA, skip_unless_local

pytestmark = pytest.mark.skipif(not bitpack.available(), reason="packed kernels not built")


def test_the_avx512_path_emulated_on_avx2(tmp_path):
    from bsrn_cli import _packed

    if "avx512" in _packed.available_paths():
        pytest.skip("this CPU runs the avx512 path natively: the ordinary kernel tests cover it")
    generated = REPO / "kernels" / "packed.c"  # written by cythonize when the package is built
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    if not generated.exists() or compiler is None:
        skip_unless_local(f"needs {generated} (pip install -e . writes it) and a C compiler")
    shutil.copytree(REPO / "bsrn_cli", tmp_path / "bsrn_cli", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copytree(REPO / "tests", tmp_path / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "bsrn_cli" / f"_packed{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-std=c99", "-DBSRN_EMULATE_AVX512",
                    f"-I{REPO / 'kernels'}", f"-I{sysconfig.get_paths()['include']}", str(generated),
                    str(REPO / "kernels" / "bitconv.c"), str(REPO / "kernels" / "floatconv.c"), "-o", str(target)],
                   check=True, capture_output=True)
    env = {**os.environ, "BSRN_SHARED_DATA": str(SHARED_DATA)}
    env.pop("BSRN_KERNEL_PATH", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "avx512",
                             "tests/backends/test_bitpack.py", "tests/backends/test_packed_backend.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
