/* Binary (XNOR-popcount) convolutions over bit-packed channels. See bitconv.c. */
#ifndef BSRN_BITCONV_H
#define BSRN_BITCONV_H

#include <stdint.h>

/* Which popcount path the dispatcher chose: 0 portable, 1 POPCNT, 2 AVX2. */
int bitconv_path(void);
/* Force a path (for tests/benchmarks); returns the path in effect (never one the CPU lacks). */
int bitconv_set_path(int path);

/* act: [H][W][words] packed signs (bit = 1 for -1), wts: [cout][9][words] (3x3) or
 * [cout][words] (1x1), out: [H][W][cout] int32 dot products of the +-1 values, with zero
 * padding semantics for 3x3 (taps outside the image contribute nothing). Rows
 * [row_begin, row_end) are computed, so callers can split the work over threads. */
void bitconv3x3(const uint64_t *act, int height, int width, int words, int cin,
                const uint64_t *wts, int cout, int32_t *out, int row_begin, int row_end);
void bitconv1x1(const uint64_t *act, int height, int width, int words, int cin,
                const uint64_t *wts, int cout, int32_t *out, int row_begin, int row_end);

/* Pack the signs of float32 [pixels][channels] into [pixels][words] (bit = 1 where x < 0,
 * so +0.0 and -0.0 are +1); bits past `channels` are 0. */
void pack_signs(const float *x, int64_t pixels, int channels, int words, uint64_t *out);

/* BAM activation accumulation fused with the folded-BN sign and the packing, for pixels
 * [p_begin, p_end): v = sum_i k_i A_i with k_i = b_i * mean_c(A_i) (mode 0), k_i = 1 (mode 1),
 * then bit = 1 where BN(v) < 0, the BN folded into per-channel thresholds: v < threshold
 * (above[c] == 0), v > threshold (above[c] == 1, a negative gain), or constant[c] (>= 0) where
 * the gain is zero. acts: n pointers
 * to float [pixels][channels]. */
void accumulate_pack(const float *const *acts, int n, const float *b, int mode, int64_t p_begin,
                     int64_t p_end, int channels, int words, const float *threshold,
                     const uint8_t *above, const int8_t *constant, uint64_t *out);

/* The output pass of a binary conv for pixels [p_begin, p_end): z = counts * scale[c];
 * optional RPReLU (z - shift_in, PReLU slope, + shift_out, all per channel, NULL to skip);
 * optional residual (out = residual + z, NULL to skip). */
void finish_layer(const int32_t *counts, int64_t p_begin, int64_t p_end, int channels, const float *scale,
                  const float *shift_in, const float *slope, const float *shift_out,
                  const float *residual, float *out);

#endif
