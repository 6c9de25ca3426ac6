# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Python entry points of the packed-bit kernels (kernels/bitconv.c); all release the GIL."""

import os

import numpy as np

from libc.stdlib cimport free, malloc
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef extern from "bitconv.h":
    enum: BSRN_RING_ROWS
    ctypedef struct bitconv_layer:
        int ksize, cin, cout, words
        const uint64_t *wts
        const uint64_t *grouped
        const int32_t *tap_sum
    ctypedef struct bsrn_body:
        int channels, words, blocks, fp_skip, learned, rprelu
        const int32_t *n_terms
        const float *b
        const float *direction
        const float *bound
        const float *scale
        const float *shift_in
        const float *slope
        const float *shift_out
        const bitconv_layer *conv3
        const bitconv_layer *conv1
    int BSRN_MAX_CHANNELS
    int bitconv_path()
    int bitconv_set_path(int path)
    int bitconv_path_available(int path)
    int64_t bitconv_grouped_size(int cin, int cout)
    void bitconv_prepare3x3(const uint64_t *wts, int cin, int cout, int words, uint64_t *grouped,
                            int32_t *tap_sum)
    void bitconv_rows(const bitconv_layer *layer, const uint64_t *act, int height, int width, int32_t *out,
                      int row_begin, int row_end) nogil
    void pack_signs(const float *x, int64_t pixels, int channels, int words, uint64_t *out) nogil
    void bitconv_channel_means(const float *x, int64_t pixels, int channels, float *out) nogil
    void bsrn_body_run(const bsrn_body *body, int first, int count, const float *inp, float *out, int height,
                       int width, uint64_t *ring, int threads, int64_t *sync) nogil
    int64_t bsrn_ring_row(int width, int words) nogil
    int FLOATCONV_MAX_CIN
    int FLOATCONV_MAX_COUT
    void floatconv3x3_rows(const float *inp, int height, int width, int cin, const float *w, const float *bias,
                           int cout, float *out, int row_begin, int row_end) nogil
    void floatconv3x3_add_rows(const float *inp, int height, int width, int cin, const float *w,
                               const float *bias, int cout, const float *residual, float *out, int row_begin,
                               int row_end) nogil
    void bicubic_add_rows(const float *lr, int height, int width, int channels, int scale, const float *weights,
                          const int *offsets, float *out, int row_begin, int row_end, float *column) nogil
    void bicubic_shuffle_add_rows(const float *lr, int height, int width, int channels, int scale,
                                  const float *weights, const int *offsets, const float *maps, float *out,
                                  int row_begin, int row_end, float *column) nogil

PATHS = {0: "portable", 1: "popcnt", 2: "avx2", 3: "avx512", 4: "neon"}  # bitconv.h BSRN_PATH_*
MAX_CHANNELS = BSRN_MAX_CHANNELS


def path():
    """The kernel path in use: 'portable', 'popcnt', 'avx2', 'avx512' (x86-64) or 'neon' (AArch64)."""
    return PATHS[bitconv_path()]


def _cpu_paths():
    """The paths this build and CPU can run, slowest first (each architecture's faster paths have
    the higher numbers)."""
    return [name for number, name in sorted(PATHS.items()) if bitconv_path_available(number)]


def available_paths():
    """The paths this CPU can run, slowest first; the last is the default. BSRN_KERNEL_PATH=NAME
    caps them at NAME (to run or test what a CPU without the faster ones gets); unset, or a name
    this CPU does not have: no cap."""
    paths = _cpu_paths()
    ceiling = os.environ.get("BSRN_KERNEL_PATH", "").strip().lower()
    return paths[:paths.index(ceiling) + 1] if ceiling in paths else paths


def set_path(name):
    """Force a path by name (tests, bench). A path this CPU lacks raises ValueError: it never
    silently runs another path in its place."""
    inverse = {v: k for k, v in PATHS.items()}
    if name not in inverse:
        raise ValueError(f"unknown kernel path {name!r}; known: {', '.join(PATHS.values())}")
    available = available_paths()
    if name not in available:
        raise ValueError(f"kernel path {name!r} is not available on this CPU; available: {', '.join(available)}")
    return PATHS[bitconv_set_path(inverse[name])]


_paths = available_paths()
set_path(_paths[len(_paths) - 1])  # the best (no negative indices: wraparound=False)
del _paths


def pack(const float[:, :, ::1] x, uint64_t[:, :, ::1] out):
    """Signs of float32 (H, W, C) into uint64 (H, W, words)."""
    cdef int64_t pixels = x.shape[0] * x.shape[1]
    cdef int channels = x.shape[2]
    cdef int words = out.shape[2]
    if out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1] or words * 64 < channels:
        raise ValueError("pack: output shape does not fit the input")
    with nogil:
        pack_signs(&x[0, 0, 0], pixels, channels, words, &out[0, 0, 0])


def channel_means(const float[:, ::1] x):
    """float32 (pixels, channels) -> float32 (pixels,): each pixel's channel mean as the current
    path's fused pass computes it (every path sums in the same order; for the tests)."""
    out = np.empty(x.shape[0], dtype=np.float32)
    cdef float[::1] o = out
    if x.shape[0]:
        with nogil:
            bitconv_channel_means(&x[0, 0], x.shape[0], <int>x.shape[1], &o[0])
    return out


def prepare3x3(const uint64_t[:, ::1] wts, int cin):
    """(grouped, tap_sum) of a packed 3x3 conv (cout, 9 * words): the AVX2 layout (uint64, empty
    where unused) and the per-tap weight sums (int32 (9, cout)) for the border correction."""
    cdef int cout = wts.shape[0], words = wts.shape[1] // 9
    if wts.shape[1] != 9 * words or cin < 1 or cin > 64 * words:
        raise ValueError("prepare3x3: bad weight shape")
    grouped = np.zeros(bitconv_grouped_size(cin, cout), dtype=np.uint64)
    tap_sum = np.empty((9, cout), dtype=np.int32)
    cdef uint64_t[::1] g = grouped
    cdef int32_t[:, ::1] s = tap_sum
    bitconv_prepare3x3(&wts[0, 0], cin, cout, words, &g[0] if g.shape[0] else NULL, &s[0, 0])
    return grouped, tap_sum


def float_conv3x3(const float[:, :, ::1] inp, const float[:, :, ::1] w, const float[::1] bias,
                  float[:, :, ::1] out, int row_begin, int row_end):
    """Rows [row_begin, row_end) of a float 3x3 conv with zero padding: inp (H, W, cin), w (9, cin,
    cout_pad), bias (cout_pad,), out (H, W, cout), cout_pad = cout rounded up to a multiple of 16.
    Every pixel gets the same arithmetic (kernels/floatconv.c): crops give identical pixels."""
    cdef int height = inp.shape[0], width = inp.shape[1], cin = inp.shape[2], cout = out.shape[2]
    cdef int cout_pad = (cout + 15) // 16 * 16
    if (w.shape[0] != 9 or w.shape[1] != cin or w.shape[2] != cout_pad or bias.shape[0] != cout_pad
            or out.shape[0] != height or out.shape[1] != width or cin > FLOATCONV_MAX_CIN
            or cout > FLOATCONV_MAX_COUT or cin < 1 or cout < 1):
        raise ValueError("float_conv3x3: shapes do not match")
    if not (0 <= row_begin <= row_end <= height):
        raise ValueError("float_conv3x3: bad row range")
    if row_begin == row_end or width == 0:
        return
    with nogil:
        floatconv3x3_rows(&inp[0, 0, 0], height, width, cin, &w[0, 0, 0], &bias[0], cout, &out[0, 0, 0],
                          row_begin, row_end)


def float_conv3x3_add(const float[:, :, ::1] inp, const float[:, :, ::1] w, const float[::1] bias,
                      const float[:, :, ::1] residual, float[:, :, ::1] out, int row_begin, int row_end):
    """float_conv3x3, then residual (H, W, cout) added to the output rows (out = conv + residual)."""
    if residual.shape[0] != out.shape[0] or residual.shape[1] != out.shape[1] or residual.shape[2] != out.shape[2]:
        raise ValueError("float_conv3x3_add: the residual does not match the output")
    float_conv3x3(inp, w, bias, out, row_begin, row_begin)  # the checks of the shapes and rows
    if not (0 <= row_begin <= row_end <= inp.shape[0]):
        raise ValueError("float_conv3x3: bad row range")
    if row_begin == row_end or inp.shape[1] == 0:
        return
    cdef int height = inp.shape[0], width = inp.shape[1], cin = inp.shape[2], cout = out.shape[2]
    with nogil:
        floatconv3x3_add_rows(&inp[0, 0, 0], height, width, cin, &w[0, 0, 0], &bias[0], cout, &residual[0, 0, 0],
                              &out[0, 0, 0], row_begin, row_end)


def bicubic_add(const float[:, :, ::1] lr, const float[:, ::1] weights, const int[::1] offsets,
                float[:, :, ::1] out, int row_begin, int row_end):
    """Rows [row_begin, row_end) of out (H*s, W*s, c) = ((out + 0.5) + bicubic(lr)) - 0.5, lr (H, W, c),
    weights (s, 4) and offsets (s,) per output phase (kernels/floatconv.c)."""
    cdef int height = lr.shape[0], width = lr.shape[1], channels = lr.shape[2], scale = weights.shape[0]
    if (weights.shape[1] != 4 or offsets.shape[0] != scale or out.shape[0] != height * scale
            or out.shape[1] != width * scale or out.shape[2] != channels):
        raise ValueError("bicubic_add: shapes do not match")
    if not (0 <= row_begin <= row_end <= out.shape[0]):
        raise ValueError("bicubic_add: bad row range")
    if row_begin == row_end or width == 0:
        return
    column = np.empty(max((scale + 1) * width * channels, 1), dtype=np.float32)  # a row of sums per phase
    cdef float[::1] col = column
    with nogil:
        bicubic_add_rows(&lr[0, 0, 0], height, width, channels, scale, &weights[0, 0], &offsets[0], &out[0, 0, 0],
                         row_begin, row_end, &col[0])


def bicubic_shuffle_add(const float[:, :, ::1] lr, const float[:, ::1] weights, const int[::1] offsets,
                        const float[:, :, ::1] maps, float[:, :, ::1] out, int row_begin, int row_end):
    """Rows [row_begin, row_end) of out (H*s, W*s, c) = ((pixel_shuffle(maps) + 0.5) + bicubic(lr)) - 0.5,
    maps (H, W, c*s*s) before the upsampler's pixel shuffle: the shuffle, the skip and the output
    in one pass (kernels/floatconv.c)."""
    cdef int height = lr.shape[0], width = lr.shape[1], channels = lr.shape[2], scale = weights.shape[0]
    if (weights.shape[1] != 4 or offsets.shape[0] != scale or out.shape[0] != height * scale
            or out.shape[1] != width * scale or out.shape[2] != channels or maps.shape[0] != height
            or maps.shape[1] != width or maps.shape[2] != channels * scale * scale):
        raise ValueError("bicubic_shuffle_add: shapes do not match")
    if not (0 <= row_begin <= row_end <= out.shape[0]):
        raise ValueError("bicubic_shuffle_add: bad row range")
    if row_begin == row_end or width == 0:
        return
    column = np.empty(max((scale + 1) * width * channels, 1), dtype=np.float32)
    cdef float[::1] col = column
    with nogil:
        bicubic_shuffle_add_rows(&lr[0, 0, 0], height, width, channels, scale, &weights[0, 0], &offsets[0],
                                 &maps[0, 0, 0], &out[0, 0, 0], row_begin, row_end, &col[0])


cdef bitconv_layer make_layer(int ksize, int cin, const uint64_t[:, ::1] wts, const uint64_t[::1] grouped,
                              const int32_t[:, ::1] tap_sum) except *:
    cdef bitconv_layer layer
    cdef int taps = ksize * ksize
    layer.ksize, layer.cin, layer.cout = ksize, cin, wts.shape[0]
    layer.words = wts.shape[1] // taps
    if ksize not in (1, 3) or wts.shape[1] != taps * layer.words or cin < 1 or cin > 64 * layer.words:
        raise ValueError("binary conv: bad weight shape")
    layer.wts = &wts[0, 0]
    layer.grouped = NULL
    layer.tap_sum = NULL
    if ksize == 3:
        if tap_sum is None or tap_sum.shape[0] != 9 or tap_sum.shape[1] != layer.cout:
            raise ValueError("binary conv: a 3x3 conv needs its tap sums")
        layer.tap_sum = &tap_sum[0, 0]
        if grouped is not None and grouped.shape[0] == bitconv_grouped_size(cin, layer.cout) and grouped.shape[0] > 0:
            layer.grouped = &grouped[0]
    return layer


def conv(const uint64_t[:, :, ::1] act, const uint64_t[:, ::1] wts, grouped, tap_sum, int cin,
         int kernel_size, int32_t[:, :, ::1] out, int row_begin, int row_end):
    """Integer +-1 dot products for rows [row_begin, row_end) of a 3x3 or 1x1 binary conv.

    act (H, W, words); wts (cout, taps * words) with taps = kernel_size ** 2; grouped, tap_sum
    from prepare3x3 (3x3 only, else None); out (H, W, cout).
    """
    cdef int height = act.shape[0], width = act.shape[1]
    cdef bitconv_layer layer = make_layer(kernel_size, cin, wts, grouped, tap_sum)
    if layer.words != act.shape[2] or out.shape[0] != height or out.shape[1] != width or out.shape[2] != layer.cout:
        raise ValueError("conv: shapes do not match")
    if not (0 <= row_begin <= row_end <= height):
        raise ValueError("conv: bad row range")
    if row_begin == row_end or width == 0:
        return
    with nogil:
        bitconv_rows(&layer, &act[0, 0, 0], height, width, &out[0, 0, 0], row_begin, row_end)


cdef class Body:
    """An exported body for bsrn_body_run (see bitconv.h); keeps its arrays alive."""

    cdef bsrn_body body
    cdef bitconv_layer *layers
    cdef object arrays
    cdef readonly int channels, blocks

    def __cinit__(self):
        self.layers = NULL

    def __init__(self, int channels, bint fp_skip, bint learned, rprelu, n_terms, b, direction, bound, scale,
                 conv3, conv1):
        """rprelu: None or (shift_in, slope, shift_out), each float32 (layers, channels); n_terms int32
        (layers,); b float32 (layers, 3); direction/bound/scale float32 (layers, channels);
        conv3: per block (wts, grouped, tap_sum); conv1: per block two packed 1x1 weight arrays."""
        cdef int blocks = len(conv3), n_layers = 3 * len(conv3)
        if channels < 1 or channels > BSRN_MAX_CHANNELS or len(conv1) != 2 * blocks or blocks < 1:
            raise ValueError("Body: bad sizes")
        per_channel = [direction, bound, scale] + (list(rprelu) if rprelu is not None else [])
        per_channel = [np.ascontiguousarray(a, dtype=np.float32) for a in per_channel]
        if any(a.shape != (n_layers, channels) for a in per_channel):
            raise ValueError("Body: per-channel arrays must be (layers, channels)")
        n_terms = np.ascontiguousarray(n_terms, dtype=np.int32)
        b = np.ascontiguousarray(b, dtype=np.float32)
        if n_terms.shape != (n_layers,) or b.shape != (n_layers, 3) or n_terms.min() < 1 or n_terms.max() > 3:
            raise ValueError("Body: bad accumulation terms")
        if any(n_terms[3 * j + i] > i + 1 for j in range(blocks) for i in range(3)):
            raise ValueError("Body: a layer accumulates more activations than it has")
        self.layers = <bitconv_layer *>malloc(3 * blocks * sizeof(bitconv_layer))
        if self.layers == NULL:
            raise MemoryError()
        arrays = [n_terms, b] + per_channel
        cdef int j
        for j in range(blocks):
            wts, grouped, tap_sum = conv3[j]
            self.layers[j] = make_layer(3, channels, wts, grouped, tap_sum)
            arrays += [wts, grouped, tap_sum]
        for j in range(2 * blocks):
            self.layers[blocks + j] = make_layer(1, channels, conv1[j], None, None)
            arrays.append(conv1[j])
        for j in range(3 * blocks):
            if self.layers[j].cout != channels:
                raise ValueError("Body: every conv must map channels to channels")
        self.arrays = arrays
        self.channels, self.blocks = channels, blocks
        cdef const int32_t[::1] nt = n_terms
        cdef const float[:, ::1] bv = b
        cdef const float[:, ::1] d = per_channel[0]
        cdef const float[:, ::1] t = per_channel[1]
        cdef const float[:, ::1] s = per_channel[2]
        cdef const float[:, ::1] r_in
        cdef const float[:, ::1] r_slope
        cdef const float[:, ::1] r_out
        self.body.channels = channels
        self.body.words = self.layers[0].words
        self.body.blocks = blocks
        self.body.fp_skip = fp_skip
        self.body.learned = learned
        self.body.rprelu = rprelu is not None
        self.body.n_terms = &nt[0]
        self.body.b = &bv[0, 0]
        self.body.direction, self.body.bound = &d[0, 0], &t[0, 0]
        self.body.scale = &s[0, 0]
        self.body.shift_in = self.body.slope = self.body.shift_out = NULL
        if rprelu is not None:
            r_in, r_slope, r_out = per_channel[3], per_channel[4], per_channel[5]
            self.body.shift_in, self.body.slope, self.body.shift_out = &r_in[0, 0], &r_slope[0, 0], &r_out[0, 0]
        self.body.conv3 = self.layers
        self.body.conv1 = self.layers + blocks

    def __dealloc__(self):
        free(self.layers)

    def ring_size(self, int count, int width):
        """uint64 words of scratch that run() needs for `count` blocks on maps `width` wide."""
        return count * BSRN_RING_ROWS * bsrn_ring_row(width, self.body.words)

    def sync_size(self, int count, int height):
        """int64 words of zeroed synchronisation state that run() needs."""
        return 16 + (count + 1) * height

    def run(self, int first, int count, const float[:, ::1] inp, float[:, ::1] out, int height, int width,
            uint64_t[::1] ring, int64_t[::1] sync, int threads):
        """Blocks [first, first + count) on the (height * width, channels) map inp into out; call once
        from each of `threads` threads at once with the same arguments: a shared ring and a zeroed sync
        (sync_size(count, height) int64)."""
        if not (0 <= first and 1 <= count and first + count <= self.blocks):
            raise ValueError("Body.run: bad block range")
        if height < 1 or width < 1 or inp.shape[0] != <int64_t>height * width or inp.shape[1] != self.channels:
            raise ValueError("Body.run: the input map does not match height, width and channels")
        if out.shape[0] != inp.shape[0] or out.shape[1] != inp.shape[1]:
            raise ValueError("Body.run: the output map does not match the input")
        if ring.shape[0] < self.ring_size(count, width) or sync.shape[0] < self.sync_size(count, height):
            raise ValueError("Body.run: scratch too small")
        if threads < 1:
            raise ValueError("Body.run: bad thread count")
        with nogil:
            bsrn_body_run(&self.body, first, count, &inp[0, 0], &out[0, 0], height, width, &ring[0], threads,
                          &sync[0])
