"""Builds the packed-bit kernels (kernels/*.c, kernels/packed.pyx) as bsrn_cli._packed.

Flags are chosen per compiler: MSVC gets /O2 (it rejects -std=c99, and compiles the AVX2 and
AVX-512 intrinsics without target attributes); GCC, Clang and MinGW get -O3 -std=c99 and
-ffp-contract=off (no fused multiply-adds the source does not ask for: Clang fuses a * b + c by
default where FMA is baseline, as on AArch64, and the kernel paths must do the same float
operations to give bit-identical maps). Never -march=native: one build runs on every CPU of its
architecture and the kernels choose their path at run time."""

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILE_ARGS = {"msvc": ["/O2"]}
DEFAULT_ARGS = ["-O3", "-std=c99", "-ffp-contract=off"]


class BuildExt(build_ext):
    """Per-compiler flags (the compiler is only known once the build runs)."""

    def build_extensions(self):
        args = COMPILE_ARGS.get(self.compiler.compiler_type, DEFAULT_ARGS)
        for extension in self.extensions:
            extension.extra_compile_args = list(args)
        super().build_extensions()


setup(ext_modules=cythonize(
    [Extension("bsrn_cli._packed", ["kernels/packed.pyx", "kernels/bitconv.c", "kernels/floatconv.c"],
               include_dirs=["kernels"],
               depends=["kernels/bitconv.h", "kernels/compat.h", "kernels/conv_cores.inc", "kernels/stage_x8.inc",
                        "kernels/avx512.inc", "kernels/neon.inc"])],
    language_level=3),
    cmdclass={"build_ext": BuildExt})
