# SPDX-License-Identifier: BSD-3-Clause
"""Compiled kernels of crnn: the Elman RNN forward pass, its loss and gradients.

Design
------
The model (see ``SEED.md``) is::

    Z^t = U X^t + W S^{t-1},   S^t = tanh(Z^t),   Y^t = V S^t
    E   = g sum_t sum_k (target^t_k - Y^t_k)^2

This module is the private, compiled layer. It assumes every argument has
already been validated and allocated by ``crnn._rnn`` (shapes agree, arrays
are C-contiguous, of one floating dtype, finite, N >= 1 and T >= 1); with
bounds checks off it does not look again.

Layers:

(a) pointer helpers: small matrix-vector loops on one step (``noexcept nogil``);
(b) per-sequence kernels ``_*_one``: the time recurrence of one sequence,
    serial in time;
(c) ``def`` entry points: release the GIL once and run the sequences of a
    batch in parallel with ``prange`` (OpenMP when built with it).

Determinism: every sequence's gradient is computed serially by one thread
into a slot of its own, and the slots are added into the total in sequence
order, so the result does not depend on the thread count or the slot count.
The slot buffer holds a bounded number of sequences (a chunk of the batch),
not one slot per sequence.

Workspace: the caller allocates it (and may reuse it across calls); its size
comes from the ``*_work_size`` functions here, the one place that knows the
layout.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt, tanh, tanhf
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


def _openmp_enabled():
    """Return True when the kernels were compiled with OpenMP."""
    return bool(CRNN_OPENMP)


def _debug_build():
    """Return True when the kernels were compiled with bounds checks on."""
    return bool(CRNN_DEBUG)


# ---------------------------------------------------------------------------
# (a) one-step helpers on raw pointers (row-major, unit stride)
# ---------------------------------------------------------------------------

cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


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
                             Py_ssize_t d, Py_ssize_t n,
                             const floating* x, const floating* s_prev,
                             floating* s) noexcept nogil:
    """s = tanh(U @ x + W @ s_prev); s must not alias s_prev."""
    cdef Py_ssize_t i
    for i in range(d):
        s[i] = 0
    _matvec(U, d, n, x, s)
    _matvec(W, d, d, s_prev, s)
    for i in range(d):
        s[i] = _tanh(s[i])


cdef inline floating _output_error(const floating* V, Py_ssize_t m, Py_ssize_t d,
                                   const floating* s, const floating* target,
                                   floating g, floating* e) noexcept nogil:
    """e = -2 g (target - V @ s); return sum_k (target_k - (V @ s)_k)^2."""
    cdef Py_ssize_t k
    cdef floating r, sq = 0
    for k in range(m):
        e[k] = 0
    _matvec(V, m, d, s, e)              # e = y = V @ s
    for k in range(m):
        r = target[k] - e[k]
        sq = sq + r * r
        e[k] = -2 * g * r
    return sq


cdef inline void _sensitivity_step(const floating* W, Py_ssize_t d, Py_ssize_t n,
                                   Py_ssize_t Q, const floating* x,
                                   const floating* s_prev, const floating* s,
                                   const floating* P_prev, floating* P) noexcept nogil:
    """One step of the seed's sensitivity recursion, P = f'(Z) * (direct + W @ P_prev).

    P and P_prev are (d, Q) with Q >= d*n + d*d: column i*n + j holds
    dS_l/du_ij, column d*n + i*d + j holds dS_l/dw_ij (any further columns,
    such as the initial state's, have no direct term). direct[l, u_ij] =
    delta_li x_j and direct[l, w_ij] = delta_li s_prev_j; f'(Z) = 1 - s^2.
    P must not alias P_prev.
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
        fp = 1 - s[l] * s[l]
        for q in range(Q):
            row[q] = row[q] * fp


# ---------------------------------------------------------------------------
# (b) one sequence
# ---------------------------------------------------------------------------

cdef void _forward_one(const floating[:, ::1] U, const floating[:, ::1] W,
                       const floating[:, ::1] V, const floating[:, :, ::1] X,
                       const floating[:, ::1] s0, floating[:, :, ::1] S,
                       floating[:, :, ::1] Y, Py_ssize_t b) noexcept nogil:
    """Forward pass of sequence b. OUT: S[b], Y[b]."""
    cdef Py_ssize_t T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0], t, k
    cdef const floating* s_prev = &s0[b, 0]
    for t in range(T):
        _state_step(&U[0, 0], &W[0, 0], d, n, &X[b, t, 0], s_prev, &S[b, t, 0])
        for k in range(m):
            Y[b, t, k] = 0
        _matvec(&V[0, 0], m, d, &S[b, t, 0], &Y[b, t, 0])
        s_prev = &S[b, t, 0]


cdef floating _loss_one(const floating[:, ::1] U, const floating[:, ::1] W,
                        const floating[:, ::1] V, const floating[:, :, ::1] X,
                        const floating[:, :, ::1] target, const floating[:, ::1] s0,
                        floating g, floating* work, Py_ssize_t b) noexcept nogil:
    """Return E of sequence b; work holds 2 d + m scalars (two states, e)."""
    cdef Py_ssize_t T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0], t, i
    cdef floating* s_prev = work
    cdef floating* s = work + d
    cdef floating* e = work + 2 * d
    cdef floating* tmp
    cdef floating sq = 0
    for i in range(d):
        s_prev[i] = s0[b, i]
    for t in range(T):
        _state_step(&U[0, 0], &W[0, 0], d, n, &X[b, t, 0], s_prev, s)
        sq = sq + _output_error(&V[0, 0], m, d, s, &target[b, t, 0], g, e)
        tmp = s_prev
        s_prev = s
        s = tmp
    return g * sq


cdef floating _bptt_one(const floating[:, ::1] U, const floating[:, ::1] W,
                        const floating[:, ::1] V, const floating[:, :, ::1] X,
                        const floating[:, :, ::1] target, const floating[:, ::1] s0,
                        floating g, floating* grad, floating* ds0,
                        floating* work, Py_ssize_t b) noexcept nogil:
    """Backpropagation through time for sequence b; return its E.

    OUT: grad (d*n + d*d + m*d: dE/dU, dE/dW, dE/dV, overwritten),
    ds0 (d: dE/dS^0, overwritten). work holds (T+1) d + T m + 2 d scalars.
    """
    cdef Py_ssize_t T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0], t, i
    cdef floating* hs = work                        # (T+1, d): S^0 .. S^T
    cdef floating* es = work + (T + 1) * d          # (T, m): e^t = dE^t/dY^t
    cdef floating* delta = es + T * m               # (d,): delta^t
    cdef floating* delta_next = delta + d           # (d,): delta^{t+1}
    cdef floating* tmp
    cdef floating* dU = grad
    cdef floating* dW = grad + d * n
    cdef floating* dV = dW + d * d
    cdef floating sq = 0

    # forward, keeping every state and every output error
    for i in range(d):
        hs[i] = s0[b, i]
    for t in range(T):
        _state_step(&U[0, 0], &W[0, 0], d, n, &X[b, t, 0], hs + t * d, hs + (t + 1) * d)
        sq = sq + _output_error(&V[0, 0], m, d, hs + (t + 1) * d,
                                &target[b, t, 0], g, es + t * m)

    # backward: delta^t = f'(Z^t) * (V.T e^t + W.T delta^{t+1}), delta^{T+1} = 0
    memset(grad, 0, (d * n + d * d + m * d) * sizeof(floating))
    memset(delta_next, 0, d * sizeof(floating))
    for t in range(T - 1, -1, -1):
        for i in range(d):
            delta[i] = 0
        _matTvec(&V[0, 0], m, d, es + t * m, delta)
        _matTvec(&W[0, 0], d, d, delta_next, delta)
        for i in range(d):
            delta[i] = delta[i] * (1 - hs[(t + 1) * d + i] * hs[(t + 1) * d + i])
        _outer(dU, d, n, delta, &X[b, t, 0])           # dE/dU += delta^t X^t.T
        _outer(dW, d, d, delta, hs + t * d)           # dE/dW += delta^t S^{t-1}.T
        _outer(dV, m, d, es + t * m, hs + (t + 1) * d)  # dE/dV += e^t S^t.T
        tmp = delta_next
        delta_next = delta
        delta = tmp

    # dE/dS^0 = W.T delta^1
    for i in range(d):
        ds0[i] = 0
    _matTvec(&W[0, 0], d, d, delta_next, ds0)
    return g * sq


cdef floating _rtrl_one(const floating[:, ::1] U, const floating[:, ::1] W,
                        const floating[:, ::1] V, const floating[:, :, ::1] X,
                        const floating[:, :, ::1] target, const floating[:, ::1] s0,
                        floating g, floating* grad, floating* ds0,
                        floating* work, Py_ssize_t b) noexcept nogil:
    """Real-time recurrent learning for sequence b; return its E.

    The sensitivities dS^t_l/dtheta_q of the state to every parameter are
    carried forward in time (the seed's recursion), in a (d, Q) matrix P with
    Q = d*n + d*d + d columns: u_ij at i*n + j, w_ij at d*n + i*d + j and the
    initial state s0_j at d*n + d*d + j::

        P^0 = [0 | 0 | I]
        P^t[l, q] = f'(z^t_l) (direct^t[l, q] + sum_m w_lm P^{t-1}[m, q])
        direct^t[l, u_ij] = delta_li x^t_j,  direct^t[l, w_ij] = delta_li s^{t-1}_j

    and the seed's double sum over k and l gives the gradient at each step::

        dE^t/dtheta_q = sum_k sum_l e^t_k v_kl P^t[l, q]
                      = sum_l c^t_l P^t[l, q],  c^t = V.T e^t

    OUT: grad (d*n + d*d + m*d, overwritten), ds0 (d, overwritten).
    work holds 3 d + m + 2 d Q scalars; memory does not depend on T.
    """
    cdef Py_ssize_t T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = U.shape[0], m = V.shape[0]
    cdef Py_ssize_t Q = d * n + d * d + d
    cdef Py_ssize_t t, j, l, q
    cdef floating* s_prev = work                    # (d,)
    cdef floating* s = work + d                     # (d,)
    cdef floating* c = work + 2 * d                 # (d,): V.T e^t
    cdef floating* e = work + 3 * d                 # (m,)
    cdef floating* P_prev = e + m                   # (d, Q)
    cdef floating* P = P_prev + d * Q               # (d, Q)
    cdef floating* tmp
    cdef floating* dV = grad + d * n + d * d
    cdef floating* row
    cdef floating cl, sq = 0

    memset(grad, 0, (d * n + d * d + m * d) * sizeof(floating))
    memset(ds0, 0, d * sizeof(floating))
    memset(P_prev, 0, d * Q * sizeof(floating))
    for l in range(d):
        P_prev[l * Q + d * n + d * d + l] = 1       # dS^0/dS^0 = I
        s_prev[l] = s0[b, l]

    for t in range(T):
        _state_step(&U[0, 0], &W[0, 0], d, n, &X[b, t, 0], s_prev, s)
        sq = sq + _output_error(&V[0, 0], m, d, s, &target[b, t, 0], g, e)

        _sensitivity_step(&W[0, 0], d, n, Q, &X[b, t, 0], s_prev, s, P_prev, P)

        # dE^t/dtheta = sum_k sum_l e_k v_kl P^t[l, :], summed over k first
        for l in range(d):
            c[l] = 0
        _matTvec(&V[0, 0], m, d, e, c)
        for l in range(d):
            cl = c[l]
            row = P + l * Q
            for q in range(d * n + d * d):
                grad[q] = grad[q] + cl * row[q]
            for j in range(d):
                ds0[j] = ds0[j] + cl * row[d * n + d * d + j]
        _outer(dV, m, d, e, s)                      # dE^t/dV = e^t S^t.T

        tmp = P_prev
        P_prev = P
        P = tmp
        tmp = s_prev
        s_prev = s
        s = tmp
    return g * sq


# ---------------------------------------------------------------------------
# (c) entry points over a batch
# ---------------------------------------------------------------------------

def _loss_work_size(Py_ssize_t T, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m):
    """Scalars of workspace one thread needs for ``_loss``."""
    return 2 * d + m


def _bptt_work_size(Py_ssize_t T, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m):
    """Scalars of workspace one thread needs for ``_gradient(method=0)``."""
    return (T + 1) * d + T * m + 2 * d


def _rtrl_work_size(Py_ssize_t T, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m):
    """Scalars of workspace one thread needs for ``_gradient(method=1)``."""
    return 3 * d + m + 2 * d * (d * n + d * d + d)


def _forward(const floating[:, ::1] U, const floating[:, ::1] W,
             const floating[:, ::1] V, const floating[:, :, ::1] X,
             const floating[:, ::1] s0,
             floating[:, :, ::1] S, floating[:, :, ::1] Y,
             int n_threads):
    """Forward pass over a batch.

    IN: U (d, n), W (d, d), V (m, d), X (N, T, n), s0 (N, d).
    OUT: S (N, T, d), Y (N, T, m), overwritten.
    """
    cdef Py_ssize_t N = X.shape[0], b
    for b in prange(N, nogil=True, num_threads=n_threads, schedule="static"):
        _forward_one(U, W, V, X, s0, S, Y, b)


def _loss(const floating[:, ::1] U, const floating[:, ::1] W,
          const floating[:, ::1] V, const floating[:, :, ::1] X,
          const floating[:, :, ::1] target, const floating[:, ::1] s0,
          floating g, floating[::1] E, floating[:, ::1] work, int n_threads):
    """Loss of every sequence of a batch, without storing states.

    IN: as ``_forward``, target (N, T, m), g.
    OUT: E (N,), E[b] = g sum_t sum_k (target - Y)^2 of sequence b.
    SCRATCH: work (n_threads, _loss_work_size(...)).
    """
    cdef Py_ssize_t N = X.shape[0], b
    for b in prange(N, nogil=True, num_threads=n_threads, schedule="static"):
        E[b] = _loss_one(U, W, V, X, target, s0, g, &work[threadid(), 0], b)


def _gradient(const floating[:, ::1] U, const floating[:, ::1] W,
              const floating[:, ::1] V, const floating[:, :, ::1] X,
              const floating[:, :, ::1] target, const floating[:, ::1] s0,
              floating g, int method,
              floating[::1] grad, floating[:, ::1] ds0, floating[::1] E,
              floating[:, ::1] slots, floating[:, ::1] work, int n_threads):
    """Exact gradient of E over a batch, by BPTT (method 0) or RTRL (method 1).

    IN: as ``_loss``.
    OUT: grad (d*n + d*d + m*d,): dE/dU, dE/dW, dE/dV raveled and summed over
    the batch in sequence order; ds0 (N, d): dE/dS^0 of each sequence;
    E (N,): the loss of each sequence. All overwritten.
    SCRATCH: slots (K, d*n + d*d + m*d) for K >= 1 sequences' gradients,
    work (n_threads, _bptt_work_size or _rtrl_work_size).
    """
    cdef Py_ssize_t N = X.shape[0], P = grad.shape[0], K = slots.shape[0]
    cdef Py_ssize_t start, stop, b, p
    cdef floating acc
    with nogil:
        memset(&grad[0], 0, P * sizeof(floating))
        start = 0
        while start < N:
            stop = start + K if start + K < N else N
            for b in prange(start, stop, num_threads=n_threads, schedule="static"):
                if method == 0:
                    E[b] = _bptt_one(U, W, V, X, target, s0, g, &slots[b - start, 0],
                                     &ds0[b, 0], &work[threadid(), 0], b)
                else:
                    E[b] = _rtrl_one(U, W, V, X, target, s0, g, &slots[b - start, 0],
                                     &ds0[b, 0], &work[threadid(), 0], b)
            # add the chunk's slots in sequence order: the sum is the same
            # whatever the thread count or K
            for p in prange(P, num_threads=n_threads, schedule="static"):
                acc = grad[p]
                for b in range(stop - start):
                    acc = acc + slots[b, p]
                grad[p] = acc
            start = stop


# ---------------------------------------------------------------------------
# online learning: RTRL one step at a time, the weights updated at every step
# ---------------------------------------------------------------------------

def _online_work_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m):
    """Scalars of workspace ``_rtrl_online`` needs."""
    return 2 * d + m + d * (d * n + d * d) + (d * n + d * d + m * d)


def _rtrl_online(floating[:, ::1] U, floating[:, ::1] W, floating[:, ::1] V,
                 const floating[:, ::1] X, const floating[:, ::1] target,
                 floating[::1] s, floating[:, ::1] P,
                 floating g, floating lr, floating clip,
                 floating[:, ::1] Y, floating[::1] E, floating[::1] grad_sum,
                 floating[::1] work):
    """Real-time recurrent learning over a chunk of one stream (Williams and Zipser).

    At each step t: the state and output from the current weights; the
    sensitivities P^t = f'(Z^t) (direct^t + W P^{t-1}) (columns: u_ij at
    i*n + j, then w_ij at d*n + i*d + j); the gradient of E^t alone,
    dE^t/dtheta = sum_k sum_l e^t_k v_kl P^t[l, :] and e^t S^t.T for V; its
    norm clipped to ``clip`` (0: no clipping); then theta -= lr dE^t/dtheta
    when lr > 0. The cost of a step does not depend on how long the stream
    has run.

    IN/OUT: U, W, V (updated when lr > 0), s (d,) the state, P (d, d*n + d*d)
    the sensitivities, grad_sum (d*n + d*d + m*d,) += every step's gradient.
    IN: X (T, n), target (T, m). OUT: Y (T, m) the outputs (from the weights
    before the step's update), E (T,) each step's E^t.
    SCRATCH: work (_online_work_size(n, d, m),).
    """
    cdef Py_ssize_t T = X.shape[0], n = X.shape[1], d = U.shape[0], m = V.shape[0]
    cdef Py_ssize_t Q = d * n + d * d, NP = d * n + d * d + m * d
    cdef Py_ssize_t t, i, j, l, q, k
    cdef floating* s_new = &work[0]                 # (d,)
    cdef floating* c = s_new + d                    # (d,): V.T e^t
    cdef floating* e = c + d                        # (m,)
    cdef floating* Pn = e + m                       # (d, Q)
    cdef floating* gstep = Pn + d * Q               # (NP,): dE^t/dtheta
    cdef floating* row
    cdef floating cl, norm, scale
    with nogil:
        for t in range(T):
            _state_step(&U[0, 0], &W[0, 0], d, n, &X[t, 0], &s[0], s_new)
            for k in range(m):
                Y[t, k] = 0
            _matvec(&V[0, 0], m, d, s_new, &Y[t, 0])
            E[t] = g * _output_error(&V[0, 0], m, d, s_new, &target[t, 0], g, e)
            _sensitivity_step(&W[0, 0], d, n, Q, &X[t, 0], &s[0], s_new, &P[0, 0], Pn)

            # the gradient of E^t: the seed's double sum, the k-sum first
            for l in range(d):
                c[l] = 0
            _matTvec(&V[0, 0], m, d, e, c)
            for q in range(NP):
                gstep[q] = 0
            for l in range(d):
                cl = c[l]
                row = Pn + l * Q
                for q in range(Q):
                    gstep[q] = gstep[q] + cl * row[q]
            _outer(gstep + Q, m, d, e, s_new)

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
