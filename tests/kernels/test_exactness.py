"""The standalone C exactness test (tests/kernels/exactness.c) of every kernel path against its
scalar references: this machine's paths natively (and the avx512 path once more in the emulated build,
so an AVX2-only CPU tests it too), portable and neon cross-compiled for AArch64 and run under
qemu-aarch64. The AArch64 runs need Debian's gcc-aarch64-linux-gnu (or clang with the AArch64
C headers of libc6-dev-arm64-cross) and qemu-user; without them they skip with the reason (the
CI machine has neither)."""

import os
import platform
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO, skip_unless_local

SOURCES = [str(REPO / "tests" / "kernels" / "exactness.c"), str(REPO / "kernels" / "bitconv.c"),
           str(REPO / "kernels" / "floatconv.c")]
FLAGS = ["-O2", "-std=c99", "-ffp-contract=off", f"-I{REPO / 'kernels'}"]  # setup.py's arithmetic flags
LIBS = ["-lm", "-lpthread"]
AARCH64_HEADERS = "/usr/aarch64-linux-gnu/include/stdint.h"


def _build(command, output):
    result = subprocess.run([*command, *FLAGS, *SOURCES, *LIBS, "-o", str(output)], capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-4000:]}"


def _run(command) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}: exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"
    return result.stdout


def _tested_paths(output: str) -> list[str]:
    """The paths the program found, each of which must have passed."""
    available = re.search(r"^paths available: (.*); default", output, re.M).group(1).split()
    for name in available:
        assert re.search(rf"^path {name}: .* cases: ok \(0 failed\)$", output, re.M), (name, output)
    assert re.search(r"^ALL OK: \d+ paths tested", output, re.M), output
    return available


X86 = ("x86_64", "amd64")
ARM64 = ("aarch64", "arm64")


def _native_compiler(name="gcc"):
    if platform.machine().lower() not in X86 + ARM64:
        pytest.skip(f"kernel paths exist for x86-64 and AArch64; this machine is {platform.machine()}")
    if name == "clang":
        compiler = shutil.which("clang")
        if compiler is None:
            pytest.skip("clang not found (the gcc build covers the paths; CI has gcc only)")
        return compiler
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        skip_unless_local("no C compiler (gcc or cc) on PATH")
    return compiler


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_every_path_of_this_machine_natively(tmp_path, compiler):
    """x86-64: portable, popcnt, avx2, avx512 as far as the CPU has them (and compat.h's CPUID
    reading agrees with the compiler's); AArch64 (a Graviton or Apple Silicon CI runner): portable, neon."""
    binary = tmp_path / "exactness"
    _build([_native_compiler(compiler)], binary)
    output = _run([str(binary), "1", "400", "160"])
    paths = _tested_paths(output)
    if platform.machine().lower() in ARM64:
        assert paths == ["portable", "neon"], output
    else:
        assert paths[0] == "portable" and "neon" not in paths, paths
        assert "__builtin_cpu_supports agrees" in output, output


def test_the_avx512_path_emulated_natively(tmp_path):
    """-DBSRN_EMULATE_AVX512: the avx512 path on two AVX2 halves, on any AVX2 CPU."""
    if platform.machine().lower() not in X86:
        pytest.skip("the emulated avx512 build is an x86-64 build")
    binary = tmp_path / "exactness-emulated"
    _build([_native_compiler(), "-DBSRN_EMULATE_AVX512"], binary)
    output = _run([str(binary), "2", "300", "120"])
    paths = _tested_paths(output)
    if "avx2" not in paths:
        pytest.skip("this CPU has no AVX2, which the emulated avx512 path needs")
    assert "avx512" in paths, output


def _qemu():
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        pytest.skip("qemu-aarch64 not found (Debian: apt install qemu-user)")
    return qemu


def test_portable_and_neon_paths_under_qemu_aarch64_gcc(tmp_path):
    compiler = shutil.which("aarch64-linux-gnu-gcc")
    if compiler is None:
        pytest.skip("aarch64-linux-gnu-gcc not found (Debian: apt install gcc-aarch64-linux-gnu)")
    qemu = _qemu()
    binary = tmp_path / "exactness-aarch64"
    _build([compiler, "-static"], binary)
    assert _tested_paths(_run([qemu, str(binary), "3", "400", "160"])) == ["portable", "neon"]


def test_portable_and_neon_paths_under_qemu_aarch64_clang(tmp_path):
    """Clang is the compiler of macOS on Apple Silicon: the same test built by it for AArch64."""
    clang, linker = shutil.which("clang"), shutil.which("aarch64-linux-gnu-ld")
    if clang is None or linker is None:
        pytest.skip("clang or aarch64-linux-gnu-ld not found (Debian: apt install clang binutils-aarch64-linux-gnu)")
    if not os.path.exists(AARCH64_HEADERS):
        pytest.skip(f"no AArch64 C library ({AARCH64_HEADERS}; Debian: apt install libc6-dev-arm64-cross)")
    qemu = _qemu()
    binary = tmp_path / "exactness-aarch64-clang"
    _build([clang, "--target=aarch64-linux-gnu", "--sysroot=/usr/aarch64-linux-gnu", f"--ld-path={linker}", "-static"],
           binary)
    assert _tested_paths(_run([qemu, str(binary), "4", "300", "120"])) == ["portable", "neon"]
