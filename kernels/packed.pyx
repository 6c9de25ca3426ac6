# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Python entry points of the packed-bit kernels (kernels/bitconv.c); all release the GIL."""

from libc.stdlib cimport free, malloc
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t

cdef extern from "bitconv.h":
    int bitconv_path()
    int bitconv_set_path(int path)
    void bitconv3x3(const uint64_t *act, int height, int width, int words, int cin,
                    const uint64_t *wts, int cout, int32_t *out, int row_begin, int row_end) nogil
    void bitconv1x1(const uint64_t *act, int height, int width, int words, int cin,
                    const uint64_t *wts, int cout, int32_t *out, int row_begin, int row_end) nogil
    void pack_signs(const float *x, int64_t pixels, int channels, int words, uint64_t *out) nogil
    void accumulate_pack(const float *const *acts, int n, const float *b, int mode, int64_t p_begin,
                         int64_t p_end, int channels, int words, const float *threshold,
                         const uint8_t *above, const int8_t *constant, uint64_t *out) nogil
    void finish_layer(const int32_t *counts, int64_t p_begin, int64_t p_end, int channels, const float *scale,
                      const float *shift_in, const float *slope, const float *shift_out,
                      const float *residual, float *out) nogil

PATHS = {0: "portable", 1: "popcnt", 2: "avx2"}


def path():
    """The popcount path in use: 'portable', 'popcnt' or 'avx2'."""
    return PATHS[bitconv_path()]


def set_path(name):
    """Force a path by name (tests); a path the CPU lacks falls back to the best it has."""
    inverse = {v: k for k, v in PATHS.items()}
    return PATHS[bitconv_set_path(inverse[name])]


def pack(const float[:, :, ::1] x, uint64_t[:, :, ::1] out):
    """Signs of float32 (H, W, C) into uint64 (H, W, words)."""
    cdef int64_t pixels = x.shape[0] * x.shape[1]
    cdef int channels = x.shape[2]
    cdef int words = out.shape[2]
    if out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1] or words * 64 < channels:
        raise ValueError("pack: output shape does not fit the input")
    with nogil:
        pack_signs(&x[0, 0, 0], pixels, channels, words, &out[0, 0, 0])


def conv(const uint64_t[:, :, ::1] act, const uint64_t[:, ::1] wts, int cin, int kernel_size,
         int32_t[:, :, ::1] out, int row_begin, int row_end):
    """Integer +-1 dot products for rows [row_begin, row_end) of a 3x3 or 1x1 binary conv.

    act (H, W, words); wts (cout, taps * words) with taps = kernel_size ** 2; out (H, W, cout).
    """
    cdef int height = act.shape[0], width = act.shape[1], words = act.shape[2]
    cdef int cout = wts.shape[0]
    cdef int taps = kernel_size * kernel_size
    if wts.shape[1] != taps * words or out.shape[0] != height or out.shape[1] != width or out.shape[2] != cout:
        raise ValueError("conv: shapes do not match")
    if not (0 <= row_begin <= row_end <= height):
        raise ValueError("conv: bad row range")
    if cin > words * 64 or cin < 1:
        raise ValueError("conv: cin does not fit the packed words")
    if kernel_size not in (1, 3):
        raise ValueError("conv: kernel_size must be 1 or 3")
    if row_begin == row_end or width == 0:
        return
    with nogil:
        if kernel_size == 3:
            bitconv3x3(&act[0, 0, 0], height, width, words, cin, &wts[0, 0], cout, &out[0, 0, 0],
                       row_begin, row_end)
        else:
            bitconv1x1(&act[0, 0, 0], height, width, words, cin, &wts[0, 0], cout, &out[0, 0, 0],
                       row_begin, row_end)


MODES = {"learned": 0, "ones": 1}


def accumulate(list acts, const float[::1] b, str mode, const float[::1] threshold, const uint8_t[::1] above,
               const int8_t[::1] constant, uint64_t[:, ::1] out, int64_t p_begin, int64_t p_end):
    """Fused BAM accumulation + folded-BN sign + packing. acts: float32 (pixels, C) arrays."""
    cdef int n = len(acts)
    cdef int channels = threshold.shape[0]
    cdef int words = out.shape[1]
    cdef const float[:, ::1] view
    cdef int code = MODES[mode]
    if n < 1 or n > 64 or b.shape[0] < n or channels > 512 or words * 64 < channels:
        raise ValueError("accumulate: bad arguments")
    cdef const float **pointers = <const float **>malloc(n * sizeof(float *))
    try:
        for i in range(n):
            view = acts[i]
            if view.shape[0] != out.shape[0] or view.shape[1] != channels:
                raise ValueError("accumulate: activation shapes do not match")
            pointers[i] = &view[0, 0]
        with nogil:
            accumulate_pack(pointers, n, &b[0], code, p_begin, p_end, channels, words, &threshold[0],
                            &above[0], &constant[0], &out[0, 0])
    finally:
        free(pointers)


def finish(const int32_t[:, ::1] counts, const float[::1] scale, rprelu, residual, float[:, ::1] out,
           int64_t p_begin, int64_t p_end):
    """Output pass: counts * scale, optional RPReLU (shift_in, slope, shift_out), optional residual."""
    cdef int channels = counts.shape[1]
    cdef const float[::1] shift_in, slope, shift_out
    cdef const float[:, ::1] res
    cdef const float *p_in = NULL
    cdef const float *p_slope = NULL
    cdef const float *p_out = NULL
    cdef const float *p_res = NULL
    if scale.shape[0] != channels or out.shape[0] != counts.shape[0] or out.shape[1] != channels:
        raise ValueError("finish: shapes do not match")
    if rprelu is not None:
        shift_in, slope, shift_out = rprelu
        p_in, p_slope, p_out = &shift_in[0], &slope[0], &shift_out[0]
    if residual is not None:
        res = residual
        p_res = &res[0, 0]
    with nogil:
        finish_layer(&counts[0, 0], p_begin, p_end, channels, &scale[0], p_in, p_slope, p_out, p_res, &out[0, 0])
