# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# The trained network as a dynamical system (crnn.dynamics): the Jacobians of
# the state map and the Lyapunov spectrum. Included by _core.pyx; its only
# caller is the dynamics section of crnn/_kernels.py.
#
# The state map of the cell (_cell.pxi), for an input x,
#
#   F(s) = (1 - a) s + a f(U x + W s + b),
#
# has the Jacobians
#
#   dF/ds = (1 - a) I + a diag(f'(z)) W,     dF/dx = a diag(f'(z)) U,
#
# z = U x + W s + b. A step's z is the forward pass's chain (x, then s, in
# the order of k, as ``_step_row``), then the bias and the cell
# (``_cell_states``): the states these kernels visit are the forward pass's,
# bit for bit.
#
# Interface:
#
#   _dyn_jacobians(theta, X, P, S, J, Jx, ws, m, n_threads, act, leak)
#        R independent rows (x, s): the next states F(s) and dF/ds (dF/dx)
#   _dyn_lyapunov(theta, X, s, Q, warmup, every, logs, at, ws, m, act, leak)
#        a trajectory with k tangent vectors, QR (Benettin et al. 1980)
#        every ``every`` steps (or as often as the vectors need): log |r_ii|
#        of each QR


from libc.math cimport INFINITY, log


cdef inline void _dyn_step(_Cell cell, const floating* theta, Py_ssize_t n, Py_ssize_t d,
                           const floating* bb, const floating* x, const floating* s,
                           floating* s_new, floating* h, floating* gain) noexcept nogil:
    """One step of the state map from s with input x: s_new = F(s), h = f(z), gain = a f'(z).

    z_j = sum_k [x, s]_k [U W]_jk is one multiply-add chain in the order of
    k (``_step_row``'s), then the cell adds b and forms the state.
    """
    cdef const floating* U = theta
    cdef const floating* W = U + d * n
    cdef Py_ssize_t j, k
    cdef floating acc
    for j in range(d):
        acc = 0
        for k in range(n):
            acc = _fma(x[k], U[j * n + k], acc)
        for k in range(d):
            acc = _fma(s[k], W[j * d + k], acc)
        s_new[j] = acc
    _cell_states(cell, s_new, 1, d, d, bb, s, d, h, d)
    for j in range(d):
        gain[j] = <floating>(cell.a * _slope(cell.f, h[j]))


def _dyn_jacobians_work_size(Py_ssize_t d, int n_threads):
    """Scalars of ``_dyn_jacobians``' workspace: h and the gains, for each thread."""
    return n_threads * _up16(2 * d)


def _dyn_jacobians(const floating[::1] theta, const floating[:, ::1] X, const floating[:, ::1] P,
                   floating[:, ::1] S, floating[:, :, ::1] J, floating[:, :, ::1] Jx,
                   floating[::1] ws, Py_ssize_t m, int n_threads, int act, double leak):
    """The state map and its Jacobians at R independent points, on n_threads threads.

    IN: theta (_parameter_size,) as ``_forward``, with m the output size;
    X (R, n) the inputs and P (R, d) the states S^{t-1} they meet; the cell
    (act, leak).
    OUT: S (R, d) the next states F(P[r]); J (R, d, d), J[r] = (1 - a) I +
    a diag(f'(z)) W; Jx (R, d, n), Jx[r] = a diag(f'(z)) U, when it has R
    rows (none when it has 0).
    SCRATCH: ws (_dyn_jacobians_work_size(d, n_threads),).
    """
    cdef Py_ssize_t R = X.shape[0], n = X.shape[1], d = P.shape[1], r, i, j, t
    cdef const floating* th = &theta[0]
    cdef const floating* bb = _bias_of(th, theta.shape[0], n, d, m, False)
    cdef const floating* U = th
    cdef const floating* W = th + d * n
    cdef bint inputs = Jx.shape[0] > 0
    cdef _Cell cell = _cell(act, leak)
    cdef floating keep = <floating>(1.0 - leak)
    cdef floating* h
    cdef floating* gain
    cdef floating gi
    if R == 0:
        return
    with nogil:
        for r in prange(R, num_threads=n_threads, schedule="static"):
            t = threadid()
            h = &ws[0] + t * _up16(2 * d)
            gain = h + d
            _dyn_step(cell, th, n, d, bb, &X[r, 0], &P[r, 0], &S[r, 0], h, gain)
            for i in range(d):
                gi = gain[i]
                for j in range(d):
                    J[r, i, j] = gi * W[i * d + j]
                if leak != 1:
                    J[r, i, i] = J[r, i, i] + keep
                if inputs:
                    for j in range(n):
                        Jx[r, i, j] = gi * U[i * n + j]


cdef inline floating _dyn_dot(const floating* a, const floating* b, Py_ssize_t d) noexcept nogil:
    """sum_l a_l b_l, in eight interleaved chains (l mod 8, which vectorise) added at the end."""
    cdef floating c[8]
    cdef Py_ssize_t l = 0, u
    for u in range(8):
        c[u] = 0
    while l + 8 <= d:
        for u in range(8):
            c[u] = _fma(a[l + u], b[l + u], c[u])
        l = l + 8
    while l < d:
        c[0] = _fma(a[l], b[l], c[0])
        l = l + 1
    return ((c[0] + c[4]) + (c[1] + c[5])) + ((c[2] + c[6]) + (c[3] + c[7]))


cdef enum:
    _DYN_NB = 8                 # rows per block of the QR


cdef inline Py_ssize_t _dyn_qr_work_size(Py_ssize_t k, Py_ssize_t d) noexcept nogil:
    """Scalars of ``_dyn_qr_rows``' workspace."""
    return (_up16(d * _DYN_NB) + _up16(k * _DYN_NB) + _up16(_gemm_tn_work_size(_DYN_NB))
            + _up16(_DYN_NB))


cdef void _dyn_qr_rows(floating* Q, Py_ssize_t k, Py_ssize_t d, floating* work,
                       floating* logr) noexcept nogil:
    """Orthonormalise the k rows of Q (k x d, k <= d) in place; logr[i] = log |r_ii|.

    Block classical Gram-Schmidt with one reorthogonalisation (BCGS2;
    "twice is enough": Giraud, Langou, Rozloznik and van den Eshof 2005,
    Barlow and Smoktunowicz 2013), by blocks of _DYN_NB rows: a block loses
    its components along the rows before it twice, as matrix products (C =
    Q[:i0] B.T, then B -= C.T Q[:i0]), then within the block each row loses
    its components along the block's earlier rows twice (dot products), and
    r_ii is its norm, by which it is divided. The QR of the basis'
    transpose, Q.T = Q' R; r_ii = 0 gives -inf and leaves the row zero.
    work: ``_dyn_qr_work_size(k, d)`` scalars.
    """
    cdef floating* pk = work                                # B.T packed (d x nb)
    cdef floating* ct = pk + _up16(d * _DYN_NB)              # C (i0 x nb)
    cdef floating* apk = ct + _up16(k * _DYN_NB)
    cdef floating* c = apk + _up16(_gemm_tn_work_size(_DYN_NB))
    cdef const floating* ar[_KC]
    cdef const floating* br[_KC]
    cdef Py_ssize_t i0 = 0, nb, i, j, j0, kc, l, p
    cdef floating nrm, cj
    cdef floating* B
    cdef floating* v
    cdef const floating* q
    while i0 < k:
        nb = k - i0 if k - i0 < _DYN_NB else _DYN_NB
        B = Q + i0 * d
        if i0 > 0:
            for p in range(2):
                # C = Q[:i0] B.T (i0 x nb), then B -= C.T Q[:i0], k in chunks of _KC
                _pack(B, d, nb, 1, d, pk, d, 0)
                _gemm_packed(i0, d, nb, Q, d, 1, pk, ct, nb, 0)
                for j in range(i0 * nb):
                    ct[j] = -ct[j]
                j0 = 0
                while j0 < i0:
                    kc = i0 - j0 if i0 - j0 < _KC else _KC
                    for j in range(kc):
                        ar[j] = ct + (j0 + j) * nb
                        br[j] = Q + (j0 + j) * d
                    _gemm_tn(nb, kc, d, ar, br, B, d, apk, 1)
                    j0 = j0 + kc
        for i in range(i0, i0 + nb):
            v = Q + i * d
            for p in range(2):
                for j in range(i0, i):
                    c[j - i0] = _dyn_dot(Q + j * d, v, d)
                for j in range(i0, i):
                    q = Q + j * d
                    cj = c[j - i0]
                    for l in range(d):
                        v[l] = v[l] - cj * q[l]
            nrm = sqrt(_dyn_dot(v, v, d))
            if nrm > 0:
                logr[i] = log(nrm)
                nrm = 1 / nrm
                for l in range(d):
                    v[l] = v[l] * nrm
            else:
                logr[i] = -INFINITY
        i0 = i0 + nb


cdef enum:
    _DYN_MOST_EVERY = 64        # the most steps between two QRs (adaptive)

cdef double _DYN_SPREAD = 9.2   # ln 1e4: how far apart the tangent vectors may grow


cdef Py_ssize_t _dyn_next_every(const floating* logr, Py_ssize_t k,
                                Py_ssize_t steps) noexcept nogil:
    """The steps before the next QR, from the log |r_ii| of the last one (over ``steps`` steps).

    The tangent vectors grew apart by exp(max - min of log |r_ii|) in those
    steps, and the largest grew or shrank by exp(max |log r_ii|): the next
    interval keeps both, at the same rates, below exp(_DYN_SPREAD) (1e4),
    so that the product of the Jacobians loses no digit the QR needs
    (rounding: 1e-16 times 1e4 per QR); between 1 and _DYN_MOST_EVERY.
    """
    cdef double lo = INFINITY, hi = -INFINITY, big = 0, v, rate
    cdef Py_ssize_t i
    for i in range(k):
        v = logr[i]
        if v > -INFINITY:
            lo = v if v < lo else lo
            hi = v if v > hi else hi
            big = fabs(v) if fabs(v) > big else big
    if hi < lo:                                     # every direction collapsed
        return 1
    rate = (hi - lo if hi - lo > big else big) / steps
    if rate * _DYN_MOST_EVERY <= _DYN_SPREAD:
        return _DYN_MOST_EVERY
    return <Py_ssize_t>(_DYN_SPREAD / rate) if rate < _DYN_SPREAD else 1


def _dyn_lyapunov_work_size(Py_ssize_t d, Py_ssize_t k):
    """Scalars of ``_dyn_lyapunov``'s workspace: W.T packed, a state, h, the gains, W.T Q, the QR's."""
    return _up16(d * d) + 3 * _up16(d) + _up16(k * d) + _dyn_qr_work_size(k, d)


def _dyn_lyapunov(const floating[::1] theta, const floating[:, ::1] X, floating[::1] s,
                  floating[:, ::1] Q, Py_ssize_t warmup, Py_ssize_t every,
                  floating[:, ::1] logs, Py_ssize_t[::1] at, floating[::1] ws, Py_ssize_t m,
                  int act, double leak):
    """Benettin's QR method along the trajectory driven by X, on one thread.

    IN: theta, m and the cell as ``_dyn_jacobians``; X (T, n) the inputs of
    every step, the warm-up's first; warmup < T; every >= 1 the steps
    between two QRs, or 0 to choose them as it goes (``_dyn_next_every``).
    IN/OUT: s (d,), S^0 on entry, S^T on exit; Q (k, d), k orthonormal rows
    (the tangent vectors) on entry, those of the last QR on exit.
    OUT: logs (C, k) and at (C,), C at least the QRs made (ceil((T -
    warmup) / every), or T - warmup when every is 0): row c holds log
    |r_ii| of the c-th QR and at[c] the steps after the warm-up it closes.
    After the warm-up (the state alone), each step multiplies the vectors
    by the step's Jacobian, Q <- Q J.T = (1 - a) Q + (Q W.T) diag(a f'(z)),
    and every so many steps, and after the last, Q.T = Q' R.
    SCRATCH: ws (_dyn_lyapunov_work_size(d, k),).
    Returns the number of QRs made; raises what a signal handler raised
    while it ran (``_Watch``).
    """
    cdef Py_ssize_t T = X.shape[0], n = X.shape[1], d = s.shape[0], k = Q.shape[0]
    cdef Py_ssize_t t, i, j, c = 0, since = 0, span = every if every > 0 else 1
    cdef const floating* th = &theta[0]
    cdef const floating* bb = _bias_of(th, theta.shape[0], n, d, m, False)
    cdef floating* WT = &ws[0]
    cdef floating* nxt = WT + _up16(d * d)
    cdef floating* h = nxt + _up16(d)
    cdef floating* gain = h + _up16(d)
    cdef floating* prod = gain + _up16(d)
    cdef floating* proj = prod + _up16(k * d)
    cdef floating* q = &Q[0, 0]
    cdef floating keep = <floating>(1.0 - leak)
    cdef _Cell cell = _cell(act, leak)
    cdef _Watch watch
    cdef _Watch* wp = &watch
    with nogil:
        _watch_start(wp)
        _pack(th + d * n, d, d, 1, d, WT, d, 0)            # W.T, for Q W.T
        for t in range(T):
            if _stopped(wp, (n + d) * d + (k * d * d if t >= warmup else 0)):
                break
            _dyn_step(cell, th, n, d, bb, &X[t, 0], &s[0], nxt, h, gain)
            for j in range(d):
                s[j] = nxt[j]
            if t < warmup:
                continue
            # Q <- Q J.T: prod = Q W.T, then (1 - a) Q + prod diag(gain)
            _gemm_packed(k, d, d, q, d, 1, WT, prod, d, 0)
            if leak == 1:
                for i in range(k):
                    for j in range(d):
                        q[i * d + j] = prod[i * d + j] * gain[j]
            else:
                for i in range(k):
                    for j in range(d):
                        q[i * d + j] = keep * q[i * d + j] + prod[i * d + j] * gain[j]
            since = since + 1
            if since == span or t + 1 == T:
                _dyn_qr_rows(q, k, d, proj, &logs[c, 0])
                at[c] = t + 1 - warmup
                if every == 0:
                    span = _dyn_next_every(&logs[c, 0], k, since)
                since = 0
                c = c + 1
    if watch.stop:
        _raise_stopped()
    return c
