/* Binary (XNOR-popcount) convolutions over bit-packed channels and the fused LB-block
 * driver of the packed backend. See bitconv.c. */
#ifndef BSRN_BITCONV_H
#define BSRN_BITCONV_H

/* Rows of packed input bits kept per block: a deeper ring lets threads work on more rows of one
 * block at once (a pack of row y must wait until the rows that read slot y - BSRN_RING_ROWS are done). */
#define BSRN_RING_ROWS 8 /* a power of two (slots are taken with a mask) */

#include <stddef.h>
#include <stdint.h>

/* The kernel paths: 0 portable, 1 POPCNT, 2 AVX2, 3 AVX-512 (VPOPCNTDQ + VL + BW) on x86-64, 4 NEON
 * on AArch64. Which exist depends on the build's architecture and the CPU. */
#define BSRN_PATH_PORTABLE 0
#define BSRN_PATH_POPCNT 1
#define BSRN_PATH_AVX2 2
#define BSRN_PATH_AVX512 3
#define BSRN_PATH_NEON 4
#define BSRN_N_PATHS 5
/* Which path the dispatcher chose (the best this build and CPU have, unless forced). */
int bitconv_path(void);
/* Whether this build and CPU can run a path (0 or 1). */
int bitconv_path_available(int path);
/* Force a path (for tests/benchmarks); a path that is not available gives the best one. Returns
 * the path in effect (never one the CPU lacks). */
int bitconv_set_path(int path);

/* The most channels a body may have (stack buffers of the per-pixel pass). */
#define BSRN_MAX_CHANNELS 512

/* One binary conv, its weights in the layouts the kernels read.
 * wts: [cout][taps][words] packed signs (bit = 1 for -1), taps = ksize * ksize.
 * grouped: for 3x3 with cin <= 64, the 9 taps of each output channel concatenated (cin bits
 * per tap, bitconv_concat_words(cin) words), regrouped [cout / 4][concat words][4 lanes] for
 * AVX2 (at 7 concatenated words, 43 to 49 channels, followed by the weights' XOR forms of the
 * AVX2 3x3, [cout / 4][10][4 lanes]); NULL otherwise. tap_sum: for 3x3, [9][cout] sums of each tap's +-1 weights
 * (cin - 2 popcount), the exact correction for taps outside the image. */
typedef struct {
    int ksize, cin, cout, words;
    const uint64_t *wts;
    const uint64_t *grouped;
    const int32_t *tap_sum;
} bitconv_layer;

int bitconv_concat_words(int cin);
/* Number of uint64 in the grouped layout of a 3x3 conv (0 where it is not used). */
int64_t bitconv_grouped_size(int cin, int cout);
/* Fill grouped (bitconv_grouped_size words, may be NULL when that is 0) and tap_sum ([9][cout])
 * of a 3x3 conv from its packed weights. */
void bitconv_prepare3x3(const uint64_t *wts, int cin, int cout, int words, uint64_t *grouped,
                        int32_t *tap_sum);

/* act: [H][W][words] packed signs, out: [H][W][cout] int32 dot products of the +-1 values,
 * with zero padding semantics for 3x3 (taps outside the image contribute nothing). Rows
 * [row_begin, row_end) are computed, so callers can split the work over threads. */
void bitconv_rows(const bitconv_layer *layer, const uint64_t *act, int height, int width, int32_t *out,
                  int row_begin, int row_end);

/* Pack the signs of float32 [pixels][channels] into [pixels][words] (bit = 1 where x < 0,
 * so +0.0 and -0.0 are +1); bits past `channels` are 0. */
void pack_signs(const float *x, int64_t pixels, int channels, int words, uint64_t *out);

/* The exported body: `blocks` LB blocks of three binary convs (3x3, 1x1, 1x1) on `channels`
 * channels; per-layer arrays are indexed by layer = 3 * block + i.
 *   n_terms[layer], b[layer][3]: BAM activation accumulation v = sum_j k_j A_j over the last
 *     n_terms activations of the block, k_j = b_j * mean_c(A_j) (learned) or b_j (otherwise);
 *   direction, bound [layer][channels]: the folded BN sign, bit = 1 (-1) where
 *     direction * v < bound (direction -1 flips the compare, 0 makes the bit constant);
 *   scale [layer][channels]: per output channel scale of the integer dot products;
 *   shift_in, slope, shift_out [layer][channels]: RPReLU (when rprelu);
 *   conv3 [block], conv1 [block][2]: the binary convs.
 * fp_skip: h += z after every conv (else h = z and the block adds its input at the end). */
typedef struct {
    int channels, words, blocks, fp_skip, learned, rprelu;
    const int32_t *n_terms;
    const float *b;
    const float *direction, *bound;
    const float *scale, *shift_in, *slope, *shift_out;
    const bitconv_layer *conv3, *conv1;
} bsrn_body;

/* Run blocks [first, first + count) of a body over an NHWC float map [height][width][channels]
 * read from `in` and written to `out` (they may be the same buffer). One pass per block and
 * row: the 3x3 conv from the packed signs, then per pixel everything else of the block
 * (scale, RPReLU, skips, the BAM accumulation, thresholds and packing of the two 1x1 convs,
 * and of the next block's 3x3 input). Blocks run as a wavefront over rows (block j two rows
 * behind block j - 1), so the maps in flight stay in cache. ring: count * BSRN_RING_ROWS *
 * bsrn_ring_row(width, words) uint64 of scratch. With threads > 1, call it from that many threads at once with the same
 * arguments: the threads take (block, row) items from a shared counter and
 * wait only for the items they depend on; sync: 16 + (count + 1) * height int64, zeroed before
 * the first thread starts. */
void bsrn_body_run(const bsrn_body *body, int first, int count, const float *in, float *out, int height,
                   int width, uint64_t *ring, int threads, int64_t *sync);
/* out[p]: the channel mean of pixel p of x [pixels][channels], as the current path's fused pass
 * computes it (for the tests: every path sums in the same order). */
void bitconv_channel_means(const float *x, int64_t pixels, int channels, float *out);
/* uint64 words of one ring row: a row's packed bits, then its pixels' channel means (floats). */
static inline int64_t bsrn_ring_row(int width, int words) { return (int64_t)width * words + (width + 1) / 2; }

/* Float 3x3 convolution (kernels/floatconv.c) with zero padding, NHWC: in [H][W][cin],
 * w [9][cin][cout_pad] (taps row by row), bias [cout_pad], out [H][W][cout], with cout_pad =
 * cout rounded up to a multiple of 16 (padding weights 0). Rows [row_begin, row_end). Every
 * pixel gets the same arithmetic, so any crop of the input gives bit-identical interior pixels. */
#define FLOATCONV_MAX_CIN 1024
#define FLOATCONV_MAX_COUT 1024
void floatconv3x3_rows(const float *in, int height, int width, int cin, const float *w, const float *bias,
                       int cout, float *out, int row_begin, int row_end);
/* The same, then residual [H][W][cout] added to each output row (out = conv + residual, one float
 * add per value, as numpy's conv + residual), while the row is still in cache. */
void floatconv3x3_add_rows(const float *in, int height, int width, int cin, const float *w, const float *bias,
                           int cout, const float *residual, float *out, int row_begin, int row_end);

/* The bicubic image skip, added in place: out [H*s][W*s][channels] becomes ((out + 0.5) +
 * bicubic(lr)) - 0.5, for output rows [row_begin, row_end); lr [H][W][channels]; weights
 * [s][4] and offsets [s] per output phase (kernels/floatconv.c). Position-independent like
 * the convs; column: scratch of (scale + 1) * width * channels floats. */
void bicubic_add_rows(const float *lr, int height, int width, int channels, int scale, const float *weights,
                      const int *offsets, float *out, int row_begin, int row_end, float *column);
/* The same with the upsampler's pixel shuffle folded in: out [H*s][W*s][channels] = ((shuffled
 * maps + 0.5) + bicubic(lr)) - 0.5, maps [H][W][channels * s * s] before the shuffle (channel
 * (ch * s + i) * s + j goes to output (s y + i, s x + j, ch), torch's PixelShuffle); maps NULL:
 * bicubic_add_rows. */
void bicubic_shuffle_add_rows(const float *lr, int height, int width, int channels, int scale, const float *weights,
                              const int *offsets, const float *maps, float *out, int row_begin, int row_end,
                              float *column);

#endif
