"""Builds the packed-bit kernels (kernels/*.c, kernels/packed.pyx) as bsrn_cli._packed."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    [Extension("bsrn_cli._packed", ["kernels/packed.pyx", "kernels/bitconv.c", "kernels/floatconv.c"],
               include_dirs=["kernels"],
               depends=["kernels/bitconv.h", "kernels/conv_cores.inc", "kernels/stage_x8.inc", "kernels/avx512.inc"],
               extra_compile_args=["-O3", "-std=c99"])],
    language_level=3))
