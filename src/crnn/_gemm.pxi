# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# crnn's matrix products: register-tiled, on packed panels, deterministic.
# Included by _core.pyx (one compiled unit per kernel variant); the register
# tiles themselves are C, in _simd.h.
#
# Interface (everything else here is internal to the products):
#
#   _ct(<floating>0)           columns of one panel (2 SIMD vectors)
#   _pack(B, ..., out, K, k0)  write a K x C operand in the panel layout
#   _gemm_packed(R, K, C, A, ars, aks, Bp, O, ldo, acc)
#                              O (+)= A B, B packed by _pack
#   _gemm(R, K, C, A, ars, aks, B, pstride, bld, rld, O, ldo, acc)
#                              O (+)= A B, B by panels (packed or row-major)
#   _gemm_tn(R, kc, C, arows, brows, O, ldo, apk, acc)
#                              O (+)= A.T B over kc <= _KC rows given by pointers
#   _tile(K, a, ars, aks, b, ldb, o, ldo, nr, acc)
#                              up to 4 rows x 1 panel, for callers with their
#                              own loop over panels (RTRL's sensitivities)
#
# Determinism: every element O[r, c] of every product is one chain, O (or 0)
# + A[r, 0] B[0, c] + A[r, 1] B[1, c] + ..., in the order of k, whatever R
# is and whichever row tile, column panel, row block or k chunk the element
# falls in. So a sequence's numbers do not depend on which other sequences
# share its block, nor on the thread count. Columns run in panels of CT = 2
# SIMD vectors (4 rows x 2 vectors of accumulators, 8 rows on AVX-512
# builds); the columns past the last whole panel run in one vector tile and
# then as scalar chains with the same roundings (``_fma``).

cdef extern from "_simd.h":
    ctypedef double vd "crnn_vd"
    ctypedef float vf "crnn_vf"
    const Py_ssize_t CRNN_VWD
    const Py_ssize_t CRNN_VWF
    const Py_ssize_t CRNN_MR
    void crnn_tile4_d(Py_ssize_t K, const double* a, Py_ssize_t ars, Py_ssize_t aks,
                      const double* b, Py_ssize_t ldb, double* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_tile4_f(Py_ssize_t K, const float* a, Py_ssize_t ars, Py_ssize_t aks,
                      const float* b, Py_ssize_t ldb, float* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_tile1_d(Py_ssize_t K, const double* a, Py_ssize_t aks,
                      const double* b, Py_ssize_t ldb, double* o, int acc) noexcept nogil
    void crnn_tile1_f(Py_ssize_t K, const float* a, Py_ssize_t aks,
                      const float* b, Py_ssize_t ldb, float* o, int acc) noexcept nogil
    void crnn_row4_d(Py_ssize_t K, const double* a, Py_ssize_t aks, const double* b,
                     Py_ssize_t pstride, Py_ssize_t ldb, double* o, Py_ssize_t npanels,
                     int acc) noexcept nogil
    void crnn_row4_f(Py_ssize_t K, const float* a, Py_ssize_t aks, const float* b,
                     Py_ssize_t pstride, Py_ssize_t ldb, float* o, Py_ssize_t npanels,
                     int acc) noexcept nogil
    void crnn_tile8_d(Py_ssize_t K, const double* a, Py_ssize_t ars, Py_ssize_t aks,
                      const double* b, Py_ssize_t ldb, double* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_tile8_f(Py_ssize_t K, const float* a, Py_ssize_t ars, Py_ssize_t aks,
                      const float* b, Py_ssize_t ldb, float* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_tilev_d(Py_ssize_t K, const double* a, Py_ssize_t ars, Py_ssize_t aks,
                      const double* b, Py_ssize_t ldb, double* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_tilev_f(Py_ssize_t K, const float* a, Py_ssize_t ars, Py_ssize_t aks,
                      const float* b, Py_ssize_t ldb, float* o, Py_ssize_t ldo,
                      Py_ssize_t nr, int acc) noexcept nogil
    void crnn_panel_rows_d(Py_ssize_t d, double* o, const double* p, double* g,
                           const double* f, double keep, const double* c) noexcept nogil
    void crnn_panel_rows_f(Py_ssize_t d, float* o, const float* p, float* g,
                           const float* f, float keep, const float* c) noexcept nogil
    double crnn_fma_d "CRNN_FMA_D"(double a, double b, double c) noexcept nogil
    float crnn_fma_f "CRNN_FMA_F"(float a, float b, float c) noexcept nogil


cdef enum:
    _KC = 128                   # rows of B per pass of the row tiles: a KC x CT
    #                             panel chunk (16 KiB at most) stays in L1
    _ROWS_BYTES = 512 * 1024    # rows of A per block: at most this much of A,
    #                             which stays in L2 while every panel uses it


cdef inline Py_ssize_t _ct(floating dummy) noexcept nogil:
    """Columns of one panel: two SIMD vectors of this build."""
    if floating is double:
        return 2 * CRNN_VWD
    else:
        return 2 * CRNN_VWF


cdef inline void _tile(Py_ssize_t K, const floating* a, Py_ssize_t ars, Py_ssize_t aks,
                       const floating* b, Py_ssize_t ldb, floating* o, Py_ssize_t ldo,
                       Py_ssize_t nr, bint acc) noexcept nogil:
    """o[i, 0:CT] (+)= sum_k a[i ars + k aks] b[k ldb : k ldb + CT] for rows i < nr <= 4."""
    if nr == 1:
        if floating is double:
            crnn_tile1_d(K, a, aks, b, ldb, o, acc)
        else:
            crnn_tile1_f(K, a, aks, b, ldb, o, acc)
    elif floating is double:
        crnn_tile4_d(K, a, ars, aks, b, ldb, o, ldo, nr, acc)
    else:
        crnn_tile4_f(K, a, ars, aks, b, ldb, o, ldo, nr, acc)


cdef inline void _tile8(Py_ssize_t K, const floating* a, Py_ssize_t ars, Py_ssize_t aks,
                        const floating* b, Py_ssize_t ldb, floating* o, Py_ssize_t ldo,
                        Py_ssize_t nr, bint acc) noexcept nogil:
    """Up to 8 rows x 1 panel (AVX-512 builds only: CRNN_MR == 8)."""
    if floating is double:
        crnn_tile8_d(K, a, ars, aks, b, ldb, o, ldo, nr, acc)
    else:
        crnn_tile8_f(K, a, ars, aks, b, ldb, o, ldo, nr, acc)


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
    cdef Py_ssize_t ct = _ct(<floating>0), npanels = C // ct, rem = C - npanels * ct
    cdef Py_ssize_t p, r, nr, k0, kc, r0, r1
    cdef Py_ssize_t rb = R
    cdef const floating* bp
    if R * K * <Py_ssize_t>sizeof(floating) > _ROWS_BYTES:
        rb = _ROWS_BYTES // (K * <Py_ssize_t>sizeof(floating)) // 8 * 8
        if rb < 8:
            rb = 8
    if R == 1:                                      # one row: four panels at a time
        p = 0
        while p < npanels:
            nr = npanels - p if npanels - p < 4 else 4
            if floating is double:
                crnn_row4_d(K, A, aks, B + p * pstride, pstride, bld, O + p * ct, nr, acc)
            else:
                crnn_row4_f(K, A, aks, B + p * pstride, pstride, bld, O + p * ct, nr, acc)
            p = p + 4
        npanels = 0                                 # done; the remainder below
    # rows in blocks of rb (at most _ROWS_BYTES of A, which stays in L2 while
    # every panel uses it: a product of many rows, such as the outputs of
    # many steps, then reads A once instead of once per panel)
    r0 = 0
    while r0 < R and npanels > 0:
        r1 = R if R - r0 < rb else r0 + rb
        for p in range(npanels):
            # k in chunks of _KC: a chunk of the panel (_KC x CT) stays in L1
            # while every row tile uses it; the chains go on from O, in order
            k0 = 0
            while k0 < K:
                kc = K - k0 if K - k0 < _KC else _KC
                bp = B + p * pstride + k0 * bld
                r = r0
                while CRNN_MR == 8 and r1 - r > 4:     # 8-row tiles (AVX-512 builds)
                    nr = r1 - r if r1 - r < 8 else 8
                    _tile8(kc, A + r * ars + k0 * aks, ars, aks, bp, bld,
                           O + r * ldo + p * ct, ldo, nr, acc or k0 > 0)
                    r = r + 8
                while r < r1:
                    nr = r1 - r if r1 - r < 4 else 4
                    _tile(kc, A + r * ars + k0 * aks, ars, aks, bp, bld,
                          O + r * ldo + p * ct, ldo, nr, acc or k0 > 0)
                    r = r + 4
                k0 = k0 + kc
        r0 = r1
    if rem > 0:
        npanels = C // ct
        _last_columns(R, K, rem, A, ars, aks, B + npanels * pstride, rld,
                      O + npanels * ct, ldo, acc)


cdef void _gemm_tn(Py_ssize_t R, Py_ssize_t kc, Py_ssize_t C,
                   const floating** arows, const floating** brows,
                   floating* O, Py_ssize_t ldo, floating* apk, bint acc) noexcept nogil:
    """O (+)= A.T B over kc <= _KC rows given by pointers.

    Row k of A (R scalars) starts at arows[k], row k of B (C scalars) at
    brows[k]; the sum runs over k in order, on from O when acc (a longer
    sum is a sequence of such calls). A is packed tile by tile into apk
    (``_gemm_tn_work_size``; it stays in L2 while every panel of B uses it)
    and each panel's chunk of B is packed too (it stays in L1 while every
    tile uses it): rows far apart in memory would miss the caches. Each
    element is the same chain in k as ``_gemm`` computes.
    """
    cdef Py_ssize_t ct = _ct(<floating>0), mr = CRNN_MR, npanels = C // ct
    cdef Py_ssize_t rem = C - npanels * ct
    cdef Py_ssize_t ntile = (R + mr - 1) // mr, k, t, i, j, p, nr
    cdef floating pk[_KC * 32]                      # a panel chunk of B (CT <= 32)
    cdef floating* a
    cdef floating* o
    cdef const floating* row
    for k in range(kc):                             # apk[t, k, i] = A[k, t mr + i]
        row = arows[k]
        for t in range(ntile):
            for i in range(mr):
                apk[(t * kc + k) * mr + i] = row[t * mr + i] if t * mr + i < R else 0
    for p in range(npanels):
        for k in range(kc):
            row = brows[k] + p * ct
            for j in range(ct):
                pk[k * ct + j] = row[j]
        for t in range(ntile):
            nr = R - t * mr if R - t * mr < mr else mr
            a = apk + t * kc * mr
            o = O + t * mr * ldo + p * ct
            if CRNN_MR == 8:
                _tile8(kc, a, 1, mr, pk, ct, o, ldo, nr, acc)
            else:
                _tile(kc, a, 1, mr, pk, ct, o, ldo, nr, acc)
    if rem > 0:                                     # the last columns
        for k in range(kc):
            row = brows[k] + npanels * ct
            for j in range(rem):
                pk[k * rem + j] = row[j]
        for t in range(ntile):
            nr = R - t * mr if R - t * mr < mr else mr
            _last_columns(nr, kc, rem, apk + t * kc * mr, 1, mr, pk, rem,
                          O + t * mr * ldo + npanels * ct, ldo, acc)


cdef inline Py_ssize_t _gemm_tn_work_size(Py_ssize_t R) noexcept nogil:
    """Scalars of ``_gemm_tn``'s apk for products of up to R rows of A.T."""
    return (R + 7) // 8 * 8 * _KC


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
    cdef Py_ssize_t ct = _ct(<floating>0), npanels = C // ct, rem = C - npanels * ct
    cdef Py_ssize_t p, k, j
    for p in range(npanels):
        for k in range(Kp):
            for j in range(ct):
                out[(p * K + k0 + k) * ct + j] = B[k * bks + (p * ct + j) * bjs]
    for k in range(Kp):
        for j in range(rem):
            out[npanels * K * ct + (k0 + k) * rem + j] = B[k * bks + (npanels * ct + j) * bjs]
