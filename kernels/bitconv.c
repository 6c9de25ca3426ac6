/* Binary convolutions as XOR + popcount over bit-packed channels.
 *
 * A +-1 value is one bit (1 for -1). For two packed vectors of n valid channels the dot
 * product is n - 2 * popcount(a XOR w); padding bits are 0 in both, so they never count.
 * One build runs everywhere: the POPCNT and AVX2 variants are compiled with function-level
 * target attributes and chosen at run time from the CPU's features; other machines (ARM
 * included) use the portable path.
 */
#include "bitconv.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define BSRN_X86 1
#include <immintrin.h>
#endif

static inline int popcount_portable(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

/* One kernel body, instantiated per popcount flavour. POP is the popcount expression. */
#define DEFINE_KERNELS(SUFFIX, ATTR, POP)                                                       \
    ATTR static void conv3x3_##SUFFIX(const uint64_t *act, int height, int width, int words,   \
                                      int cin, const uint64_t *wts, int cout, int32_t *out,    \
                                      int row_begin, int row_end) {                            \
        for (int y = row_begin; y < row_end; y++) {                                             \
            for (int x = 0; x < width; x++) {                                                   \
                int32_t *o = out + ((int64_t)y * width + x) * cout;                            \
                int valid_taps = 0;                                                             \
                int tap_index[9];                                                               \
                const uint64_t *tap_act[9];                                                     \
                for (int dy = -1; dy <= 1; dy++) {                                              \
                    int yy = y + dy;                                                            \
                    if (yy < 0 || yy >= height) continue;                                       \
                    for (int dx = -1; dx <= 1; dx++) {                                          \
                        int xx = x + dx;                                                        \
                        if (xx < 0 || xx >= width) continue;                                    \
                        tap_index[valid_taps] = (dy + 1) * 3 + (dx + 1);                        \
                        tap_act[valid_taps] = act + ((int64_t)yy * width + xx) * words;        \
                        valid_taps++;                                                           \
                    }                                                                           \
                }                                                                               \
                for (int c = 0; c < cout; c++) {                                                \
                    const uint64_t *wc = wts + (int64_t)c * 9 * words;                          \
                    int differing = 0;                                                          \
                    for (int t = 0; t < valid_taps; t++) {                                      \
                        const uint64_t *a = tap_act[t];                                         \
                        const uint64_t *w = wc + tap_index[t] * words;                          \
                        for (int k = 0; k < words; k++) differing += POP(a[k] ^ w[k]);         \
                    }                                                                           \
                    o[c] = valid_taps * cin - 2 * differing;                                    \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    ATTR static void conv1x1_##SUFFIX(const uint64_t *act, int height, int width, int words,   \
                                      int cin, const uint64_t *wts, int cout, int32_t *out,    \
                                      int row_begin, int row_end) {                            \
        (void)height;                                                                           \
        for (int64_t p = (int64_t)row_begin * width; p < (int64_t)row_end * width; p++) {      \
            const uint64_t *a = act + p * words;                                                \
            int32_t *o = out + p * cout;                                                        \
            for (int c = 0; c < cout; c++) {                                                    \
                const uint64_t *w = wts + (int64_t)c * words;                                   \
                int differing = 0;                                                              \
                for (int k = 0; k < words; k++) differing += POP(a[k] ^ w[k]);                 \
                o[c] = cin - 2 * differing;                                                     \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_KERNELS(portable, , popcount_portable)

#ifdef BSRN_X86
#define POPCNT_ATTR __attribute__((target("popcnt")))
POPCNT_ATTR static inline int popcount_hw(uint64_t x) { return (int)_mm_popcnt_u64(x); }
DEFINE_KERNELS(popcnt, POPCNT_ATTR, popcount_hw)

/* AVX2: 4 output channels per register; per-byte popcount by nibble lookup (vpshufb),
 * summed per 64-bit lane with vpsadbw. Used when activations fit one word (cin <= 64). */
#define AVX2_ATTR __attribute__((target("avx2,popcnt")))
AVX2_ATTR static inline __m256i popcount_bytes(__m256i v) {
    const __m256i lookup = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_shuffle_epi8(lookup, _mm256_and_si256(v, low));
    __m256i hi = _mm256_shuffle_epi8(lookup, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    return _mm256_add_epi8(lo, hi);
}

/* Sum the byte counts of each 64-bit lane. */
AVX2_ATTR static inline __m256i sum_lanes(__m256i bytes) {
    return _mm256_sad_epu8(bytes, _mm256_setzero_si256());
}

AVX2_ATTR static inline __m256i popcount_lanes(__m256i v) { return sum_lanes(popcount_bytes(v)); }

/* Weights regrouped for AVX2 by the caller-independent helper below: for 3x3,
 * [cout/4 groups][9 taps][4 lanes]; tail channels handled by the POPCNT path. */
AVX2_ATTR static void conv3x3_avx2_one_word(const uint64_t *act, int height, int width, int cin,
                                            const uint64_t *wts, int cout, int32_t *out,
                                            int row_begin, int row_end) {
    int groups = cout / 4;
    /* Regroup the weights as [group][tap][4 lanes] so each tap is one 256-bit load. */
    uint64_t *grouped = malloc(sizeof(uint64_t) * (size_t)(groups > 0 ? groups : 1) * 36);
    if (!grouped) {
        conv3x3_popcnt(act, height, width, 1, cin, wts, cout, out, row_begin, row_end);
        return;
    }
    for (int g = 0; g < groups; g++)
        for (int t = 0; t < 9; t++)
            for (int l = 0; l < 4; l++) grouped[(g * 9 + t) * 4 + l] = wts[(int64_t)(4 * g + l) * 9 + t];
    for (int y = row_begin; y < row_end; y++) {
        for (int x = 0; x < width; x++) {
            int32_t *o = out + ((int64_t)y * width + x) * cout;
            int valid_taps = 0, tap_index[9];
            uint64_t tap_word[9];
            for (int dy = -1; dy <= 1; dy++) {
                int yy = y + dy;
                if (yy < 0 || yy >= height) continue;
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx;
                    if (xx < 0 || xx >= width) continue;
                    tap_index[valid_taps] = (dy + 1) * 3 + (dx + 1);
                    tap_word[valid_taps] = act[(int64_t)yy * width + xx];
                    valid_taps++;
                }
            }
            for (int g = 0; g < groups; g++) {
                /* Byte counts of up to 9 taps stay below 256 (9 x 8), so one sum at the end. */
                __m256i acc = _mm256_setzero_si256();
                for (int t = 0; t < valid_taps; t++) {
                    __m256i w = _mm256_loadu_si256((const __m256i *)(grouped + (g * 9 + tap_index[t]) * 4));
                    __m256i a = _mm256_set1_epi64x((long long)tap_word[t]);
                    acc = _mm256_add_epi8(acc, popcount_bytes(_mm256_xor_si256(a, w)));
                }
                int64_t lanes[4];
                _mm256_storeu_si256((__m256i *)lanes, sum_lanes(acc));
                for (int l = 0; l < 4; l++) o[4 * g + l] = valid_taps * cin - 2 * (int32_t)lanes[l];
            }
            for (int c = 4 * groups; c < cout; c++) {
                int differing = 0;
                for (int t = 0; t < valid_taps; t++)
                    differing += popcount_hw(tap_word[t] ^ wts[(int64_t)c * 9 + tap_index[t]]);
                o[c] = valid_taps * cin - 2 * differing;
            }
        }
    }
    free(grouped);
}

AVX2_ATTR static void conv1x1_avx2_one_word(const uint64_t *act, int width, int cin,
                                            const uint64_t *wts, int cout, int32_t *out,
                                            int row_begin, int row_end) {
    int groups = cout / 4;
    for (int64_t p = (int64_t)row_begin * width; p < (int64_t)row_end * width; p++) {
        __m256i a = _mm256_set1_epi64x((long long)act[p]);
        int32_t *o = out + p * cout;
        for (int g = 0; g < groups; g++) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(wts + 4 * g));
            int64_t lanes[4];
            _mm256_storeu_si256((__m256i *)lanes, popcount_lanes(_mm256_xor_si256(a, w)));
            for (int l = 0; l < 4; l++) o[4 * g + l] = cin - 2 * (int32_t)lanes[l];
        }
        for (int c = 4 * groups; c < cout; c++) o[c] = cin - 2 * popcount_hw(act[p] ^ wts[c]);
    }
}
#endif

static int chosen_path = -1;

static int best_path(void) {
#ifdef BSRN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return 2;
    if (__builtin_cpu_supports("popcnt")) return 1;
#endif
    return 0;
}

int bitconv_path(void) {
    if (chosen_path < 0) chosen_path = best_path();
    return chosen_path;
}

int bitconv_set_path(int path) {
    int best = best_path();
    chosen_path = (path < 0 || path > best) ? best : path;
    return chosen_path;
}

void bitconv3x3(const uint64_t *act, int height, int width, int words, int cin,
                const uint64_t *wts, int cout, int32_t *out, int row_begin, int row_end) {
    switch (bitconv_path()) {
#ifdef BSRN_X86
    case 2:
        if (words == 1) {
            conv3x3_avx2_one_word(act, height, width, cin, wts, cout, out, row_begin, row_end);
            return;
        }
        /* fall through */
    case 1:
        conv3x3_popcnt(act, height, width, words, cin, wts, cout, out, row_begin, row_end);
        return;
#endif
    default:
        conv3x3_portable(act, height, width, words, cin, wts, cout, out, row_begin, row_end);
    }
}

void bitconv1x1(const uint64_t *act, int height, int width, int words, int cin,
                const uint64_t *wts, int cout, int32_t *out, int row_begin, int row_end) {
    switch (bitconv_path()) {
#ifdef BSRN_X86
    case 2:
        if (words == 1) {
            conv1x1_avx2_one_word(act, width, cin, wts, cout, out, row_begin, row_end);
            return;
        }
        /* fall through */
    case 1:
        conv1x1_popcnt(act, height, width, words, cin, wts, cout, out, row_begin, row_end);
        return;
#endif
    default:
        conv1x1_portable(act, height, width, words, cin, wts, cout, out, row_begin, row_end);
    }
}

void pack_signs(const float *x, int64_t pixels, int channels, int words, uint64_t *out) {
    for (int64_t p = 0; p < pixels; p++) {
        const float *v = x + p * channels;
        uint64_t *o = out + p * words;
        for (int k = 0; k < words; k++) {
            uint64_t bits = 0;
            int end = channels - 64 * k < 64 ? channels - 64 * k : 64;
            for (int b = 0; b < end; b++) bits |= (uint64_t)(v[64 * k + b] < 0.0f) << b;
            o[k] = bits;
        }
    }
}

#define BSRN_MAX_TERMS 64

/* sign(BN(v)) as a branch-free test: bit = (direction * (v - threshold) + offset) < 0 with
 * direction +1 (positive gain), -1 (negative gain: the test flips) or 0 (zero gain: the
 * offset, -1 or +1, is the constant sign). */
static void fold_directions(int channels, const uint8_t *above, const int8_t *constant, float *direction,
                            float *offset) {
    for (int c = 0; c < channels; c++) {
        if (constant[c] >= 0) {
            direction[c] = 0.0f;
            offset[c] = constant[c] ? -1.0f : 1.0f;
        } else {
            direction[c] = above[c] ? -1.0f : 1.0f;
            offset[c] = 0.0f;
        }
    }
}

/* Sum of n floats with 8 independent partial sums (a serial sum is latency-bound). */
static inline float sum_floats(const float *restrict a, int n) {
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int l = 0; l < 8; l++) part[l] += a[c + l];
    float total = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    for (; c < n; c++) total += a[c];
    return total;
}

/* Bits of (v[j] < 0) for j < count (count <= 64). */
static inline uint64_t negative_bits_portable(const float *v, int count) {
    uint64_t bits = 0;
    for (int j = 0; j < count; j++) bits |= (uint64_t)(v[j] < 0.0f) << j;
    return bits;
}

#ifdef BSRN_X86
AVX2_ATTR static uint64_t negative_bits_avx2(const float *v, int count) {
    uint64_t bits = 0;
    int j = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (; j + 8 <= count; j += 8)
        bits |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + j), zero, _CMP_LT_OQ)) << j;
    for (; j < count; j++) bits |= (uint64_t)(v[j] < 0.0f) << j;
    return bits;
}
#endif

void accumulate_pack(const float *const *acts, int n, const float *b, int mode, int64_t p_begin,
                     int64_t p_end, int channels, int words, const float *threshold,
                     const uint8_t *above, const int8_t *constant, uint64_t *out) {
    float k[BSRN_MAX_TERMS];
    float direction[512], offset[512], v[512];
    fold_directions(channels, above, constant, direction, offset);
#ifdef BSRN_X86
    uint64_t (*negative_bits)(const float *, int) = bitconv_path() == 2 ? negative_bits_avx2 : negative_bits_portable;
#else
    uint64_t (*negative_bits)(const float *, int) = negative_bits_portable;
#endif
    for (int64_t p = p_begin; p < p_end; p++) {
        for (int i = 0; i < n; i++)
            k[i] = mode == 0 ? b[i] * (sum_floats(acts[i] + p * channels, channels) / (float)channels) : 1.0f;
        {
            const float *restrict a0 = acts[0] + p * channels;
            for (int c = 0; c < channels; c++) v[c] = k[0] * a0[c];
        }
        for (int i = 1; i < n; i++) {
            const float *restrict a = acts[i] + p * channels;
            float ki = k[i];
            for (int c = 0; c < channels; c++) v[c] += ki * a[c];
        }
        for (int c = 0; c < channels; c++) v[c] = direction[c] * (v[c] - threshold[c]) + offset[c];
        uint64_t *o = out + p * words;
        for (int w = 0; w < words; w++) {
            int end = channels - 64 * w < 64 ? channels - 64 * w : 64;
            o[w] = negative_bits(v + 64 * w, end);
        }
    }
}

void finish_layer(const int32_t *restrict counts, int64_t p_begin, int64_t p_end, int channels,
                  const float *restrict scale, const float *restrict shift_in, const float *restrict slope,
                  const float *restrict shift_out, const float *restrict residual, float *restrict out) {
    for (int64_t p = p_begin; p < p_end; p++) {
        const int32_t *restrict cnt = counts + p * channels;
        float *restrict o = out + p * channels;
        if (slope) {
            for (int c = 0; c < channels; c++) {
                float z = (float)cnt[c] * scale[c] - shift_in[c];
                /* branch-free PReLU so the loop vectorises */
                o[c] = (z > 0.0f ? z : 0.0f) + slope[c] * (z < 0.0f ? z : 0.0f) + shift_out[c];
            }
        } else {
            for (int c = 0; c < channels; c++) o[c] = (float)cnt[c] * scale[c];
        }
        if (residual) {
            const float *restrict r = residual + p * channels;
            for (int c = 0; c < channels; c++) o[c] += r[c];
        }
    }
}
