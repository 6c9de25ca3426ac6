/* Driver for scripts/neon_instruction_counts.sh: runs one kernel workload on a random shipped-size
 * body (48 channels, float skips, RPReLU, learned BAM scales, 2 blocks) so that the instructions
 * it executes can be counted under qemu-aarch64. The setup is the same whatever is run, so the
 * difference of two runs is the work alone.
 *   kernel_count_driver PATH MODE N HEIGHT WIDTH
 *   PATH: portable | popcnt | avx2 | avx512 | neon; MODE: body (bsrn_body_run, N = blocks 0..2, 1 thread) | conv3 | conv1
 *   (bitconv_rows of the first 3x3 / 1x1 conv, N = repetitions). */
#include "bitconv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C 48

static uint64_t state = 88172645463325252ULL;
static uint64_t next(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((next() >> 40) / 16777216.0); }

int main(int argc, char **argv) {
    if (argc != 6) return 2;
    static const char *const names[BSRN_N_PATHS] = {"portable", "popcnt", "avx2", "avx512", "neon"};
    int path = 0;
    while (path < BSRN_N_PATHS && strcmp(argv[1], names[path]) != 0) path++;
    const char *mode = argv[2];
    const int n = atoi(argv[3]), height = atoi(argv[4]), width = atoi(argv[5]), blocks = 2, layers = 3 * blocks;
    if (path == BSRN_N_PATHS || bitconv_set_path(path) != path) {
        fprintf(stderr, "path %s not available\n", argv[1]);
        return 1;
    }
    static int32_t n_terms[3 * 2];
    static float b[3 * 2 * 3], direction[3 * 2 * C], bound[3 * 2 * C], scale[3 * 2 * C], shift_in[3 * 2 * C],
        slope[3 * 2 * C], shift_out[3 * 2 * C];
    for (int l = 0; l < layers; l++) {
        n_terms[l] = l % 3 + 1;
        for (int j = 0; j < 3; j++) b[3 * l + j] = uniform(-1, 1);
        for (int c = 0; c < C; c++) {
            direction[l * C + c] = 1.0f;
            bound[l * C + c] = uniform(-0.1f, 0.1f);
            scale[l * C + c] = uniform(0.01f, 0.05f);
            shift_in[l * C + c] = uniform(-0.1f, 0.1f);
            slope[l * C + c] = uniform(0, 0.3f);
            shift_out[l * C + c] = uniform(-0.1f, 0.1f);
        }
    }
    static uint64_t w3[2][C * 9], w1[4][C], grouped[2][C * 9 * 2];
    static int32_t tap_sum[2][9 * C];
    bitconv_layer conv3[2], conv1[4];
    const uint64_t mask = (1ULL << C) - 1;
    for (int j = 0; j < blocks; j++) {
        for (int i = 0; i < C * 9; i++) w3[j][i] = next() & mask;
        bitconv_prepare3x3(w3[j], C, C, 1, grouped[j], tap_sum[j]);
        conv3[j] = (bitconv_layer){3, C, C, 1, w3[j], grouped[j], tap_sum[j]};
        for (int i = 0; i < 2; i++) {
            for (int c = 0; c < C; c++) w1[2 * j + i][c] = next() & mask;
            conv1[2 * j + i] = (bitconv_layer){1, C, C, 1, w1[2 * j + i], NULL, NULL};
        }
    }
    bsrn_body body = {C, 1, blocks, 1, 1, 1, n_terms, b, direction, bound, scale, shift_in, slope, shift_out, conv3, conv1};
    const int64_t pixels = (int64_t)height * width;
    float *map = malloc((size_t)pixels * C * sizeof(float));
    uint64_t *bits = malloc((size_t)pixels * sizeof(uint64_t));
    int32_t *counts = malloc((size_t)pixels * C * sizeof(int32_t));
    uint64_t *ring = calloc((size_t)(blocks * BSRN_RING_ROWS * bsrn_ring_row(width, 1)), sizeof(uint64_t));
    int64_t *sync = calloc((size_t)(16 + (blocks + 1) * height), sizeof(int64_t));
    for (int64_t i = 0; i < pixels * C; i++) map[i] = uniform(-1, 1);
    for (int64_t i = 0; i < pixels; i++) bits[i] = next() & mask;
    if (strcmp(mode, "body") == 0 && n > 0) bsrn_body_run(&body, 0, n, map, map, height, width, ring, 1, sync);
    for (int r = 0; strcmp(mode, "conv3") == 0 && r < n; r++) bitconv_rows(&conv3[0], bits, height, width, counts, 0, height);
    for (int r = 0; strcmp(mode, "conv1") == 0 && r < n; r++) bitconv_rows(&conv1[0], bits, height, width, counts, 0, height);
    printf("%g\n", (double)map[0] + counts[0]); /* keep the work observable */
    return 0;
}
