/* Standalone exactness test of the packed kernels (kernels/bitconv.c, kernels/floatconv.c), for
 * every kernel path this build and CPU have: portable and neon on AArch64 (cross-compiled, run
 * under qemu-aarch64), portable, popcnt, avx2 and avx512 on x86-64. No Python, no numpy: the
 * references below are written from the definitions in bitconv.h, on unpacked +-1 values.
 *
 * - binary 3x3 / 1x1 convs (bitconv_rows) on random shapes (1-pixel maps, odd channel counts,
 *   1..150 input channels, 1..70 output channels, with and without the grouped 3x3 layout,
 *   rows split over two calls): equal to the integer reference exactly;
 * - the fused body (bsrn_body_run) on random bodies (1..130 channels, every configuration, a
 *   block range, in place or not, 1-3 threads): equal to a layer-by-layer float reference bit
 *   for bit, with the float operations in the order the paths document (the channel mean in
 *   mean_floats' order, one order on every path; RPReLU as z < 0 ? slope z : z, then the shift);
 *   a third of the shipped-configuration cases have every folded-BN direction +1 and the
 *   accumulation terms 1, 2, 3, which the avx512 pass's fixed instance needs;
 * - the float 3x3 conv (floatconv3x3_rows): bit for bit against the reference (multiply then
 *   add; fmaf on the x86 FMA paths).
 *
 * Build: cc -O2 -std=c99 -ffp-contract=off -Ikernels tests/kernels/exactness.c kernels/bitconv.c
 *        kernels/floatconv.c -lm -lpthread   (tests/kernels/test_exactness.py does it)
 * Run:   exactness [seed] [conv cases] [body cases]; exit status 0 when every path passed. */
#include "bitconv.h"
#include "compat.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PATH_NAMES[BSRN_N_PATHS] = {"portable", "popcnt", "avx2", "avx512", "neon"};

/* ---------------------------------------------------------------- random numbers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t next_u64(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}
static int rand_int(int lo, int hi) { return lo + (int)(next_u64() % (uint64_t)(hi - lo + 1)); } /* [lo, hi] */
static float rand_float(float lo, float hi) { return lo + (hi - lo) * (float)((next_u64() >> 40) / 16777216.0); }
static int rand_sign(void) { return (next_u64() >> 63) ? -1 : 1; }
static int pick(const int *values, int n) { return values[rand_int(0, n - 1)]; }

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* +-1 values [n][channels] packed as the kernels read them: [n][words], bit 1 for -1. */
static void pack_pm1(const int8_t *v, int64_t n, int channels, int words, uint64_t *out) {
    memset(out, 0, (size_t)n * words * sizeof(uint64_t));
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < channels; c++)
            if (v[i * channels + c] < 0) out[i * words + c / 64] |= 1ULL << (c % 64);
}

/* ---------------------------------------------------------------- binary conv reference */

/* out[y][x][o] = sum over taps inside the image and input channels of a * w (zero padding);
 * act [H][W][cin], w [cout][k][k][cin], all +-1. */
static void conv_reference(const int8_t *act, int height, int width, int cin, const int8_t *w, int cout, int k,
                           int32_t *out) {
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int o = 0; o < cout; o++) {
                int32_t sum = 0;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        int yy = y + dy - k / 2, xx = x + dx - k / 2;
                        if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
                        const int8_t *a = act + ((int64_t)yy * width + xx) * cin;
                        const int8_t *ww = w + (((int64_t)o * k + dy) * k + dx) * cin;
                        for (int c = 0; c < cin; c++) sum += a[c] * ww[c];
                    }
                out[((int64_t)y * width + x) * cout + o] = sum;
            }
}

/* A packed layer from +-1 weights [cout][k][k][cin]; grouped only when asked (and cin <= 64). */
typedef struct {
    bitconv_layer layer;
    uint64_t *wts, *grouped;
    int32_t *tap_sum;
} owned_layer;

static owned_layer make_layer(const int8_t *w, int cin, int cout, int k, int with_grouped) {
    owned_layer L;
    const int words = (cin + 63) / 64, taps = k * k;
    L.wts = xcalloc((size_t)cout * taps * words, sizeof(uint64_t));
    pack_pm1(w, (int64_t)cout * taps, cin, words, L.wts);
    L.grouped = NULL;
    L.tap_sum = NULL;
    if (k == 3) {
        const int64_t size = bitconv_grouped_size(cin, cout);
        L.tap_sum = xcalloc((size_t)9 * cout, sizeof(int32_t));
        L.grouped = size > 0 && with_grouped ? xcalloc((size_t)size, sizeof(uint64_t)) : NULL;
        bitconv_prepare3x3(L.wts, cin, cout, words, L.grouped, L.tap_sum);
    }
    L.layer.ksize = k;
    L.layer.cin = cin;
    L.layer.cout = cout;
    L.layer.words = words;
    L.layer.wts = L.wts;
    L.layer.grouped = L.grouped;
    L.layer.tap_sum = L.tap_sum;
    return L;
}

static void free_layer(owned_layer *L) {
    free(L->wts);
    free(L->grouped);
    free(L->tap_sum);
}

static const int CIN_CHOICES[] = {1, 2, 3, 5, 7, 8, 13, 16, 31, 47, 48, 63, 64, 65, 70, 100, 127, 128, 129, 150};
static const int COUT_CHOICES[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 20, 24, 47, 48, 52, 64, 67, 70};

static int conv_case(int path, int index) {
    const int height = rand_int(0, 3) ? rand_int(1, 9) : 1, width = rand_int(0, 3) ? rand_int(1, 9) : 1;
    const int cin = rand_int(0, 1) ? pick(CIN_CHOICES, sizeof CIN_CHOICES / sizeof *CIN_CHOICES) : rand_int(1, 150);
    const int cout = rand_int(0, 1) ? pick(COUT_CHOICES, sizeof COUT_CHOICES / sizeof *COUT_CHOICES) : rand_int(1, 70);
    const int k = rand_int(0, 1) ? 3 : 1, with_grouped = rand_int(0, 4) != 0, words = (cin + 63) / 64;
    const int64_t pixels = (int64_t)height * width;
    int8_t *act = xcalloc((size_t)pixels * cin, 1), *w = xcalloc((size_t)cout * k * k * cin, 1);
    for (int64_t i = 0; i < pixels * cin; i++) act[i] = (int8_t)rand_sign();
    for (int64_t i = 0; i < (int64_t)cout * k * k * cin; i++) w[i] = (int8_t)rand_sign();
    uint64_t *packed = xcalloc((size_t)pixels * words, sizeof(uint64_t));
    pack_pm1(act, pixels, cin, words, packed);
    owned_layer L = make_layer(w, cin, cout, k, with_grouped);
    int32_t *expected = xcalloc((size_t)pixels * cout, sizeof(int32_t)), *got = xcalloc((size_t)pixels * cout, sizeof(int32_t));
    conv_reference(act, height, width, cin, w, cout, k, expected);
    for (int64_t i = 0; i < pixels * cout; i++) got[i] = 0x5a5a5a5a;
    const int split = rand_int(0, height); /* two calls: rows [0, split) and [split, height) */
    bitconv_rows(&L.layer, packed, height, width, got, 0, split);
    bitconv_rows(&L.layer, packed, height, width, got, split, height);
    int failed = 0;
    for (int64_t i = 0; i < pixels * cout && !failed; i++)
        if (got[i] != expected[i]) {
            fprintf(stderr, "FAIL path %s conv case %d: %dx%d map, cin %d, cout %d, %dx%d, grouped %d: pixel %lld channel %lld: %d, expected %d\n",
                    PATH_NAMES[path], index, height, width, cin, cout, k, k, L.grouped != NULL,
                    (long long)(i / cout), (long long)(i % cout), got[i], expected[i]);
            failed = 1;
        }
    free_layer(&L);
    free(act), free(w), free(packed), free(expected), free(got);
    return failed;
}

/* ---------------------------------------------------------------- fused body reference */

/* The channel mean in the one order of every path (mean_floats): 16 partial sums over the
 * 16-channel chunks, from the first chunk, folded to 8 (lane l + lane l + 8), a last 8-channel
 * chunk added, ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)), the rest one by one; / n. */
static float mean_reference(const float *a, int n) {
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int c = 0;
    if (n >= 16) {
        float wide[16];
        for (int l = 0; l < 16; l++) wide[l] = a[l];
        for (c = 16; c + 16 <= n; c += 16)
            for (int l = 0; l < 16; l++) wide[l] = wide[l] + a[c + l];
        for (int l = 0; l < 8; l++) part[l] = wide[l] + wide[l + 8];
        if (c + 8 <= n) {
            for (int l = 0; l < 8; l++) part[l] = part[l] + a[c + l];
            c += 8;
        }
    } else if (n >= 8) {
        for (int l = 0; l < 8; l++) part[l] = a[l];
        c = 8;
    }
    float total = ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
    for (; c < n; c++) total = total + a[c];
    return total / (float)n;
}

typedef struct {
    int channels, blocks, fp_skip, learned, rprelu;
    int plant_ties; /* set bounds to the first pixel's d v: a sign test exactly at its threshold */
    int32_t *n_terms;
    float *b, *direction, *bound, *scale, *shift_in, *slope, *shift_out;
    int8_t **w3, **w1; /* +-1 weights [C][3][3][C] per block, [C][C] per 1x1 (2 per block) */
} body_params;

/* The +-1 input signs of layer `layer`: BAM sum of the last n_terms of acts (each [C]), then
 * the folded-BN compare d v - t < 0 -> -1. With plant set, every other channel's bound becomes
 * this pixel's d v first, so its test sits exactly on the threshold: a kernel whose v differs
 * in the last bit (another summation order of the mean or of the BAM sum) flips that sign. */
static void signs_reference(const body_params *P, int layer, const float *const *acts, const float *means,
                            int n_acts, int8_t *signs, int plant) {
    const int C = P->channels, n = P->n_terms[layer], first = n_acts - n;
    const float *b = P->b + (int64_t)layer * 3, *d = P->direction + (int64_t)layer * C, *t = P->bound + (int64_t)layer * C;
    for (int c = 0; c < C; c++) {
        float v = 0.0f;
        for (int j = 0; j < n; j++) {
            const float k = P->learned ? b[j] * means[first + j] : b[j];
            v = j == 0 ? k * acts[first + j][c] : v + k * acts[first + j][c];
        }
        if (plant && d[c] != 0.0f && c % 2 == 0) P->bound[(int64_t)layer * C + c] = d[c] * v;
        signs[c] = (int8_t)(d[c] * v - t[c] < 0.0f ? -1 : 1);
    }
}

/* After a conv: h = counts * scale, RPReLU, + the previous activation (float skip). */
static void after_conv_reference(const body_params *P, int layer, const int32_t *counts, const float *prev, float *h) {
    const int C = P->channels;
    for (int c = 0; c < C; c++) {
        const int64_t i = (int64_t)layer * C + c;
        float z = (float)counts[c] * P->scale[i];
        if (P->rprelu) {
            z = z - P->shift_in[i];
            z = (z < 0.0f ? P->slope[i] * z : z) + P->shift_out[i];
        }
        h[c] = P->fp_skip ? prev[c] + z : z;
    }
}

/* Blocks [first, first + count) on map [H][W][C], layer by layer (maps in, maps out). */
static void body_reference(const body_params *P, int first, int count, const float *in, float *out, int height,
                           int width) {
    const int C = P->channels;
    const int64_t pixels = (int64_t)height * width;
    float *cur = xcalloc((size_t)pixels * C, sizeof(float));
    memcpy(cur, in, (size_t)pixels * C * sizeof(float));
    int8_t *signs = xcalloc((size_t)pixels * C, 1), *pixel_signs = xcalloc((size_t)C, 1);
    int32_t *counts3 = xcalloc((size_t)pixels * C, sizeof(int32_t)), *counts = xcalloc((size_t)C, sizeof(int32_t));
    float *h = xcalloc((size_t)3 * C, sizeof(float));
    for (int j = first; j < first + count; j++) {
        for (int64_t p = 0; p < pixels; p++) {
            const float *acts[1] = {cur + p * C};
            const float mean = P->learned ? mean_reference(acts[0], C) : 0.0f;
            signs_reference(P, 3 * j, acts, &mean, 1, signs + p * C, P->plant_ties && p == 0);
        }
        conv_reference(signs, height, width, C, P->w3[j], C, 3, counts3);
        for (int64_t p = 0; p < pixels; p++) {
            const float *acts[4];
            float means[4];
            acts[0] = cur + p * C;
            means[0] = P->learned ? mean_reference(acts[0], C) : 0.0f;
            for (int i = 0; i < 3; i++) {
                if (i == 0) {
                    memcpy(counts, counts3 + p * C, (size_t)C * sizeof(int32_t));
                } else {
                    signs_reference(P, 3 * j + i, acts, means, i + 1, pixel_signs, P->plant_ties && p == 0);
                    conv_reference(pixel_signs, 1, 1, C, P->w1[2 * j + i - 1], C, 1, counts);
                }
                after_conv_reference(P, 3 * j + i, counts, acts[i], h + i * C);
                acts[i + 1] = h + i * C;
                means[i + 1] = P->learned ? mean_reference(acts[i + 1], C) : 0.0f;
            }
            for (int c = 0; c < C; c++) out[p * C + c] = P->fp_skip ? acts[3][c] : acts[0][c] + acts[3][c];
        }
        memcpy(cur, out, (size_t)pixels * C * sizeof(float));
    }
    free(cur), free(signs), free(pixel_signs), free(counts3), free(counts), free(h);
}

typedef struct {
    const bsrn_body *body;
    int first, count, height, width, threads;
    const float *in;
    float *out;
    uint64_t *ring;
    int64_t *sync;
} run_args;

static void *run_thread(void *arg) {
    const run_args *a = arg;
    bsrn_body_run(a->body, a->first, a->count, a->in, a->out, a->height, a->width, a->ring, a->threads, a->sync);
    return NULL;
}

static const int CHANNEL_CHOICES[] = {1, 3, 4, 7, 8, 12, 13, 16, 24, 32, 40, 48, 56, 64, 65, 70, 130};

static int body_case(int path, int index) {
    body_params P;
    const int C = pick(CHANNEL_CHOICES, sizeof CHANNEL_CHOICES / sizeof *CHANNEL_CHOICES), words = (C + 63) / 64;
    P.channels = C;
    P.blocks = rand_int(1, 3);
    P.fp_skip = rand_int(0, 1);
    P.learned = rand_int(0, 1);
    P.rprelu = rand_int(0, 1);
    const int shipped = rand_int(0, 2) == 0;
    if (shipped) P.fp_skip = P.learned = P.rprelu = 1; /* the shipped configuration */
    /* as trained: every folded-BN direction +1 and the terms 1, 2, 3 (the avx512 fixed instance) */
    const int as_trained = shipped && rand_int(0, 2) == 0;
    P.plant_ties = rand_int(0, 1);
    const int layers = 3 * P.blocks;
    P.n_terms = xcalloc((size_t)layers, sizeof(int32_t));
    P.b = xcalloc((size_t)layers * 3, sizeof(float));
    float **per_channel[7] = {&P.direction, &P.bound, &P.scale, &P.shift_in, &P.slope, &P.shift_out, NULL};
    for (int a = 0; per_channel[a]; a++) *per_channel[a] = xcalloc((size_t)layers * C, sizeof(float));
    for (int l = 0; l < layers; l++) {
        P.n_terms[l] = as_trained ? l % 3 + 1 : rand_int(1, l % 3 + 1);
        for (int j = 0; j < 3; j++) P.b[l * 3 + j] = rand_float(-1.5f, 1.5f);
        for (int c = 0; c < C; c++) {
            const int64_t i = (int64_t)l * C + c;
            const int d = as_trained ? 1 : rand_int(-1, 1);
            P.direction[i] = (float)d;
            P.bound[i] = d ? rand_float(-0.3f, 0.3f) : (float)rand_sign();
            P.scale[i] = rand_float(0.005f, 0.06f) * (float)rand_sign();
            P.shift_in[i] = rand_float(-0.2f, 0.2f);
            P.slope[i] = rand_float(-0.5f, 0.5f);
            P.shift_out[i] = rand_float(-0.2f, 0.2f);
        }
    }
    P.w3 = xcalloc((size_t)P.blocks, sizeof(int8_t *));
    P.w1 = xcalloc((size_t)P.blocks * 2, sizeof(int8_t *));
    bitconv_layer *conv3 = xcalloc((size_t)P.blocks, sizeof(bitconv_layer)), *conv1 = xcalloc((size_t)P.blocks * 2, sizeof(bitconv_layer));
    owned_layer *owned = xcalloc((size_t)P.blocks * 3, sizeof(owned_layer));
    for (int j = 0; j < P.blocks; j++) {
        P.w3[j] = xcalloc((size_t)C * 9 * C, 1);
        for (int64_t i = 0; i < (int64_t)C * 9 * C; i++) P.w3[j][i] = (int8_t)rand_sign();
        owned[3 * j] = make_layer(P.w3[j], C, C, 3, 1);
        conv3[j] = owned[3 * j].layer;
        for (int i = 0; i < 2; i++) {
            P.w1[2 * j + i] = xcalloc((size_t)C * C, 1);
            for (int64_t q = 0; q < (int64_t)C * C; q++) P.w1[2 * j + i][q] = (int8_t)rand_sign();
            owned[3 * j + 1 + i] = make_layer(P.w1[2 * j + i], C, C, 1, 1);
            conv1[2 * j + i] = owned[3 * j + 1 + i].layer;
        }
    }
    bsrn_body B;
    B.channels = C;
    B.words = words;
    B.blocks = P.blocks;
    B.fp_skip = P.fp_skip;
    B.learned = P.learned;
    B.rprelu = P.rprelu;
    B.n_terms = P.n_terms;
    B.b = P.b;
    B.direction = P.direction;
    B.bound = P.bound;
    B.scale = P.scale;
    B.shift_in = P.rprelu ? P.shift_in : NULL;
    B.slope = P.rprelu ? P.slope : NULL;
    B.shift_out = P.rprelu ? P.shift_out : NULL;
    B.conv3 = conv3;
    B.conv1 = conv1;

    const int height = rand_int(0, 3) ? rand_int(1, 12) : 1, width = rand_int(0, 3) ? rand_int(1, 12) : 1;
    const int first = rand_int(0, P.blocks - 1), count = rand_int(1, P.blocks - first), threads = rand_int(1, 3);
    const int in_place = rand_int(0, 1);
    const int64_t pixels = (int64_t)height * width;
    float *in = xcalloc((size_t)pixels * C, sizeof(float)), *out = xcalloc((size_t)pixels * C, sizeof(float));
    float *expected = xcalloc((size_t)pixels * C, sizeof(float));
    for (int64_t i = 0; i < pixels * C; i++) in[i] = rand_float(-1.0f, 1.0f);
    body_reference(&P, first, count, in, expected, height, width);
    if (in_place) memcpy(out, in, (size_t)pixels * C * sizeof(float));
    uint64_t *ring = xcalloc((size_t)(count * BSRN_RING_ROWS * bsrn_ring_row(width, words)), sizeof(uint64_t));
    int64_t *sync = xcalloc((size_t)(16 + (count + 1) * height), sizeof(int64_t));
    run_args args = {&B, first, count, height, width, threads, in_place ? out : in, out, ring, sync};
    pthread_t ids[3];
    for (int t = 1; t < threads; t++) pthread_create(&ids[t], NULL, run_thread, &args);
    run_thread(&args);
    for (int t = 1; t < threads; t++) pthread_join(ids[t], NULL);
    int failed = 0;
    for (int64_t i = 0; i < pixels * C && !failed; i++)
        if (memcmp(&out[i], &expected[i], sizeof(float)) != 0) {
            fprintf(stderr, "FAIL path %s body case %d: %d channels, blocks %d..%d of %d, %dx%d map, fp_skip %d learned %d rprelu %d, "
                    "%d threads, in place %d, ties %d, as trained %d: pixel %lld channel %lld: %.9g, expected %.9g\n",
                    PATH_NAMES[path], index, C, first, first + count - 1, P.blocks, height, width, P.fp_skip, P.learned,
                    P.rprelu, threads, in_place, P.plant_ties, as_trained, (long long)(i / C), (long long)(i % C), out[i], expected[i]);
            failed = 1;
        }
    for (int j = 0; j < 3 * P.blocks; j++) free_layer(&owned[j]);
    for (int j = 0; j < P.blocks; j++) free(P.w3[j]), free(P.w1[2 * j]), free(P.w1[2 * j + 1]);
    for (int a = 0; per_channel[a]; a++) free(*per_channel[a]);
    free(P.w3), free(P.w1), free(P.n_terms), free(P.b), free(conv3), free(conv1), free(owned);
    free(in), free(out), free(expected), free(ring), free(sync);
    return failed;
}

/* ---------------------------------------------------------------- float 3x3 conv */

static int floatconv_case(int path, int index) {
    const int height = rand_int(1, 7), width = rand_int(1, 15), cin = rand_int(1, 50), cout = rand_int(1, 40);
    const int cout_pad = (cout + 15) / 16 * 16, fma = path == BSRN_PATH_AVX2 || path == BSRN_PATH_AVX512;
    const int64_t pixels = (int64_t)height * width;
    float *in = xcalloc((size_t)pixels * cin, sizeof(float)), *w = xcalloc((size_t)9 * cin * cout_pad, sizeof(float));
    float *bias = xcalloc((size_t)cout_pad, sizeof(float)), *out = xcalloc((size_t)pixels * cout, sizeof(float));
    for (int64_t i = 0; i < pixels * cin; i++) in[i] = rand_float(-1.0f, 1.0f);
    for (int t = 0; t < 9; t++)
        for (int c = 0; c < cin; c++)
            for (int o = 0; o < cout; o++) w[((int64_t)t * cin + c) * cout_pad + o] = rand_float(-0.3f, 0.3f);
    for (int o = 0; o < cout; o++) bias[o] = rand_float(-0.5f, 0.5f);
    floatconv3x3_rows(in, height, width, cin, w, bias, cout, out, 0, height);
    int failed = 0;
    for (int y = 0; y < height && !failed; y++)
        for (int x = 0; x < width && !failed; x++)
            for (int o = 0; o < cout && !failed; o++) {
                /* the bias, then the nine taps row by row (a tap outside the image reads 0), each
                 * tap's input channels in order */
                float acc = bias[o];
                for (int t = 0; t < 9; t++) {
                    const int yy = y + t / 3 - 1, xx = x + t % 3 - 1, inside = yy >= 0 && yy < height && xx >= 0 && xx < width;
                    for (int c = 0; c < cin; c++) {
                        const float v = inside ? in[((int64_t)yy * width + xx) * cin + c] : 0.0f;
                        const float wv = w[((int64_t)t * cin + c) * cout_pad + o];
                        acc = fma ? fmaf(v, wv, acc) : acc + v * wv;
                    }
                }
                const float got = out[((int64_t)y * width + x) * cout + o];
                if (memcmp(&got, &acc, sizeof(float)) != 0) {
                    fprintf(stderr, "FAIL path %s float conv case %d: %dx%d map, cin %d, cout %d: (%d, %d, %d): %.9g, expected %.9g\n",
                            PATH_NAMES[path], index, height, width, cin, cout, y, x, o, got, acc);
                    failed = 1;
                }
            }
    free(in), free(w), free(bias), free(out);
    return failed;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    const unsigned long long seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    const int n_conv = argc > 2 ? atoi(argv[2]) : 300, n_body = argc > 3 ? atoi(argv[3]) : 120;
    const int n_float = n_conv / 10 + 1;
    int failures = 0, tested = 0;
#if defined(BSRN_X86) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
    { /* the CPUID decoding of compat.h against the compiler's own */
        __builtin_cpu_init();
        const int f = bsrn_x86_features();
        const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vpopcntdq");
        const int agree = !!(f & BSRN_CPU_POPCNT) == !!__builtin_cpu_supports("popcnt") &&
                          !!(f & BSRN_CPU_AVX2) == !!__builtin_cpu_supports("avx2") &&
                          !!(f & BSRN_CPU_FMA) == !!__builtin_cpu_supports("fma") && !!(f & BSRN_CPU_AVX512) == avx512;
        printf("cpu features (compat.h): popcnt %d fma %d avx2 %d avx512 %d; __builtin_cpu_supports %s\n",
               !!(f & BSRN_CPU_POPCNT), !!(f & BSRN_CPU_FMA), !!(f & BSRN_CPU_AVX2), !!(f & BSRN_CPU_AVX512),
               agree ? "agrees" : "DISAGREES");
        failures += !agree;
    }
#endif
    printf("paths available:");
    for (int path = 0; path < BSRN_N_PATHS; path++)
        if (bitconv_path_available(path)) printf(" %s", PATH_NAMES[path]);
    printf("; default %s\n", PATH_NAMES[bitconv_path()]);
    for (int path = 0; path < BSRN_N_PATHS; path++) {
        if (!bitconv_path_available(path)) continue;
        if (bitconv_set_path(path) != path) {
            printf("FAIL path %s: available but not set\n", PATH_NAMES[path]);
            failures++;
            continue;
        }
        rng_state = 0x9e3779b97f4a7c15ULL ^ (seed * 0x100000001b3ULL); /* the same cases on every path */
        int failed = 0;
        for (int i = 0; i < n_conv; i++) failed += conv_case(path, i);
        for (int i = 0; i < n_body; i++) failed += body_case(path, i);
        for (int i = 0; i < n_float; i++) failed += floatconv_case(path, i);
        printf("path %s: %d conv, %d body, %d float conv cases: %s (%d failed)\n", PATH_NAMES[path], n_conv, n_body,
               n_float, failed ? "FAIL" : "ok", failed);
        failures += failed;
        tested++;
    }
    printf("%s: %d paths tested, seed %llu\n", failures ? "FAILED" : "ALL OK", tested, seed);
    return failures ? 1 : 0;
}
