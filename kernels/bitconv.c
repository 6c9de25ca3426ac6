/* Binary convolutions as XOR + popcount over bit-packed channels, and the fused LB-block
 * driver of the packed backend.
 *
 * A +-1 value is one bit (1 for -1). For two packed vectors of n valid channels the dot
 * product is n - 2 * popcount(a XOR w); padding bits are 0 in both, so they never count.
 * One build runs everywhere: on x86-64 the POPCNT, AVX2 and AVX-512 variants are compiled with
 * function-level target attributes (compat.h; MSVC needs none) and chosen at run time from the
 * CPU's features; on AArch64 the NEON kernels (neon.inc) are the default; the portable path
 * runs anywhere.
 */
#include "bitconv.h"
#include "compat.h"

#include <string.h>

#ifdef BSRN_NEON
#include <arm_neon.h>
#endif

#define INLINE static BSRN_ALWAYS_INLINE
/* At most this many groups of 4 output channels in the AVX2 kernels (64 channels). */
#define AVX2_MAX_GROUPS 16

/* ---------------------------------------------------------------- dispatch */

static int chosen_path = -1;

int bitconv_path_available(int path) {
    if (path == BSRN_PATH_PORTABLE) return 1;
#ifdef BSRN_X86
    static int features = -1; /* CPUID can be slow in a VM: read once (a race writes the same value) */
    if (features < 0) features = bsrn_x86_features();
    const int f = features;
    const int avx2 = (f & BSRN_CPU_AVX2) && (f & BSRN_CPU_POPCNT);
    switch (path) {
    case BSRN_PATH_POPCNT: return (f & BSRN_CPU_POPCNT) != 0;
    case BSRN_PATH_AVX2: return avx2;
#ifdef BSRN_EMULATE_AVX512
    case BSRN_PATH_AVX512: return avx2 && (f & BSRN_CPU_FMA);
#else
    case BSRN_PATH_AVX512: return avx2 && (f & BSRN_CPU_FMA) && (f & BSRN_CPU_AVX512);
#endif
    default: return 0;
    }
#elif defined(BSRN_NEON)
    return path == BSRN_PATH_NEON;
#else
    return 0;
#endif
}

/* Each architecture's faster paths have the higher numbers: the best is the highest available. */
static int best_path(void) {
    for (int path = BSRN_N_PATHS - 1; path > 0; path--)
        if (bitconv_path_available(path)) return path;
    return BSRN_PATH_PORTABLE;
}

int bitconv_path(void) {
    if (chosen_path < 0) chosen_path = best_path();
    return chosen_path;
}

int bitconv_set_path(int path) {
    chosen_path = path >= 0 && path < BSRN_N_PATHS && bitconv_path_available(path) ? path : best_path();
    return chosen_path;
}

/* ---------------------------------------------------------------- weight layouts */

/* Words taken by the 9 taps of cin <= 64 channels concatenated (cin bits per tap); inlined into
 * the per-pixel cores, where a call would spill their registers. */
INLINE int concat_words(int cin) { return (9 * cin + 63) / 64; }

int bitconv_concat_words(int cin) { return concat_words(cin); }

/* The AVX2 3x3 at 43 to 49 input channels (7 concatenated words) reads, after the grouped
 * layout, per group of 4 output channels XOR_FORMS words per lane: the XORs of the concatenated
 * words in the sets FORM_SETS (bit j: word j). With x_j = a_j ^ w_j (a pixel's word j, a
 * channel's word j), the XOR of x_j over a set is (XOR of the a_j) ^ (XOR of the w_j): one XOR
 * per set, the pixel's part computed once for all groups and the weights' part here, once. */
#define XOR_FORMS 10
static const unsigned char FORM_SETS[XOR_FORMS] = {0x01, 0x03, 0x05, 0x07, 0x08, 0x18, 0x28, 0x3f, 0x47, 0x7f};

INLINE int64_t grouped_plain_size(int cin, int cout) { return (int64_t)(cout / 4) * concat_words(cin) * 4; }

int64_t bitconv_grouped_size(int cin, int cout) {
    if (cin > 64) return 0;
    return grouped_plain_size(cin, cout) + (concat_words(cin) == 7 ? (int64_t)(cout / 4) * XOR_FORMS * 4 : 0);
}

/* The 9 taps (cin <= 64 bits each, higher bits 0) as one bit string, tap t at bit t * cin. */
INLINE void concat_taps(const uint64_t *tap, int cin, uint64_t *dst, int n_words) {
    for (int j = 0; j < n_words; j++) dst[j] = 0;
    for (int t = 0; t < 9; t++) {
        int offset = t * cin, j = offset >> 6, shift = offset & 63;
        dst[j] |= tap[t] << shift;
        if (shift && shift + cin > 64) dst[j + 1] |= tap[t] >> (64 - shift);
    }
}

static inline int popcount_portable(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

void bitconv_prepare3x3(const uint64_t *wts, int cin, int cout, int words, uint64_t *grouped,
                        int32_t *tap_sum) {
    for (int c = 0; c < cout; c++)
        for (int t = 0; t < 9; t++) {
            int differing = 0;
            for (int k = 0; k < words; k++) differing += popcount_portable(wts[((int64_t)c * 9 + t) * words + k]);
            tap_sum[t * cout + c] = cin - 2 * differing;
        }
    if (cin > 64 || !grouped) return;
    int n_words = concat_words(cin);
    uint64_t concat[9];
    /* Pairs of 4-channel groups side by side, [cout / 8][n_words][8] (one 512-bit register per
     * word, two 256-bit halves for AVX2), then a last odd group as [n_words][4]. */
    const int pairs = cout / 8;
    for (int c = 0; c < cout / 4 * 4; c++) {
        concat_taps(wts + (int64_t)c * 9, cin, concat, n_words);
        for (int j = 0; j < n_words; j++) {
            int64_t at = c / 8 < pairs ? ((int64_t)(c / 8) * n_words + j) * 8 + c % 8
                                       : (int64_t)pairs * n_words * 8 + j * 4 + c % 4;
            grouped[at] = concat[j];
        }
        if (n_words == 7) /* the XOR forms: [cout / 4][XOR_FORMS][4] after the grouped layout */
            for (int f = 0; f < XOR_FORMS; f++) {
                uint64_t form = 0;
                for (int j = 0; j < 7; j++)
                    if (FORM_SETS[f] >> j & 1) form ^= concat[j];
                grouped[grouped_plain_size(cin, cout) + ((int64_t)(c / 4) * XOR_FORMS + f) * 4 + c % 4] = form;
            }
    }
}

/* ---------------------------------------------------------------- per-pixel convolutions */

/* Taps of the 3x3 window at column x from three row pointers (NULL: row outside the image);
 * returns the bit mask of taps outside the image, whose words are set to 0 (+1 padding). */
INLINE int gather_taps(const uint64_t *const rows[3], int x, int width, int words, const uint64_t **tap) {
    static const uint64_t zeros[BSRN_MAX_CHANNELS / 64] = {0};
    int outside = 0;
    for (int dy = 0; dy < 3; dy++)
        for (int dx = 0; dx < 3; dx++) {
            int t = dy * 3 + dx, xx = x + dx - 1;
            if (rows[dy] && xx >= 0 && xx < width) {
                tap[t] = rows[dy] + (int64_t)xx * words;
            } else {
                tap[t] = zeros;
                outside |= 1 << t;
            }
        }
    return outside;
}

/* Zero padding: taps outside the image were counted as +1 inputs; take their sums back out. */
INLINE void correct_border(int outside, const int32_t *tap_sum, int cout, int32_t *counts) {
    for (int t = 0; t < 9; t++)
        if (outside & (1 << t))
            for (int c = 0; c < cout; c++) counts[c] -= tap_sum[t * cout + c];
}

/* Scalar kernels for any word count; POP is the popcount flavour. */
#define DEFINE_SCALAR_CONVS(SUFFIX, ATTR, POP)                                                     \
    ATTR static void conv3x3_pixel_##SUFFIX(const bitconv_layer *L, const uint64_t *const rows[3], \
                                            int x, int width, int32_t *counts) {                   \
        const uint64_t *tap[9];                                                                    \
        int words = L->words;                                                                      \
        int outside = gather_taps(rows, x, width, words, tap);                                     \
        for (int c = 0; c < L->cout; c++) {                                                        \
            const uint64_t *w = L->wts + (int64_t)c * 9 * words;                                   \
            int differing = 0;                                                                     \
            for (int t = 0; t < 9; t++)                                                            \
                for (int k = 0; k < words; k++) differing += POP(tap[t][k] ^ w[t * words + k]);    \
            counts[c] = 9 * L->cin - 2 * differing;                                                \
        }                                                                                          \
        if (outside) correct_border(outside, L->tap_sum, L->cout, counts);                         \
    }                                                                                              \
    ATTR static void conv1x1_pixel_##SUFFIX(const bitconv_layer *L, const uint64_t *a, int32_t *counts) { \
        int words = L->words;                                                                      \
        for (int c = 0; c < L->cout; c++) {                                                        \
            const uint64_t *w = L->wts + (int64_t)c * words;                                       \
            int differing = 0;                                                                     \
            for (int k = 0; k < words; k++) differing += POP(a[k] ^ w[k]);                         \
            counts[c] = L->cin - 2 * differing;                                                    \
        }                                                                                          \
    }

DEFINE_SCALAR_CONVS(portable, , popcount_portable)

#ifdef BSRN_X86
#define POPCNT_ATTR BSRN_TARGET("popcnt")
POPCNT_ATTR static inline int popcount_hw(uint64_t x) { return (int)_mm_popcnt_u64(x); }
DEFINE_SCALAR_CONVS(popcnt, POPCNT_ATTR, popcount_hw)

/* AVX2, for cin <= 64 (one word per pixel): 4 output channels per register; per-byte
 * popcount by nibble lookup (vpshufb), summed per 64-bit lane with vpsadbw. */
#define AVX2_ATTR BSRN_TARGET("avx2,popcnt")

AVX2_ATTR static BSRN_ALWAYS_INLINE __m256i popcount_bytes(__m256i v) {
    const __m256i lookup = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_shuffle_epi8(lookup, _mm256_and_si256(v, low));
    __m256i hi = _mm256_shuffle_epi8(lookup, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    return _mm256_add_epi8(lo, hi);
}

/* Carry-save adder: the bitwise sum of three words as (high, low) = 2 high + low. */
AVX2_ATTR static BSRN_ALWAYS_INLINE void carry_save(__m256i a, __m256i b, __m256i c, __m256i *high, __m256i *low) {
    const __m256i u = _mm256_xor_si256(a, b);
    *low = _mm256_xor_si256(u, c);
    *high = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
}

/* Per-lane sums (4 x int64) of the set bits of the 7 words x_j = a_j ^ w_j (a_j broadcast: the
 * pixel's concatenated taps; w_j: a group's weights), from the XOR forms (XOR_FORMS): p[f] the
 * pixel's part of form f, w the group's parts ([XOR_FORMS][4]). Four carry-save adders reduce the
 * 7 words to ones + 2 twos + 4 fours: (x0, x1, x2) -> (h1, l1), (x3, x4, x5) -> (h2, l2),
 * (l1, l2, x6) -> (h3, ones), (h1, h2, h3) -> (fours, twos). The sums l1, ones are forms (one XOR
 * each), and a carry is maj(x, y, z) = x ^ ((x ^ y) & (x ^ z)) with x ^ y and x ^ z forms too
 * (l2 is never needed alone): 21 vector operations instead of 27 (7 XORs and four adders of 5).
 * The bytes of ones, twos, fours are counted by three nibble lookups (tables of 1, 2 and 4 times
 * the count; a byte's total is at most 56) instead of seven. */
AVX2_ATTR static BSRN_ALWAYS_INLINE __m256i popcount7_forms(const __m256i *p, const uint64_t *w) {
#define FORM(f) _mm256_xor_si256(p[f], _mm256_loadu_si256((const __m256i *)(w + 4 * (f))))
    const __m256i l1 = FORM(3);
    const __m256i h1 = _mm256_xor_si256(FORM(0), _mm256_and_si256(FORM(1), FORM(2)));
    const __m256i h2 = _mm256_xor_si256(FORM(4), _mm256_and_si256(FORM(5), FORM(6)));
    const __m256i h3 = _mm256_xor_si256(l1, _mm256_and_si256(FORM(7), FORM(8)));
    const __m256i ones = FORM(9);
#undef FORM
    __m256i twos, fours;
    carry_save(h1, h2, h3, &fours, &twos);
    const __m256i t1 = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i t2 = _mm256_add_epi8(t1, t1), t4 = _mm256_add_epi8(t2, t2);
    const __m256i low = _mm256_set1_epi8(0x0f);
#define NIBBLES(table, v)                                                                         \
    _mm256_add_epi8(_mm256_shuffle_epi8(table, _mm256_and_si256(v, low)),                         \
                    _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)))
    const __m256i bytes = _mm256_add_epi8(_mm256_add_epi8(NIBBLES(t1, ones), NIBBLES(t2, twos)), NIBBLES(t4, fours));
#undef NIBBLES
    return _mm256_sad_epu8(bytes, _mm256_setzero_si256());
}

/* Per-lane sums of byte counts (4 x int64, each < 65536). */
AVX2_ATTR static BSRN_ALWAYS_INLINE __m256i sum_lanes(__m256i bytes) { return _mm256_sad_epu8(bytes, _mm256_setzero_si256()); }

/* counts[c] = total - 2 * popcount for the 4 * groups channels whose lane sums are in sums. */
AVX2_ATTR static BSRN_ALWAYS_INLINE void store_counts(const __m256i *sums, int groups, int32_t total, int32_t *counts) {
    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256i base = _mm256_set1_epi32(total);
    int g = 0;
    for (; g + 2 <= groups; g += 2) {
        /* lanes of group g in the low halves, of group g + 1 in the high halves: reorder to 8 x int32 */
        __m256i both = _mm256_or_si256(sums[g], _mm256_slli_epi64(sums[g + 1], 32));
        __m256i ordered = _mm256_permutevar8x32_epi32(both, order);
        _mm256_storeu_si256((__m256i *)(counts + 4 * g), _mm256_sub_epi32(base, _mm256_slli_epi32(ordered, 1)));
    }
    if (g < groups) {
        int64_t lanes[4];
        _mm256_storeu_si256((__m256i *)lanes, sums[g]);
        for (int l = 0; l < 4; l++) counts[4 * g + l] = total - 2 * (int32_t)lanes[l];
    }
}

/* The kernels as always-inlined bodies so that callers with compile-time channel counts get
 * fully unrolled loops; cin and cout are the layer's (passed in as constants where known). */
#define AVX2_INLINE AVX2_ATTR static BSRN_ALWAYS_INLINE
#if defined(__GNUC__) && !defined(__clang__)
#define AVX2_SCHED_ATTR AVX2_ATTR __attribute__((optimize("schedule-insns", "sched-pressure")))
#else
#define AVX2_SCHED_ATTR AVX2_ATTR
#endif

/* AVX2: per-byte counts by nibble lookup (byte counts stay below 256: at most 9 words x 8
 * bits), summed per 64-bit lane once per group with vpsadbw. */
#define CORES_SUFFIX avx2
#define CORES_ATTR AVX2_ATTR
#define CORES_INLINE AVX2_INLINE
#define CORES_COUNT popcount_bytes
#define CORES_ADD _mm256_add_epi8
#define CORES_SUMS sum_lanes
#define CORES_COUNT7 popcount7_forms
#include "conv_cores.inc"

/* The AVX-512 path (AVX512F + VL + BW + VPOPCNTDQ): VPOPCNTQ counts each 64-bit lane in one
 * instruction instead of the nibble lookup. Its main kernels (kernels/avx512.inc) use full
 * 512-bit registers; the 256-bit cores below (suffix avx512y) serve the fused pass for channel
 * counts that are a multiple of 8 but not of 16. */
#ifdef BSRN_EMULATE_AVX512
/* A test build for CPUs without AVX-512: the same code, every 512-bit operation done on two
 * AVX2 halves and VPOPCNTQ with the AVX2 lookup, so the whole path (dispatch, layouts, fused
 * pass) is tested anywhere; each emulated lane is computed exactly. */
#define AVX512_ATTR AVX2_ATTR
#define Z_UNROLL2
#define POPCNT_EPI64(v) sum_lanes(popcount_bytes(v))
#else
#define AVX512_FEATURES "avx2,fma,popcnt,avx512f,avx512vl,avx512bw,avx512vpopcntdq"
/* GCC: with its pre-register-allocation scheduler (off by default on x86) and the fused pass's
 * pixel loops unrolled by two (Z_UNROLL2), the independent chains of two pixels are interleaved in
 * the instruction stream; the core then overlaps them (about a seventh less time, measured). */
#if defined(__GNUC__) && !defined(__clang__)
#define AVX512_ATTR BSRN_TARGET(AVX512_FEATURES) __attribute__((optimize("schedule-insns", "sched-pressure")))
#define Z_UNROLL2 _Pragma("GCC unroll 2")
#else
#define AVX512_ATTR BSRN_TARGET(AVX512_FEATURES)
#define Z_UNROLL2
#endif
#define POPCNT_EPI64(v) _mm256_popcnt_epi64(v)
#endif
#define AVX512_INLINE AVX512_ATTR static BSRN_ALWAYS_INLINE

#define CORES_SUFFIX avx512y
#define CORES_ATTR AVX512_ATTR BSRN_UNUSED /* only the cores are used */
#define CORES_INLINE AVX512_INLINE
#define CORES_COUNT POPCNT_EPI64
#define CORES_ADD _mm256_add_epi64
#define CORES_SUMS(acc) (acc)
#include "conv_cores.inc"

/* The 512-bit convs and the 16-float fused pass of the AVX-512 path. */
#include "avx512.inc"
#endif

#ifdef BSRN_X86
/* The AVX2 kernels need one word per pixel, the regrouped 3x3 weights and few enough groups. */
static int use_avx2(const bitconv_layer *L) {
    return bitconv_path() >= 2 && L->words == 1 && L->cout / 4 <= AVX2_MAX_GROUPS &&
           (L->ksize == 1 || L->grouped != NULL);
}
#endif

/* ---------------------------------------------------------------- map-level convolution */

#ifdef BSRN_NEON
static void conv_pixel_neon(const bitconv_layer *L, const uint64_t *const rows[3], int x, int width,
                            int32_t *counts); /* kernels/neon.inc */
#endif

void bitconv_rows(const bitconv_layer *L, const uint64_t *act, int height, int width, int32_t *out,
                  int row_begin, int row_end) {
    int path = bitconv_path(), words = L->words;
#ifdef BSRN_X86
    int avx2 = use_avx2(L);
#endif
    for (int y = row_begin; y < row_end; y++) {
        const uint64_t *rows[3] = {y > 0 ? act + (int64_t)(y - 1) * width * words : NULL,
                                   act + (int64_t)y * width * words,
                                   y + 1 < height ? act + (int64_t)(y + 1) * width * words : NULL};
        for (int x = 0; x < width; x++) {
            int32_t *o = out + ((int64_t)y * width + x) * L->cout;
            const uint64_t *a = rows[1] + (int64_t)x * words;
#ifdef BSRN_NEON
            if (path == BSRN_PATH_NEON) {
                conv_pixel_neon(L, rows, x, width, o);
                continue;
            }
#endif
#ifdef BSRN_X86
            if (avx2 && path == 3) {
                if (L->ksize == 3) conv3x3_pixel_avx512(L, rows, x, width, o);
                else conv1x1_pixel_avx512(L, a, o);
                continue;
            }
            if (avx2) {
                if (L->ksize == 3) conv3x3_pixel_avx2(L, rows, x, width, o);
                else conv1x1_pixel_avx2(L, a, o);
                continue;
            }
            if (path >= 1) {
                if (L->ksize == 3) conv3x3_pixel_popcnt(L, rows, x, width, o);
                else conv1x1_pixel_popcnt(L, a, o);
                continue;
            }
#endif
            (void)path;
            if (L->ksize == 3) conv3x3_pixel_portable(L, rows, x, width, o);
            else conv1x1_pixel_portable(L, a, o);
        }
    }
}

/* ---------------------------------------------------------------- float helpers */

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

/* Mean of n floats, in the order every path uses (the vector passes' registers summed the same
 * way): 16 partial sums over the 16-float chunks, folded to 8 (lane l + lane l + 8), a last
 * 8-float chunk added to those, the 8 reduced as ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)),
 * then the channels left over one by one; divided by n. */
INLINE float mean_floats(const float *restrict a, int n) {
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int c = 0;
    if (n >= 16) {
        float wide[16];
        for (int l = 0; l < 16; l++) wide[l] = a[l];
        for (c = 16; c + 16 <= n; c += 16)
            for (int l = 0; l < 16; l++) wide[l] += a[c + l];
        for (int l = 0; l < 8; l++) part[l] = wide[l] + wide[l + 8];
        if (c + 8 <= n) {
            for (int l = 0; l < 8; l++) part[l] += a[c + l];
            c += 8;
        }
    } else if (n >= 8) {
        for (int l = 0; l < 8; l++) part[l] = a[l];
        c = 8;
    }
    float total = ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
    for (; c < n; c++) total += a[c];
    return total / (float)n;
}

/* Bits of (v[c] < 0), 64 channels per word, padding bits 0. */
INLINE void negative_bits_portable(const float *v, int channels, int words, uint64_t *out) {
    for (int k = 0; k < words; k++) {
        int end = channels - 64 * k < 64 ? channels - 64 * k : 64;
        uint64_t bits = 0;
        for (int j = 0; j < end; j++) bits |= (uint64_t)(v[64 * k + j] < 0.0f) << j;
        out[k] = bits;
    }
}

#ifdef BSRN_X86
AVX2_ATTR static inline void negative_bits_avx2(const float *v, int channels, int words, uint64_t *out) {
    const __m256 zero = _mm256_setzero_ps();
    for (int k = 0; k < words; k++) {
        int end = channels - 64 * k < 64 ? channels - 64 * k : 64, j = 0;
        const float *u = v + 64 * k;
        uint64_t bits = 0;
        for (; j + 8 <= end; j += 8)
            bits |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(u + j), zero, _CMP_LT_OQ)) << j;
        for (; j < end; j++) bits |= (uint64_t)(u[j] < 0.0f) << j;
        out[k] = bits;
    }
}
#endif

/* ---------------------------------------------------------------- the fused block pass */

/* BAM accumulation of the last n of `acts` for layer `layer`, the folded-BN sign and packing. */
#define ACCUMULATE_AND_PACK(NEGBITS, body, layer, acts, means, n_acts, v, out)                      \
    do {                                                                                             \
        const bsrn_body *B_ = (body);                                                                \
        int C_ = B_->channels, n_ = B_->n_terms[layer], first_ = (n_acts) - n_;                      \
        const float *b_ = B_->b + (int64_t)(layer) * 3;                                              \
        for (int j_ = 0; j_ < n_; j_++) {                                                            \
            const float *restrict a_ = (acts)[first_ + j_];                                          \
            float k_ = B_->learned ? b_[j_] * (means)[first_ + j_] : b_[j_];                         \
            if (j_ == 0)                                                                             \
                for (int c = 0; c < C_; c++) (v)[c] = k_ * a_[c];                                    \
            else                                                                                     \
                for (int c = 0; c < C_; c++) (v)[c] += k_ * a_[c];                                   \
        }                                                                                            \
        const float *restrict d_ = B_->direction + (int64_t)(layer) * C_;                            \
        const float *restrict t_ = B_->bound + (int64_t)(layer) * C_;                                \
        /* d v < t exactly when d v - t < 0 (IEEE subtraction of distinct floats is never 0) */       \
        for (int c = 0; c < C_; c++) (v)[c] = d_[c] * (v)[c] - t_[c];                                \
        NEGBITS((v), C_, B_->words, (out));                                                          \
    } while (0)

/* One row band [x0, x1) of row y for one stage: block < 0 packs the input of block `first`;
 * otherwise block `block` runs on src and writes dst, and the next block's 3x3 input bits
 * (when next_bits is not NULL). The vectorised passes also write the channel means of the maps
 * they pack (next_means, beside the bits in the ring) and read those of their input (src_means)
 * instead of computing them again; this generic pass computes them itself. */
#define DEFINE_STAGE(SUFFIX, ATTR, CONV3, CONV1, NEGBITS)                                            \
    ATTR static void stage_row_##SUFFIX(const bsrn_body *B, int block, int next_layer, const float *src,  \
                                        float *dst, const uint64_t *const rows[3], const float *src_means, \
                                        uint64_t *next_bits, float *next_means,                      \
                                        int y, int x0, int x1, int width) {                          \
        int C = B->channels, words = B->words;                                                       \
        (void)src_means, (void)next_means; /* the means: computed here (as the ring's ones) */      \
        float buffers[3][BSRN_MAX_CHANNELS], v[BSRN_MAX_CHANNELS];                                   \
        int32_t counts[BSRN_MAX_CHANNELS];                                                           \
        uint64_t bits[BSRN_MAX_CHANNELS / 64];                                                       \
        for (int x = x0; x < x1; x++) {                                                              \
            int64_t p = (int64_t)y * width + x;                                                      \
            const float *acts[4];                                                                    \
            float means[4];                                                                          \
            acts[0] = src + p * C;                                                                   \
            means[0] = B->learned ? mean_floats(acts[0], C) : 0.0f;                                  \
            if (block < 0) {                                                                         \
                ACCUMULATE_AND_PACK(NEGBITS, B, next_layer, acts, means, 1, v, next_bits + (int64_t)x * words); \
                continue;                                                                            \
            }                                                                                        \
            int n_acts = 1;                                                                          \
            for (int i = 0; i < 3; i++) {                                                            \
                int layer = 3 * block + i;                                                           \
                if (i == 0) {                                                                        \
                    CONV3(&B->conv3[block], rows, x, width, counts);                                 \
                } else {                                                                             \
                    ACCUMULATE_AND_PACK(NEGBITS, B, layer, acts, means, n_acts, v, bits);            \
                    CONV1(&B->conv1[2 * block + i - 1], bits, counts);                               \
                }                                                                                    \
                const float *restrict scale = B->scale + (int64_t)layer * C;                         \
                float *restrict h = buffers[i];                                                      \
                for (int c = 0; c < C; c++) h[c] = (float)counts[c] * scale[c];                      \
                if (B->rprelu) {                                                                     \
                    const float *restrict s_in = B->shift_in + (int64_t)layer * C;                   \
                    const float *restrict slope = B->slope + (int64_t)layer * C;                     \
                    const float *restrict s_out = B->shift_out + (int64_t)layer * C;                 \
                    for (int c = 0; c < C; c++) {                                                    \
                        float z = h[c] - s_in[c];                                                    \
                        h[c] = (z < 0.0f ? slope[c] * z : z) + s_out[c];                             \
                    }                                                                                \
                }                                                                                    \
                if (B->fp_skip) {                                                                    \
                    const float *restrict prev = acts[n_acts - 1];                                   \
                    for (int c = 0; c < C; c++) h[c] = prev[c] + h[c];                               \
                }                                                                                    \
                acts[n_acts] = h;                                                                    \
                means[n_acts] = B->learned ? mean_floats(h, C) : 0.0f;                               \
                n_acts++;                                                                            \
            }                                                                                        \
            float *o = dst + p * C; /* may be acts[0] (in place): no restrict */                     \
            const float *last = acts[3], *in = acts[0];                                              \
            if (B->fp_skip)                                                                          \
                for (int c = 0; c < C; c++) o[c] = last[c];                                          \
            else                                                                                     \
                for (int c = 0; c < C; c++) o[c] = in[c] + last[c];                                  \
            if (next_bits) {                                                                         \
                acts[0] = o;                                                                         \
                means[0] = B->learned ? mean_floats(o, C) : 0.0f;                                    \
                ACCUMULATE_AND_PACK(NEGBITS, B, next_layer, acts, means, 1, v, next_bits + (int64_t)x * words); \
            }                                                                                        \
        }                                                                                            \
    }

DEFINE_STAGE(portable, , conv3x3_pixel_portable, conv1x1_pixel_portable, negative_bits_portable)
#ifdef BSRN_X86
DEFINE_STAGE(popcnt, POPCNT_ATTR, conv3x3_pixel_popcnt, conv1x1_pixel_popcnt, negative_bits_portable)
DEFINE_STAGE(avx2, AVX2_ATTR, conv3x3_pixel_avx2, conv1x1_pixel_avx2, negative_bits_avx2)
DEFINE_STAGE(avx512, AVX512_ATTR, conv3x3_pixel_avx512, conv1x1_pixel_avx512, negative_bits_avx2)
#endif


#ifdef BSRN_X86
/* The same pass hand-vectorised for channels a multiple of 8 and at most 64 (one word per
 * pixel): every map of the block stays in registers or on the stack, 8 channels per vector. */
#define VMAX 8
#define X8_CHUNK 16 /* pixels per chunk of the fused pass */

/* The order of mean_floats: registers 0, 2, 4, ... and 1, 3, 5, ... summed apart (the halves of
 * the 16-float chunks), then together, then an odd last register. */
AVX2_INLINE float mean_vec(const __m256 *a, int nv, int channels) {
    __m256 s = a[0];
    if (nv >= 2) {
        __m256 odd = a[1];
        int q = 2;
        for (; q + 1 < nv; q += 2) s = _mm256_add_ps(s, a[q]), odd = _mm256_add_ps(odd, a[q + 1]);
        s = _mm256_add_ps(s, odd);
        if (q < nv) s = _mm256_add_ps(s, a[q]);
    }
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h) / (float)channels;
}

/* BAM accumulation of the last n terms of acts (n = B->n_terms[layer], or fixed_n when that is
 * not 0: the shipped layers' counts known at compile time, and every BN direction +1), the
 * folded-BN sign, packed into one word. */
AVX2_INLINE uint64_t accumulate_sign_vec(const bsrn_body *B, int layer, __m256 acts[][VMAX], const float *means,
                                         int n_acts, const int nv, const int learned, const int fixed_n) {
    int n = fixed_n ? fixed_n : B->n_terms[layer], first = n_acts - n, C = B->channels;
    const float *b = B->b + (int64_t)layer * 3;
    const float *d = B->direction + (int64_t)layer * C, *t = B->bound + (int64_t)layer * C;
    __m256 v[VMAX];
    __m256 k = _mm256_set1_ps(learned ? b[0] * means[first] : b[0]);
    for (int q = 0; q < nv; q++) v[q] = _mm256_mul_ps(k, acts[first][q]);
    for (int j = 1; j < n; j++) {
        k = _mm256_set1_ps(learned ? b[j] * means[first + j] : b[j]);
        for (int q = 0; q < nv; q++) v[q] = _mm256_add_ps(v[q], _mm256_mul_ps(k, acts[first + j][q]));
    }
    uint64_t bits = 0;
    for (int q = 0; q < nv; q++) { /* the shipped instance: every direction is +1, and 1 v = v */
        __m256 test = _mm256_cmp_ps(fixed_n ? v[q] : _mm256_mul_ps(_mm256_loadu_ps(d + 8 * q), v[q]),
                                    _mm256_loadu_ps(t + 8 * q), _CMP_LT_OQ);
        bits |= (uint64_t)(unsigned)_mm256_movemask_ps(test) << (8 * q);
    }
    return bits;
}

/* The vectorised pass itself (kernels/stage_x8.inc), once per path: the conv cores differ. */
AVX2_ATTR static float channel_mean_vec(const float *v, int channels) {
    __m256 a[VMAX];
    for (int q = 0; q < VMAX; q++) a[q] = q < channels / 8 ? _mm256_loadu_ps(v + 8 * q) : _mm256_setzero_ps();
    return mean_vec(a, channels / 8, channels);
}

AVX512_ATTR static float channel_mean_z(const float *v, int channels) {
    zfloat a[ZMAX];
    for (int q = 0; q < ZMAX; q++) a[q] = q < channels / 16 ? f_load(v + 16 * q) : f_set1(0.0f);
    return mean_z(a, channels / 16, channels);
}

#define X8_SUFFIX avx2
#define X8_ATTR AVX2_SCHED_ATTR
#define X8_INLINE AVX2_SCHED_ATTR static BSRN_ALWAYS_INLINE
#define X8_CONV3 conv3x3_avx2_core
#define X8_CONV1 conv1x1_avx2_core
#include "stage_x8.inc"
#define X8_SUFFIX avx512
#define X8_ATTR AVX512_ATTR
#define X8_INLINE AVX512_INLINE
#define X8_CONV3 conv3x3_avx512y_core
#define X8_CONV1 conv1x1_avx512y_core
#include "stage_x8.inc"
#endif

/* The channel mean of each pixel as the fused pass of the current path computes it (the same
 * order on every path: mean_floats); for the tests. */
void bitconv_channel_means(const float *x, int64_t pixels, int channels, float *out) {
    for (int64_t p = 0; p < pixels; p++) {
        const float *v = x + p * channels;
#ifdef BSRN_X86
        if (bitconv_path() == 3 && channels % 16 == 0 && channels <= 64) {
            out[p] = channel_mean_z(v, channels);
            continue;
        }
        if (bitconv_path() >= 2 && channels % 8 == 0 && channels <= 64) {
            out[p] = channel_mean_vec(v, channels);
            continue;
        }
#endif
        out[p] = mean_floats(v, channels);
    }
}

typedef void (*stage_fn)(const bsrn_body *, int, int, const float *, float *, const uint64_t *const[3],
                         const float *, uint64_t *, float *, int, int, int, int);

#ifdef BSRN_NEON
/* The NEON path's convs and fused pass (AArch64). */
#include "neon.inc"
#endif

/* Wait until another thread has finished an item (spin briefly, then yield the core). */
static void wait_done(const int64_t *flag) {
    for (int spins = 0; !BSRN_ATOMIC_LOAD_ACQUIRE(flag); spins++) {
        if (spins > 2000) bsrn_yield_cpu();
        else bsrn_pause();
    }
}

void bsrn_body_run(const bsrn_body *B, int first, int count, const float *in, float *out, int height,
                   int width, uint64_t *ring, int threads, int64_t *sync) {
    stage_fn stage = stage_row_portable;
#ifdef BSRN_X86
    int all_avx2 = 1;
    for (int j = first; j < first + count; j++)
        all_avx2 &= use_avx2(&B->conv3[j]) && use_avx2(&B->conv1[2 * j]) && use_avx2(&B->conv1[2 * j + 1]);
    static const stage_fn by_vectors[9] = {NULL, stage_row_avx2_1, stage_row_avx2_2, stage_row_avx2_3,
                                           stage_row_avx2_4, stage_row_avx2_5, stage_row_avx2_6,
                                           stage_row_avx2_7, stage_row_avx2_8};
    static const stage_fn shipped[9] = {NULL, stage_row_avx2_shipped_1, stage_row_avx2_shipped_2,
                                        stage_row_avx2_shipped_3, stage_row_avx2_shipped_4,
                                        stage_row_avx2_shipped_5, stage_row_avx2_shipped_6,
                                        stage_row_avx2_shipped_7, stage_row_avx2_shipped_8};
    static const stage_fn by_vectors512[9] = {NULL, stage_row_avx512_1, stage_row_avx512_2, stage_row_avx512_3,
                                              stage_row_avx512_4, stage_row_avx512_5, stage_row_avx512_6,
                                              stage_row_avx512_7, stage_row_avx512_8};
    static const stage_fn shipped512[9] = {NULL, stage_row_avx512_shipped_1, stage_row_avx512_shipped_2,
                                           stage_row_avx512_shipped_3, stage_row_avx512_shipped_4,
                                           stage_row_avx512_shipped_5, stage_row_avx512_shipped_6,
                                           stage_row_avx512_shipped_7, stage_row_avx512_shipped_8};
    int avx512 = bitconv_path() == 3, shipped_config = B->fp_skip && B->rprelu && B->learned;
    static const stage_fn by_z[5] = {NULL, stage_row_avx512z_1, stage_row_avx512z_2, stage_row_avx512z_3,
                                     stage_row_avx512z_4};
    static const stage_fn shipped_z[5] = {NULL, stage_row_avx512z_shipped_1, stage_row_avx512z_shipped_2,
                                          stage_row_avx512z_shipped_3, stage_row_avx512z_shipped_4};
    /* the shipped instances (z and x8 passes) also fix the accumulation terms of the block's three
     * convs and need every folded-BN direction +1 (layers 3 first .. 3 (first + count), the next block's input) */
    int shipped_terms = shipped_config;
    for (int j = first; j < first + count; j++)
        shipped_terms &= B->n_terms[3 * j] == 1 && B->n_terms[3 * j + 1] == 2 && B->n_terms[3 * j + 2] == 3;
    const int layers_end = 3 * (first + count) + 1 < 3 * B->blocks ? 3 * (first + count) + 1 : 3 * B->blocks;
    for (int64_t i = (int64_t)3 * first * B->channels; shipped_terms && i < (int64_t)layers_end * B->channels; i++)
        shipped_terms &= B->direction[i] == 1.0f;
    if (all_avx2 && avx512 && B->channels % 16 == 0 && B->channels <= 64)
        stage = (shipped_terms ? shipped_z : by_z)[B->channels / 16];
    else if (all_avx2 && B->channels % 8 == 0 && B->channels <= 64)
        stage = avx512 ? (shipped_terms ? shipped512 : by_vectors512)[B->channels / 8]
                       : (shipped_terms ? shipped : by_vectors)[B->channels / 8];
    else if (all_avx2) stage = avx512 ? stage_row_avx512 : stage_row_avx2;
    else if (bitconv_path() >= 1) stage = stage_row_popcnt;
#endif
#ifdef BSRN_NEON
    if (bitconv_path() == BSRN_PATH_NEON) stage = stage_neon(B, first, count);
#endif
    int words = B->words, stages = count + 1;
    /* a ring row: the packed bits of a row, then the channel means of its pixels (floats) */
    int64_t ring_bits = (int64_t)width * words, ring_row = bsrn_ring_row(width, words), total = (int64_t)stages * height;
    int64_t *next_item = sync, *done = sync + 16; /* done: [stages][height] flags */
#define RING_ROW(j, r) (ring + ((int64_t)(j) * BSRN_RING_ROWS + ((r) & (BSRN_RING_ROWS - 1))) * ring_row)
#define WAIT(stage_, row_) \
    if ((row_) >= 0 && (row_) < height) wait_done(&done[(int64_t)(stage_) * height + (row_)])
    /* Items (stage s, row y): stage 0 packs the input, stage s >= 1 runs block first + s - 1. They
     * are taken in wavefront order, step t = y + 2 s, so an item's inputs (rows up to y + 1 of the
     * stage before) come from earlier steps; threads take the next item from a shared counter and
     * wait only for the items it reads, or whose ring slot it overwrites (each block's input bits
     * live in a ring of BSRN_RING_ROWS rows). One thread runs them in order without any waiting. */
    int t = 0, s = -1;
    int64_t index = -1;
    for (;;) {
        int64_t k = threads > 1 ? BSRN_ATOMIC_FETCH_ADD(next_item, 1) : index + 1;
        if (k >= total) break;
        while (index < k) { /* this thread's walk through the order, up to item k */
            if (++s == stages) s = 0, t++;
            if (t - 2 * s >= 0 && t - 2 * s < height) index++;
        }
        int y = t - 2 * s;
        if (threads > 1) {
            if (s > 0) {
                WAIT(s - 1, y - 1); WAIT(s - 1, y); WAIT(s - 1, y + 1);
            }
            if (s + 1 < stages) {
                WAIT(s + 1, y - BSRN_RING_ROWS - 1); WAIT(s + 1, y - BSRN_RING_ROWS);
                WAIT(s + 1, y - BSRN_RING_ROWS + 1);
            }
        }
        if (s == 0) {
            stage(B, -1, 3 * first, in, NULL, NULL, NULL, RING_ROW(0, y), (float *)(RING_ROW(0, y) + ring_bits), y, 0,
                  width, width);
        } else {
            int j = s - 1;
            const uint64_t *rows[3] = {y > 0 ? RING_ROW(j, y - 1) : NULL, RING_ROW(j, y),
                                       y + 1 < height ? RING_ROW(j, y + 1) : NULL};
            const int last = j + 1 == count;
            stage(B, first + j, 3 * (first + j + 1), j == 0 ? in : out, out, rows, (const float *)(rows[1] + ring_bits),
                  last ? NULL : RING_ROW(j + 1, y), last ? NULL : (float *)(RING_ROW(j + 1, y) + ring_bits), y, 0,
                  width, width);
        }
        if (threads > 1) BSRN_ATOMIC_STORE_RELEASE(&done[(int64_t)s * height + y], 1);
    }
#undef WAIT
#undef RING_ROW
}
