# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# The cell: how a new state is formed from the old one and its
# pre-activation, and the derivatives every gradient kernel needs. Included
# by _core.pyx; the one place the kernels learn what the cell is.
#
#   Z^t = U X^t + W S^{t-1} (+ b),   H^t = f(Z^t),
#   S^t = (1 - a) S^{t-1} + a H^t    (a = 1: S^t = H^t, Elman's cell)
#
# f is one of the activations below, a the leak rate in (0, 1]. f'(Z^t) is
# computed from H^t = f(Z^t) (no Z is kept): 1 - H^2 for tanh, 1 where H > 0
# and 0 elsewhere for relu (0 at 0, as PyTorch), 1 for the identity, H (1 -
# H) for the logistic. With a = 1 the state is H itself; with a < 1 a kernel
# that needs f' later keeps H (``_cell_states``' H).
#
# Interface (``_Cell`` is the activation and the leak rate, by value):
#
#   _cell_states(cell, Z, R, ld, d, b, prev, ldp, H, ldh)
#        Z -> S in place, R rows of d (stride ld): adds the bias b (when not
#        NULL), applies f, keeps f(Z) in H (when not NULL), and with a < 1
#        mixes in the previous states prev (rows ldp apart)
#   _cell_gains(cell, h, out, d)
#        out = a f'(z) from h = f(z), d of them (out may be h)
#   _cell_back(cell, D, R, ld, d, h, ldh, G)
#        BPTT's step back through the cell, in place on D (see there)
#   _activate(cell, z, count)
#        f in place over count scalars
#
# Adding an activation: a code in the enum below, a branch-free loop for f
# (the loop must vectorise: no branch, no float comparison) in
# ``_activate``, its slope from H in ``_slope``, and one line in each of the
# dispatchers ``_cell_gains`` and ``_cell_back``: about 15 lines, no kernel
# changes. The Python layer names it in ``crnn._kernels.ACTIVATIONS``.

from libc.math cimport copysign, copysignf, fabs, fabsf

cdef extern from "_simd.h":
    double crnn_pow2_d(double t) noexcept nogil
    double crnn_min_pos_d(double y, double cap) noexcept nogil
    float crnn_pow2_f(float t) noexcept nogil
    float crnn_min_pos_f(float y, float cap) noexcept nogil
    double crnn_relu_d(double x) noexcept nogil
    double crnn_positive_d(double h) noexcept nogil
    float crnn_relu_f(float x) noexcept nogil
    double crnn_positive_f(float h) noexcept nogil


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


cdef enum:
    CELL_TANH = 0
    CELL_RELU = 1
    CELL_IDENTITY = 2
    CELL_LOGISTIC = 3


cdef struct _Cell:
    int f           # the activation, a CELL_ code
    double a        # the leak rate, in (0, 1]


cdef inline void _activate(_Cell cell, floating* z, Py_ssize_t count) noexcept nogil:
    """z = f(z) in place: the activation of the cell."""
    cdef Py_ssize_t i
    if cell.f == CELL_TANH:
        _tanh_inplace(z, count)
    elif cell.f == CELL_RELU:
        for i in range(count):
            if floating is double:
                z[i] = crnn_relu_d(z[i])
            else:
                z[i] = crnn_relu_f(z[i])
    elif cell.f == CELL_LOGISTIC:
        # 1 / (1 + e^-z) = (1 + tanh(z / 2)) / 2, by the vectorised tanh
        for i in range(count):
            z[i] = <floating>0.5 * z[i]
        _tanh_inplace(z, count)
        for i in range(count):
            z[i] = <floating>0.5 + <floating>0.5 * z[i]


cdef inline double _slope(int f, floating h) noexcept nogil:
    """f'(z) given h = f(z), for the activation f (a CELL_ code).

    In double precision for both dtypes: a float32 kernel that multiplies
    by it (BPTT's deltas) rounds once, after the product; one that stores it
    (RTRL's f'(Z)) rounds it to float32 first.
    """
    if f == CELL_TANH:
        return 1.0 - h * h
    if f == CELL_RELU:
        if floating is double:
            return crnn_positive_d(h)
        else:
            return crnn_positive_f(h)
    if f == CELL_LOGISTIC:
        return h * (1.0 - h)
    return 1.0


cdef inline void _cell_states(_Cell cell, floating* Z, Py_ssize_t R, Py_ssize_t ld,
                              Py_ssize_t d, const floating* bias, const floating* prev,
                              Py_ssize_t ldp, floating* H, Py_ssize_t ldh) noexcept nogil:
    """S = (1 - a) prev + a f(Z + b) in place for the R rows of Z (d scalars each, rows ld apart).

    No bias when ``bias`` is NULL. H (rows ldh apart) gets f(Z + b) when not
    NULL; with a = 1 the states are f(Z + b) and prev is not read.
    """
    cdef Py_ssize_t r, j
    cdef floating keep, a, h
    if bias != NULL:
        for r in range(R):
            for j in range(d):
                Z[r * ld + j] = Z[r * ld + j] + bias[j]
    for r in range(R):
        _activate(cell, Z + r * ld, d)
    if H != NULL:
        for r in range(R):
            for j in range(d):
                H[r * ldh + j] = Z[r * ld + j]
    if cell.a != 1:
        a = <floating>cell.a
        keep = <floating>(1.0 - cell.a)
        for r in range(R):
            for j in range(d):
                h = Z[r * ld + j]
                Z[r * ld + j] = keep * prev[r * ldp + j] + a * h


cdef inline void _gains(int f, double a, const floating* h, floating* out,
                        Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    if a == 1:
        for j in range(d):
            out[j] = <floating>_slope(f, h[j])
    else:
        for j in range(d):
            out[j] = <floating>(a * _slope(f, h[j]))


cdef inline void _cell_gains(_Cell cell, const floating* h, floating* out,
                             Py_ssize_t d) noexcept nogil:
    """out[j] = a f'(z_j) from h_j = f(z_j), j < d: the factor RTRL's sensitivities take.

    out may be h. (With a = 1 the factor is f' itself, bit for bit.)
    """
    if cell.f == CELL_TANH:
        _gains(CELL_TANH, cell.a, h, out, d)
    elif cell.f == CELL_RELU:
        _gains(CELL_RELU, cell.a, h, out, d)
    elif cell.f == CELL_LOGISTIC:
        _gains(CELL_LOGISTIC, cell.a, h, out, d)
    else:
        _gains(CELL_IDENTITY, cell.a, h, out, d)


cdef inline void _back(int f, double a, floating* D, Py_ssize_t R, Py_ssize_t ld, Py_ssize_t d,
                       const floating* h, Py_ssize_t ldh, floating* G) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating keep, gt
    if a == 1:
        for r in range(R):
            for j in range(d):
                D[r * ld + j] = D[r * ld + j] * _slope(f, h[r * ldh + j])
        return
    keep = <floating>(1.0 - a)
    for r in range(R):
        for j in range(d):
            gt = D[r * ld + j] + keep * G[r * d + j]
            G[r * d + j] = gt
            D[r * ld + j] = gt * (a * _slope(f, h[r * ldh + j]))


cdef inline void _cell_back(_Cell cell, floating* D, Py_ssize_t R, Py_ssize_t ld, Py_ssize_t d,
                            const floating* h, Py_ssize_t ldh, floating* G) noexcept nogil:
    """BPTT's step back through the cell, for R rows of d (D rows ld apart, h rows ldh apart).

    On entry D holds V.T e^t + W.T delta^{t+1}, the gradient of E through
    the outputs and the next pre-activation; h holds H^t = f(Z^t). On exit
    D holds delta^t = dE/dZ^t = a f'(Z^t) G^t, where G^t = dE/dS^t = D +
    (1 - a) G^{t+1}; G (R x d, contiguous) holds G^{t+1} on entry and G^t
    on exit. With a = 1 G is not used: delta^t = f'(Z^t) D.
    """
    if cell.f == CELL_TANH:
        _back(CELL_TANH, cell.a, D, R, ld, d, h, ldh, G)
    elif cell.f == CELL_RELU:
        _back(CELL_RELU, cell.a, D, R, ld, d, h, ldh, G)
    elif cell.f == CELL_LOGISTIC:
        _back(CELL_LOGISTIC, cell.a, D, R, ld, d, h, ldh, G)
    else:
        _back(CELL_IDENTITY, cell.a, D, R, ld, d, h, ldh, G)
