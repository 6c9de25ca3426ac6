/* The float peak of one core: a loop of 12 independent AVX2 fused multiply-adds (no loads), so
 * that a kernel's GFLOP/s can be read as a share of what the core can do. Also gives the clock
 * the loop ran at, assuming two 256-bit FMA pipes (Zen 2-4, Haswell and later Intel cores).
 *
 *   gcc -O2 -mavx2 -mfma scripts/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

int main(void) {
    __m256 a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = _mm256_set1_ps(0.001f);
    const __m256 x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(0.00001f);
    const long n = 200000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; k++) {
#define F(i) a##i = _mm256_fmadd_ps(a##i, x, y);
        F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
        /* keep the twelve chains in registers and the loop from being folded away */
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7),
                         "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    float check[8];
    _mm256_storeu_ps(check, _mm256_add_ps(a0, a11));
    printf("%.1f GFLOP/s on one core (%.2f GHz if two FMA pipes); check %g\n", (double)n * 12 * 16 / s / 1e9,
           (double)n * 12 / 2 / s / 1e9, (double)check[0]);
    return 0;
}
