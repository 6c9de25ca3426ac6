/* The float 3x3 convolutions of the packed backend (head, body conv, upsampler convs).
 *
 * Every output pixel is computed by the same instruction sequence: the bias, then the nine
 * taps in order (row by row), each tap's input channels in order, one multiply-add per
 * output channel. A tap outside the image reads a row of zeros instead of being skipped
 * (x * w + acc with x = 0 leaves acc as it is), so border and interior pixels, and a pixel of
 * a tile and the same pixel of the whole image, get bit-identical results: tiled output
 * equals untiled output exactly. AVX2 + FMA where the dispatcher chose the AVX2 path (8
 * output channels per register, two pixels per pass sharing each weight load); a portable
 * loop otherwise. The result of a pixel does not depend on whether it was paired.
 */
#include "bitconv.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define BSRN_X86 1
#include <immintrin.h>
#endif

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
#define FMA_ATTR __attribute__((target("avx2,fma")))

/* Output channels [o0, o0 + 8 * NV) of one or two pixels (tb NULL: one). */
#define DEFINE_FMA_BLOCK(NV)                                                                           \
    FMA_ATTR static void conv_block##NV(const float *const *ta, const float *const *tb, int cin,     \
                                        const float *w, const float *bias, int cout_pad, int o0,     \
                                        float *oa, float *ob) {                                      \
        __m256 a[NV], b[NV];                                                                         \
        for (int j = 0; j < NV; j++) a[j] = b[j] = _mm256_loadu_ps(bias + o0 + 8 * j);               \
        for (int t = 0; t < 9; t++) {                                                                \
            const float *pa = ta[t], *pb = tb ? tb[t] : ta[t];                                       \
            const float *wt = w + (int64_t)t * cin * cout_pad + o0;                                  \
            for (int c = 0; c < cin; c++) {                                                          \
                const __m256 xa = _mm256_broadcast_ss(pa + c), xb = _mm256_broadcast_ss(pb + c);     \
                const float *wc = wt + (int64_t)c * cout_pad;                                        \
                for (int j = 0; j < NV; j++) {                                                       \
                    const __m256 wv = _mm256_loadu_ps(wc + 8 * j);                                   \
                    a[j] = _mm256_fmadd_ps(xa, wv, a[j]);                                            \
                    b[j] = _mm256_fmadd_ps(xb, wv, b[j]);                                            \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
        for (int j = 0; j < NV; j++) _mm256_storeu_ps(oa + 8 * j, a[j]);                             \
        if (ob)                                                                                      \
            for (int j = 0; j < NV; j++) _mm256_storeu_ps(ob + 8 * j, b[j]);                         \
    }
DEFINE_FMA_BLOCK(1)
DEFINE_FMA_BLOCK(2)
DEFINE_FMA_BLOCK(3)
DEFINE_FMA_BLOCK(4)
DEFINE_FMA_BLOCK(5)
DEFINE_FMA_BLOCK(6)

typedef void (*fma_block)(const float *const *, const float *const *, int, const float *, const float *, int,
                          int, float *, float *);
static const fma_block FMA_BLOCKS[7] = {NULL, conv_block1, conv_block2, conv_block3, conv_block4, conv_block5,
                                        conv_block6};

/* One or two pixels, all output channels: blocks of up to 6 registers (48 channels). The
 * results go through a padded buffer so the last, partial register never writes past `cout`. */
FMA_ATTR static void conv_pixels_fma(const float *const *ta, const float *const *tb, int cin, const float *w,
                                     const float *bias, int cout, int cout_pad, float *oa, float *ob) {
    float bufa[FLOATCONV_MAX_COUT], bufb[FLOATCONV_MAX_COUT];
    for (int o0 = 0; o0 < cout_pad; o0 += 48) {
        int nv = (cout_pad - o0) / 8;
        if (nv > 6) nv = 6;
        FMA_BLOCKS[nv](ta, tb, cin, w, bias, cout_pad, o0, bufa + o0, tb ? bufb + o0 : NULL);
    }
    memcpy(oa, bufa, (size_t)cout * sizeof(float));
    if (ob) memcpy(ob, bufb, (size_t)cout * sizeof(float));
}
#endif

void floatconv3x3_rows(const float *in, int height, int width, int cin, const float *w, const float *bias,
                       int cout, float *out, int row_begin, int row_end) {
    /* w: [9][cin][cout_pad], bias: [cout_pad], cout_pad = cout rounded up to a multiple of 8. */
    const int cout_pad = (cout + 7) / 8 * 8;
    float zeros[FLOATCONV_MAX_CIN];
    memset(zeros, 0, sizeof(zeros));
    const float *ta[9], *tb[9];
#ifdef BSRN_X86
    const int fma = bitconv_path() >= 2;
#endif
    for (int y = row_begin; y < row_end; y++) {
        float *row = out + (int64_t)y * width * cout;
        int x = 0;
#ifdef BSRN_X86
        if (fma) {
            for (; x + 1 < width; x += 2) {
                tap_pointers(in, height, width, cin, y, x, zeros, ta);
                tap_pointers(in, height, width, cin, y, x + 1, zeros, tb);
                conv_pixels_fma(ta, tb, cin, w, bias, cout, cout_pad, row + (int64_t)x * cout,
                                row + (int64_t)(x + 1) * cout);
            }
            if (x < width) {
                tap_pointers(in, height, width, cin, y, x, zeros, ta);
                conv_pixels_fma(ta, NULL, cin, w, bias, cout, cout_pad, row + (int64_t)x * cout, NULL);
            }
            continue;
        }
#endif
        for (; x < width; x++) {
            tap_pointers(in, height, width, cin, y, x, zeros, ta);
            conv_pixel_portable(ta, cin, w, bias, cout, cout_pad, row + (int64_t)x * cout);
        }
    }
}

void bicubic_add_rows(const float *lr, int height, int width, int channels, int scale, const float *weights,
                      const int *offsets, float *out, int row_begin, int row_end) {
    /* out rows [row_begin, row_end) of the (height * scale, width * scale, channels) map:
     * out = ((out + 0.5) + bicubic(lr)) - 0.5. Per output phase i (index = scale * k + i) the
     * four source pixels start at k + offsets[i] (edges repeated) with weights[i][0..3]:
     * first the column of four rows, then the row of four columns, always in this order. */
    const int out_width = width * scale;
    float column[FLOATCONV_MAX_COLUMN];
    for (int y = row_begin; y < row_end; y++) {
        const int k = y / scale, phase = y % scale;
        const float *wy = weights + 4 * phase;
        const float *rows[4];
        for (int a = 0; a < 4; a++) {
            int r = k + offsets[phase] + a;
            r = r < 0 ? 0 : (r >= height ? height - 1 : r);
            rows[a] = lr + (int64_t)r * width * channels;
        }
        for (int q = 0; q < width * channels; q++)
            column[q] = ((wy[0] * rows[0][q] + wy[1] * rows[1][q]) + wy[2] * rows[2][q]) + wy[3] * rows[3][q];
        float *o = out + (int64_t)y * out_width * channels;
        for (int x = 0; x < out_width; x++) {
            const int q = x / scale, px = x % scale;
            const float *wx = weights + 4 * px;
            int cols[4];
            for (int b = 0; b < 4; b++) {
                int c = q + offsets[px] + b;
                cols[b] = (c < 0 ? 0 : (c >= width ? width - 1 : c)) * channels;
            }
            for (int ch = 0; ch < channels; ch++) {
                const float v = ((wx[0] * column[cols[0] + ch] + wx[1] * column[cols[1] + ch])
                                 + wx[2] * column[cols[2] + ch]) + wx[3] * column[cols[3] + ch];
                o[(int64_t)x * channels + ch] = ((o[(int64_t)x * channels + ch] + 0.5f) + v) - 0.5f;
            }
        }
    }
}
