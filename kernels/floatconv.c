/* The float 3x3 convolutions of the packed backend (head, body conv, upsampler convs).
 *
 * Every output pixel is computed by the same instruction sequence: the bias, then the nine
 * taps in order (row by row), each tap's input channels in order, one multiply-add per
 * output channel. A tap outside the image reads a row of zeros instead of being skipped
 * (x * w + acc with x = 0 leaves acc as it is), so border and interior pixels, and a pixel of
 * a tile and the same pixel of the whole image, get bit-identical results: tiled output
 * equals untiled output exactly. AVX2 + FMA where the dispatcher chose the AVX2 path (16
 * output channels in two registers, six pixels per pass sharing each weight load); a portable
 * loop otherwise. The result of a pixel does not depend on the pixels it was grouped with.
 */
#include "bitconv.h"
#include "compat.h"

#include <string.h>

#define FMA_PIXELS_MAX 12 /* the most pixels per pass of any path */

/* The nine input pixels (or the zero row) read by output pixel (y, x). */
static void tap_pointers(const float *in, int height, int width, int cin, int y, int x, const float *zeros,
                         const float **taps) {
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int yy = y + dy, xx = x + dx;
            *taps++ = (yy < 0 || yy >= height || xx < 0 || xx >= width)
                          ? zeros : in + ((int64_t)yy * width + xx) * cin;
        }
}

static void conv_pixel_portable(const float *const *taps, int cin, const float *w, const float *bias, int cout,
                                int cout_pad, float *out) {
    float acc[FLOATCONV_MAX_COUT];
    for (int o = 0; o < cout; o++) acc[o] = bias[o];
    for (int t = 0; t < 9; t++)
        for (int c = 0; c < cin; c++) {
            const float x = taps[t][c];
            const float *wc = w + ((int64_t)t * cin + c) * cout_pad;
            for (int o = 0; o < cout; o++) acc[o] = acc[o] + x * wc[o];
        }
    memcpy(out, acc, (size_t)cout * sizeof(float));
}

#ifdef BSRN_X86
#define FMA_ATTR BSRN_TARGET("avx2,fma")
#define FMA_PIXELS 6 /* pixels per pass: 6 x 2 accumulators + the weights fit the 16 registers */

/* Output channels [o0, o0 + 16) of NP pixels (taps[p] are pixel p's nine tap pointers). Each
 * 16-channel weight block (9 x cin x 16 floats, 27 KiB at cin 48) stays in L1 while a row's
 * pixels pass over it, and each weight load serves NP pixels. A pixel's accumulators get the
 * same operations whatever NP is, so grouping never changes a result. */
#define FMA_STEP(NP, k)                                                                              \
    if (NP > k) {                                                                                    \
        const __m256 x = _mm256_broadcast_ss(p##k + c);                                              \
        lo##k = _mm256_fmadd_ps(x, w0, lo##k);                                                       \
        hi##k = _mm256_fmadd_ps(x, w1, hi##k);                                                       \
    }
#define FMA_STORE(NP, k)                                                                             \
    if (NP > k) {                                                                                    \
        _mm256_storeu_ps(outs[k], lo##k);                                                            \
        _mm256_storeu_ps(outs[k] + 8, hi##k);                                                        \
    }
/* Named accumulators, not arrays: GCC keeps arrays of vectors in memory across the loop. */
#define DEFINE_FMA_TILE(NP)                                                                           \
    FMA_ATTR static void conv_tile##NP(const float *const (*taps)[9], int cin, const float *w,       \
                                       const float *bias, int cout_pad, int o0, float *const *outs) { \
        const __m256 b0 = _mm256_loadu_ps(bias + o0), b1 = _mm256_loadu_ps(bias + o0 + 8);           \
        __m256 lo0 = b0, lo1 = b0, lo2 = b0, lo3 = b0, lo4 = b0, lo5 = b0;                           \
        __m256 hi0 = b1, hi1 = b1, hi2 = b1, hi3 = b1, hi4 = b1, hi5 = b1;                           \
        for (int t = 0; t < 9; t++) {                                                                \
            const float *wt = w + (int64_t)t * cin * cout_pad + o0;                                  \
            const float *p0 = taps[0][t], *p1 = taps[NP > 1 ? 1 : 0][t], *p2 = taps[NP > 2 ? 2 : 0][t]; \
            const float *p3 = taps[NP > 3 ? 3 : 0][t], *p4 = taps[NP > 4 ? 4 : 0][t];               \
            const float *p5 = taps[NP > 5 ? 5 : 0][t];                                               \
            for (int c = 0; c < cin; c++) {                                                          \
                const __m256 w0 = _mm256_loadu_ps(wt + (int64_t)c * cout_pad);                      \
                const __m256 w1 = _mm256_loadu_ps(wt + (int64_t)c * cout_pad + 8);                   \
                FMA_STEP(NP, 0) FMA_STEP(NP, 1) FMA_STEP(NP, 2)                                      \
                FMA_STEP(NP, 3) FMA_STEP(NP, 4) FMA_STEP(NP, 5)                                      \
            }                                                                                        \
        }                                                                                            \
        FMA_STORE(NP, 0) FMA_STORE(NP, 1) FMA_STORE(NP, 2)                                           \
        FMA_STORE(NP, 3) FMA_STORE(NP, 4) FMA_STORE(NP, 5)                                           \
    }
DEFINE_FMA_TILE(1)
DEFINE_FMA_TILE(2)
DEFINE_FMA_TILE(3)
DEFINE_FMA_TILE(4)
DEFINE_FMA_TILE(5)
DEFINE_FMA_TILE(6)

typedef void (*fma_tile)(const float *const (*)[9], int, const float *, const float *, int, int, float *const *);
static const fma_tile FMA_TILES[FMA_PIXELS + 1] = {NULL, conv_tile1, conv_tile2, conv_tile3, conv_tile4,
                                                   conv_tile5, conv_tile6};

/* One output row: per 16-channel block, the row's pixels in groups of up to `group` pixels
 * (tiles[np] computes np of them). Results go straight to the output where all 16 channels
 * exist, else through a scratch row. */
FMA_ATTR static void conv_row_fma(const float *in, int height, int width, int cin, const float *w,
                                  const float *bias, int cout, int cout_pad, int y, const float *zeros,
                                  float *row, float *scratch, const fma_tile *tiles, int group) {
    const float *taps[FMA_PIXELS_MAX][9];
    float *outs[FMA_PIXELS_MAX];
    for (int o0 = 0; o0 < cout_pad; o0 += 16) {
        const int direct = o0 + 16 <= cout;
        for (int x0 = 0; x0 < width; x0 += group) {
            const int np = width - x0 < group ? width - x0 : group;
            for (int p = 0; p < np; p++) {
                tap_pointers(in, height, width, cin, y, x0 + p, zeros, taps[p]);
                outs[p] = direct ? row + (int64_t)(x0 + p) * cout + o0 : scratch + 16 * p;
            }
            tiles[np](taps, cin, w, bias, cout_pad, o0, outs);
            if (!direct)
                for (int p = 0; p < np; p++)
                    memcpy(row + (int64_t)(x0 + p) * cout + o0, scratch + 16 * p, (size_t)(cout - o0) * sizeof(float));
        }
    }
}

#ifndef BSRN_EMULATE_AVX512
/* The avx512 path: the 16 output channels of a block in one 512-bit register, twelve pixels
 * per pass (12 accumulators; each weight load serves twelve pixels). Per output channel the
 * same fused multiply-adds in the same order as the AVX2 tiles: bit-identical results. (The
 * emulated test build, without AVX-512, uses the AVX2 tiles on this path.) */
#define FMA512_ATTR BSRN_TARGET("avx2,fma,avx512f")
#define FMA512_PIXELS 12
#define Z_STEP(NP, k) \
    if (NP > k) a##k = _mm512_fmadd_ps(_mm512_set1_ps(p##k[c]), w0, a##k);
#define Z_STORE(NP, k) \
    if (NP > k) _mm512_storeu_ps(outs[k], a##k);
#define Z_TAP(NP, k) const float *p##k = taps[NP > k ? k : 0][t];
#define DEFINE_FMA512_TILE(NP)                                                                        \
    FMA512_ATTR static void conv_tile512_##NP(const float *const (*taps)[9], int cin, const float *w,  \
                                              const float *bias, int cout_pad, int o0, float *const *outs) { \
        const __m512 b = _mm512_loadu_ps(bias + o0);                                                  \
        __m512 a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b, a8 = b, a9 = b, a10 = b, a11 = b; \
        for (int t = 0; t < 9; t++) {                                                                 \
            const float *wt = w + (int64_t)t * cin * cout_pad + o0;                                   \
            Z_TAP(NP, 0) Z_TAP(NP, 1) Z_TAP(NP, 2) Z_TAP(NP, 3) Z_TAP(NP, 4) Z_TAP(NP, 5)             \
            Z_TAP(NP, 6) Z_TAP(NP, 7) Z_TAP(NP, 8) Z_TAP(NP, 9) Z_TAP(NP, 10) Z_TAP(NP, 11)           \
            for (int c = 0; c < cin; c++) {                                                           \
                const __m512 w0 = _mm512_loadu_ps(wt + (int64_t)c * cout_pad);                       \
                Z_STEP(NP, 0) Z_STEP(NP, 1) Z_STEP(NP, 2) Z_STEP(NP, 3) Z_STEP(NP, 4) Z_STEP(NP, 5)   \
                Z_STEP(NP, 6) Z_STEP(NP, 7) Z_STEP(NP, 8) Z_STEP(NP, 9) Z_STEP(NP, 10) Z_STEP(NP, 11) \
            }                                                                                         \
        }                                                                                             \
        Z_STORE(NP, 0) Z_STORE(NP, 1) Z_STORE(NP, 2) Z_STORE(NP, 3) Z_STORE(NP, 4) Z_STORE(NP, 5)     \
        Z_STORE(NP, 6) Z_STORE(NP, 7) Z_STORE(NP, 8) Z_STORE(NP, 9) Z_STORE(NP, 10) Z_STORE(NP, 11)   \
    }
DEFINE_FMA512_TILE(1)
DEFINE_FMA512_TILE(2)
DEFINE_FMA512_TILE(3)
DEFINE_FMA512_TILE(4)
DEFINE_FMA512_TILE(5)
DEFINE_FMA512_TILE(6)
DEFINE_FMA512_TILE(7)
DEFINE_FMA512_TILE(8)
DEFINE_FMA512_TILE(9)
DEFINE_FMA512_TILE(10)
DEFINE_FMA512_TILE(11)
DEFINE_FMA512_TILE(12)
static const fma_tile FMA512_TILES[FMA512_PIXELS + 1] = {
    NULL, conv_tile512_1, conv_tile512_2, conv_tile512_3, conv_tile512_4, conv_tile512_5, conv_tile512_6,
    conv_tile512_7, conv_tile512_8, conv_tile512_9, conv_tile512_10, conv_tile512_11, conv_tile512_12};
#endif
#endif

void floatconv3x3_add_rows(const float *in, int height, int width, int cin, const float *w, const float *bias,
                           int cout, const float *residual, float *out, int row_begin, int row_end) {
    /* each row right after it is computed (still in cache): out = conv + residual, one float add */
    for (int y = row_begin; y < row_end; y++) {
        floatconv3x3_rows(in, height, width, cin, w, bias, cout, out, y, y + 1);
        float *row = out + (int64_t)y * width * cout;
        const float *add = residual + (int64_t)y * width * cout;
        for (int64_t i = 0; i < (int64_t)width * cout; i++) row[i] = row[i] + add[i];
    }
}

void floatconv3x3_rows(const float *in, int height, int width, int cin, const float *w, const float *bias,
                       int cout, float *out, int row_begin, int row_end) {
    /* w: [9][cin][cout_pad], bias: [cout_pad], cout_pad = cout rounded up to a multiple of 16. */
    const int cout_pad = (cout + 15) / 16 * 16;
    float zeros[FLOATCONV_MAX_CIN];
    memset(zeros, 0, sizeof(zeros));
    const float *ta[9];
#ifdef BSRN_X86
    float scratch[16 * FMA_PIXELS_MAX];
    const int path = bitconv_path(), fma = path == BSRN_PATH_AVX2 || path == BSRN_PATH_AVX512;
#endif
    for (int y = row_begin; y < row_end; y++) {
        float *row = out + (int64_t)y * width * cout;
        int x = 0;
#ifdef BSRN_X86
        if (fma) {
#ifndef BSRN_EMULATE_AVX512
            if (path == 3) {
                conv_row_fma(in, height, width, cin, w, bias, cout, cout_pad, y, zeros, row, scratch, FMA512_TILES,
                             FMA512_PIXELS);
                continue;
            }
#endif
            conv_row_fma(in, height, width, cin, w, bias, cout, cout_pad, y, zeros, row, scratch, FMA_TILES, FMA_PIXELS);
            continue;
        }
#endif
        for (; x < width; x++) {
            tap_pointers(in, height, width, cin, y, x, zeros, ta);
            conv_pixel_portable(ta, cin, w, bias, cout, cout_pad, row + (int64_t)x * cout);
        }
    }
}

/* dst[i] = ((w[0] a0[i] + w[1] a1[i]) + w[2] a2[i]) + w[3] a3[i], i < n: the bicubic skip's four-tap
 * sums, each a multiply and an add in this order on every path (no fused multiply-add), so every
 * path gives the same floats. */
static void taps4_portable(const float *a0, const float *a1, const float *a2, const float *a3, const float *w,
                           float *dst, int n) {
    for (int i = 0; i < n; i++) dst[i] = ((w[0] * a0[i] + w[1] * a1[i]) + w[2] * a2[i]) + w[3] * a3[i];
}

#ifdef BSRN_X86
FMA_ATTR static void taps4_avx2(const float *a0, const float *a1, const float *a2, const float *a3, const float *w,
                                float *dst, int n) {
    const __m256 w0 = _mm256_set1_ps(w[0]), w1 = _mm256_set1_ps(w[1]), w2 = _mm256_set1_ps(w[2]),
                 w3 = _mm256_set1_ps(w[3]);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_mul_ps(w0, _mm256_loadu_ps(a0 + i)), _mm256_mul_ps(w1, _mm256_loadu_ps(a1 + i)));
        v = _mm256_add_ps(v, _mm256_mul_ps(w2, _mm256_loadu_ps(a2 + i)));
        _mm256_storeu_ps(dst + i, _mm256_add_ps(v, _mm256_mul_ps(w3, _mm256_loadu_ps(a3 + i))));
    }
    taps4_portable(a0 + i, a1 + i, a2 + i, a3 + i, w, dst + i, n - i);
}

#ifndef BSRN_EMULATE_AVX512
FMA512_ATTR static void taps4_avx512(const float *a0, const float *a1, const float *a2, const float *a3,
                                     const float *w, float *dst, int n) {
    const __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]), w2 = _mm512_set1_ps(w[2]),
                 w3 = _mm512_set1_ps(w[3]);
    int i = 0;
    for (; i < n; i += 16) { /* the last pass masked: nothing past n is read or written */
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_add_ps(_mm512_mul_ps(w0, _mm512_maskz_loadu_ps(m, a0 + i)),
                                 _mm512_mul_ps(w1, _mm512_maskz_loadu_ps(m, a1 + i)));
        v = _mm512_add_ps(v, _mm512_mul_ps(w2, _mm512_maskz_loadu_ps(m, a2 + i)));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_add_ps(v, _mm512_mul_ps(w3, _mm512_maskz_loadu_ps(m, a3 + i))));
    }
}
#endif
#endif

typedef void (*taps4_fn)(const float *, const float *, const float *, const float *, const float *, float *, int);

static taps4_fn taps4_for_path(void) {
#ifdef BSRN_X86
    const int path = bitconv_path();
#ifndef BSRN_EMULATE_AVX512
    if (path == BSRN_PATH_AVX512) return taps4_avx512;
#endif
    if (path == BSRN_PATH_AVX2 || path == BSRN_PATH_AVX512) return taps4_avx2;
#endif
    return taps4_portable;
}

void bicubic_add_rows(const float *lr, int height, int width, int channels, int scale, const float *weights,
                      const int *offsets, float *out, int row_begin, int row_end, float *column) {
    bicubic_shuffle_add_rows(lr, height, width, channels, scale, weights, offsets, NULL, out, row_begin, row_end, column);
}

void bicubic_shuffle_add_rows(const float *lr, int height, int width, int channels, int scale, const float *weights,
                              const int *offsets, const float *maps, float *out, int row_begin, int row_end,
                              float *column) {
    /* out rows [row_begin, row_end) of the (height * scale, width * scale, channels) map:
     * out = ((out + 0.5) + bicubic(lr)) - 0.5. Per output phase i (index = scale * k + i) the
     * four source pixels start at k + offsets[i] (edges repeated) with weights[i][0..3]:
     * first the column of four rows, then the row of four columns, always in this order.
     * Per output row: the column sums of the four source rows (one vector pass), then per
     * column phase the row sums of all source columns (one vector pass per phase, over the
     * columns whose four sources lie inside the image; the edge columns one by one), then the
     * sums added to the output in its order. column: (scale + 1) * width * channels floats. */
    const int out_width = width * scale, n = width * channels, ss = scale * scale;
    float *rowsum = column + n; /* [scale][n]: rowsum[px][q * channels + ch] is output (., s q + px, ch)'s */
    const taps4_fn taps4 = taps4_for_path();
    for (int y = row_begin; y < row_end; y++) {
        const int k = y / scale, phase = y % scale;
        const float *rows[4];
        for (int a = 0; a < 4; a++) {
            int r = k + offsets[phase] + a;
            r = r < 0 ? 0 : (r >= height ? height - 1 : r);
            rows[a] = lr + (int64_t)r * n;
        }
        taps4(rows[0], rows[1], rows[2], rows[3], weights + 4 * phase, column, n);
        for (int px = 0; px < scale; px++) {
            const float *wx = weights + 4 * px;
            float *h = rowsum + (int64_t)px * n;
            /* columns q whose sources q + offsets[px] .. + 3 all lie in [0, width) */
            int q0 = -offsets[px], q1 = width - 3 - offsets[px];
            q0 = q0 < 0 ? 0 : (q0 > width ? width : q0);
            q1 = q1 < q0 ? q0 : (q1 > width ? width : q1);
            if (q1 > q0) {
                const float *src = column + (int64_t)(q0 + offsets[px]) * channels;
                taps4(src, src + channels, src + 2 * channels, src + 3 * channels, wx, h + (int64_t)q0 * channels,
                      (q1 - q0) * channels);
            }
            for (int q = 0; q < width; q++) {
                if (q == q0 && q1 > q0) q = q1; /* the interior is done */
                if (q >= width) break;
                int cols[4];
                for (int b = 0; b < 4; b++) {
                    int c = q + offsets[px] + b;
                    cols[b] = (c < 0 ? 0 : (c >= width ? width - 1 : c)) * channels;
                }
                for (int ch = 0; ch < channels; ch++)
                    h[q * channels + ch] = ((wx[0] * column[cols[0] + ch] + wx[1] * column[cols[1] + ch])
                                            + wx[2] * column[cols[2] + ch]) + wx[3] * column[cols[3] + ch];
            }
        }
        float *o = out + (int64_t)y * out_width * channels;
        /* maps (pixel shuffle folded in): output (y, x, ch) is maps[y / s][x / s][(ch * s + y % s) * s + x % s] */
        const float *m = maps ? maps + (int64_t)k * n * ss + (int64_t)phase * scale : NULL;
        for (int q = 0; q < width; q++)
            for (int px = 0; px < scale; px++) {
                const float *h = rowsum + (int64_t)px * n + (int64_t)q * channels;
                float *op = o + ((int64_t)q * scale + px) * channels;
                if (m) {
                    const float *mp = m + (int64_t)q * channels * ss + px;
                    for (int ch = 0; ch < channels; ch++) op[ch] = ((mp[ch * ss] + 0.5f) + h[ch]) - 0.5f;
                } else {
                    for (int ch = 0; ch < channels; ch++) op[ch] = ((op[ch] + 0.5f) + h[ch]) - 0.5f;
                }
            }
    }
}
