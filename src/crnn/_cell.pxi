# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# The cell: how a new state is formed from its pre-activation, and the
# derivative every gradient kernel needs. Included by _core.pyx; the one
# place the kernels learn what the activation is.
#
#   S^t = f(Z^t),  Z^t = U X^t + W S^{t-1} (+ b),  f = tanh
#   f'(Z^t) = 1 - (S^t)^2, computed from the state (no Z is kept)
#
# Interface:
#
#   _cell_states(Z, R, ld, d, bias)   Z -> S in place, R rows of d (stride
#                                     ld): adds the bias b (when not NULL),
#                                     then applies f
#   _cell_slope(s)                    f'(z) given s = f(z), in double
#   _activate(z, count)               f in place over count scalars
#
# Adding an activation: a branch-free loop for f beside ``_tanh_inplace``
# (the loop must vectorise: no branch, no float comparison), its slope from
# the state in ``_cell_slope``, both selected by one more argument threaded
# through these three functions; no kernel changes.

from libc.math cimport copysign, copysignf, fabs, fabsf

cdef extern from "_simd.h":
    double crnn_pow2_d(double t) noexcept nogil
    double crnn_min_pos_d(double y, double cap) noexcept nogil
    float crnn_pow2_f(float t) noexcept nogil
    float crnn_min_pos_f(float y, float cap) noexcept nogil


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


cdef inline void _activate(floating* z, Py_ssize_t count) noexcept nogil:
    """z = f(z) in place: the activation of the cell."""
    _tanh_inplace(z, count)


cdef inline double _cell_slope(floating s) noexcept nogil:
    """f'(z) given the state s = f(z): 1 - s^2 for tanh.

    In double precision for both dtypes: a float32 kernel that multiplies
    by it (BPTT's deltas) rounds once, after the product; one that stores it
    (RTRL's f'(Z)) rounds it to float32 first.
    """
    return 1.0 - s * s


cdef inline void _cell_states(floating* Z, Py_ssize_t R, Py_ssize_t ld, Py_ssize_t d,
                              const floating* bias) noexcept nogil:
    """S = f(Z + b) in place for the R rows of Z (d scalars each, rows ld apart).

    No bias when ``bias`` is NULL.
    """
    cdef Py_ssize_t r, j
    if bias != NULL:
        for r in range(R):
            for j in range(d):
                Z[r * ld + j] = Z[r * ld + j] + bias[j]
    for r in range(R):
        _activate(Z + r * ld, d)
