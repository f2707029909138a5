# SPDX-License-Identifier: BSD-3-Clause
"""Compiled kernels of crnn: the Elman RNN forward pass, its loss and gradients.

Design
------
The model (see ``SEED.md``) is::

    Z^t = U X^t + W S^{t-1} (+ b),   S^t = tanh(Z^t),   Y^t = V S^t (+ c)
    E   = g sum_t sum_k (target^t_k - Y^t_k)^2

This module is the private, compiled layer. It assumes every argument has
already been validated and allocated by ``crnn._rnn`` (shapes agree, arrays
are C-contiguous, of one floating dtype, finite, N >= 1 and T >= 1); with
bounds checks off it does not look again.

Builds: this file is compiled once per instruction set (``_core_baseline``,
``_core_avx2`` with AVX2 and FMA, ``_core_avx512``; see CMakeLists.txt) and
``crnn/_core.py`` imports the widest one the CPU runs (runtime dispatch).

Layers:

(a) one-step helpers on raw pointers (matrix-vector loops), used by the
    online RTRL kernel at the end of the file;
(a') SIMD building blocks: the register-tiled product ``_gemm`` (4 rows, 8
    on AVX-512, x 2 SIMD vectors of accumulators, GCC vector types; a single
    row runs 4 panels at once), ``_gemm_tn`` for BPTT's products over all
    steps (both operands packed chunk by chunk), the weights packed once per
    call into column panels (``_pack_weights``), and a branch-free tanh the
    compiler vectorises;
(b) blocks of sequences, time-major: the forward pass and the two BPTT
    recurrences of a block take one matrix product per step ([x, s] [U.T;
    W.T] forward, [e, delta] [V; W] backward), while the outputs V S, which
    do not feed the recurrence, are one product per 32 steps; each block
    (one thread's) has its own region of BPTT's buffers; BPTT runs back in
    blocks of steps, keeping the deltas of one block (a ring), and after
    each block its dU, dW, dV are one product over that block's steps of
    all sequences; RTRL carries the sensitivities in column panels, one
    sequence's columns split over threads;
(c) ``def`` entry points: release the GIL once and run blocks, sequences or
    column chunks in parallel with ``prange`` (OpenMP when built with it).

Determinism: every element of every product is one multiply-add chain in
the order of k, whichever tile, panel, row block or k chunk it falls in, so
a sequence's states, outputs, E and dE/dS^0 do not depend on the other
sequences of its block nor on the thread count. BPTT's batch gradient is a
number of parts that depends on the sizes alone, each a product over the
steps of a group of sequences (blocks of steps from the last to the first,
each step by step; see ``_Steps``) whose elements are one chain each, the
parts added in order; parts and rows are shared out between the threads. RTRL computes
each sequence's gradient (each column by one thread) into a slot of its own,
and the slots are added into the total in sequence order. The numbers
differ between builds only by rounding (FMA contracts a*b + c).

Biases (optional): b is added to Z and c to Y after their products; BPTT
adds db = sum delta and dc = sum e, RTRL carries d more sensitivity columns
(direct term 1); a NULL pointer (an empty array at the entry points) means
none.

Workspace: the caller allocates it (and reuses it across calls); its size
comes from the ``_pack_size``, ``_forward_work_size``, ``_bptt_buffer_sizes``
and ``_rtrl_work_size`` functions here, the one place that knows the layout.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport copysign, copysignf, fabs, fabsf, sqrt
from libc.string cimport memset

cdef extern from *:
    """
    #if defined(_OPENMP)
    #define CRNN_OPENMP 1
    #else
    #define CRNN_OPENMP 0
    #endif
    #if defined(CRNN_DEBUG_BUILD)
    #define CRNN_DEBUG 1
    #else
    #define CRNN_DEBUG 0
    #endif
    """
    const int CRNN_OPENMP
    const int CRNN_DEBUG

# SIMD vectors of this build (GCC/Clang vector extensions; one lane elsewhere),
# used by the register tiles of section (a'). The module is compiled once per
# instruction set (baseline, AVX2+FMA, AVX-512) and ``crnn._core`` picks one.
cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && !defined(CRNN_NO_SIMD)
    #  if defined(__AVX512F__)
    #    define CRNN_VB 64
    #  elif defined(__AVX__)
    #    define CRNN_VB 32
    #  else
    #    define CRNN_VB 16
    #  endif
    typedef double crnn_vd __attribute__((vector_size(CRNN_VB), aligned(8), may_alias));
    typedef float crnn_vf __attribute__((vector_size(CRNN_VB), aligned(4), may_alias));
    #  define CRNN_VWD (CRNN_VB / 8)
    #  define CRNN_VWF (CRNN_VB / 4)
    #  define CRNN_ZD ((crnn_vd){0})
    #  define CRNN_ZF ((crnn_vf){0})
    #else
    typedef double crnn_vd;
    typedef float crnn_vf;
    #  define CRNN_VWD 1
    #  define CRNN_VWF 1
    #  define CRNN_ZD 0.0
    #  define CRNN_ZF 0.0f
    #endif
    /* Bit-level helpers of the vectorised tanh (Cython has no bit cast; memcpy
       is one, and compilers vectorise it). t = v + 1.5 2^52 (2^23 in float32)
       holds round(v) in its low mantissa bits: pow2(t) = 2^round(v). min_pos
       is min(y, cap) for y, cap >= 0 on the bit patterns, which order like the
       values there (a NaN is left as it is, to propagate): integer selects,
       which vectorise where a float comparison (that may trap) does not. */
    #include <stdint.h>
    #include <string.h>
    static inline double crnn_pow2_d(double t) {
        uint64_t i; double r; memcpy(&i, &t, 8);   /* unsigned: a defined shift */
        i = (i - UINT64_C(0x4338000000000000) + 1023) << 52; memcpy(&r, &i, 8); return r; }
    static inline double crnn_min_pos_d(double y, double cap) {
        int64_t a, b; memcpy(&a, &y, 8); memcpy(&b, &cap, 8);
        a = a > INT64_C(0x7FF0000000000000) ? a : (a < b ? a : b);  /* NaN stays */
        memcpy(&y, &a, 8); return y; }
    static inline float crnn_pow2_f(float t) {
        uint32_t i; float r; memcpy(&i, &t, 4);
        i = (i - UINT32_C(0x4B400000) + 127) << 23; memcpy(&r, &i, 4); return r; }
    static inline float crnn_min_pos_f(float y, float cap) {
        int32_t a, b; memcpy(&a, &y, 4); memcpy(&b, &cap, 4);
        a = a > INT32_C(0x7F800000) ? a : (a < b ? a : b);
        memcpy(&y, &a, 4); return y; }
    /* Row tiles of 8 rows x 2 vectors (16 accumulators) where there are 32
       vector registers (AVX-512); the other builds use the 4-row tiles
       written in Cython below. Each element is the same chain in k either way.
       Always inlined: called out of line (GCC's choice for some callers), the
       tile's set-up per call made W1's recurrences 15% slower. */
    #if (defined(__GNUC__) || defined(__clang__)) && !defined(CRNN_NO_SIMD) && CRNN_VB == 64
    #  define CRNN_MR 8
    #  define CRNN_TILE8(NAME, T, VT, W, ZERO) \
    static inline __attribute__((always_inline)) void NAME(Py_ssize_t K, const T* a, Py_ssize_t ars, Py_ssize_t aks, \
                            const T* b, Py_ssize_t ldb, T* o, Py_ssize_t ldo, \
                            Py_ssize_t nr, int acc) { \
        const T* ap[8]; VT c0[8], c1[8]; int i; Py_ssize_t k; \
        for (i = 0; i < 8; i++) ap[i] = a + (i < nr ? i : 0) * ars; \
        for (i = 0; i < 8; i++) { \
            c0[i] = acc ? *(const VT*)(o + (i < nr ? i : 0) * ldo) : ZERO; \
            c1[i] = acc ? *(const VT*)(o + (i < nr ? i : 0) * ldo + W) : ZERO; } \
        for (k = 0; k < K; k++) { \
            const VT b0 = *(const VT*)(b + k * ldb), b1 = *(const VT*)(b + k * ldb + W); \
            _Pragma("GCC unroll 8") \
            for (i = 0; i < 8; i++) { \
                const T x = ap[i][k * aks]; c0[i] = c0[i] + x * b0; c1[i] = c1[i] + x * b1; } } \
        _Pragma("GCC unroll 8") \
        for (i = 0; i < 8; i++) if (i < nr) { \
            *(VT*)(o + i * ldo) = c0[i]; *(VT*)(o + i * ldo + W) = c1[i]; } }
    #else
    #  define CRNN_MR 4
    #  define CRNN_TILE8(NAME, T, VT, W, ZERO) \
    static inline void NAME(Py_ssize_t K, const T* a, Py_ssize_t ars, Py_ssize_t aks, \
                            const T* b, Py_ssize_t ldb, T* o, Py_ssize_t ldo, \
                            Py_ssize_t nr, int acc) { }
    #endif
    CRNN_TILE8(crnn_tile8_d, double, crnn_vd, CRNN_VWD, CRNN_ZD)
    CRNN_TILE8(crnn_tile8_f, float, crnn_vf, CRNN_VWF, CRNN_ZF)
    /* Up to 8 rows x 1 vector: the first vector of columns past the last
       whole panel (every build; one lane where there is no SIMD type). */
    #define CRNN_TILEV(NAME, T, VT, ZERO) \
    static inline void NAME(Py_ssize_t K, const T* a, Py_ssize_t ars, Py_ssize_t aks, \
                            const T* b, Py_ssize_t ldb, T* o, Py_ssize_t ldo, \
                            Py_ssize_t nr, int acc) { \
        const T* ap[8]; VT c[8]; int i; Py_ssize_t k; \
        for (i = 0; i < 8; i++) ap[i] = a + (i < nr ? i : 0) * ars; \
        for (i = 0; i < 8; i++) c[i] = acc ? *(const VT*)(o + (i < nr ? i : 0) * ldo) : ZERO; \
        for (k = 0; k < K; k++) { \
            const VT b0 = *(const VT*)(b + k * ldb); \
            _Pragma("GCC unroll 8") \
            for (i = 0; i < 8; i++) c[i] = c[i] + ap[i][k * aks] * b0; } \
        _Pragma("GCC unroll 8") \
        for (i = 0; i < 8; i++) if (i < nr) *(VT*)(o + i * ldo) = c[i]; }
    CRNN_TILEV(crnn_tilev_d, double, crnn_vd, CRNN_ZD)
    CRNN_TILEV(crnn_tilev_f, float, crnn_vf, CRNN_ZF)
    /* A multiply-add rounded once where the build has FMA (as the vector tiles
       are contracted), twice where it has not: every path of a product then
       computes an element with the same roundings. */
    #if defined(__FMA__)
    #  define CRNN_FMA_D(a, b, c) __builtin_fma((a), (b), (c))
    #  define CRNN_FMA_F(a, b, c) __builtin_fmaf((a), (b), (c))
    #else
    #  define CRNN_FMA_D(a, b, c) ((a) * (b) + (c))
    #  define CRNN_FMA_F(a, b, c) ((a) * (b) + (c))
    #endif
    #if defined(__AVX512F__)
    #  define CRNN_ISA "avx512"
    #elif defined(__AVX2__) && defined(__FMA__)
    #  define CRNN_ISA "avx2"
    #else
    #  define CRNN_ISA "baseline"
    #endif
    """
    ctypedef double vd "crnn_vd"
    ctypedef float vf "crnn_vf"
    const Py_ssize_t CRNN_VWD
    const Py_ssize_t CRNN_VWF
    const vd CRNN_ZD
    const vf CRNN_ZF
    const char* CRNN_ISA
    const Py_ssize_t CRNN_MR
    void crnn_tilev_d(Py_ssize_t K, const double* a, Py_ssize_t ars, Py_ssize_t aks,
                      const double* b, Py_ssize_t ldb, double* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_tilev_f(Py_ssize_t K, const float* a, Py_ssize_t ars, Py_ssize_t aks,
                      const float* b, Py_ssize_t ldb, float* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    double crnn_fma_d "CRNN_FMA_D"(double a, double b, double c) noexcept nogil
    float crnn_fma_f "CRNN_FMA_F"(float a, float b, float c) noexcept nogil
    void crnn_tile8_d(Py_ssize_t K, const double* a, Py_ssize_t ars, Py_ssize_t aks,
                      const double* b, Py_ssize_t ldb, double* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_tile8_f(Py_ssize_t K, const float* a, Py_ssize_t ars, Py_ssize_t aks,
                      const float* b, Py_ssize_t ldb, float* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    double crnn_pow2_d(double t) noexcept nogil
    double crnn_min_pos_d(double y, double cap) noexcept nogil
    float crnn_pow2_f(float t) noexcept nogil
    float crnn_min_pos_f(float y, float cap) noexcept nogil


def _openmp_enabled():
    """Return True when the kernels were compiled with OpenMP."""
    return bool(CRNN_OPENMP)


def _debug_build():
    """Return True when the kernels were compiled with bounds checks on."""
    return bool(CRNN_DEBUG)


# ---------------------------------------------------------------------------
# (a) one-step helpers on raw pointers (row-major, unit stride)
# ---------------------------------------------------------------------------

cdef inline void _matvec(const floating* A, Py_ssize_t rows, Py_ssize_t cols,
                         const floating* x, floating* y) noexcept nogil:
    """y += A @ x, A of shape (rows, cols)."""
    cdef Py_ssize_t i, j
    cdef floating acc
    for i in range(rows):
        acc = 0
        for j in range(cols):
            acc = acc + A[i * cols + j] * x[j]
        y[i] = y[i] + acc


cdef inline void _matTvec(const floating* A, Py_ssize_t rows, Py_ssize_t cols,
                          const floating* x, floating* y) noexcept nogil:
    """y += A.T @ x, A of shape (rows, cols); axpy form, unit stride."""
    cdef Py_ssize_t i, j
    cdef floating xi
    for i in range(rows):
        xi = x[i]
        for j in range(cols):
            y[j] = y[j] + A[i * cols + j] * xi


cdef inline void _outer(floating* A, Py_ssize_t rows, Py_ssize_t cols,
                        const floating* u, const floating* v) noexcept nogil:
    """A += outer(u, v), A of shape (rows, cols)."""
    cdef Py_ssize_t i, j
    cdef floating ui
    for i in range(rows):
        ui = u[i]
        for j in range(cols):
            A[i * cols + j] = A[i * cols + j] + ui * v[j]


cdef inline void _state_step(const floating* U, const floating* W,
                             const floating* bb, Py_ssize_t d, Py_ssize_t n,
                             const floating* x, const floating* s_prev,
                             floating* s) noexcept nogil:
    """s = tanh(U @ x + W @ s_prev + b) (no b when bb is NULL); s must not alias s_prev."""
    cdef Py_ssize_t i
    for i in range(d):
        s[i] = 0
    _matvec(U, d, n, x, s)
    _matvec(W, d, d, s_prev, s)
    if bb != NULL:
        for i in range(d):
            s[i] = s[i] + bb[i]
    _tanh_inplace(s, d)


cdef inline floating _output_error(const floating* V, const floating* cb,
                                   Py_ssize_t m, Py_ssize_t d,
                                   const floating* s, const floating* target,
                                   floating g, floating* y, floating* e) noexcept nogil:
    """y = V @ s + c (no c when cb is NULL), e = -2 g (target - y);
    return sum_k (target_k - y_k)^2."""
    cdef Py_ssize_t k
    cdef floating r, sq = 0
    for k in range(m):
        e[k] = 0
    _matvec(V, m, d, s, e)              # e = y = V @ s (+ c)
    if cb != NULL:
        for k in range(m):
            e[k] = e[k] + cb[k]
    for k in range(m):
        y[k] = e[k]
    for k in range(m):
        r = target[k] - e[k]
        sq = sq + r * r
        e[k] = -2 * g * r
    return sq


cdef inline void _sensitivity_step(const floating* W, Py_ssize_t d, Py_ssize_t n,
                                   Py_ssize_t Q, bint bias, const floating* x,
                                   const floating* s_prev, const floating* s,
                                   const floating* P_prev, floating* P) noexcept nogil:
    """One step of the seed's sensitivity recursion, P = f'(Z) * (direct + W @ P_prev).

    P and P_prev are (d, Q) with Q >= d*n + d*d (+ d with biases): column
    i*n + j holds dS_l/du_ij, column d*n + i*d + j dS_l/dw_ij, and with
    biases column d*n + d*d + i dS_l/db_i (any further columns have no
    direct term). direct[l, u_ij] = delta_li x_j, direct[l, w_ij] = delta_li
    s_prev_j, direct[l, b_i] = delta_li; f'(Z) = 1 - s^2. P must not alias
    P_prev.
    """
    cdef Py_ssize_t l, mm, j, q
    cdef floating* row
    cdef const floating* row_prev
    cdef floating wlm, fp
    for l in range(d):
        row = P + l * Q
        for q in range(Q):
            row[q] = 0
        for mm in range(d):                         # row += w_lm P_prev[m, :]
            wlm = W[l * d + mm]
            row_prev = P_prev + mm * Q
            for q in range(Q):
                row[q] = row[q] + wlm * row_prev[q]
        for j in range(n):                          # delta_li x_j, i = l
            row[l * n + j] = row[l * n + j] + x[j]
        for j in range(d):                          # delta_li s_prev_j, i = l
            row[d * n + l * d + j] = row[d * n + l * d + j] + s_prev[j]
        if bias:                                    # delta_li, i = l
            row[d * n + d * d + l] = row[d * n + d * d + l] + 1
        fp = 1 - s[l] * s[l]
        for q in range(Q):
            row[q] = row[q] * fp


# ---------------------------------------------------------------------------
# (a') SIMD building blocks: register-tiled products, packed panels, tanh
# ---------------------------------------------------------------------------
#
# Every product below, O (R x C) (+)= A (R x K) B (K x C), computes each
# element O[r, c] as one chain, O (or 0) + A[r, 0] B[0, c] + A[r, 1] B[1, c]
# + ..., in the order of k, whatever R is, whichever row tile or column panel
# the element falls in. So a sequence's numbers do not depend on which other
# sequences share its block, nor on the thread count. Columns run in panels
# of CT = 2 SIMD vectors (4 rows x 2 vectors of accumulators in registers, 8
# rows on AVX-512 builds); columns past the last whole panel run as scalar
# chains, eight at a time, with the same roundings (``_fma``).

cdef inline Py_ssize_t _ct(floating dummy) noexcept nogil:
    """Columns of one panel: two SIMD vectors of this build."""
    if floating is double:
        return 2 * CRNN_VWD
    else:
        return 2 * CRNN_VWF


cdef inline void _tile_d(Py_ssize_t K, const double* a0, const double* a1,
                         const double* a2, const double* a3, Py_ssize_t aks,
                         const double* b, Py_ssize_t ldb,
                         double* o0, double* o1, double* o2, double* o3,
                         Py_ssize_t nr, bint acc) noexcept nogil:
    """o_i[0:CT] (+)= sum_k a_i[k aks] b[k ldb : k ldb + CT] for rows i < nr."""
    cdef vd c00, c01, c10, c11, c20, c21, c30, c31, b0, b1
    cdef double x0, x1, x2, x3
    cdef Py_ssize_t k, w = CRNN_VWD
    if acc:
        c00 = (<vd*>o0)[0]
        c01 = (<vd*>(o0 + w))[0]
        c10 = (<vd*>o1)[0]
        c11 = (<vd*>(o1 + w))[0]
        c20 = (<vd*>o2)[0]
        c21 = (<vd*>(o2 + w))[0]
        c30 = (<vd*>o3)[0]
        c31 = (<vd*>(o3 + w))[0]
    else:
        c00 = CRNN_ZD
        c01 = CRNN_ZD
        c10 = CRNN_ZD
        c11 = CRNN_ZD
        c20 = CRNN_ZD
        c21 = CRNN_ZD
        c30 = CRNN_ZD
        c31 = CRNN_ZD
    for k in range(K):
        b0 = (<const vd*>(b + k * ldb))[0]
        b1 = (<const vd*>(b + k * ldb + w))[0]
        x0 = a0[k * aks]
        x1 = a1[k * aks]
        x2 = a2[k * aks]
        x3 = a3[k * aks]
        c00 = c00 + x0 * b0
        c01 = c01 + x0 * b1
        c10 = c10 + x1 * b0
        c11 = c11 + x1 * b1
        c20 = c20 + x2 * b0
        c21 = c21 + x2 * b1
        c30 = c30 + x3 * b0
        c31 = c31 + x3 * b1
    (<vd*>o0)[0] = c00
    (<vd*>(o0 + w))[0] = c01
    if nr > 1:
        (<vd*>o1)[0] = c10
        (<vd*>(o1 + w))[0] = c11
    if nr > 2:
        (<vd*>o2)[0] = c20
        (<vd*>(o2 + w))[0] = c21
    if nr > 3:
        (<vd*>o3)[0] = c30
        (<vd*>(o3 + w))[0] = c31


cdef inline void _tile_f(Py_ssize_t K, const float* a0, const float* a1,
                         const float* a2, const float* a3, Py_ssize_t aks,
                         const float* b, Py_ssize_t ldb,
                         float* o0, float* o1, float* o2, float* o3,
                         Py_ssize_t nr, bint acc) noexcept nogil:
    """float32 twin of ``_tile_d``."""
    cdef vf c00, c01, c10, c11, c20, c21, c30, c31, b0, b1
    cdef float x0, x1, x2, x3
    cdef Py_ssize_t k, w = CRNN_VWF
    if acc:
        c00 = (<vf*>o0)[0]
        c01 = (<vf*>(o0 + w))[0]
        c10 = (<vf*>o1)[0]
        c11 = (<vf*>(o1 + w))[0]
        c20 = (<vf*>o2)[0]
        c21 = (<vf*>(o2 + w))[0]
        c30 = (<vf*>o3)[0]
        c31 = (<vf*>(o3 + w))[0]
    else:
        c00 = CRNN_ZF
        c01 = CRNN_ZF
        c10 = CRNN_ZF
        c11 = CRNN_ZF
        c20 = CRNN_ZF
        c21 = CRNN_ZF
        c30 = CRNN_ZF
        c31 = CRNN_ZF
    for k in range(K):
        b0 = (<const vf*>(b + k * ldb))[0]
        b1 = (<const vf*>(b + k * ldb + w))[0]
        x0 = a0[k * aks]
        x1 = a1[k * aks]
        x2 = a2[k * aks]
        x3 = a3[k * aks]
        c00 = c00 + x0 * b0
        c01 = c01 + x0 * b1
        c10 = c10 + x1 * b0
        c11 = c11 + x1 * b1
        c20 = c20 + x2 * b0
        c21 = c21 + x2 * b1
        c30 = c30 + x3 * b0
        c31 = c31 + x3 * b1
    (<vf*>o0)[0] = c00
    (<vf*>(o0 + w))[0] = c01
    if nr > 1:
        (<vf*>o1)[0] = c10
        (<vf*>(o1 + w))[0] = c11
    if nr > 2:
        (<vf*>o2)[0] = c20
        (<vf*>(o2 + w))[0] = c21
    if nr > 3:
        (<vf*>o3)[0] = c30
        (<vf*>(o3 + w))[0] = c31


cdef inline void _tile1_d(Py_ssize_t K, const double* a0, Py_ssize_t aks,
                          const double* b, Py_ssize_t ldb, double* o0,
                          bint acc) noexcept nogil:
    """One row of ``_tile_d``: the same chains, without the three idle rows."""
    cdef vd c00, c01, b0, b1
    cdef double x0
    cdef Py_ssize_t k, w = CRNN_VWD
    if acc:
        c00 = (<vd*>o0)[0]
        c01 = (<vd*>(o0 + w))[0]
    else:
        c00 = CRNN_ZD
        c01 = CRNN_ZD
    for k in range(K):
        b0 = (<const vd*>(b + k * ldb))[0]
        b1 = (<const vd*>(b + k * ldb + w))[0]
        x0 = a0[k * aks]
        c00 = c00 + x0 * b0
        c01 = c01 + x0 * b1
    (<vd*>o0)[0] = c00
    (<vd*>(o0 + w))[0] = c01


cdef inline void _tile1_f(Py_ssize_t K, const float* a0, Py_ssize_t aks,
                          const float* b, Py_ssize_t ldb, float* o0,
                          bint acc) noexcept nogil:
    """One row of ``_tile_f``: the same chains, without the three idle rows."""
    cdef vf c00, c01, b0, b1
    cdef float x0
    cdef Py_ssize_t k, w = CRNN_VWF
    if acc:
        c00 = (<vf*>o0)[0]
        c01 = (<vf*>(o0 + w))[0]
    else:
        c00 = CRNN_ZF
        c01 = CRNN_ZF
    for k in range(K):
        b0 = (<const vf*>(b + k * ldb))[0]
        b1 = (<const vf*>(b + k * ldb + w))[0]
        x0 = a0[k * aks]
        c00 = c00 + x0 * b0
        c01 = c01 + x0 * b1
    (<vf*>o0)[0] = c00
    (<vf*>(o0 + w))[0] = c01


cdef inline void _row4_d(Py_ssize_t K, const double* a0, Py_ssize_t aks,
                         const double* b, Py_ssize_t pstride, Py_ssize_t ldb,
                         double* o0, Py_ssize_t np, bint acc) noexcept nogil:
    """One row, np <= 4 panels at once: the chains of ``_tile_d`` (one per
    element, in the order of k), eight of them interleaved to hide the latency
    of a single row's multiply-adds. Panels past np repeat panel 0, unstored."""
    cdef vd c0, c1, c2, c3, c4, c5, c6, c7
    cdef const double* q0 = b
    cdef const double* q1 = b + pstride if np > 1 else b
    cdef const double* q2 = b + 2 * pstride if np > 2 else b
    cdef const double* q3 = b + 3 * pstride if np > 3 else b
    cdef double* o1 = o0 + 2 * CRNN_VWD if np > 1 else o0
    cdef double* o2 = o0 + 4 * CRNN_VWD if np > 2 else o0
    cdef double* o3 = o0 + 6 * CRNN_VWD if np > 3 else o0
    cdef double x0
    cdef Py_ssize_t k, w = CRNN_VWD
    if acc:
        c0 = (<vd*>o0)[0]
        c1 = (<vd*>(o0 + w))[0]
        c2 = (<vd*>o1)[0]
        c3 = (<vd*>(o1 + w))[0]
        c4 = (<vd*>o2)[0]
        c5 = (<vd*>(o2 + w))[0]
        c6 = (<vd*>o3)[0]
        c7 = (<vd*>(o3 + w))[0]
    else:
        c0 = CRNN_ZD
        c1 = CRNN_ZD
        c2 = CRNN_ZD
        c3 = CRNN_ZD
        c4 = CRNN_ZD
        c5 = CRNN_ZD
        c6 = CRNN_ZD
        c7 = CRNN_ZD
    for k in range(K):
        x0 = a0[k * aks]
        c0 = c0 + x0 * (<const vd*>(q0 + k * ldb))[0]
        c1 = c1 + x0 * (<const vd*>(q0 + k * ldb + w))[0]
        c2 = c2 + x0 * (<const vd*>(q1 + k * ldb))[0]
        c3 = c3 + x0 * (<const vd*>(q1 + k * ldb + w))[0]
        c4 = c4 + x0 * (<const vd*>(q2 + k * ldb))[0]
        c5 = c5 + x0 * (<const vd*>(q2 + k * ldb + w))[0]
        c6 = c6 + x0 * (<const vd*>(q3 + k * ldb))[0]
        c7 = c7 + x0 * (<const vd*>(q3 + k * ldb + w))[0]
    (<vd*>o0)[0] = c0
    (<vd*>(o0 + w))[0] = c1
    if np > 1:
        (<vd*>o1)[0] = c2
        (<vd*>(o1 + w))[0] = c3
    if np > 2:
        (<vd*>o2)[0] = c4
        (<vd*>(o2 + w))[0] = c5
    if np > 3:
        (<vd*>o3)[0] = c6
        (<vd*>(o3 + w))[0] = c7


cdef inline void _row4_f(Py_ssize_t K, const float* a0, Py_ssize_t aks,
                         const float* b, Py_ssize_t pstride, Py_ssize_t ldb,
                         float* o0, Py_ssize_t np, bint acc) noexcept nogil:
    """One row, np <= 4 panels at once: the chains of ``_tile_f`` (one per
    element, in the order of k), eight of them interleaved to hide the latency
    of a single row's multiply-adds. Panels past np repeat panel 0, unstored."""
    cdef vf c0, c1, c2, c3, c4, c5, c6, c7
    cdef const float* q0 = b
    cdef const float* q1 = b + pstride if np > 1 else b
    cdef const float* q2 = b + 2 * pstride if np > 2 else b
    cdef const float* q3 = b + 3 * pstride if np > 3 else b
    cdef float* o1 = o0 + 2 * CRNN_VWF if np > 1 else o0
    cdef float* o2 = o0 + 4 * CRNN_VWF if np > 2 else o0
    cdef float* o3 = o0 + 6 * CRNN_VWF if np > 3 else o0
    cdef float x0
    cdef Py_ssize_t k, w = CRNN_VWF
    if acc:
        c0 = (<vf*>o0)[0]
        c1 = (<vf*>(o0 + w))[0]
        c2 = (<vf*>o1)[0]
        c3 = (<vf*>(o1 + w))[0]
        c4 = (<vf*>o2)[0]
        c5 = (<vf*>(o2 + w))[0]
        c6 = (<vf*>o3)[0]
        c7 = (<vf*>(o3 + w))[0]
    else:
        c0 = CRNN_ZF
        c1 = CRNN_ZF
        c2 = CRNN_ZF
        c3 = CRNN_ZF
        c4 = CRNN_ZF
        c5 = CRNN_ZF
        c6 = CRNN_ZF
        c7 = CRNN_ZF
    for k in range(K):
        x0 = a0[k * aks]
        c0 = c0 + x0 * (<const vf*>(q0 + k * ldb))[0]
        c1 = c1 + x0 * (<const vf*>(q0 + k * ldb + w))[0]
        c2 = c2 + x0 * (<const vf*>(q1 + k * ldb))[0]
        c3 = c3 + x0 * (<const vf*>(q1 + k * ldb + w))[0]
        c4 = c4 + x0 * (<const vf*>(q2 + k * ldb))[0]
        c5 = c5 + x0 * (<const vf*>(q2 + k * ldb + w))[0]
        c6 = c6 + x0 * (<const vf*>(q3 + k * ldb))[0]
        c7 = c7 + x0 * (<const vf*>(q3 + k * ldb + w))[0]
    (<vf*>o0)[0] = c0
    (<vf*>(o0 + w))[0] = c1
    if np > 1:
        (<vf*>o1)[0] = c2
        (<vf*>(o1 + w))[0] = c3
    if np > 2:
        (<vf*>o2)[0] = c4
        (<vf*>(o2 + w))[0] = c5
    if np > 3:
        (<vf*>o3)[0] = c6
        (<vf*>(o3 + w))[0] = c7


cdef inline void _tile(Py_ssize_t K, const floating* a0, const floating* a1,
                       const floating* a2, const floating* a3, Py_ssize_t aks,
                       const floating* b, Py_ssize_t ldb,
                       floating* o0, floating* o1, floating* o2, floating* o3,
                       Py_ssize_t nr, bint acc) noexcept nogil:
    if nr == 1:
        if floating is double:
            _tile1_d(K, a0, aks, b, ldb, o0, acc)
        else:
            _tile1_f(K, a0, aks, b, ldb, o0, acc)
    elif floating is double:
        _tile_d(K, a0, a1, a2, a3, aks, b, ldb, o0, o1, o2, o3, nr, acc)
    else:
        _tile_f(K, a0, a1, a2, a3, aks, b, ldb, o0, o1, o2, o3, nr, acc)


# Rows of B per pass of the row tiles (a KC x CT panel chunk: 16 KiB, half of L1);
# steps whose outputs Y = V S are computed together, off the recurrence's path
cdef enum:
    _KC = 128
    _ROWS_BYTES = 512 * 1024
    _YC = 32


cdef inline floating _fma(floating a, floating b, floating c) noexcept nogil:
    """a b + c, rounded as the vector tiles round it (see CRNN_FMA_D)."""
    if floating is double:
        return crnn_fma_d(a, b, c)
    else:
        return crnn_fma_f(a, b, c)


cdef inline void _rem4x2(Py_ssize_t K, const floating* A, Py_ssize_t ars, Py_ssize_t aks,
                         const floating* B, Py_ssize_t rld, floating* O, Py_ssize_t ldo,
                         Py_ssize_t nr, Py_ssize_t nc, bint acc) noexcept nogil:
    """O[i, j] (+)= sum_k A[i ars + k aks] B[k rld + j], i < nr <= 4, j < nc <= 2.

    Eight scalar chains in registers, each in the order of k (idle rows and
    columns repeat the first, and are not stored).
    """
    cdef Py_ssize_t r1 = ars if nr > 1 else 0, r2 = 2 * ars if nr > 2 else 0
    cdef Py_ssize_t r3 = 3 * ars if nr > 3 else 0, j1 = 1 if nc > 1 else 0, k
    cdef Py_ssize_t o1 = ldo if nr > 1 else 0, o2 = 2 * ldo if nr > 2 else 0
    cdef Py_ssize_t o3 = 3 * ldo if nr > 3 else 0
    cdef floating c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0
    cdef floating b0, b1, x0, x1, x2, x3
    if acc:
        c00 = O[0]
        c01 = O[j1]
        c10 = O[o1]
        c11 = O[o1 + j1]
        c20 = O[o2]
        c21 = O[o2 + j1]
        c30 = O[o3]
        c31 = O[o3 + j1]
    for k in range(K):
        b0 = B[k * rld]
        b1 = B[k * rld + j1]
        x0 = A[k * aks]
        x1 = A[r1 + k * aks]
        x2 = A[r2 + k * aks]
        x3 = A[r3 + k * aks]
        c00 = _fma(x0, b0, c00)
        c01 = _fma(x0, b1, c01)
        c10 = _fma(x1, b0, c10)
        c11 = _fma(x1, b1, c11)
        c20 = _fma(x2, b0, c20)
        c21 = _fma(x2, b1, c21)
        c30 = _fma(x3, b0, c30)
        c31 = _fma(x3, b1, c31)
    O[0] = c00
    if nc > 1:
        O[1] = c01
    if nr > 1:
        O[ldo] = c10
        if nc > 1:
            O[ldo + 1] = c11
    if nr > 2:
        O[2 * ldo] = c20
        if nc > 1:
            O[2 * ldo + 1] = c21
    if nr > 3:
        O[3 * ldo] = c30
        if nc > 1:
            O[3 * ldo + 1] = c31


cdef inline void _rem1x8(Py_ssize_t K, const floating* A, Py_ssize_t aks,
                         const floating* B, Py_ssize_t rld, floating* O, Py_ssize_t nc,
                         bint acc) noexcept nogil:
    """O[j] (+)= sum_k A[k aks] B[k rld + j] for j < nc <= 8: eight scalar chains."""
    cdef Py_ssize_t k, j
    cdef Py_ssize_t j1 = 1 if nc > 1 else 0, j2 = 2 if nc > 2 else 0
    cdef Py_ssize_t j3 = 3 if nc > 3 else 0, j4 = 4 if nc > 4 else 0
    cdef Py_ssize_t j5 = 5 if nc > 5 else 0, j6 = 6 if nc > 6 else 0
    cdef Py_ssize_t j7 = 7 if nc > 7 else 0
    cdef floating c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0, c6 = 0, c7 = 0, x
    cdef const floating* b
    cdef floating out[8]
    if acc:
        c0 = O[0]
        c1 = O[j1]
        c2 = O[j2]
        c3 = O[j3]
        c4 = O[j4]
        c5 = O[j5]
        c6 = O[j6]
        c7 = O[j7]
    for k in range(K):
        x = A[k * aks]
        b = B + k * rld
        c0 = _fma(x, b[0], c0)
        c1 = _fma(x, b[j1], c1)
        c2 = _fma(x, b[j2], c2)
        c3 = _fma(x, b[j3], c3)
        c4 = _fma(x, b[j4], c4)
        c5 = _fma(x, b[j5], c5)
        c6 = _fma(x, b[j6], c6)
        c7 = _fma(x, b[j7], c7)
    out[0] = c0
    out[1] = c1
    out[2] = c2
    out[3] = c3
    out[4] = c4
    out[5] = c5
    out[6] = c6
    out[7] = c7
    for j in range(nc):
        O[j] = out[j]


cdef inline void _last_columns(Py_ssize_t R, Py_ssize_t K, Py_ssize_t rem,
                               const floating* A, Py_ssize_t ars, Py_ssize_t aks,
                               const floating* B, Py_ssize_t rld, floating* O,
                               Py_ssize_t ldo, bint acc) noexcept nogil:
    """O[:, :rem] (+)= A B[:, :rem] for the rem < CT columns past the last panel.

    A first whole vector of columns runs in vector tiles of up to 8 rows;
    the columns after it as scalar chains. Each element has the chain and
    the roundings of a panel's.
    """
    cdef Py_ssize_t vw = _ct(<floating>0) // 2, j0 = 0, r, j
    if rem >= vw:
        for r in range(0, R, 8):
            if floating is double:
                crnn_tilev_d(K, A + r * ars, ars, aks, B, rld, O + r * ldo, ldo,
                             R - r if R - r < 8 else 8, acc)
            else:
                crnn_tilev_f(K, A + r * ars, ars, aks, B, rld, O + r * ldo, ldo,
                             R - r if R - r < 8 else 8, acc)
        j0 = vw
    if R == 1:
        for j in range(j0, rem, 8):
            _rem1x8(K, A, aks, B + j, rld, O + j, rem - j if rem - j < 8 else 8, acc)
    else:
        for r in range(0, R, 4):
            for j in range(j0, rem, 2):
                _rem4x2(K, A + r * ars, ars, aks, B + j, rld, O + r * ldo + j, ldo,
                        R - r if R - r < 4 else 4, 2 if rem - j > 1 else 1, acc)


cdef void _gemm(Py_ssize_t R, Py_ssize_t K, Py_ssize_t C,
                const floating* A, Py_ssize_t ars, Py_ssize_t aks,
                const floating* B, Py_ssize_t pstride, Py_ssize_t bld, Py_ssize_t rld,
                floating* O, Py_ssize_t ldo, bint acc) noexcept nogil:
    """O (+)= A B, O[r, c] at O[r ldo + c], A[r, k] at A[r ars + k aks].

    B is given by panels: panel p (columns p CT .. p CT + CT - 1) starts at
    B + p pstride with rows bld apart; the columns past the last whole panel
    start at B + npanels pstride with rows rld apart. Packed (``_pack``):
    pstride = K CT, bld = CT, rld = C mod CT. Row-major with row stride L:
    pstride = CT, bld = rld = L.
    """
    cdef Py_ssize_t ct = _ct(<floating>0), npan = C // ct, rem = C - npan * ct
    cdef Py_ssize_t p, r, nr, k0, kc, r0, r1
    cdef Py_ssize_t rb = R
    cdef const floating* bp
    cdef const floating* a0
    cdef floating* o0
    if R * K * <Py_ssize_t>sizeof(floating) > _ROWS_BYTES:
        rb = _ROWS_BYTES // (K * <Py_ssize_t>sizeof(floating)) // 8 * 8
        if rb < 8:
            rb = 8
    if R == 1:                                      # one row: four panels at a time
        p = 0
        while p < npan:
            nr = npan - p if npan - p < 4 else 4
            if floating is double:
                _row4_d(K, A, aks, B + p * pstride, pstride, bld, O + p * ct, nr, acc)
            else:
                _row4_f(K, A, aks, B + p * pstride, pstride, bld, O + p * ct, nr, acc)
            p = p + 4
        npan = 0                                    # done; the remainder below
    # rows in blocks of rb (at most ROWS_BYTES of A, which stays in L2 while
    # every panel uses it: a product of many rows, such as the outputs of
    # many steps, then reads A once instead of once per panel)
    r0 = 0
    while r0 < R and npan > 0:
        r1 = R if R - r0 < rb else r0 + rb
        for p in range(npan):
            # k in chunks of KC: a chunk of the panel (KC x CT) stays in L1
            # while every row tile uses it; the chains go on from O, in order
            k0 = 0
            while k0 < K:
                kc = K - k0 if K - k0 < _KC else _KC
                bp = B + p * pstride + k0 * bld
                r = r0
                while CRNN_MR == 8 and r1 - r > 4:     # 8-row tiles (AVX-512 builds)
                    nr = r1 - r if r1 - r < 8 else 8
                    if floating is double:
                        crnn_tile8_d(kc, A + r * ars + k0 * aks, ars, aks, bp, bld,
                                     O + r * ldo + p * ct, ldo, nr, acc or k0 > 0)
                    else:
                        crnn_tile8_f(kc, A + r * ars + k0 * aks, ars, aks, bp, bld,
                                     O + r * ldo + p * ct, ldo, nr, acc or k0 > 0)
                    r = r + 8
                while r < r1:
                    nr = r1 - r if r1 - r < 4 else 4
                    a0 = A + r * ars + k0 * aks
                    o0 = O + r * ldo + p * ct
                    _tile(kc, a0, a0 + ars if nr > 1 else a0,
                          a0 + 2 * ars if nr > 2 else a0, a0 + 3 * ars if nr > 3 else a0,
                          aks, bp, bld, o0, o0 + ldo if nr > 1 else o0,
                          o0 + 2 * ldo if nr > 2 else o0, o0 + 3 * ldo if nr > 3 else o0,
                          nr, acc or k0 > 0)
                    r = r + 4
                k0 = k0 + kc
        r0 = r1
    if rem > 0:
        npan = C // ct
        _last_columns(R, K, rem, A, ars, aks, B + npan * pstride, rld, O + npan * ct, ldo, acc)


cdef struct _Steps:
    # A walk over the rows of BPTT's buffers in the order of the final
    # products: steps t .. of the group of G sequences g0 .. g0 + G - 1, step
    # by step, each step's sequences in order; row k of the walk is sequence
    # b at step t + toff. The states' buffer holds blocks of R sequences (the
    # last may be shorter) one after the other, each T1 steps of its Rb rows
    # (block-major, so that each thread writes a region of its own); the ring
    # of the deltas is laid out alike with L1 steps, step t in slot t mod L1.
    # N, R, T1, L1, G, g0, toff: set by the caller; the rest: the position.
    Py_ssize_t N, R, T1, L1, G, g0, toff
    Py_ssize_t t, b, b0, Rb


cdef inline void _steps_at(_Steps* w, Py_ssize_t t) noexcept nogil:
    """Point the walk w at the first sequence of its group at step t."""
    w.t = t
    w.b = w.g0
    w.b0 = w.g0 // w.R * w.R
    w.Rb = w.N - w.b0 if w.N - w.b0 < w.R else w.R


cdef inline Py_ssize_t _steps_row(const _Steps* w) noexcept nogil:
    """The row of the states' buffer the walk w is at."""
    return w.b0 * w.T1 + (w.t + w.toff) * w.Rb + w.b - w.b0


cdef inline Py_ssize_t _steps_ring(const _Steps* w) noexcept nogil:
    """The row of the ring the walk w is at."""
    return w.b0 * w.L1 + (w.t + w.toff) % w.L1 * w.Rb + w.b - w.b0


cdef inline void _steps_next(_Steps* w) noexcept nogil:
    """Move the walk w on to its next row."""
    w.b = w.b + 1
    if w.b == w.g0 + w.G:                           # the group's next step
        _steps_at(w, w.t + 1)
    elif w.b == w.b0 + w.R:
        w.b0 = w.b
        w.Rb = w.N - w.b0 if w.N - w.b0 < w.R else w.R


cdef void _gemm_tn(Py_ssize_t R, Py_ssize_t K, Py_ssize_t C, _Steps* w,
                   const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                   floating* O, Py_ssize_t ldo, floating* apk, bint acc) noexcept nogil:
    """O (+)= A.T B over K rows of BPTT's buffers from the walk w.

    The walk (``_Steps``, left past the last row) gives rows: row k of A
    (K x R) starts at A + (its ring row) lda, of B (K x C) at B + (its row
    in the states' buffer) ldb; the sum runs over k in order, on from O when
    acc. A is packed once per chunk of KC rows,
    tile by tile, into apk (``_bptt_work_size``; a block that stays in L2
    while every panel of B uses it), and each panel's chunk of B is packed
    too (it stays in L1 while every tile uses it). Each element is the same
    chain in k as ``_gemm`` computes.
    """
    cdef Py_ssize_t ct = _ct(<floating>0), mr = CRNN_MR, npan = C // ct
    cdef Py_ssize_t rem = C - npan * ct
    cdef Py_ssize_t ntile = (R + mr - 1) // mr, k0, kc, k, t, i, j, p, nr
    cdef floating pk[_KC * 32]                      # a panel chunk of B (CT <= 32)
    cdef const floating* brow[_KC]
    cdef floating* a
    cdef floating* o
    cdef const floating* row
    k0 = 0
    while k0 < K:
        kc = K - k0 if K - k0 < _KC else _KC
        for k in range(kc):                         # apk[t, k, i] = A[k0 + k, t mr + i]
            row = A + _steps_ring(w) * lda
            brow[k] = B + _steps_row(w) * ldb
            _steps_next(w)
            for t in range(ntile):
                for i in range(mr):
                    apk[(t * kc + k) * mr + i] = row[t * mr + i] if t * mr + i < R else 0
        for p in range(npan):
            for k in range(kc):                     # copied: far-apart rows miss the caches
                row = brow[k] + p * ct
                for j in range(ct):
                    pk[k * ct + j] = row[j]
            for t in range(ntile):
                nr = R - t * mr if R - t * mr < mr else mr
                a = apk + t * kc * mr
                o = O + t * mr * ldo + p * ct
                if CRNN_MR == 8:
                    if floating is double:
                        crnn_tile8_d(kc, a, 1, mr, pk, ct, o, ldo, nr, acc or k0 > 0)
                    else:
                        crnn_tile8_f(kc, a, 1, mr, pk, ct, o, ldo, nr, acc or k0 > 0)
                else:
                    _tile(kc, a, a + 1 if nr > 1 else a, a + 2 if nr > 2 else a,
                          a + 3 if nr > 3 else a, mr, pk, ct,
                          o, o + ldo if nr > 1 else o, o + 2 * ldo if nr > 2 else o,
                          o + 3 * ldo if nr > 3 else o, nr, acc or k0 > 0)
        if rem > 0:                                 # the last columns: scalar chains
            for k in range(kc):
                row = brow[k] + npan * ct
                for j in range(rem):
                    pk[k * rem + j] = row[j]
            for t in range(ntile):
                nr = R - t * mr if R - t * mr < mr else mr
                _last_columns(nr, kc, rem, apk + t * kc * mr, 1, mr, pk, rem,
                              O + t * mr * ldo + npan * ct, ldo, acc or k0 > 0)
        k0 = k0 + kc


cdef inline void _gemm_packed(Py_ssize_t R, Py_ssize_t K, Py_ssize_t C,
                              const floating* A, Py_ssize_t ars, Py_ssize_t aks,
                              const floating* Bp, floating* O, Py_ssize_t ldo,
                              bint acc) noexcept nogil:
    """O (+)= A B with B (K x C) packed by ``_pack``."""
    cdef Py_ssize_t ct = _ct(<floating>0)
    _gemm(R, K, C, A, ars, aks, Bp, K * ct, ct, C % ct, O, ldo, acc)


cdef void _pack(const floating* B, Py_ssize_t Kp, Py_ssize_t C, Py_ssize_t bks,
                Py_ssize_t bjs, floating* out, Py_ssize_t K, Py_ssize_t k0) noexcept nogil:
    """Write B[k, j] = B[k bks + j bjs] (Kp x C) as rows k0 .. k0 + Kp of the
    panel layout of a K x C matrix at out (K C scalars): panel p holds rows
    0 .. K - 1 of its CT columns one after the other, then the C mod CT last
    columns, row after row."""
    cdef Py_ssize_t ct = _ct(<floating>0), npan = C // ct, rem = C - npan * ct
    cdef Py_ssize_t p, k, j
    for p in range(npan):
        for k in range(Kp):
            for j in range(ct):
                out[(p * K + k0 + k) * ct + j] = B[k * bks + (p * ct + j) * bjs]
    for k in range(Kp):
        for j in range(rem):
            out[npan * K * ct + (k0 + k) * rem + j] = B[k * bks + (npan * ct + j) * bjs]


cdef void _pack_weights(const floating* U, const floating* W, const floating* V,
                        Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                        floating* pack) noexcept nogil:
    """Pack the weights once per call (``_pack_size`` scalars), in this order:

    UW = [U.T; W.T] ((n + d) x d: Z = [x, s] UW), Vt = V.T (d x m: y = s Vt),
    VW = [V; W] ((m + d) x d: [e, delta] VW = V.T e + W.T delta),
    Wr = W (d x d: W.T delta) and Vr = V (m x d: V.T e).
    """
    cdef floating* UW = pack
    cdef floating* Vt = UW + (n + d) * d
    cdef floating* VW = Vt + d * m
    cdef floating* Wr = VW + (m + d) * d
    cdef floating* Vr = Wr + d * d
    _pack(U, n, d, 1, n, UW, n + d, 0)
    _pack(W, d, d, 1, d, UW, n + d, n)
    _pack(V, d, m, 1, d, Vt, d, 0)
    _pack(V, m, d, d, 1, VW, m + d, 0)
    _pack(W, d, d, d, 1, VW, m + d, m)
    _pack(W, d, d, d, 1, Wr, d, 0)
    _pack(V, m, d, d, 1, Vr, m, 0)


cdef inline floating _residuals(const floating* target, floating* ye, Py_ssize_t m,
                                floating g, floating sq) noexcept nogil:
    """ye = e = -2 g (target - y) in place of y; return sq + sum_k (target_k - y_k)^2.

    The squares are stored before they are added, in order, so that the sum
    is the same bits wherever this is inlined and however the compiler
    vectorises it (no multiply-add contraction across the two loops).
    """
    cdef floating q[64]
    cdef floating rr
    cdef Py_ssize_t j0 = 0, j, c
    while j0 < m:
        c = m - j0 if m - j0 < 64 else 64
        for j in range(c):
            rr = target[j0 + j] - ye[j0 + j]
            q[j] = rr * rr
            ye[j0 + j] = -2 * g * rr
        for j in range(c):
            sq = sq + q[j]
        j0 = j0 + 64
    return sq


cdef inline void _tanh_inplace(floating* z, Py_ssize_t count) noexcept nogil:
    """z = tanh(z), branch-free so that the compiler vectorises it.

    tanh|x| = expm1(2|x|) / (expm1(2|x|) + 2), with expm1(y) = 2^k (1 + p(r))
    - 1 = 2^k p(r) + (2^k - 1), y = k ln2 + r, |r| <= ln2 / 2, and p the Taylor
    polynomial of expm1 (degree 13 in float64, 8 in float32: truncation below
    1e-17 and 1e-8 relative). k = 0 keeps small |x| exact to a few ulp. y is
    clamped where tanh rounds to 1 (|x| >= 20, or 10 in float32). The sign is
    copied back. A few ulp from the correctly rounded tanh (tests bound it).
    No branch, no float comparison, no int conversion: the loop vectorises.
    """
    cdef Py_ssize_t i
    cdef floating x, y, r, p, t, kd, two, em
    for i in range(count):
        x = z[i]
        if floating is double:
            y = crnn_min_pos_d(2 * fabs(x), 40.0)
            t = y * 1.4426950408889634 + 6755399441055744.0     # 1.5 2^52
            kd = t - 6755399441055744.0                         # round(y / ln2)
            two = crnn_pow2_d(t)
            r = (y - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10
            p = 1.0 / 6227020800.0                   # Horner: 1/13! .. 1/1!
            p = 1.0 / 479001600 + r * p
            p = 1.0 / 39916800 + r * p
            p = 1.0 / 3628800 + r * p
            p = 1.0 / 362880 + r * p
            p = 1.0 / 40320 + r * p
            p = 1.0 / 5040 + r * p
            p = 1.0 / 720 + r * p
            p = 1.0 / 120 + r * p
            p = 1.0 / 24 + r * p
            p = 1.0 / 6 + r * p
            p = 0.5 + r * p
            p = 1.0 + r * p
            p = r * p                               # expm1(r)
            em = two * p + (two - 1)
            z[i] = copysign(em / (em + 2), x)
        else:
            y = crnn_min_pos_f(2 * fabsf(x), 20)
            t = y * <float>1.44269504 + <float>12582912.0        # 1.5 2^23
            kd = t - <float>12582912.0
            two = crnn_pow2_f(t)
            r = (y - kd * <float>0.693145751953125) - kd * <float>1.428606765330187045e-06
            p = <float>(1.0 / 40320)
            p = <float>(1.0 / 5040) + r * p
            p = <float>(1.0 / 720) + r * p
            p = <float>(1.0 / 120) + r * p
            p = <float>(1.0 / 24) + r * p
            p = <float>(1.0 / 6) + r * p
            p = <float>0.5 + r * p
            p = 1 + r * p
            p = r * p
            em = two * p + (two - 1)
            z[i] = copysignf(em / (em + 2), x)


def _tanh_array(floating[::1] z):
    """z = tanh(z) in place by the kernels' tanh (a test hook)."""
    if z.shape[0] > 0:
        _tanh_inplace(&z[0], z.shape[0])


def _simd_info():
    """(instruction set name, float64 lanes, float32 lanes) of this build."""
    return (CRNN_ISA.decode(), CRNN_VWD, CRNN_VWF)


# ---------------------------------------------------------------------------
# (b) blocks of sequences, time-major: one matrix product per step
# ---------------------------------------------------------------------------

cdef inline void _add_bias(floating* Z, Py_ssize_t R, Py_ssize_t ld, Py_ssize_t d,
                           const floating* bias) noexcept nogil:
    """Z[r, :d] += bias for the R rows of Z (row stride ld); nothing when bias is NULL."""
    cdef Py_ssize_t r, j
    if bias == NULL:
        return
    for r in range(R):
        for j in range(d):
            Z[r * ld + j] = Z[r * ld + j] + bias[j]


cdef inline Py_ssize_t _hist_steps(Py_ssize_t R, Py_ssize_t d) noexcept nogil:
    """Steps whose outputs are one product: up to YC steps of R rows of d
    scalars in at most 64 Ki scalars (at least 1 step), so that the rows are
    still in L2 when the product reads them (and the loss kernel's copy of
    the states stays small)."""
    cdef Py_ssize_t k = 65536 // (R * d) if R * d > 0 else _YC
    return _YC if k > _YC else (k if k > 1 else 1)


cdef void _forward_block(Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T, Py_ssize_t n,
                         Py_ssize_t d, Py_ssize_t m, const floating* X,
                         const floating* s0, const floating* pack,
                         const floating* bb, const floating* cb,
                         floating* S, floating* Y, const floating* target,
                         floating g, floating* E, floating* work) noexcept nogil:
    """Forward pass of sequences b0 .. b0 + R - 1, all R at each step.

    bb (d,) and cb (m,) are the biases b and c, or NULL for none.
    OUT: S (states) and Y (outputs) of those sequences when not NULL, and,
    when target is not NULL, E[b] = g sum_t sum_k (target - Y)^2.
    The outputs do not feed the recurrence: those of yc steps at a time are
    one product per sequence (of yc rows, not one), from S or, when S is
    NULL, from the states kept in work (yc = ``_hist_steps``).
    work (``_forward_work_size``): the rows [x^t, s^{t-1}] of the step and
    of the next one, the states of yc steps and the outputs of yc steps.
    """
    cdef Py_ssize_t K1 = n + d, t, t0 = 0, tc, r, j, ars
    cdef Py_ssize_t yc = _hist_steps(R, d)
    cdef const floating* UW = pack
    cdef const floating* Vt = pack + K1 * d
    cdef floating* cur = work
    cdef floating* nxt = work + R * K1
    cdef floating* hist = nxt + R * K1                 # (yc, R, d)
    cdef floating* y = hist + _hist_steps(R, d) * R * d     # (YC, m)
    cdef const floating* src
    cdef floating* out
    cdef floating* tmp
    for r in range(R):
        for j in range(d):
            cur[r * K1 + n + j] = s0[(b0 + r) * d + j]
        if target != NULL:
            E[b0 + r] = 0
    for t in range(T):
        for r in range(R):
            for j in range(n):
                cur[r * K1 + j] = X[((b0 + r) * T + t) * n + j]
        # Z = [x, s] [U.T; W.T] + b, then S = tanh(Z), into the next row's s part
        _gemm_packed(R, K1, d, cur, K1, 1, UW, nxt + n, K1, 0)
        _add_bias(nxt + n, R, K1, d, bb)
        for r in range(R):
            _tanh_inplace(nxt + r * K1 + n, d)
        if S != NULL:
            for r in range(R):
                for j in range(d):
                    S[((b0 + r) * T + t) * d + j] = nxt[r * K1 + n + j]
        else:
            for r in range(R):
                for j in range(d):
                    hist[((t - t0) * R + r) * d + j] = nxt[r * K1 + n + j]
        if t + 1 - t0 == yc or t + 1 == T:          # Y = S V.T + c, steps t0 .. t
            tc = t + 1 - t0
            for r in range(R):
                src = S + ((b0 + r) * T + t0) * d if S != NULL else hist + r * d
                ars = d if S != NULL else R * d
                out = Y + ((b0 + r) * T + t0) * m if Y != NULL else y
                _gemm_packed(tc, d, m, src, ars, 1, Vt, out, m, 0)
                _add_bias(out, tc, m, m, cb)
                if target != NULL:
                    for j in range(tc):
                        E[b0 + r] = _residuals(target + ((b0 + r) * T + t0 + j) * m,
                                               out + j * m, m, g, E[b0 + r])
            t0 = t + 1
        tmp = cur
        cur = nxt
        nxt = tmp
    if target != NULL:
        for r in range(R):
            E[b0 + r] = g * E[b0 + r]


cdef void _generate_block(Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T, Py_ssize_t n,
                          Py_ssize_t d, const floating* x0, const floating* s0,
                          const floating* pack, const floating* bb, const floating* cb,
                          floating* out, floating* sT, floating* work) noexcept nogil:
    """Closed loop for sequences b0 .. b0 + R - 1 (output size = input size n).

    x^1 = x0, x^{t+1} = Y^t: out (N, T, n) gets Y^1 .. Y^T and sT (N, d) the
    state S^T. Each step is the forward pass's step (the same chains), so
    the outputs are those ``_forward_block`` gives on the fed-back inputs.
    work holds 2 R (n + d) scalars.
    """
    cdef Py_ssize_t K1 = n + d, t, r, j
    cdef const floating* UW = pack
    cdef const floating* Vt = pack + K1 * d
    cdef floating* cur = work
    cdef floating* nxt = work + R * K1
    cdef floating* y
    cdef floating* tmp
    for r in range(R):
        for j in range(n):
            cur[r * K1 + j] = x0[(b0 + r) * n + j]
        for j in range(d):
            cur[r * K1 + n + j] = s0[(b0 + r) * d + j]
    for t in range(T):
        _gemm_packed(R, K1, d, cur, K1, 1, UW, nxt + n, K1, 0)
        _add_bias(nxt + n, R, K1, d, bb)
        for r in range(R):
            _tanh_inplace(nxt + r * K1 + n, d)
        y = out + (b0 * T + t) * n                  # row r at y + r T n
        _gemm_packed(R, d, n, nxt + n, K1, 1, Vt, y, T * n, 0)
        _add_bias(y, R, T * n, n, cb)
        for r in range(R):                          # the output is the next input
            for j in range(n):
                nxt[r * K1 + j] = y[r * T * n + j]
        tmp = cur
        cur = nxt
        nxt = tmp
    for r in range(R):
        for j in range(d):
            sT[(b0 + r) * d + j] = cur[r * K1 + n + j]


cdef void _bptt_forward(Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T, Py_ssize_t n,
                        Py_ssize_t d, Py_ssize_t m, const floating* X,
                        const floating* target, const floating* s0, floating g,
                        const floating* pack, const floating* bb, const floating* cb,
                        floating* A, floating* Eb, floating* E) noexcept nogil:
    """BPTT's forward recurrence for sequences b0 .. b0 + R - 1.

    A ((T + 1) N rows of n + d) holds the blocks of R sequences (b0 = a
    multiple of R) one after the other, each block time-major (T + 1 steps of
    its rows; see ``_Steps``), so that each thread writes a region of its
    own. It gets row [x^t, s^{t-1}] of sequence b at A[t, b] for t = 0 .. T - 1
    (0-based steps; S^0 = s0) and S^T in A[T, b, n:]. Eb (T N rows of m,
    laid out alike with T steps) gets e^t = -2 g (target^t - Y^t) at
    Eb[t, b]. bb, cb: the biases b and c, or NULL. The outputs and e of
    ``_hist_steps(R, n + d)`` steps at a time are one product (they do not
    feed the recurrence).
    OUT: E[b], the loss of each sequence.
    """
    cdef Py_ssize_t K1 = n + d, t, r, j, t0 = 0, tc
    cdef Py_ssize_t yc = _hist_steps(R, K1)
    cdef const floating* UW = pack
    cdef const floating* Vt = UW + K1 * d
    cdef floating* At
    cdef floating* An
    cdef floating* Et
    At = A + b0 * (T + 1) * K1
    for r in range(R):
        for j in range(d):
            At[r * K1 + n + j] = s0[(b0 + r) * d + j]
        E[b0 + r] = 0
    for t in range(T):
        At = A + (b0 * (T + 1) + t * R) * K1
        An = At + R * K1
        for r in range(R):
            for j in range(n):
                At[r * K1 + j] = X[((b0 + r) * T + t) * n + j]
        _gemm_packed(R, K1, d, At, K1, 1, UW, An + n, K1, 0)
        _add_bias(An + n, R, K1, d, bb)
        for r in range(R):
            _tanh_inplace(An + r * K1 + n, d)
        if t + 1 - t0 == yc or t + 1 == T:
            # the outputs of steps t0 .. t (rows t0 + 1 .. t + 1 of the block,
            # one after the other): one product, off the recurrence's path
            tc = t + 1 - t0
            An = A + (b0 * (T + 1) + (t0 + 1) * R) * K1
            Et = Eb + (b0 * T + t0 * R) * m
            _gemm_packed(tc * R, d, m, An + n, K1, 1, Vt, Et, m, 0)
            _add_bias(Et, tc * R, m, m, cb)
            for j in range(tc):
                for r in range(R):
                    E[b0 + r] = _residuals(target + ((b0 + r) * T + t0 + j) * m,
                                           Et + (j * R + r) * m, m, g, E[b0 + r])
            t0 = t + 1
    for r in range(R):
        E[b0 + r] = g * E[b0 + r]


cdef void _bptt_backward(Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T, Py_ssize_t L1,
                         Py_ssize_t t1, Py_ssize_t t2, Py_ssize_t n, Py_ssize_t d,
                         Py_ssize_t m, const floating* pack, const floating* A,
                         const floating* Eb, floating* ring, floating* ds0) noexcept nogil:
    """BPTT's backward recurrence over steps t2 - 1 down to t1, sequences b0 .. b0 + R - 1.

    A and Eb: from ``_bptt_forward``. The ring (L1 N rows of m + d, blocks of
    R sequences one after the other, each L1 steps of its rows, step t in
    slot t mod L1; t2 - t1 < L1) gets [e^{t-1}, delta^t] at step t for t =
    t1 .. t2 (e^{t1 - 1} excepted), with delta^t = f'(Z^t) (V.T e^t + W.T
    delta^{t+1}) and delta^T = 0, so that one product per step, [e^t,
    delta^{t+1}] [V; W], runs the recurrence. Called for the blocks of steps
    from the last to the first: delta^{t2} is in the ring from the block
    before (or is delta^T = 0).
    OUT (t1 = 0): ds0[b] = W.T delta^0.
    """
    cdef Py_ssize_t K1 = n + d, K2 = m + d, t, r, j
    cdef const floating* VW = pack + K1 * d + d * m
    cdef const floating* Wr = VW + K2 * d
    cdef floating* Rg = ring + b0 * L1 * K2
    cdef floating* Bt
    cdef floating* Bn
    cdef const floating* An
    cdef const floating* src
    cdef floating s
    if t2 == T:                                     # delta^T = 0
        Bt = Rg + T % L1 * R * K2
        for r in range(R):
            for j in range(d):
                Bt[r * K2 + m + j] = 0
    for t in range(t1 + 1, t2 + 1):                # e^{t-1} into step t's rows
        Bt = Rg + t % L1 * R * K2
        src = Eb + (b0 * T + (t - 1) * R) * m
        for r in range(R):
            for j in range(m):
                Bt[r * K2 + j] = src[r * m + j]
    for t in range(t2 - 1, t1 - 1, -1):
        Bt = Rg + t % L1 * R * K2
        Bn = Rg + (t + 1) % L1 * R * K2
        An = A + (b0 * (T + 1) + (t + 1) * R) * K1
        _gemm_packed(R, K2, d, Bn, K2, 1, VW, Bt + m, K2, 0)
        for r in range(R):
            for j in range(d):
                s = An[r * K1 + n + j]
                Bt[r * K2 + m + j] = Bt[r * K2 + m + j] * (1 - s * s)
    if t1 == 0:
        _gemm_packed(R, d, d, Rg + m, K2, 1, Wr, ds0 + b0 * d, d, 0)


cdef void _bptt_products(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t g0, Py_ssize_t G,
                         Py_ssize_t t1, Py_ssize_t t2, Py_ssize_t N, Py_ssize_t Rs,
                         Py_ssize_t T, Py_ssize_t L1, Py_ssize_t n, Py_ssize_t d,
                         Py_ssize_t m, const floating* A, const floating* ring,
                         bint bias, floating* grad, floating* apk, bint acc) noexcept nogil:
    """Rows r0 .. r1 - 1 of the gradient over steps t1 .. t2 - 1 of sequences g0 .. g0 + G - 1.

    Row r < d is row r of dE/d[U W] (d x (n + d)) and, with biases, db_r;
    row d + k is row k of dE/dV (m x d) and dc_k::

        [dU dW] = sum_{t, b} delta^t_b [x^t_b, s^{t-1}_b],  db = sum_{t, b} delta^t_b
        dV = sum_{t, b} e^t_b (S^t_b).T,                     dc = sum_{t, b} e^t_b

    summed in the order of the walk ``_Steps`` (the group's sequences step
    by step) from the states' buffer A of ``_bptt_forward`` and the ring of
    ``_bptt_backward`` (blocks of Rs sequences): one product, each element
    one chain whichever rows a thread is given and however the sequences
    were blocked. OUT: those rows of grad = [dU dW, dV, db, dc], overwritten,
    or, when acc, the chains go on from them. SCRATCH: apk
    (``_bptt_work_size``).
    """
    cdef Py_ssize_t K1 = n + d, K2 = m + d, TK = (t2 - t1) * G
    cdef Py_ssize_t lo, hi, i, _k
    cdef _Steps w
    cdef floating* sums
    cdef const floating* row
    w.N = N
    w.R = Rs
    w.T1 = T + 1
    w.L1 = L1
    w.G = G
    w.g0 = g0
    w.toff = 0
    lo = r0
    hi = r1 if r1 < d else d
    if hi > lo:
        _steps_at(&w, t1)
        _gemm_tn(hi - lo, TK, K1, &w, ring + m + lo, K2, A, K1, grad + lo * K1, K1, apk, acc)
        if bias:
            sums = grad + d * K1 + m * d
            if not acc:
                for i in range(lo, hi):
                    sums[i] = 0
            _steps_at(&w, t1)
            for _k in range(TK):
                row = ring + _steps_ring(&w) * K2 + m
                _steps_next(&w)
                for i in range(lo, hi):
                    sums[i] = sums[i] + row[i]
    lo = (r0 if r0 > d else d) - d
    hi = r1 - d
    w.toff = 1                                      # S^t and e^t: at step t + 1
    if hi > lo:
        _steps_at(&w, t1)
        _gemm_tn(hi - lo, TK, d, &w, ring + lo, K2, A + n, K1, grad + d * K1 + lo * d, d,
                 apk, acc)
        if bias:
            sums = grad + d * K1 + m * d + d
            if not acc:
                for i in range(lo, hi):
                    sums[i] = 0
            _steps_at(&w, t1)
            for _k in range(TK):
                row = ring + _steps_ring(&w) * K2
                _steps_next(&w)
                for i in range(lo, hi):
                    sums[i] = sums[i] + row[i]


cdef void _rtrl_panels(Py_ssize_t d, Py_ssize_t K1, Py_ssize_t p0, Py_ssize_t npan,
                       const floating* W, const floating* Pp, floating* Pn,
                       const floating* xs, Py_ssize_t qb, const floating* fp,
                       const floating* c, floating* gq) noexcept nogil:
    """One RTRL step on the sensitivity panels p0 .. p0 + npan - 1.

    P (d x Q) is held by panels of CT columns, panel-major (panel, row l,
    column): Pn = f'(Z) (W Pp + direct) with direct[l, l K1 + j] = xs[j]
    (the row [x^t, s^{t-1}]) and, when qb >= 0 (biases), direct[l, qb + l]
    = 1 (dZ_l/db_l); then gq += c.T Pn (c = V.T e).
    """
    cdef Py_ssize_t ct = _ct(<floating>0), pl, l, i, j, q0, lo, hi, nr
    cdef const floating* bp
    cdef floating* op
    cdef floating* orow
    cdef floating* grow
    cdef floating v, fl, cl
    for pl in range(npan):
        q0 = (p0 + pl) * ct
        bp = Pp + pl * d * ct
        op = Pn + pl * d * ct
        grow = gq + pl * ct
        l = 0
        while l < d:
            nr = d - l if d - l < 4 else 4
            _tile(d, W + l * d, W + (l + 1) * d if nr > 1 else W + l * d,
                  W + (l + 2) * d if nr > 2 else W + l * d,
                  W + (l + 3) * d if nr > 3 else W + l * d, 1, bp, ct,
                  op + l * ct, op + (l + 1) * ct if nr > 1 else op + l * ct,
                  op + (l + 2) * ct if nr > 2 else op + l * ct,
                  op + (l + 3) * ct if nr > 3 else op + l * ct, nr, 0)
            for i in range(nr):
                orow = op + (l + i) * ct
                lo = (l + i) * K1
                hi = lo + K1
                if lo < q0 + ct and hi > q0:          # the direct term meets the panel
                    for j in range(lo if lo > q0 else q0, hi if hi < q0 + ct else q0 + ct):
                        orow[j - q0] = orow[j - q0] + xs[j - lo]
                if qb >= 0 and qb + l + i >= q0 and qb + l + i < q0 + ct:
                    orow[qb + l + i - q0] = orow[qb + l + i - q0] + 1
                fl = fp[l + i]
                cl = c[l + i]
                for j in range(ct):
                    v = orow[j] * fl
                    orow[j] = v
                    grow[j] = grow[j] + cl * v
            l = l + 4


cdef void _rtrl_item(Py_ssize_t b, Py_ssize_t ch, Py_ssize_t nch, Py_ssize_t T,
                     Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, const floating* X,
                     const floating* target, const floating* s0, floating g,
                     const floating* W, const floating* pack, const floating* bb,
                     const floating* cb, floating* grad, floating* ds0, floating* E,
                     floating* work) noexcept nogil:
    """RTRL for sequence b, sensitivity columns of chunk ch of nch.

    The sensitivities dS^t_l/dtheta_q are carried forward in a (d, Q)
    matrix P, Q = d (n + d) + d: [u_i., w_i.] at i (n + d) .. i (n + d) + n + d - 1
    (row i of [U W]), then s0_j at d (n + d) + j, then, with biases (bb and
    cb not NULL), b_j at d (n + d) + d + j::

        P^0 = [0 | I | 0],  P^t = f'(Z^t) (W P^{t-1} + direct^t),
        direct^t[l, l (n + d) + j] = [x^t, s^{t-1}]_j,  direct^t[l, b_l] = 1
        dE^t/dtheta_q = sum_k sum_l e^t_k v_kl P^t[l, q] = sum_l c^t_l P^t[l, q]

    (the seed's recursion and double sum, k summed first: c^t = V.T e^t).
    A column's values depend on that column alone, so the columns are split
    into chunks, each run by one thread through all T steps (the forward
    pass, cheap next to P, is run by each). Chunk 0 also computes E[b] and
    dE/dV (and dc = sum_t e^t). OUT: its columns of grad ([U W] and b parts)
    and ds0; chunk 0: the V and c parts of grad and E[b]. work:
    ``_rtrl_work_size``; memory does not grow with T.
    """
    cdef Py_ssize_t K1 = n + d, ct = _ct(<floating>0)
    cdef Py_ssize_t Q = d * K1 + d + (d if bb != NULL else 0)
    cdef Py_ssize_t ntot = (Q + ct - 1) // ct
    cdef Py_ssize_t p0 = ch * ntot // nch, p1 = (ch + 1) * ntot // nch
    cdef Py_ssize_t npan = p1 - p0, Qc = npan * ct, t, j, l, k, q
    cdef const floating* UW = pack
    cdef const floating* Vt = UW + K1 * d
    cdef const floating* Vr = Vt + d * m + (m + d) * d + d * d
    cdef floating* cur = work                       # (K1,): [x^t, s^{t-1}]
    cdef floating* nxt = cur + K1                   # (K1,): [., s^t]
    cdef floating* e = nxt + K1                     # (m,): Y^t, then e^t
    cdef floating* c = e + m                        # (d,)
    cdef floating* fp = c + d                       # (d,)
    cdef floating* gq = fp + d                      # (Qc,)
    cdef floating* Pp = gq + Qc                     # (d, Qc) by panels
    cdef floating* Pn = Pp + d * Qc
    cdef floating* dV = grad + d * K1
    cdef floating* dc = dV + m * d + d
    cdef floating* tmp
    cdef floating s, sq = 0
    for j in range(d):
        cur[n + j] = s0[b * d + j]
    memset(gq, 0, Qc * sizeof(floating))
    memset(Pp, 0, d * Qc * sizeof(floating))
    for l in range(d):                              # dS^0/dS^0 = I
        q = d * K1 + l
        if q >= p0 * ct and q < p1 * ct:
            Pp[((q // ct - p0) * d + l) * ct + q % ct] = 1
    if ch == 0:
        memset(dV, 0, m * d * sizeof(floating))
        if cb != NULL:
            memset(dc, 0, m * sizeof(floating))
    for t in range(T):
        for j in range(n):
            cur[j] = X[(b * T + t) * n + j]
        _gemm_packed(1, K1, d, cur, K1, 1, UW, nxt + n, K1, 0)
        _add_bias(nxt + n, 1, K1, d, bb)
        _tanh_inplace(nxt + n, d)
        _gemm_packed(1, d, m, nxt + n, K1, 1, Vt, e, m, 0)
        _add_bias(e, 1, m, m, cb)
        sq = _residuals(target + (b * T + t) * m, e, m, g, sq)
        _gemm_packed(1, m, d, e, m, 1, Vr, c, d, 0)
        for l in range(d):
            s = nxt[n + l]
            fp[l] = 1 - s * s
        _rtrl_panels(d, K1, p0, npan, W, Pp, Pn, cur, d * K1 + d if bb != NULL else -1,
                     fp, c, gq)
        if ch == 0:                                 # dE^t/dV = e^t (S^t).T
            for k in range(m):
                for j in range(d):
                    dV[k * d + j] = dV[k * d + j] + e[k] * nxt[n + j]
            if cb != NULL:                          # dE^t/dc = e^t
                for k in range(m):
                    dc[k] = dc[k] + e[k]
        tmp = Pp
        Pp = Pn
        Pn = tmp
        tmp = cur
        cur = nxt
        nxt = tmp
    for j in range(Qc):
        q = p0 * ct + j
        if q < d * K1:
            grad[q] = gq[j]
        elif q < d * K1 + d:
            ds0[q - d * K1] = gq[j]
        elif q < Q:                                 # db: after dV in grad
            grad[q + m * d - d] = gq[j]
    if ch == 0:
        E[b] = g * sq


# ---------------------------------------------------------------------------
# (c) entry points over a batch
# ---------------------------------------------------------------------------

def _pack_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m):
    """Scalars of the packed weights (``_pack_weights``)."""
    return (n + d) * d + d * m + (m + d) * d + d * d + m * d


def _forward_work_size(Py_ssize_t R, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m):
    """Scalars of workspace one thread needs for a block of R sequences."""
    return 2 * R * (n + d) + _hist_steps(R, d) * R * d + _YC * m


cdef inline Py_ssize_t _ring_at(Py_ssize_t N, Py_ssize_t T, Py_ssize_t m) noexcept nogil:
    """Where BPTT's ring starts in B: after the output errors (T N m),
    rounded up to 16 scalars, so that it starts on a cache line as B does."""
    return (T * N * m + 15) // 16 * 16


def _bptt_buffer_sizes(Py_ssize_t N, Py_ssize_t T, Py_ssize_t n, Py_ssize_t d,
                       Py_ssize_t m, Py_ssize_t L):
    """Scalars of BPTT's two buffers: A, the states (``_bptt_forward``), and
    B, the output errors Eb (T N m) then the ring of ``_bptt_backward`` for
    blocks of L steps."""
    return (T + 1) * N * (n + d), _ring_at(N, T, m) + (L + 1) * N * (m + d)


def _bptt_work_size(Py_ssize_t d, Py_ssize_t m):
    """Scalars of workspace one thread needs for BPTT's products (``_gemm_tn``)."""
    cdef Py_ssize_t rows = d if d > m else m
    return (rows + 7) // 8 * 8 * _KC


def _rtrl_work_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, Py_ssize_t nch,
                    bint bias=False):
    """Scalars of workspace one thread needs for one RTRL chunk of nch."""
    cdef Py_ssize_t ct = 2 * CRNN_VWF     # the wider of the two dtypes' panels
    cdef Py_ssize_t Qc = (d * (n + d) + d + (d if bias else 0) + nch - 1) // nch + 2 * ct
    return 2 * (n + d) + m + 2 * d + Qc + 2 * d * Qc


def _gradient_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, bint bias=False):
    """Scalars of the gradient vector: [dU dW] (d, n + d), dV (m, d), then db (d,), dc (m,)."""
    return d * (n + d) + m * d + ((d + m) if bias else 0)


def _blocks(Py_ssize_t N, int n_threads):
    """Rows per block when N sequences are split over n_threads threads."""
    return (N + n_threads - 1) // n_threads


cdef inline const floating* _opt(const floating[::1] a) noexcept nogil:
    """A pointer to a's data, or NULL when a is empty (no bias)."""
    if a.shape[0] == 0:
        return NULL
    return &a[0]


def _forward(const floating[:, ::1] U, const floating[:, ::1] W,
             const floating[:, ::1] V, const floating[::1] b, const floating[::1] c,
             const floating[:, :, ::1] X, const floating[:, ::1] s0,
             floating[:, :, ::1] S, floating[:, :, ::1] Y,
             floating[::1] pack, floating[:, ::1] work, int n_threads):
    """Forward pass over a batch.

    IN: U (d, n), W (d, d), V (m, d), b (d,) and c (m,) or both empty (no
    biases), X (N, T, n), s0 (N, d).
    OUT: S (N, T, d), Y (N, T, m), overwritten.
    SCRATCH: pack (_pack_size,), work (n_threads, _forward_work_size(R, ...))
    with R = _blocks(N, n_threads).
    """
    cdef Py_ssize_t N = X.shape[0], T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0]
    cdef Py_ssize_t R = _blocks(N, n_threads), blk, b0, Rb
    cdef const floating* bb = _opt(b)
    cdef const floating* cb = _opt(c)
    with nogil:
        _pack_weights(&U[0, 0], &W[0, 0], &V[0, 0], n, d, m, &pack[0])
        for blk in prange(n_threads, num_threads=n_threads, schedule="static"):
            b0 = blk * R
            Rb = N - b0 if N - b0 < R else R
            if Rb > 0:
                _forward_block(b0, Rb, T, n, d, m, &X[0, 0, 0], &s0[0, 0], &pack[0],
                               bb, cb, &S[0, 0, 0], &Y[0, 0, 0], NULL, 0, NULL,
                               &work[threadid(), 0])


def _generate(const floating[:, ::1] U, const floating[:, ::1] W,
              const floating[:, ::1] V, const floating[::1] b, const floating[::1] c,
              const floating[:, ::1] x0, const floating[:, ::1] s0,
              floating[:, :, ::1] out, floating[:, ::1] sT,
              floating[::1] pack, floating[:, ::1] work, int n_threads):
    """Closed-loop forecasting over a batch: each output is the next input (m == n).

    IN: U, W, V, b, c as ``_forward``; x0 (N, n) the first inputs, s0 (N, d).
    OUT: out (N, T, n) the outputs, sT (N, d) the final states.
    SCRATCH: pack (_pack_size,), work (n_threads, _forward_work_size(R, ...))
    with R = _blocks(N, n_threads).
    """
    cdef Py_ssize_t N = out.shape[0], T = out.shape[1], n = U.shape[1]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0]
    cdef Py_ssize_t R = _blocks(N, n_threads), blk, b0, Rb
    cdef const floating* bb = _opt(b)
    cdef const floating* cb = _opt(c)
    with nogil:
        _pack_weights(&U[0, 0], &W[0, 0], &V[0, 0], n, d, m, &pack[0])
        for blk in prange(n_threads, num_threads=n_threads, schedule="static"):
            b0 = blk * R
            Rb = N - b0 if N - b0 < R else R
            if Rb > 0:
                _generate_block(b0, Rb, T, n, d, &x0[0, 0], &s0[0, 0], &pack[0], bb, cb,
                                &out[0, 0, 0], &sT[0, 0], &work[threadid(), 0])


def _loss(const floating[:, ::1] U, const floating[:, ::1] W,
          const floating[:, ::1] V, const floating[::1] b, const floating[::1] c,
          const floating[:, :, ::1] X, const floating[:, :, ::1] target,
          const floating[:, ::1] s0, floating g, floating[::1] E, floating[::1] pack,
          floating[:, ::1] work, int n_threads):
    """Loss of every sequence of a batch, without storing states.

    IN: as ``_forward``, target (N, T, m), g.
    OUT: E (N,), E[b] = g sum_t sum_k (target - Y)^2 of sequence b.
    SCRATCH: as ``_forward``.
    """
    cdef Py_ssize_t N = X.shape[0], T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0]
    cdef Py_ssize_t R = _blocks(N, n_threads), blk, b0, Rb
    cdef const floating* bb = _opt(b)
    cdef const floating* cb = _opt(c)
    with nogil:
        _pack_weights(&U[0, 0], &W[0, 0], &V[0, 0], n, d, m, &pack[0])
        for blk in prange(n_threads, num_threads=n_threads, schedule="static"):
            b0 = blk * R
            Rb = N - b0 if N - b0 < R else R
            if Rb > 0:
                _forward_block(b0, Rb, T, n, d, m, &X[0, 0, 0], &s0[0, 0], &pack[0],
                               bb, cb, NULL, NULL, &target[0, 0, 0], g, &E[0],
                               &work[threadid(), 0])


def _gradient(const floating[:, ::1] U, const floating[:, ::1] W,
              const floating[:, ::1] V, const floating[::1] b, const floating[::1] c,
              const floating[:, :, ::1] X, const floating[:, :, ::1] target,
              const floating[:, ::1] s0, floating g, int method,
              floating[::1] grad, floating[:, ::1] ds0, floating[::1] E,
              floating[:, ::1] slots, floating[::1] pack, floating[::1] A,
              floating[::1] B, floating[:, ::1] work, int nch, int n_threads):
    """Exact gradient of E over a batch, by BPTT (method 0) or RTRL (method 1).

    IN: as ``_loss``.
    OUT: grad (_gradient_size,): dE/d[U W] (d, n + d), dE/dV (m, d), then
    with biases dE/db (d,) and dE/dc (m,), raveled and summed over the batch;
    ds0 (N, d): dE/dS^0 of each sequence; E (N,): the loss of each sequence.
    All overwritten.
    SCRATCH: pack (_pack_size,). BPTT: A and B (_bptt_buffer_sizes with L =
    nch), work (n_threads, _bptt_work_size), slots (K, _gradient_size): the
    backward recurrence runs in blocks of nch steps, from the last to the
    first; after each block, the gradient's products over the block's steps,
    the chains going on from the block before. The batch's gradient is K
    such products, each over a group of ceil(N / K) sequences (K chosen
    from the sizes alone; with one thread per block of as many, each reads
    the rows its own thread wrote), their rows shared out between the
    threads, then added in order.
    RTRL: slots (K, _gradient_size) for
    K >= 1 sequences' gradients, work (n_threads, _rtrl_work_size(..., nch)),
    each sequence's columns split in nch chunks; each sequence's gradient is
    computed alone into its slot, and the slots are added in sequence order.
    Either way no bit depends on the thread count, the chunks or K.
    """
    cdef Py_ssize_t N = X.shape[0], T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0]
    cdef Py_ssize_t P = grad.shape[0], K = slots.shape[0]
    cdef Py_ssize_t R = _blocks(N, n_threads), start, stop, i, blk, b0, Rb, it, p
    cdef Py_ssize_t nrb = (n_threads + K - 1) // K     # BPTT: row blocks per part
    cdef Py_ssize_t rows = ((d + m + nrb - 1) // nrb + 3) // 4 * 4, r0, r1, part
    cdef Py_ssize_t G = (N + K - 1) // K              # BPTT: sequences per part
    cdef Py_ssize_t Kg = (N + G - 1) // G             # BPTT: parts that have any
    cdef Py_ssize_t L = nch, nblk = (T + nch - 1) // nch, tb, t1, t2, g0
    cdef const floating* bb = _opt(b)
    cdef const floating* cb = _opt(c)
    cdef floating acc
    with nogil:
        _pack_weights(&U[0, 0], &W[0, 0], &V[0, 0], n, d, m, &pack[0])
        memset(&grad[0], 0, P * sizeof(floating))
    # one parallel region (threads woken once), its loops shared out in turn
    with nogil, parallel(num_threads=n_threads):
        if method == 0:
            for blk in prange(n_threads, schedule="static"):
                b0 = blk * R
                Rb = N - b0 if N - b0 < R else R
                if Rb > 0:
                    _bptt_forward(b0, Rb, T, n, d, m, &X[0, 0, 0], &target[0, 0, 0],
                                  &s0[0, 0], g, &pack[0], bb, cb, &A[0], &B[0], &E[0])
            for tb in range(nblk - 1, -1, -1):
                t1 = tb * L
                t2 = T if t1 + L > T else t1 + L
                for blk in prange(n_threads, schedule="static"):
                    b0 = blk * R
                    Rb = N - b0 if N - b0 < R else R
                    if Rb > 0:
                        _bptt_backward(b0, Rb, T, L + 1, t1, t2, n, d, m, &pack[0], &A[0],
                                       &B[0], &B[_ring_at(N, T, m)], &ds0[0, 0])
                for it in prange(Kg * nrb, schedule="static"):
                    part = it // nrb
                    g0 = part * G
                    r0 = (it % nrb) * rows
                    r1 = r0 + rows if r0 + rows < d + m else d + m
                    if r1 > r0:
                        _bptt_products(r0, r1, g0, G if N - g0 > G else N - g0, t1, t2, N,
                                       R, T, L + 1, n, d, m, &A[0], &B[_ring_at(N, T, m)],
                                       bb != NULL,
                                       &grad[0] if Kg == 1 else &slots[part, 0],
                                       &work[threadid(), 0], t2 < T)
            if Kg > 1:                              # the parts, added in order
                for p in prange(P, schedule="static"):
                    acc = slots[0, p]
                    for i in range(1, Kg):
                        acc = acc + slots[i, p]
                    grad[p] = acc
        else:
            start = 0
            while start < N:
                stop = start + K if start + K < N else N
                for it in prange((stop - start) * nch, schedule="static"):
                    _rtrl_item(start + it // nch, it % nch, nch, T, n, d, m, &X[0, 0, 0],
                               &target[0, 0, 0], &s0[0, 0], g, &W[0, 0], &pack[0], bb, cb,
                               &slots[it // nch, 0], &ds0[start + it // nch, 0], &E[0],
                               &work[threadid(), 0])
                # add the slots in sequence order: the same sum whatever the threads
                for p in prange(P, schedule="static"):
                    acc = grad[p]
                    for i in range(stop - start):
                        acc = acc + slots[i, p]
                    grad[p] = acc
                start = stop


# ---------------------------------------------------------------------------
# online learning: RTRL one step at a time, the weights updated at every step
# ---------------------------------------------------------------------------

def _online_work_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, bint bias=False):
    """Scalars of workspace ``_rtrl_online`` needs."""
    cdef Py_ssize_t Q = d * n + d * d + (d if bias else 0)
    return 2 * d + 2 * m + d * Q + Q + m * d + (m if bias else 0)


def _rtrl_online(floating[:, ::1] U, floating[:, ::1] W, floating[:, ::1] V,
                 floating[::1] b, floating[::1] c,
                 const floating[:, ::1] X, const floating[:, ::1] target,
                 floating[::1] s, floating[:, ::1] P,
                 floating g, floating lr, floating clip,
                 floating[:, ::1] Y, floating[::1] E, floating[::1] grad_sum,
                 floating[::1] work):
    """Real-time recurrent learning over a chunk of one stream (Williams and Zipser).

    At each step t: the state and output from the current weights; the
    sensitivities P^t = f'(Z^t) (direct^t + W P^{t-1}) (columns: u_ij at
    i*n + j, then w_ij at d*n + i*d + j, then with biases b_i at d*n + d*d
    + i; see ``_sensitivity_step``); the gradient of E^t alone,
    dE^t/dtheta = sum_k sum_l e^t_k v_kl P^t[l, :], e^t S^t.T for V and e^t
    for c; its norm clipped to ``clip`` (0: no clipping); then theta -= lr
    dE^t/dtheta when lr > 0. The cost of a step does not depend on how long
    the stream has run.

    IN/OUT: U, W, V, and b (d,), c (m,) or both empty (no biases), updated
    when lr > 0; s (d,) the state, P (d, Q) the sensitivities, grad_sum
    (Q + m*d (+ m),): [U, W, (b), V, (c)] += every step's gradient.
    IN: X (T, n), target (T, m). OUT: Y (T, m) the outputs (from the weights
    before the step's update), E (T,) each step's E^t.
    SCRATCH: work (_online_work_size(n, d, m, bias),).
    """
    cdef Py_ssize_t T = X.shape[0], n = X.shape[1], d = U.shape[0], m = V.shape[0]
    cdef bint bias = b.shape[0] > 0
    cdef Py_ssize_t Q = d * n + d * d + (d if bias else 0)
    cdef Py_ssize_t NP = Q + m * d + (m if bias else 0)
    cdef Py_ssize_t t, i, j, l, q, k
    cdef floating* bb = &b[0] if bias else NULL
    cdef floating* cb = &c[0] if bias else NULL
    cdef floating* s_new = &work[0]                 # (d,)
    cdef floating* cv = s_new + d                   # (d,): V.T e^t
    cdef floating* e = cv + d                       # (m,)
    cdef floating* y = e + m                        # (m,)
    cdef floating* Pn = y + m                       # (d, Q)
    cdef floating* gstep = Pn + d * Q               # (NP,): dE^t/dtheta
    cdef floating* row
    cdef floating cl, norm, scale
    with nogil:
        for t in range(T):
            _state_step(&U[0, 0], &W[0, 0], bb, d, n, &X[t, 0], &s[0], s_new)
            E[t] = g * _output_error(&V[0, 0], cb, m, d, s_new, &target[t, 0], g, y, e)
            for k in range(m):
                Y[t, k] = y[k]
            _sensitivity_step(&W[0, 0], d, n, Q, bias, &X[t, 0], &s[0], s_new, &P[0, 0], Pn)

            # the gradient of E^t: the seed's double sum, the k-sum first
            for l in range(d):
                cv[l] = 0
            _matTvec(&V[0, 0], m, d, e, cv)
            for q in range(NP):
                gstep[q] = 0
            for l in range(d):
                cl = cv[l]
                row = Pn + l * Q
                for q in range(Q):
                    gstep[q] = gstep[q] + cl * row[q]
            _outer(gstep + Q, m, d, e, s_new)
            if bias:
                for k in range(m):
                    gstep[Q + m * d + k] = e[k]

            if clip > 0:
                norm = 0
                for q in range(NP):
                    norm = norm + gstep[q] * gstep[q]
                norm = sqrt(norm)
                if norm > clip:
                    scale = clip / norm
                    for q in range(NP):
                        gstep[q] = gstep[q] * scale
            for q in range(NP):
                grad_sum[q] = grad_sum[q] + gstep[q]

            # carry the state and the sensitivities, then update the weights
            for l in range(d):
                s[l] = s_new[l]
                for q in range(Q):
                    P[l, q] = Pn[l * Q + q]
            if lr > 0:
                for i in range(d):
                    for j in range(n):
                        U[i, j] = U[i, j] - lr * gstep[i * n + j]
                    for j in range(d):
                        W[i, j] = W[i, j] - lr * gstep[d * n + i * d + j]
                for k in range(m):
                    for j in range(d):
                        V[k, j] = V[k, j] - lr * gstep[Q + k * d + j]
                if bias:
                    for i in range(d):
                        bb[i] = bb[i] - lr * gstep[d * n + d * d + i]
                    for k in range(m):
                        cb[k] = cb[k] - lr * gstep[Q + m * d + k]
