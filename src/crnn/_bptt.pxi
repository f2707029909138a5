# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# Backpropagation through time over a batch (included by _core.pyx).
#
#   G^{T+1} = delta^{T+1} = 0,  G^t = V.T e^t + W.T delta^{t+1} + (1 - a) G^{t+1},
#   delta^t = a f'(Z^t) G^t       (G^t = dE/dS^t, delta^t = dE/dZ^t; the cell
#                                  computes them: ``_cell_back``)
#   dE/d[U W] = sum_t delta^t [X^t, S^{t-1}].T,  dE/dV = sum_t e^t (S^t).T
#   dE/db = sum_t delta^t,  dE/dc = sum_t e^t,  dE/dS^0 = W.T delta^1 + (1 - a) G^1
#
# With a = 1 (no leak) G^t is not kept and f' comes from the states; with
# a < 1 the forward pass keeps H^t = f(Z^t) for f' and the backward pass G^t.
#
# Three phases, each parallel over blocks of sequences or rows of the result:
#
#   _bptt_forward    the states of every step, [x^t, s^{t-1}] rows, and the
#                    output errors e^t (buffer A and the start of buffer B)
#   _bptt_backward   the deltas of one block of steps, from the last block to
#                    the first, into a ring (the rest of buffer B)
#   _bptt_products   after each block: the gradient's products over its
#                    steps, each element's chain going on from the block
#                    after it (so the sum runs from the last step to the first,
#                    in an order fixed by the sizes alone)
#
# Buffers (``_bptt_buffer_sizes``): block-major, so that each thread writes a
# region of its own. A holds the blocks of R sequences one after the other,
# each T + 1 steps of its rows; the ring likewise with ring_steps = L + 1
# steps, step t in slot t mod ring_steps. ``_Steps`` walks these rows in the
# order of the products.


cdef struct _Steps:
    # A walk over the rows of BPTT's buffers in the order of the final
    # products: steps t .. of the group of G sequences g0 .. g0 + G - 1, step
    # by step, each step's sequences in order; row k of the walk is sequence
    # b at step t + toff. Set by the caller: N, R (sequences per block; the
    # last block may be shorter), state_steps (T + 1, A's steps per block),
    # ring_steps, G, g0, toff. The rest is the position: step t, sequence b,
    # the first sequence b0 of its block and that block's rows Rb.
    Py_ssize_t N, R, state_steps, ring_steps, G, g0, toff
    Py_ssize_t t, b, b0, Rb


cdef inline void _steps_at(_Steps* w, Py_ssize_t t) noexcept nogil:
    """Point the walk w at the first sequence of its group at step t."""
    w.t = t
    w.b = w.g0
    w.b0 = w.g0 // w.R * w.R
    w.Rb = w.N - w.b0 if w.N - w.b0 < w.R else w.R


cdef inline Py_ssize_t _steps_row(const _Steps* w) noexcept nogil:
    """The row of the states' buffer the walk w is at."""
    return w.b0 * w.state_steps + (w.t + w.toff) * w.Rb + w.b - w.b0


cdef inline Py_ssize_t _steps_ring(const _Steps* w) noexcept nogil:
    """The row of the ring the walk w is at."""
    return w.b0 * w.ring_steps + (w.t + w.toff) % w.ring_steps * w.Rb + w.b - w.b0


cdef inline void _steps_next(_Steps* w) noexcept nogil:
    """Move the walk w on to its next row."""
    w.b = w.b + 1
    if w.b == w.g0 + w.G:                           # the group's next step
        _steps_at(w, w.t + 1)
    elif w.b == w.b0 + w.R:
        w.b0 = w.b
        w.Rb = w.N - w.b0 if w.N - w.b0 < w.R else w.R


cdef void _steps_product(Py_ssize_t R, Py_ssize_t K, Py_ssize_t C, _Steps* w,
                         const floating* A, Py_ssize_t lda, const floating* B,
                         Py_ssize_t ldb, floating* O, Py_ssize_t ldo, floating* apk,
                         bint acc) noexcept nogil:
    """O (+)= A.T B over K rows of BPTT's buffers from the walk w.

    Row k of A (K x R) is the walk's ring row (A + row lda), row k of B
    (K x C) its row of the states' buffer (B + row ldb); the walk is left
    past the last row. ``_gemm_tn`` in chunks of _KC rows, the chains going
    on from one chunk to the next (and from O when acc).
    """
    cdef const floating* arows[_KC]
    cdef const floating* brows[_KC]
    cdef Py_ssize_t k0 = 0, kc, k
    while k0 < K:
        kc = K - k0 if K - k0 < _KC else _KC
        for k in range(kc):
            arows[k] = A + _steps_ring(w) * lda
            brows[k] = B + _steps_row(w) * ldb
            _steps_next(w)
        _gemm_tn(R, kc, C, arows, brows, O, ldo, apk, acc or k0 > 0)
        k0 = k0 + kc


cdef void _bptt_forward(_Cell cell, Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T, Py_ssize_t n,
                        Py_ssize_t d, Py_ssize_t m, const floating* X,
                        const floating* target, const floating* weight, const floating* s0,
                        floating g, const floating* pack, const floating* bb,
                        const floating* cb, floating* A, floating* Eb, floating* Hb,
                        floating* E, _Watch* w) noexcept nogil:
    """BPTT's forward recurrence for sequences b0 .. b0 + R - 1.

    A ((T + 1) N rows of n + d) holds the blocks of R sequences (b0 = a
    multiple of R) one after the other, each block time-major (T + 1 steps of
    its rows; see ``_Steps``), so that each thread writes a region of its
    own. It gets row [x^t, s^{t-1}] of sequence b at A[t, b] for t = 0 .. T - 1
    (0-based steps; S^0 = s0) and S^T in A[T, b, n:]. Eb (T N rows of m,
    laid out alike with T steps) gets e^t = -2 g w^t (target^t - Y^t) at
    Eb[t, b] (w^t the weights, or 1 when weight is NULL); Hb, when not NULL
    (a leaky cell), H^t = f(Z^t), laid out as Eb with d scalars a row.
    bb, cb: the biases b and c, or NULL. The outputs and e of
    ``_hist_steps(R, n + d)`` steps at a time are one product (they do not
    feed the recurrence).
    OUT: E[b], the loss of each sequence. Returns early, unfinished, when
    the call is stopped (``_stopped``).
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
        if _stopped(w, R * (K1 + m) * d):
            return
        At = A + (b0 * (T + 1) + t * R) * K1
        An = At + R * K1
        for r in range(R):
            for j in range(n):
                At[r * K1 + j] = X[((b0 + r) * T + t) * n + j]
        _gemm_packed(R, K1, d, At, K1, 1, UW, An + n, K1, 0)
        _cell_states(cell, An + n, R, K1, d, bb, At + n, K1,
                     Hb + (b0 * T + t * R) * d if Hb != NULL else NULL, d)
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
                    E[b0 + r] = _residuals(
                        target + ((b0 + r) * T + t0 + j) * m,
                        weight + ((b0 + r) * T + t0 + j) * m if weight != NULL else NULL,
                        Et + (j * R + r) * m, m, g, E[b0 + r])
            t0 = t + 1
    for r in range(R):
        E[b0 + r] = g * E[b0 + r]


cdef void _bptt_backward(_Cell cell, Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T,
                         Py_ssize_t ring_steps, Py_ssize_t t1, Py_ssize_t t2, Py_ssize_t n,
                         Py_ssize_t d, Py_ssize_t m, const floating* pack, const floating* A,
                         const floating* Eb, const floating* Hb, floating* Gb, floating* ring,
                         floating* ds0) noexcept nogil:
    """BPTT's backward recurrence over steps t2 - 1 down to t1, sequences b0 .. b0 + R - 1.

    A and Eb: from ``_bptt_forward``. The ring (ring_steps N rows of m + d,
    blocks of R sequences one after the other, each ring_steps steps of its
    rows, step t in slot t mod ring_steps; t2 - t1 < ring_steps) gets
    [e^{t-1}, delta^t] at step t for t = t1 .. t2 (e^{t1 - 1} excepted), with
    delta^t from V.T e^t + W.T delta^{t+1} by ``_cell_back`` and delta^T = 0,
    so that one product per step, [e^t, delta^{t+1}] [V; W], runs the
    recurrence. Called for the blocks of steps from the last to the first:
    delta^{t2} is in the ring from the block before (or is delta^T = 0).
    A leaky cell (Hb not NULL): f' from H^t in Hb (``_bptt_forward``), and
    G^t = dE/dS^t carried in Gb (N rows of d), G^T = 0.
    OUT (t1 = 0): ds0[b] = W.T delta^0 (+ (1 - a) G^0).
    """
    cdef Py_ssize_t K1 = n + d, K2 = m + d, t, r, j
    cdef const floating* VW = pack + K1 * d + d * m
    cdef const floating* Wr = VW + K2 * d
    cdef floating* Rg = ring + b0 * ring_steps * K2
    cdef floating* Gr = Gb + b0 * d if Hb != NULL else NULL
    cdef floating* Bt
    cdef floating* Bn
    cdef const floating* An
    cdef const floating* src
    cdef floating keep
    if t2 == T:                                     # delta^T = 0
        Bt = Rg + T % ring_steps * R * K2
        for r in range(R):
            for j in range(d):
                Bt[r * K2 + m + j] = 0
        if Gr != NULL:                              # G^T = 0
            for r in range(R * d):
                Gr[r] = 0
    for t in range(t1 + 1, t2 + 1):                # e^{t-1} into step t's rows
        Bt = Rg + t % ring_steps * R * K2
        src = Eb + (b0 * T + (t - 1) * R) * m
        for r in range(R):
            for j in range(m):
                Bt[r * K2 + j] = src[r * m + j]
    for t in range(t2 - 1, t1 - 1, -1):
        Bt = Rg + t % ring_steps * R * K2
        Bn = Rg + (t + 1) % ring_steps * R * K2
        _gemm_packed(R, K2, d, Bn, K2, 1, VW, Bt + m, K2, 0)
        if Hb == NULL:                              # f' from the states S^t = H^t
            An = A + (b0 * (T + 1) + (t + 1) * R) * K1
            _cell_back(cell, Bt + m, R, K2, d, An + n, K1, NULL)
        else:
            _cell_back(cell, Bt + m, R, K2, d, Hb + (b0 * T + t * R) * d, d, Gr)
    if t1 == 0:
        _gemm_packed(R, d, d, Rg + m, K2, 1, Wr, ds0 + b0 * d, d, 0)
        if Gr != NULL:
            keep = <floating>(1.0 - cell.a)
            for r in range(R * d):
                ds0[b0 * d + r] = ds0[b0 * d + r] + keep * Gr[r]


cdef void _bptt_products(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t g0, Py_ssize_t G,
                         Py_ssize_t t1, Py_ssize_t t2, Py_ssize_t N, Py_ssize_t Rs,
                         Py_ssize_t T, Py_ssize_t ring_steps, Py_ssize_t n, Py_ssize_t d,
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
    (a stride of ``_bptt_ws``).
    """
    cdef Py_ssize_t K1 = n + d, K2 = m + d, TK = (t2 - t1) * G
    cdef Py_ssize_t lo, hi, i, _k
    cdef _Steps w
    cdef floating* sums
    cdef const floating* row
    w.N = N
    w.R = Rs
    w.state_steps = T + 1
    w.ring_steps = ring_steps
    w.G = G
    w.g0 = g0
    w.toff = 0
    lo = r0
    hi = r1 if r1 < d else d
    if hi > lo:
        _steps_at(&w, t1)
        _steps_product(hi - lo, TK, K1, &w, ring + m + lo, K2, A, K1, grad + lo * K1, K1,
                       apk, acc)
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
        _steps_product(hi - lo, TK, d, &w, ring + lo, K2, A + n, K1, grad + d * K1 + lo * d,
                       d, apk, acc)
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


cdef inline Py_ssize_t _bptt_ws(Py_ssize_t N, Py_ssize_t T, Py_ssize_t n, Py_ssize_t d,
                                Py_ssize_t m, Py_ssize_t L, Py_ssize_t K, Py_ssize_t P,
                                bint leaky, int n_threads, Py_ssize_t* at) noexcept nogil:
    """Scalars of BPTT's workspace; at (7,): where its parts start.

    In order, each from a cache line: the packed weights, A and B
    (``_bptt_buffer_sizes``), each thread's products' workspace, K + 1
    gradients of P scalars (the K parts, then their sum), and for a leaky
    cell H (T N d) and G (N d) (``_bptt_backward``).
    """
    cdef Py_ssize_t work = _up16(_gemm_tn_work_size(d if d > m else m))
    at[0] = _up16(_packed(n, d, m))                                   # A
    at[1] = at[0] + _up16((T + 1) * N * (n + d))                      # B
    at[2] = at[1] + _up16(_ring_at(N, T, m) + (L + 1) * N * (m + d))  # work
    at[3] = work                                                      # its stride
    at[4] = at[2] + n_threads * work                                  # the parts
    at[5] = at[4] + _up16((K + 1) * P)                                # H
    at[6] = at[5] + (_up16(T * N * d) if leaky else 0)                # G
    return at[6] + (N * d if leaky else 0)


def _bptt_workspace_size(Py_ssize_t N, Py_ssize_t T, Py_ssize_t n, Py_ssize_t d,
                         Py_ssize_t m, Py_ssize_t L, Py_ssize_t K, bint bias, bint leaky,
                         int n_threads):
    """Scalars of the workspace ``_bptt_gradient`` takes for K parts (a leaky cell: leaky)."""
    cdef Py_ssize_t at[7]
    return _bptt_ws(N, T, n, d, m, L, K, _grad_size(n, d, m, bias), leaky, n_threads, at)


def _bptt_gradient(const floating[::1] theta, const floating[:, :, ::1] X,
                   const floating[:, :, ::1] target, const floating[:, :, ::1] weight,
                   const floating[:, ::1] s0, floating g,
                   floating[::1] out, floating[::1] ws, Py_ssize_t K, Py_ssize_t L,
                   int n_threads, int act, double leak):
    """Exact gradient of E over a batch by backpropagation through time.

    IN: theta (_parameter_size,): U (d, n), W (d, d), V (m, d), then b (d,)
    and c (m,) when the model has biases; X (N, T, n), target (N, T, m),
    weight (N, T, m) the weights of the squared errors, or None (or empty) for
    none, s0 (N, d), g; act and leak, the cell (as ``_forward``).
    OUT (overwritten): out (_gradient_size + N d + N,): dE/dtheta, summed
    over the batch, in theta's layout (U, W, V, then b, c); then dE/dS^0 of
    each sequence (N, d); then each sequence's loss E (N,).
    SCRATCH: ws (_bptt_workspace_size(N, T, n, d, m, L, K, bias, leak != 1,
    n_threads),): the packed weights, A and B (_bptt_buffer_sizes), each
    thread's workspace, and K + 1 gradients (K >= 1): K parts, then their
    sum in the kernels' gradient layout ([U W] by rows, V, b, c), which out
    gets reordered.
    The backward recurrence runs in blocks of L steps, from the last to the
    first; after each block, the gradient's products over the block's
    steps, the chains going on from the block before. The batch's gradient
    is K such products, each over a group of ceil(N / K) sequences (K is
    chosen by the caller from the sizes alone; with one thread per block of
    as many, each reads the rows its own thread wrote), their rows shared
    out between the threads, then added in order. No bit depends on the
    thread count.
    Returns the number of NaN and infinite values in the weights and inputs;
    raises what a signal handler raised while it ran (``_Watch``).
    """
    cdef Py_ssize_t N = X.shape[0], T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = s0.shape[1], m = target.shape[2]
    cdef const floating* U = &theta[0]
    cdef Py_ssize_t P = theta.shape[0], at[7]          # dE/dtheta has theta's size
    cdef floating* pack = &ws[0]
    cdef floating* A
    cdef floating* B
    cdef floating* work
    cdef floating* parts
    cdef floating* grad
    cdef floating* ds0 = &out[P]
    cdef floating* E = &out[P + N * d]
    cdef Py_ssize_t R = _rows(N, n_threads), i, blk, b0, Rb, it, p
    cdef Py_ssize_t nrb = (n_threads + K - 1) // K     # row blocks per part
    cdef Py_ssize_t rows = ((d + m + nrb - 1) // nrb + 3) // 4 * 4, r0, r1, part
    cdef Py_ssize_t G = (N + K - 1) // K              # sequences per part
    cdef Py_ssize_t Kg = (N + G - 1) // G             # parts that have any
    cdef Py_ssize_t nblk = (T + L - 1) // L, tb, t1, t2, g0
    cdef Py_ssize_t ring = _ring_at(N, T, m)
    cdef const floating* bb = _bias_of(U, theta.shape[0], n, d, m, False)
    cdef const floating* cb = _bias_of(U, theta.shape[0], n, d, m, True)
    cdef floating acc
    cdef Py_ssize_t bad
    cdef _Watch watch
    cdef _Watch* wp = &watch
    cdef _Cell cell = _cell(act, leak)
    cdef const floating* wt = &weight[0, 0, 0] if weight is not None and weight.shape[0] > 0 else NULL
    cdef floating* Hb = NULL
    cdef floating* Gb = NULL
    with nogil:
        _watch_start(wp)
        _bptt_ws(N, T, n, d, m, L, K, P, leak != 1, n_threads, at)
        A = pack + at[0]
        B = pack + at[1]
        work = pack + at[2]
        parts = pack + at[4]
        grad = parts + K * P
        if leak != 1:
            Hb = pack + at[5]
            Gb = pack + at[6]
        bad = (_nonfinite(U, theta.shape[0])
               + _nonfinite(&X[0, 0, 0], N * T * n) + _nonfinite(&target[0, 0, 0], N * T * m)
               + _nonfinite(&s0[0, 0], N * d))
        if wt != NULL:
            bad = bad + _nonfinite(wt, N * T * m)
        _pack_weights(U, n, d, m, pack, True)
        memset(grad, 0, P * sizeof(floating))
        if n_threads == 1:  # no thread team (as _forward_batch): the loops below, in turn
            _bptt_forward(cell, 0, N, T, n, d, m, &X[0, 0, 0], &target[0, 0, 0], wt, &s0[0, 0],
                          g, pack, bb, cb, A, B, Hb, E, wp)
            for tb in range(nblk - 1, -1, -1):
                t1 = tb * L
                t2 = T if t1 + L > T else t1 + L
                if not _stopped(wp, N * (t2 - t1) * (m + d) * d):
                    _bptt_backward(cell, 0, N, T, L + 1, t1, t2, n, d, m, pack, A, B, Hb, Gb,
                                   B + ring, ds0)
                for part in range(Kg):
                    g0 = part * G
                    if not _stopped(wp, 0):
                        _bptt_products(0, d + m, g0, G if N - g0 > G else N - g0, t1, t2, N, N,
                                       T, L + 1, n, d, m, A, B + ring, bb != NULL,
                                       grad if Kg == 1 else parts + part * P, work, t2 < T)
            if Kg > 1:
                for p in range(P):
                    acc = parts[p]
                    for i in range(1, Kg):
                        acc = acc + parts[i * P + p]
                    grad[p] = acc
        else:  # one parallel region (threads woken once), its loops shared out in turn
            with parallel(num_threads=n_threads):
                for blk in prange(n_threads, schedule="static"):
                    b0 = blk * R
                    Rb = N - b0 if N - b0 < R else R
                    if Rb > 0:
                        _bptt_forward(cell, b0, Rb, T, n, d, m, &X[0, 0, 0], &target[0, 0, 0], wt,
                                      &s0[0, 0], g, pack, bb, cb, A, B, Hb, E, wp)
                for tb in range(nblk - 1, -1, -1):
                    t1 = tb * L
                    t2 = T if t1 + L > T else t1 + L
                    for blk in prange(n_threads, schedule="static"):
                        b0 = blk * R
                        Rb = N - b0 if N - b0 < R else R
                        # a stopped call skips its work, but every thread still meets
                        # every loop (the threads of a team must)
                        if Rb > 0 and not _stopped(wp, Rb * (t2 - t1) * (m + d) * d):
                            _bptt_backward(cell, b0, Rb, T, L + 1, t1, t2, n, d, m, pack, A,
                                           B, Hb, Gb, B + ring, ds0)
                    for it in prange(Kg * nrb, schedule="static"):
                        part = it // nrb
                        g0 = part * G
                        r0 = (it % nrb) * rows
                        r1 = r0 + rows if r0 + rows < d + m else d + m
                        if r1 > r0 and not _stopped(wp, 0):
                            _bptt_products(r0, r1, g0, G if N - g0 > G else N - g0, t1, t2, N,
                                           R, T, L + 1, n, d, m, A, B + ring, bb != NULL,
                                           grad if Kg == 1 else parts + part * P,
                                           work + threadid() * at[3], t2 < T)
                if Kg > 1:                                  # the parts, added in order
                    for p in prange(P, schedule="static"):
                        acc = parts[p]
                        for i in range(1, Kg):
                            acc = acc + parts[i * P + p]
                        grad[p] = acc
        _to_theta_layout(grad, &out[0], n, d, P)
    if watch.stop:
        _raise_stopped()
    return bad
