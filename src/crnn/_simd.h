/* SPDX-License-Identifier: BSD-3-Clause
 *
 * crnn's SIMD layer: the C that the Cython kernels (_core.pyx and the units it
 * includes) cannot say themselves. It holds
 *
 *   - the build's facts: OpenMP, debug build, instruction set name;
 *   - the SIMD vector types of this build (GCC/Clang vector extensions; one
 *     lane where there are none) and their widths;
 *   - the register tiles of the matrix products, each written once for both
 *     dtypes (a macro, instantiated for double "_d" and float "_f");
 *   - a multiply-add rounded as the vector tiles round it;
 *   - the bit-level helpers of the vectorised tanh;
 *   - the CPU's instruction sets, as the compiler's runtime detection sees
 *     them (for crnn/_core.py's choice of kernel variant).
 *
 * Every tile computes O[i, j] (+)= sum_k A[i, k] B[k, j] for its rows and
 * columns as one chain per element, in the order of k, starting from O (when
 * acc) or 0: whichever tile an element falls in, it is the same chain. Rows
 * past nr repeat row 0 and are not stored. The interface of every tile:
 *
 *   K            the length of the chains
 *   a, ars, aks  A[i, k] at a[i ars + k aks]
 *   b, ldb       B[k, j] at b[k ldb + j] (the panel's columns, contiguous)
 *   o, ldo       O[i, j] at o[i ldo + j]
 *   nr           rows stored (at most the tile's)
 *   acc          go on from O (1) or start from 0 (0)
 *
 * This file is compiled once per kernel variant (CMakeLists.txt): baseline,
 * AVX2+FMA and AVX-512.
 */
#ifndef CRNN_SIMD_H
#define CRNN_SIMD_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(_OPENMP)
#include <omp.h>
#define CRNN_OPENMP 1
#else
#define CRNN_OPENMP 0
#endif

/* OpenMP's thread count for the calling thread's next parallel region: the
   number of CPUs, OMP_NUM_THREADS, or what omp_set_num_threads (called by
   threadpoolctl, say) set; 1 without OpenMP. */
static inline int crnn_omp_max_threads(void) {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

#if defined(CRNN_DEBUG_BUILD)
#define CRNN_DEBUG 1
#else
#define CRNN_DEBUG 0
#endif

#if defined(__AVX512F__)
#define CRNN_ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#define CRNN_ISA "avx2"
#else
#define CRNN_ISA "baseline"
#endif

/* ---- vector types: CRNN_VB bytes, CRNN_VWD doubles or CRNN_VWF floats ---- */

#if (defined(__GNUC__) || defined(__clang__)) && !defined(CRNN_NO_SIMD)
#define CRNN_HAVE_VECTORS 1
#if defined(__AVX512F__)
#define CRNN_VB 64
#elif defined(__AVX__)
#define CRNN_VB 32
#else
#define CRNN_VB 16
#endif
typedef double crnn_vd __attribute__((vector_size(CRNN_VB), aligned(8), may_alias));
typedef float crnn_vf __attribute__((vector_size(CRNN_VB), aligned(4), may_alias));
#define CRNN_VWD (CRNN_VB / 8)
#define CRNN_VWF (CRNN_VB / 4)
#define CRNN_ZD ((crnn_vd){0})
#define CRNN_ZF ((crnn_vf){0})
#define CRNN_ALWAYS_INLINE static inline __attribute__((always_inline))
#define CRNN_UNROLL8 _Pragma("GCC unroll 8")
#else
#define CRNN_HAVE_VECTORS 0
typedef double crnn_vd;
typedef float crnn_vf;
#define CRNN_VWD 1
#define CRNN_VWF 1
#define CRNN_ZD 0.0
#define CRNN_ZF 0.0f
#define CRNN_ALWAYS_INLINE static inline
#define CRNN_UNROLL8
#endif

/* Rows of the widest row tile: 8 where there are 32 vector registers
   (AVX-512: 8 rows x 2 vectors = 16 accumulators), 4 elsewhere. */
#if CRNN_HAVE_VECTORS && CRNN_VB == 64
#define CRNN_MR 8
#else
#define CRNN_MR 4
#endif

/* ---- register tiles ---------------------------------------------------- */

/* Up to 4 rows x 2 vectors (CT = 2 vectors of columns: one panel). */
#define CRNN_TILE4(NAME, T, VT, W, ZERO)                                          \
    static inline void NAME(Py_ssize_t K, const T* a, Py_ssize_t ars, Py_ssize_t aks, \
                            const T* b, Py_ssize_t ldb, T* o, Py_ssize_t ldo,        \
                            Py_ssize_t nr, int acc) {                                \
        const T* a0 = a;                                                             \
        const T* a1 = a + (nr > 1 ? ars : 0);                                        \
        const T* a2 = a + (nr > 2 ? 2 * ars : 0);                                    \
        const T* a3 = a + (nr > 3 ? 3 * ars : 0);                                    \
        T* o0 = o;                                                                   \
        T* o1 = o + (nr > 1 ? ldo : 0);                                              \
        T* o2 = o + (nr > 2 ? 2 * ldo : 0);                                          \
        T* o3 = o + (nr > 3 ? 3 * ldo : 0);                                          \
        VT c00, c01, c10, c11, c20, c21, c30, c31, b0, b1;                           \
        T x0, x1, x2, x3;                                                            \
        Py_ssize_t k;                                                                \
        if (acc) {                                                                   \
            c00 = *(const VT*)o0; c01 = *(const VT*)(o0 + W);                        \
            c10 = *(const VT*)o1; c11 = *(const VT*)(o1 + W);                        \
            c20 = *(const VT*)o2; c21 = *(const VT*)(o2 + W);                        \
            c30 = *(const VT*)o3; c31 = *(const VT*)(o3 + W);                        \
        } else {                                                                     \
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = ZERO;                    \
        }                                                                            \
        for (k = 0; k < K; k++) {                                                    \
            b0 = *(const VT*)(b + k * ldb);                                          \
            b1 = *(const VT*)(b + k * ldb + W);                                      \
            x0 = a0[k * aks]; x1 = a1[k * aks]; x2 = a2[k * aks]; x3 = a3[k * aks];  \
            c00 = c00 + x0 * b0; c01 = c01 + x0 * b1;                                \
            c10 = c10 + x1 * b0; c11 = c11 + x1 * b1;                                \
            c20 = c20 + x2 * b0; c21 = c21 + x2 * b1;                                \
            c30 = c30 + x3 * b0; c31 = c31 + x3 * b1;                                \
        }                                                                            \
        *(VT*)o0 = c00; *(VT*)(o0 + W) = c01;                                        \
        if (nr > 1) { *(VT*)o1 = c10; *(VT*)(o1 + W) = c11; }                        \
        if (nr > 2) { *(VT*)o2 = c20; *(VT*)(o2 + W) = c21; }                        \
        if (nr > 3) { *(VT*)o3 = c30; *(VT*)(o3 + W) = c31; }                        \
    }

/* One row x 2 vectors: the chains of CRNN_TILE4's first row, without the
   three idle rows. */
#define CRNN_TILE1(NAME, T, VT, W, ZERO)                                          \
    static inline void NAME(Py_ssize_t K, const T* a, Py_ssize_t aks,                \
                            const T* b, Py_ssize_t ldb, T* o, int acc) {             \
        VT c0, c1, b0, b1;                                                           \
        T x;                                                                         \
        Py_ssize_t k;                                                                \
        if (acc) { c0 = *(const VT*)o; c1 = *(const VT*)(o + W); }                   \
        else { c0 = ZERO; c1 = ZERO; }                                               \
        for (k = 0; k < K; k++) {                                                    \
            b0 = *(const VT*)(b + k * ldb);                                          \
            b1 = *(const VT*)(b + k * ldb + W);                                      \
            x = a[k * aks];                                                          \
            c0 = c0 + x * b0; c1 = c1 + x * b1;                                      \
        }                                                                            \
        *(VT*)o = c0; *(VT*)(o + W) = c1;                                            \
    }

/* One row, npanels <= 4 panels at once (panel p at b + p pstride, its output
   at o + p CT): eight chains interleaved to hide the latency of a single
   row's multiply-adds. Panels past npanels repeat panel 0, unstored. */
#define CRNN_ROW4(NAME, T, VT, W, ZERO)                                           \
    static inline void NAME(Py_ssize_t K, const T* a, Py_ssize_t aks,                \
                            const T* b, Py_ssize_t pstride, Py_ssize_t ldb,          \
                            T* o, Py_ssize_t npanels, int acc) {                     \
        const T* q0 = b;                                                             \
        const T* q1 = npanels > 1 ? b + pstride : b;                                 \
        const T* q2 = npanels > 2 ? b + 2 * pstride : b;                             \
        const T* q3 = npanels > 3 ? b + 3 * pstride : b;                             \
        T* o0 = o;                                                                   \
        T* o1 = npanels > 1 ? o + 2 * W : o;                                         \
        T* o2 = npanels > 2 ? o + 4 * W : o;                                         \
        T* o3 = npanels > 3 ? o + 6 * W : o;                                         \
        VT c0, c1, c2, c3, c4, c5, c6, c7;                                           \
        T x;                                                                         \
        Py_ssize_t k;                                                                \
        if (acc) {                                                                   \
            c0 = *(const VT*)o0; c1 = *(const VT*)(o0 + W);                          \
            c2 = *(const VT*)o1; c3 = *(const VT*)(o1 + W);                          \
            c4 = *(const VT*)o2; c5 = *(const VT*)(o2 + W);                          \
            c6 = *(const VT*)o3; c7 = *(const VT*)(o3 + W);                          \
        } else {                                                                     \
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = ZERO;                            \
        }                                                                            \
        for (k = 0; k < K; k++) {                                                    \
            x = a[k * aks];                                                          \
            c0 = c0 + x * *(const VT*)(q0 + k * ldb);                                \
            c1 = c1 + x * *(const VT*)(q0 + k * ldb + W);                            \
            c2 = c2 + x * *(const VT*)(q1 + k * ldb);                                \
            c3 = c3 + x * *(const VT*)(q1 + k * ldb + W);                            \
            c4 = c4 + x * *(const VT*)(q2 + k * ldb);                                \
            c5 = c5 + x * *(const VT*)(q2 + k * ldb + W);                            \
            c6 = c6 + x * *(const VT*)(q3 + k * ldb);                                \
            c7 = c7 + x * *(const VT*)(q3 + k * ldb + W);                            \
        }                                                                            \
        *(VT*)o0 = c0; *(VT*)(o0 + W) = c1;                                          \
        if (npanels > 1) { *(VT*)o1 = c2; *(VT*)(o1 + W) = c3; }                     \
        if (npanels > 2) { *(VT*)o2 = c4; *(VT*)(o2 + W) = c5; }                     \
        if (npanels > 3) { *(VT*)o3 = c6; *(VT*)(o3 + W) = c7; }                     \
    }

/* Up to 8 rows x 2 vectors, where CRNN_MR is 8 (an empty function elsewhere,
   never called there). Always inlined: GCC otherwise calls it out of line
   from some callers, and then sets the tile up at every call. */
#if CRNN_MR == 8
#define CRNN_TILE8(NAME, T, VT, W, ZERO)                                          \
    CRNN_ALWAYS_INLINE void NAME(Py_ssize_t K, const T* a, Py_ssize_t ars,           \
                                 Py_ssize_t aks, const T* b, Py_ssize_t ldb, T* o,   \
                                 Py_ssize_t ldo, Py_ssize_t nr, int acc) {           \
        const T* ap[8];                                                              \
        VT c0[8], c1[8];                                                             \
        int i;                                                                       \
        Py_ssize_t k;                                                                \
        for (i = 0; i < 8; i++) ap[i] = a + (i < nr ? i : 0) * ars;                  \
        for (i = 0; i < 8; i++) {                                                    \
            c0[i] = acc ? *(const VT*)(o + (i < nr ? i : 0) * ldo) : ZERO;           \
            c1[i] = acc ? *(const VT*)(o + (i < nr ? i : 0) * ldo + W) : ZERO;       \
        }                                                                            \
        for (k = 0; k < K; k++) {                                                    \
            const VT b0 = *(const VT*)(b + k * ldb), b1 = *(const VT*)(b + k * ldb + W); \
            CRNN_UNROLL8                                                             \
            for (i = 0; i < 8; i++) {                                                \
                const T x = ap[i][k * aks];                                          \
                c0[i] = c0[i] + x * b0;                                              \
                c1[i] = c1[i] + x * b1;                                              \
            }                                                                        \
        }                                                                            \
        CRNN_UNROLL8                                                                 \
        for (i = 0; i < 8; i++)                                                      \
            if (i < nr) {                                                            \
                *(VT*)(o + i * ldo) = c0[i];                                         \
                *(VT*)(o + i * ldo + W) = c1[i];                                     \
            }                                                                        \
    }
#else
#define CRNN_TILE8(NAME, T, VT, W, ZERO)                                          \
    static inline void NAME(Py_ssize_t K, const T* a, Py_ssize_t ars, Py_ssize_t aks, \
                            const T* b, Py_ssize_t ldb, T* o, Py_ssize_t ldo,        \
                            Py_ssize_t nr, int acc) {}
#endif

/* Up to 8 rows x 1 vector: the first vector of columns past the last whole
   panel (every build; one lane where there is no SIMD type). */
#define CRNN_TILEV(NAME, T, VT, ZERO)                                             \
    static inline void NAME(Py_ssize_t K, const T* a, Py_ssize_t ars, Py_ssize_t aks, \
                            const T* b, Py_ssize_t ldb, T* o, Py_ssize_t ldo,        \
                            Py_ssize_t nr, int acc) {                                \
        const T* ap[8];                                                              \
        VT c[8];                                                                     \
        int i;                                                                       \
        Py_ssize_t k;                                                                \
        for (i = 0; i < 8; i++) ap[i] = a + (i < nr ? i : 0) * ars;                  \
        for (i = 0; i < 8; i++) c[i] = acc ? *(const VT*)(o + (i < nr ? i : 0) * ldo) : ZERO; \
        for (k = 0; k < K; k++) {                                                    \
            const VT b0 = *(const VT*)(b + k * ldb);                                 \
            CRNN_UNROLL8                                                             \
            for (i = 0; i < 8; i++) c[i] = c[i] + ap[i][k * aks] * b0;               \
        }                                                                            \
        CRNN_UNROLL8                                                                 \
        for (i = 0; i < 8; i++)                                                      \
            if (i < nr) *(VT*)(o + i * ldo) = c[i];                                  \
    }

/* The rows of an RTRL sensitivity panel (CT = 2 vectors of columns, d rows
   of 2 W) after its product (crnn/_rtrl.pxi): row l becomes o f[l], or
   fma(o, f[l], keep p) when p is not NULL (a leaky cell: the rounding the
   scalar loop this replaces had, spelled out, as a compiler may contract a
   vector expression the other way), and g += c[l] times it, the rows in
   order (g held in registers, not stored and loaded back for every row). */
#define CRNN_PANEL_ROWS(NAME, T, VT, W, FMA)                                      \
    static inline void NAME(Py_ssize_t d, T* o, const T* p, T* g, const T* f,    \
                            T keep, const T* c) {                                \
        VT g0 = *(const VT*)g, g1 = *(const VT*)(g + W), v0, v1;                 \
        Py_ssize_t l, j;                                                         \
        for (l = 0; l < d; l++, o += 2 * W) {                                    \
            if (p) {                                                             \
                for (j = 0; j < 2 * W; j++)                                      \
                    o[j] = FMA(o[j], f[l], keep * p[j]);                         \
                p += 2 * W;                                                      \
                v0 = *(const VT*)o;                                              \
                v1 = *(const VT*)(o + W);                                        \
            } else {                                                             \
                v0 = (*(const VT*)o) * f[l];                                     \
                v1 = (*(const VT*)(o + W)) * f[l];                               \
                *(VT*)o = v0;                                                    \
                *(VT*)(o + W) = v1;                                              \
            }                                                                    \
            g0 = g0 + (c[l] * v0);                                               \
            g1 = g1 + (c[l] * v1);                                               \
        }                                                                        \
        *(VT*)g = g0;                                                            \
        *(VT*)(g + W) = g1;                                                      \
    }

CRNN_TILE4(crnn_tile4_d, double, crnn_vd, CRNN_VWD, CRNN_ZD)
CRNN_TILE4(crnn_tile4_f, float, crnn_vf, CRNN_VWF, CRNN_ZF)
CRNN_TILE1(crnn_tile1_d, double, crnn_vd, CRNN_VWD, CRNN_ZD)
CRNN_TILE1(crnn_tile1_f, float, crnn_vf, CRNN_VWF, CRNN_ZF)
CRNN_ROW4(crnn_row4_d, double, crnn_vd, CRNN_VWD, CRNN_ZD)
CRNN_ROW4(crnn_row4_f, float, crnn_vf, CRNN_VWF, CRNN_ZF)
CRNN_TILE8(crnn_tile8_d, double, crnn_vd, CRNN_VWD, CRNN_ZD)
CRNN_TILE8(crnn_tile8_f, float, crnn_vf, CRNN_VWF, CRNN_ZF)
CRNN_TILEV(crnn_tilev_d, double, crnn_vd, CRNN_ZD)
CRNN_TILEV(crnn_tilev_f, float, crnn_vf, CRNN_ZF)

/* ---- a multiply-add rounded as the vector tiles round it ---------------
   Once where the build has FMA (the tiles' a + x * b is contracted there),
   twice where it has not: every path of a product then computes an element
   with the same roundings. */
#if defined(__FMA__)
#define CRNN_FMA_D(a, b, c) __builtin_fma((a), (b), (c))
#define CRNN_FMA_F(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define CRNN_FMA_D(a, b, c) ((a) * (b) + (c))
#define CRNN_FMA_F(a, b, c) ((a) * (b) + (c))
#endif

CRNN_PANEL_ROWS(crnn_panel_rows_d, double, crnn_vd, CRNN_VWD, CRNN_FMA_D)
CRNN_PANEL_ROWS(crnn_panel_rows_f, float, crnn_vf, CRNN_VWF, CRNN_FMA_F)

/* ---- bit-level helpers of the vectorised tanh (crnn/_cell.pxi) ----------
   Cython has no bit cast; memcpy is one, and compilers vectorise it.
   t = v + 1.5 2^52 (2^23 in float32) holds round(v) in its low mantissa
   bits: pow2(t) = 2^round(v). min_pos(y, cap) is min(y, cap) for y, cap >= 0
   on the bit patterns, which order like the values there (a NaN is left as
   it is, to propagate): integer selects, which vectorise where a float
   comparison (that may trap) does not. */
static inline double crnn_pow2_d(double t) {
    uint64_t i;
    double r;
    memcpy(&i, &t, 8); /* unsigned: a defined shift */
    i = (i - UINT64_C(0x4338000000000000) + 1023) << 52;
    memcpy(&r, &i, 8);
    return r;
}
static inline double crnn_min_pos_d(double y, double cap) {
    int64_t a, b;
    memcpy(&a, &y, 8);
    memcpy(&b, &cap, 8);
    a = a > INT64_C(0x7FF0000000000000) ? a : (a < b ? a : b); /* NaN stays */
    memcpy(&y, &a, 8);
    return y;
}
static inline float crnn_pow2_f(float t) {
    uint32_t i;
    float r;
    memcpy(&i, &t, 4);
    i = (i - UINT32_C(0x4B400000) + 127) << 23;
    memcpy(&r, &i, 4);
    return r;
}
static inline float crnn_min_pos_f(float y, float cap) {
    int32_t a, b;
    memcpy(&a, &y, 4);
    memcpy(&b, &cap, 4);
    a = a > INT32_C(0x7F800000) ? a : (a < b ? a : b);
    memcpy(&y, &a, 4);
    return y;
}

/* ---- bit-level helpers of the other activations (crnn/_cell.pxi) -------
   relu(x) = max(x, 0) and its slope from h = relu(z) (1 where h > 0, else 0:
   PyTorch's convention at 0), on the bit patterns: a value is positive when
   its signed bits are above 0 (+0 excluded, as are NaNs, which stay NaN). */
static inline double crnn_relu_d(double x) {
    int64_t a;
    memcpy(&a, &x, 8);
    a = (a & INT64_C(0x7FFFFFFFFFFFFFFF)) > INT64_C(0x7FF0000000000000) ? a : (a > 0 ? a : 0);
    memcpy(&x, &a, 8);
    return x;
}
static inline double crnn_positive_d(double h) {
    int64_t a;
    memcpy(&a, &h, 8);
    return (a > 0 && a <= INT64_C(0x7FF0000000000000)) ? 1.0 : 0.0;
}
static inline float crnn_relu_f(float x) {
    int32_t a;
    memcpy(&a, &x, 4);
    a = (a & INT32_C(0x7FFFFFFF)) > INT32_C(0x7F800000) ? a : (a > 0 ? a : 0);
    memcpy(&x, &a, 4);
    return x;
}
static inline double crnn_positive_f(float h) {
    int32_t a;
    memcpy(&a, &h, 4);
    return (a > 0 && a <= INT32_C(0x7F800000)) ? 1.0 : 0.0;
}

/* ---- non-finite values ---------------------------------------------------
   How many of a[0 .. n-1] are NaN or infinite: those whose exponent bits are
   all ones. Integer operations only, so the loop vectorises. */
static inline Py_ssize_t crnn_nonfinite_d(const double* a, Py_ssize_t n) {
    Py_ssize_t i, bad = 0;
    uint64_t u;
    for (i = 0; i < n; i++) {
        memcpy(&u, a + i, 8);
        bad += (u & UINT64_C(0x7FF0000000000000)) == UINT64_C(0x7FF0000000000000);
    }
    return bad;
}
static inline Py_ssize_t crnn_nonfinite_f(const float* a, Py_ssize_t n) {
    Py_ssize_t i, bad = 0;
    uint32_t u;
    for (i = 0; i < n; i++) {
        memcpy(&u, a + i, 4);
        bad += (u & UINT32_C(0x7F800000)) == UINT32_C(0x7F800000);
    }
    return bad;
}

/* ---- the CPU's instruction sets ----------------------------------------
   GCC's and Clang's runtime detection (cpuid, and xgetbv for whether the
   operating system saves the wide registers). 0 where it is not available:
   then only the baseline kernels are used. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
static inline int crnn_cpu_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static inline int crnn_cpu_avx512(void) {
    __builtin_cpu_init();
    return crnn_cpu_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}
#else
static inline int crnn_cpu_avx2(void) { return 0; }
static inline int crnn_cpu_avx512(void) { return 0; }
#endif

/* ---- stopping a call: a clock and a flag shared by a call's threads ----
   The kernels stop early when a signal handler raised (``_stopped`` in
   _core.pyx): the calling thread sets the flag, the others read it between
   steps. Relaxed atomics: nothing else is ordered by it (a stopped call's
   outputs are thrown away). */
static inline double crnn_clock(void) {
#if defined(_WIN32)
    return (double)clock() / CLOCKS_PER_SEC;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}
#if defined(__GNUC__) || defined(__clang__)
static inline int crnn_flag_get(int *f) { return __atomic_load_n(f, __ATOMIC_RELAXED); }
static inline void crnn_flag_set(int *f) { __atomic_store_n(f, 1, __ATOMIC_RELAXED); }
#else
static inline int crnn_flag_get(int *f) { return *(volatile int *)f; }
static inline void crnn_flag_set(int *f) { *(volatile int *)f = 1; }
#endif

#endif /* CRNN_SIMD_H */
