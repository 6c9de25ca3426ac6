/* Compiler and CPU portability of the kernels: every compiler-specific construct the C sources
 * use is one of the macros or small functions below, so bitconv.c, floatconv.c and the
 * included kernel files build with GCC, Clang (also Apple's and clang-cl), MinGW-w64 and MSVC.
 *
 * - BSRN_X86 / BSRN_NEON: the architecture (x86-64 or AArch64) whose kernels are compiled in.
 * - BSRN_TARGET("avx2,fma"): compile one function for extra instruction sets (GCC, Clang); empty
 *   on MSVC, which accepts any intrinsic anywhere.
 * - BSRN_ALWAYS_INLINE, BSRN_UNUSED, restrict (MSVC spells it __restrict).
 * - BSRN_ATOMIC_FETCH_ADD / _LOAD_ACQUIRE / _STORE_RELEASE on int64_t: the shared counter and the
 *   done flags of the threaded driver (GCC/Clang __atomic builtins, MSVC Interlocked functions).
 * - bsrn_pause(), bsrn_yield_cpu(): a spin-wait hint and giving the core up.
 * - bsrn_x86_features(): CPUID + XGETBV read the same way on every compiler (<cpuid.h> or
 *   <intrin.h>), checking that the OS saves the AVX / AVX-512 registers.
 */
#ifndef BSRN_COMPAT_H
#define BSRN_COMPAT_H

#include <stdint.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define BSRN_X86 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define BSRN_NEON 1 /* Advanced SIMD is part of the AArch64 base ISA */
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#define BSRN_MSVC 1
#endif

/* ---------------------------------------------------------------- attributes */

#ifdef BSRN_MSVC
#define BSRN_TARGET(features)
#define BSRN_ALWAYS_INLINE __forceinline
#define BSRN_UNUSED
#ifndef restrict
#define restrict __restrict
#endif
#else
#define BSRN_TARGET(features) __attribute__((target(features)))
#define BSRN_ALWAYS_INLINE inline __attribute__((always_inline))
#define BSRN_UNUSED __attribute__((unused))
#endif

/* ---------------------------------------------------------------- atomics, spinning */

#if defined(_MSC_VER)
#include <intrin.h>
#define BSRN_ATOMIC_FETCH_ADD(p, v) _InterlockedExchangeAdd64((volatile long long *)(p), (v))
#define BSRN_ATOMIC_LOAD_ACQUIRE(p) _InterlockedCompareExchange64((volatile long long *)(p), 0, 0)
#define BSRN_ATOMIC_STORE_RELEASE(p, v) ((void)_InterlockedExchange64((volatile long long *)(p), (v)))
#else
#define BSRN_ATOMIC_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define BSRN_ATOMIC_LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define BSRN_ATOMIC_STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#endif

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
static inline void bsrn_yield_cpu(void) { SwitchToThread(); }
#else
#include <sched.h>
static inline void bsrn_yield_cpu(void) { sched_yield(); }
#endif

#ifdef BSRN_X86
#include <immintrin.h>
static inline void bsrn_pause(void) { _mm_pause(); }
#elif defined(BSRN_NEON) && defined(_MSC_VER)
static inline void bsrn_pause(void) { __yield(); }
#elif defined(BSRN_NEON)
static inline void bsrn_pause(void) { __asm__ __volatile__("yield"); }
#else
static inline void bsrn_pause(void) {}
#endif

/* ---------------------------------------------------------------- x86 CPU features */

#ifdef BSRN_X86
#define BSRN_CPU_POPCNT 1
#define BSRN_CPU_FMA 2
#define BSRN_CPU_AVX2 4
#define BSRN_CPU_AVX512 8 /* AVX512F + VL + BW + VPOPCNTDQ, with the OS saving the ZMM state */

#if defined(_MSC_VER)
static inline void bsrn_cpuid(int leaf, int sub, unsigned r[4]) {
    int regs[4];
    __cpuidex(regs, leaf, sub);
    for (int i = 0; i < 4; i++) r[i] = (unsigned)regs[i];
}
BSRN_TARGET("xsave") static inline uint64_t bsrn_xcr0(void) { return (uint64_t)_xgetbv(0); }
#else
#include <cpuid.h>
static inline void bsrn_cpuid(int leaf, int sub, unsigned r[4]) {
    __cpuid_count((unsigned)leaf, (unsigned)sub, r[0], r[1], r[2], r[3]);
}
static inline uint64_t bsrn_xcr0(void) { /* XGETBV as bytes: no -mxsave needed */
    uint32_t lo, hi;
    __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* The BSRN_CPU_* bits this CPU and OS support. */
static inline int bsrn_x86_features(void) {
    unsigned r[4], max_leaf;
    int features = 0;
    bsrn_cpuid(0, 0, r);
    max_leaf = r[0];
    if (max_leaf < 1) return 0;
    bsrn_cpuid(1, 0, r);
    const unsigned ecx1 = r[2];
    if (ecx1 & (1u << 23)) features |= BSRN_CPU_POPCNT;
    /* AVX state saved by the OS: OSXSAVE and AVX set, XCR0 bits 1 (SSE) and 2 (AVX) */
    const int os_avx = (ecx1 & (1u << 27)) && (ecx1 & (1u << 28)) && (bsrn_xcr0() & 0x6) == 0x6;
    if (!os_avx || max_leaf < 7) return features;
    if (ecx1 & (1u << 12)) features |= BSRN_CPU_FMA;
    bsrn_cpuid(7, 0, r);
    const unsigned ebx7 = r[1], ecx7 = r[2];
    if (ebx7 & (1u << 5)) features |= BSRN_CPU_AVX2;
    /* AVX-512: F (EBX 16), BW (EBX 30), VL (EBX 31), VPOPCNTDQ (ECX 14); XCR0 opmask + ZMM state
     * (bits 5-7) */
    if ((ebx7 & (1u << 16)) && (ebx7 & (1u << 30)) && (ebx7 & (1u << 31)) && (ecx7 & (1u << 14)) &&
        (bsrn_xcr0() & 0xe6) == 0xe6)
        features |= BSRN_CPU_AVX512;
    return features;
}
#endif

#endif
