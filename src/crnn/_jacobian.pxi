# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# The Jacobian of the outputs with respect to the parameters, dY^t/dtheta,
# in forward mode, included by _core.pyx. From the sensitivities of the
# state with respect to the weights that feed it (Williams and Zipser's
# RTRL recursion, the columns here in theta's order: U, W, then b),
#
#   P^t = (1 - a) P^{t-1} + a f'(Z^t) (W P^{t-1} + direct^t),   P^0 = 0,
#   direct^t[l, l n + j] = x^t_j (U),  direct^t[l, d n + l d + j] = s^{t-1}_j (W),
#   direct^t[l, d n + d d + l] = 1 (b),
#
# each step's rows of J (m rows of theta's P scalars) are
#
#   dY^t_k/d[U W] = V[k, :] P^t[:, U W],   dY^t_k/dV[k, j] = S^t_j,
#   dY^t_k/db = V[k, :] P^t[:, b],         dY^t_k/dc_k = 1.
#
# Forward mode costs O(T d^2 (d n + d^2)) per sequence, whatever m, and keeps
# no state history; reverse mode (one backward pass per output) would cost
# O(T^2 m d^2) for all T m rows, more for every T > d (n + d) / m. Each
# sequence is one thread's, so no bit depends on the thread count. The
# state and the sensitivities are carried in and out (``s``, ``sens``), so a
# long sequence may be run in windows of steps with the same result.


cdef inline Py_ssize_t _jac_columns(Py_ssize_t n, Py_ssize_t d, bint bias) noexcept nogil:
    """Sensitivity columns: U (d n), W (d d), then b (d) with biases, theta's order."""
    return d * n + d * d + (d if bias else 0)


cdef inline Py_ssize_t _jac_work(Py_ssize_t n, Py_ssize_t d, bint bias) noexcept nogil:
    """Scalars of workspace one thread needs (two sensitivity buffers and a step's vectors)."""
    return _up16(2 * d * _jac_columns(n, d, bias) + (n + d) + 3 * d)


def _jacobian_sensitivity_columns(Py_ssize_t n, Py_ssize_t d, bint bias=False):
    """Columns of the sensitivities ``_output_jacobian`` carries: d n + d d (+ d)."""
    return _jac_columns(n, d, bias)


def _jacobian_workspace_size(Py_ssize_t n, Py_ssize_t d, bint bias, int n_threads):
    """Scalars of the workspace ``_output_jacobian`` takes."""
    return n_threads * _jac_work(n, d, bias)


cdef void _jacobian_item(_Cell cell, Py_ssize_t T, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                         Py_ssize_t P, const floating* X, floating* s, floating* sens,
                         const floating* U, const floating* W, const floating* V,
                         const floating* bb, floating* J, floating* Y, floating* work,
                         _Watch* w) noexcept nogil:
    """Forward-mode Jacobian of one sequence's T steps.

    IN: X (T, n). IN/OUT: s (d,) the state S^0, then S^T; sens (d, Q) the
    sensitivities P^0, then P^T (Q = ``_jac_columns``). OUT: J (T, m, P)
    dY^t/dtheta in theta's layout, Y (T, m) the outputs. work:
    ``_jac_work``. Returns early, unfinished, when the call is stopped.
    """
    cdef Py_ssize_t Q = _jac_columns(n, d, bb != NULL), ct = _ct(<floating>0)
    cdef Py_ssize_t nuw = d * n + d * d, t, i, j, k, l, q
    cdef floating* Pp = work
    cdef floating* Pn = Pp + d * Q
    cdef floating* xs = Pn + d * Q                  # (n + d,): [x^t, s^{t-1}]
    cdef floating* z = xs + n + d                   # (d,): Z^t, then S^t
    cdef floating* h = z + d                        # (d,): f(Z^t)
    cdef floating* fp = h + d                       # (d,): a f'(Z^t)
    cdef floating* Jt
    cdef floating* row
    cdef floating* tmp
    cdef const floating* cb = bb + d if bb != NULL else NULL
    cdef floating acc, fl
    cdef floating keep = <floating>(1.0 - cell.a)
    for l in range(d * Q):
        Pp[l] = sens[l]
    for j in range(d):
        xs[n + j] = s[j]
    for t in range(T):
        if _stopped(w, d * Q * (d + m)):
            return
        for j in range(n):
            xs[j] = X[t * n + j]
        for i in range(d):                          # Z = U x + W s (one chain over [x, s])
            acc = 0
            for j in range(n):
                acc = acc + U[i * n + j] * xs[j]
            for j in range(d):
                acc = acc + W[i * d + j] * xs[n + j]
            z[i] = acc
        _cell_states(cell, z, 1, d, d, bb, xs + n, d, h, d)
        _cell_gains(cell, h, fp, d)
        # Pn = W Pp, then + direct, times a f'(Z), + (1 - a) Pp
        _gemm(d, d, Q, W, d, 1, Pp, ct, Q, Q, Pn, Q, 0)
        for l in range(d):
            row = Pn + l * Q
            for j in range(n):
                row[l * n + j] = row[l * n + j] + xs[j]
            for j in range(d):
                row[d * n + l * d + j] = row[d * n + l * d + j] + xs[n + j]
            if bb != NULL:
                row[nuw + l] = row[nuw + l] + 1
            fl = fp[l]
            if keep == 0:
                for q in range(Q):
                    row[q] = row[q] * fl
            else:
                for q in range(Q):
                    row[q] = row[q] * fl + keep * Pp[l * Q + q]
        # the rows of J: V P^t for U, W (and b); S^t for V; 1 for c
        Jt = J + t * m * P
        _gemm(m, d, nuw, V, d, 1, Pn, ct, Q, Q, Jt, P, 0)
        for k in range(m):
            row = Jt + k * P
            for q in range(nuw, P):
                row[q] = 0
            for j in range(d):
                row[nuw + k * d + j] = z[j]
            acc = 0
            for j in range(d):
                acc = acc + V[k * d + j] * z[j]
            Y[t * m + k] = acc + (cb[k] if cb != NULL else 0)
        if bb != NULL:
            _gemm(m, d, d, V, d, 1, Pn + nuw, ct, Q, Q, Jt + nuw + m * d, P, 0)
            for k in range(m):
                Jt[k * P + nuw + m * d + d + k] = 1
        tmp = Pp
        Pp = Pn
        Pn = tmp
        for j in range(d):
            xs[n + j] = z[j]
    for l in range(d * Q):
        sens[l] = Pp[l]
    for j in range(d):
        s[j] = xs[n + j]


def _output_jacobian(const floating[::1] theta, const floating[:, :, ::1] X,
                     floating[:, ::1] s, floating[:, :, ::1] sens,
                     floating[:, :, :, ::1] J, floating[:, :, ::1] Y, floating[::1] ws,
                     int n_threads, int act, double leak):
    """dY/dtheta of every step of a batch, in forward mode, and the outputs.

    IN: theta (_parameter_size,), X (N, T, n), N >= 1, T >= 1.
    IN/OUT: s (N, d) the states S^0, then S^T; sens (N, d, Q) the
    sensitivities (zeros at the start of a sequence), then those of S^T.
    OUT: J (N, T, m, P) in theta's layout (U, W, V, then b, c), Y (N, T, m).
    SCRATCH: ws (_jacobian_workspace_size(n, d, bias, n_threads),).
    Each sequence is one thread's. Returns the number of NaN and infinite
    values in the weights, X and s; raises what a signal handler raised
    while it ran (``_Watch``).
    """
    cdef Py_ssize_t N = X.shape[0], T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = s.shape[1], m = J.shape[2], P = J.shape[3], i
    cdef const floating* U = &theta[0]
    cdef const floating* bb = _bias_of(U, theta.shape[0], n, d, m, False)
    cdef Py_ssize_t stride = _jac_work(n, d, bb != NULL), bad
    cdef _Watch watch
    cdef _Watch* wp = &watch
    cdef _Cell cell = _cell(act, leak)
    with nogil:
        _watch_start(wp)
        bad = (_nonfinite(U, theta.shape[0]) + _nonfinite(&X[0, 0, 0], N * T * n)
               + _nonfinite(&s[0, 0], N * d))
    with nogil, parallel(num_threads=n_threads):
        for i in prange(N, schedule="static"):
            _jacobian_item(cell, T, n, d, m, P, &X[i, 0, 0], &s[i, 0], &sens[i, 0, 0],
                           U, U + d * n, U + d * n + d * d, bb, &J[i, 0, 0, 0], &Y[i, 0, 0],
                           &ws[0] + threadid() * stride, wp)
    if watch.stop:
        _raise_stopped()
    return bad


def _gram_update(const floating[:, ::1] B, floating[::1] Bp, floating[:, ::1] H,
                 int n_threads):
    """H += A.T B over the upper triangle, A = B[:, :p]: the Gauss-Newton sums J^T [J r].

    IN: B ([J r], R rows of c = p + 1). IN/OUT: H (p, c): each panel's CT
    rows from their diagonal rightwards (the rest, H's lower triangle, is
    left to the caller: J^T J is symmetric). SCRATCH: Bp (R c,), B packed
    in panels (``_pack``), which are both operands: each panel's rows are
    contiguous. The row blocks are split over threads; every element is one multiply-add chain
    in the order of R, so no bit depends on the thread count. Returns 0.
    """
    cdef Py_ssize_t R = B.shape[0], c = B.shape[1], p = H.shape[0]
    cdef Py_ssize_t ct = _ct(<floating>0), npanels = c // ct, rem = c % ct
    cdef Py_ssize_t nb = (p + ct - 1) // ct, i, r0, nr
    cdef const floating* A
    if p == 0 or R == 0:
        return 0
    with nogil:
        _pack(&B[0, 0], R, c, c, 1, &Bp[0], R, 0)
    with nogil, parallel(num_threads=n_threads):
        for i in prange(nb, schedule="dynamic"):
            # the rows of panel i: A = B[:, r0:r0 + nr].T, read from the packed
            # panel (rows of ct columns one after the other), or from the
            # columns past the last whole panel (rows of rem)
            r0 = i * ct
            nr = p - r0 if p - r0 < ct else ct
            A = &Bp[0] + i * R * ct
            # H[r0:r0 + nr, r0:] += B[:, r0:r0 + nr].T B[:, r0:]
            _gemm(nr, R, c - r0, A, 1, ct if i < npanels else rem, A, R * ct, ct, rem,
                  &H[r0, r0], c, 1)
    return 0
