# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# Real-time recurrent learning (Williams and Zipser, 1989), included by
# _core.pyx: the sensitivities dS^t/dtheta carried forward in time,
#
#   P^t = (1 - a) P^{t-1} + a f'(Z^t) (W P^{t-1} + direct^t),
#   dE^t/dtheta = sum_k sum_l e^t_k v_kl P^t[l, :]     (a = 1: Elman's cell)
#
# Two kernels:
#
#   _rtrl_gradient   a batch: each sequence's sensitivity columns in panels
#                    of CT columns, split in chunks over threads; the exact
#                    gradient of E over the batch (and dE/dS^0)
#   _rtrl_online     one stream, one step at a time, the weights updated at
#                    every step (online learning), with one-step helpers on
#                    raw pointers
#
# Both carry the sensitivities in one layout (row i of [U W], then b, then,
# in the batch, S^0), by panels of CT columns, and update them with
# ``_rtrl_panels``; their gradients have one layout (``_gradient_size``).
# They form a step's pre-activation differently (the batch as one chain over
# [x, s], online as U x plus W s, with the one-step helpers), so their
# results differ in the last bits; see the design note in _core.pyx.

cdef inline void _rtrl_first_panel(Py_ssize_t d, Py_ssize_t K1, Py_ssize_t q0, floating* op,
                                   const floating* xs, Py_ssize_t qb, const floating* fp,
                                   floating keep, const floating* c, floating* grow,
                                   bint last) noexcept nogil:
    """``_rtrl_panels`` on a panel of columns q0 .. q0 + CT - 1 that are zero in Pp.

    When ``last`` (the sequence's last step: its Pn is not read), only grow.
    """
    cdef Py_ssize_t ct = _ct(<floating>0), l, j, lo, hi, l0, l1
    cdef floating v
    if not last:
        memset(op, 0, d * ct * sizeof(floating))
    l0 = q0 // K1
    l1 = (q0 + ct - 1) // K1 + 1
    for l in range(l0, l1 if l1 < d else d):         # row l's [x, s] columns
        lo = l * K1
        hi = lo + K1
        for j in range(lo if lo > q0 else q0, hi if hi < q0 + ct else q0 + ct):
            v = (<floating>0 + xs[j - lo]) * fp[l]
            if keep != 0:
                v = v + <floating>0
            if not last:
                op[l * ct + j - q0] = v
            grow[j - q0] = grow[j - q0] + c[l] * v
    if qb >= 0:                                      # b_l's column
        l0 = q0 - qb if q0 > qb else 0
        l1 = q0 + ct - qb
        for l in range(l0, l1 if l1 < d else d):
            v = fp[l]
            if keep != 0:
                v = v + <floating>0
            if not last:
                op[l * ct + qb + l - q0] = v
            grow[qb + l - q0] = grow[qb + l - q0] + c[l] * v


cdef void _rtrl_panels(Py_ssize_t d, Py_ssize_t K1, Py_ssize_t p0, Py_ssize_t npanels,
                       const floating* W, const floating* Pp, floating* Pn,
                       const floating* xs, Py_ssize_t qb, const floating* fp,
                       floating keep, const floating* c, floating* gq,
                       Py_ssize_t zero, bint last) noexcept nogil:
    """One RTRL step on the sensitivity panels p0 .. p0 + npanels - 1.

    Columns below ``zero`` are known to be zero in Pp (the first step of a
    sequence: only S^0's columns are not), and Pp is not read there: a
    panel of them is fp direct^t alone, whose columns each have one
    nonzero row (a column of row l's [x, s] block, or b_l's), so each
    column's term of c.T Pn is one product. The values are those of the
    general path for finite weights, bit for bit: W Pp is +0, the sums
    add +0s, and a leaky cell's + (1 - a) 0 turns -0 into +0. ``last``
    says that Pn will not be read (a sequence's last step): such a panel
    then adds to gq alone.

    P (d x Q) is held by panels of CT columns, panel-major (panel, row l,
    column): Pn = fp (W Pp + direct) + keep Pp with direct[l, l K1 + j] =
    xs[j] (the row [x^t, s^{t-1}]) and, when qb >= 0 (biases), direct[l, qb
    + l] = 1 (dZ_l/db_l); then gq += c.T Pn (c = V.T e). fp is a f'(Z) and
    keep 1 - a (``_cell_gains``); keep = 0 skips its term.
    """
    cdef Py_ssize_t ct = _ct(<floating>0), pl, l, j, q0, lo, hi, l0, l1
    cdef const floating* bp
    cdef floating* op
    cdef floating* grow
    for pl in range(npanels):
        q0 = (p0 + pl) * ct
        bp = Pp + pl * d * ct
        op = Pn + pl * d * ct
        grow = gq + pl * ct
        if q0 + ct <= zero:
            _rtrl_first_panel(d, K1, q0, op, xs, qb, fp, keep, c, grow, last)
            continue
        l = 0
        while l < d:                                # W Pp, four rows at a time
            _tile(d, W + l * d, d, 1, bp, ct, op + l * ct, ct, d - l if d - l < 4 else 4, 0)
            l = l + 4
        # the direct terms: the rows whose [x, s] columns meet the panel, and
        # the bias columns'
        l0 = q0 // K1
        l1 = (q0 + ct - 1) // K1 + 1
        for l in range(l0, l1 if l1 < d else d):
            lo = l * K1
            hi = lo + K1
            for j in range(lo if lo > q0 else q0, hi if hi < q0 + ct else q0 + ct):
                op[l * ct + j - q0] = op[l * ct + j - q0] + xs[j - lo]
        if qb >= 0:
            l0 = q0 - qb if q0 > qb else 0
            l1 = q0 + ct - qb
            for l in range(l0, l1 if l1 < d else d):
                op[l * ct + qb + l - q0] = op[l * ct + qb + l - q0] + 1
        # times f'(Z) (the leaky cell's: + (1 - a) Pp), and into c.T Pn
        if floating is double:
            crnn_panel_rows_d(d, op, bp if keep != 0 else NULL, grow, fp, keep, c)
        else:
            crnn_panel_rows_f(d, op, bp if keep != 0 else NULL, grow, fp, keep, c)


cdef void _rtrl_item(_Cell cell, Py_ssize_t b, Py_ssize_t ch, Py_ssize_t nch, Py_ssize_t T,
                     Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, const floating* X,
                     const floating* target, const floating* weight, const floating* s0,
                     floating g, const floating* W, const floating* pack, const floating* bb,
                     const floating* cb, floating* grad, floating* ds0, floating* E,
                     floating* work, _Watch* w) noexcept nogil:
    """RTRL for sequence b, sensitivity columns of chunk ch of nch.

    The sensitivities dS^t_l/dtheta_q are carried forward in a (d, Q)
    matrix P, Q = d (n + d) (+ d) + d, in the layout every RTRL kernel
    shares: [u_i., w_i.] at i (n + d) .. i (n + d) + n + d - 1 (row i of
    [U W]), then, with biases (bb and cb not NULL), b_j at d (n + d) + j,
    then s0_j (after b, so that online RTRL, which does not learn S^0,
    carries a prefix of the same columns)::

        P^0 = [0 | 0 | I],  P^t = (1 - a) P^{t-1} + a f'(Z^t) (W P^{t-1} + direct^t),
        direct^t[l, l (n + d) + j] = [x^t, s^{t-1}]_j,  direct^t[l, b_l] = 1
        dE^t/dtheta_q = sum_k sum_l e^t_k v_kl P^t[l, q] = sum_l c^t_l P^t[l, q]

    (Williams and Zipser's recursion and double sum, k summed first: c^t = V.T e^t).
    A column's values depend on that column alone, so the columns are split
    into chunks, each run by one thread through all T steps (the forward
    pass, cheap next to P, is run by each). Chunk 0 also computes E[b] and
    dE/dV (and dc = sum_t e^t). OUT: its columns of grad ([U W] and b parts)
    and ds0; chunk 0: the V and c parts of grad and E[b]. work:
    ``_rtrl_work``; memory does not grow with T. Returns early,
    unfinished, when the call is stopped (``_stopped``).
    """
    cdef Py_ssize_t K1 = n + d, ct = _ct(<floating>0)
    cdef Py_ssize_t nb = d if bb != NULL else 0
    cdef Py_ssize_t Q = d * K1 + nb + d
    cdef Py_ssize_t ntot = (Q + ct - 1) // ct
    cdef Py_ssize_t p0 = ch * ntot // nch, p1 = (ch + 1) * ntot // nch
    cdef Py_ssize_t npanels = p1 - p0, Qc = npanels * ct, t, j, l, k, q
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
    cdef floating sq = 0
    cdef floating keep = <floating>(1.0 - cell.a)
    for j in range(d):
        cur[n + j] = s0[b * d + j]
    memset(gq, 0, Qc * sizeof(floating))
    # P^0 is zero but for S^0's identity; the first step reads it from S^0's first panel
    j = (d * K1 + nb) // ct - p0
    j = 0 if j < 0 else (npanels if j > npanels else j)
    memset(Pp + j * d * ct, 0, (npanels - j) * d * ct * sizeof(floating))
    for l in range(d):                              # dS^0/dS^0 = I
        q = d * K1 + nb + l
        if q >= p0 * ct and q < p1 * ct:
            Pp[((q // ct - p0) * d + l) * ct + q % ct] = 1
    if ch == 0:
        memset(dV, 0, m * d * sizeof(floating))
        if cb != NULL:
            memset(dc, 0, m * sizeof(floating))
    for t in range(T):
        if _stopped(w, d * Qc * (d + 2)):
            return
        for j in range(n):
            cur[j] = X[(b * T + t) * n + j]
        _gemm_packed(1, K1, d, cur, K1, 1, UW, nxt + n, K1, 0)
        # the state; f(Z) into fp when the cell leaks (the state is not f(Z))
        _cell_states(cell, nxt + n, 1, K1, d, bb, cur + n, K1, fp if keep != 0 else NULL, d)
        _gemm_packed(1, d, m, nxt + n, K1, 1, Vt, e, m, 0)
        _add_bias(e, 1, m, m, cb)
        sq = _residuals(target + (b * T + t) * m,
                        weight + (b * T + t) * m if weight != NULL else NULL, e, m, g, sq)
        _gemm_packed(1, m, d, e, m, 1, Vr, c, d, 0)
        _cell_gains(cell, fp if keep != 0 else nxt + n, fp, d)
        _rtrl_panels(d, K1, p0, npanels, W, Pp, Pn, cur, d * K1 if bb != NULL else -1,
                     fp, keep, c, gq, d * K1 + nb if t == 0 else 0, t == T - 1)
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
        elif q < d * K1 + nb:                       # db: after dV in grad
            grad[q + m * d] = gq[j]
        elif q < Q:
            ds0[q - d * K1 - nb] = gq[j]
    if ch == 0:
        E[b] = g * sq


cdef inline Py_ssize_t _rtrl_work(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, Py_ssize_t nch,
                                  bint bias) noexcept nogil:
    """Scalars of workspace one thread needs for one RTRL chunk of nch."""
    cdef Py_ssize_t ct = 2 * CRNN_VWF     # the wider of the two dtypes' panels
    cdef Py_ssize_t Qc = (d * (n + d) + d + (d if bias else 0) + nch - 1) // nch + 2 * ct
    return 2 * (n + d) + m + 2 * d + Qc + 2 * d * Qc


cdef inline Py_ssize_t _rtrl_ws(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, Py_ssize_t nch,
                                bint bias, Py_ssize_t K, int n_threads,
                                Py_ssize_t* at) noexcept nogil:
    """Scalars of RTRL's workspace; at (3,): where its parts start.

    In order, each from a cache line: the packed weights, each thread's
    workspace (stride at[1]), and K + 1 gradients (K sequences', then their
    sum).
    """
    at[0] = _up16(_packed(n, d, m))
    at[1] = _up16(_rtrl_work(n, d, m, nch, bias))
    at[2] = at[0] + n_threads * at[1]
    return at[2] + (K + 1) * _grad_size(n, d, m, bias)


def _rtrl_workspace_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, Py_ssize_t nch, bint bias,
                         Py_ssize_t K, int n_threads):
    """Scalars of the workspace ``_rtrl_gradient`` takes for K sequences at a time."""
    cdef Py_ssize_t at[3]
    return _rtrl_ws(n, d, m, nch, bias, K, n_threads, at)


def _rtrl_gradient(const floating[::1] theta, const floating[:, :, ::1] X,
                   const floating[:, :, ::1] target, const floating[:, :, ::1] weight,
                   const floating[:, ::1] s0, floating g,
                   floating[::1] out, floating[::1] ws, Py_ssize_t K, Py_ssize_t nch,
                   int n_threads, int act, double leak):
    """Exact gradient of E over a batch by real-time recurrent learning.

    IN, OUT: as ``_bptt_gradient``.
    SCRATCH: ws (_rtrl_workspace_size(n, d, m, nch, bias, K, n_threads),):
    the packed weights, each thread's workspace, and K + 1 gradients: K >= 1
    sequences', then their sum in the kernels' gradient layout, which out
    gets reordered.
    Each sequence's sensitivity columns are split in nch chunks, each run by
    one thread through all T steps; each sequence's gradient is computed
    alone into its slot, and the slots are added in sequence order, K
    sequences at a time. No bit depends on the thread count, nch or K.
    Returns the number of NaN and infinite values in the weights and inputs;
    raises what a signal handler raised while it ran (``_Watch``).
    """
    cdef Py_ssize_t N = X.shape[0], T = X.shape[1], n = X.shape[2]
    cdef Py_ssize_t d = s0.shape[1], m = target.shape[2]
    cdef const floating* U = &theta[0]
    cdef const floating* W = U + d * n
    cdef Py_ssize_t P = theta.shape[0], at[3]          # dE/dtheta has theta's size
    cdef floating* pack = &ws[0]
    cdef floating* slots
    cdef floating* grad
    cdef floating* ds0 = &out[P]
    cdef floating* E = &out[P + N * d]
    cdef Py_ssize_t start, stop, i, it, p
    cdef const floating* bb = _bias_of(U, theta.shape[0], n, d, m, False)
    cdef const floating* cb = _bias_of(U, theta.shape[0], n, d, m, True)
    cdef floating acc
    cdef Py_ssize_t bad
    cdef _Watch watch
    cdef _Watch* wp = &watch
    cdef _Cell cell = _cell(act, leak)
    cdef const floating* wt = &weight[0, 0, 0] if weight is not None and weight.shape[0] > 0 else NULL
    with nogil:
        _watch_start(wp)
        _rtrl_ws(n, d, m, nch, P > _parameter_count(n, d, m), K, n_threads, at)
        slots = pack + at[2]
        grad = slots + K * P
        bad = (_nonfinite(U, theta.shape[0])
               + _nonfinite(&X[0, 0, 0], N * T * n) + _nonfinite(&target[0, 0, 0], N * T * m)
               + _nonfinite(&s0[0, 0], N * d))
        if wt != NULL:
            bad = bad + _nonfinite(wt, N * T * m)
        _pack_weights(U, n, d, m, pack, True)
        memset(grad, 0, P * sizeof(floating))
        if n_threads == 1:  # no thread team (as _forward_batch): the loops below, in turn
            start = 0
            while start < N:
                stop = start + K if start + K < N else N
                for it in range((stop - start) * nch):
                    _rtrl_item(cell, start + it // nch, it % nch, nch, T, n, d, m, &X[0, 0, 0],
                               &target[0, 0, 0], wt, &s0[0, 0], g, W, pack, bb, cb,
                               slots + (it // nch) * P, ds0 + (start + it // nch) * d, E,
                               pack + at[0], wp)
                if not crnn_flag_get(&wp.stop):
                    for p in range(P):
                        acc = grad[p]
                        for i in range(stop - start):
                            acc = acc + slots[i * P + p]
                        grad[p] = acc
                start = stop
        else:
            with parallel(num_threads=n_threads):
                start = 0
                while start < N:
                    stop = start + K if start + K < N else N
                    for it in prange((stop - start) * nch, schedule="static"):
                        _rtrl_item(cell, start + it // nch, it % nch, nch, T, n, d, m, &X[0, 0, 0],
                                   &target[0, 0, 0], wt, &s0[0, 0], g, W, pack, bb, cb,
                                   slots + (it // nch) * P, ds0 + (start + it // nch) * d, E,
                                   pack + at[0] + threadid() * at[1], wp)
                    # add the slots in sequence order: the same sum whatever the threads
                    for p in prange(P, schedule="static"):
                        if not crnn_flag_get(&wp.stop):
                            acc = grad[p]
                            for i in range(stop - start):
                                acc = acc + slots[i * P + p]
                            grad[p] = acc
                    start = stop
        _to_theta_layout(grad, &out[0], n, d, P)
    if watch.stop:
        _raise_stopped()
    return bad


# ---------------------------------------------------------------------------
# online learning: RTRL one step at a time, the weights updated at every step
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


cdef inline void _state_step(_Cell cell, const floating* U, const floating* W,
                             const floating* bb, Py_ssize_t d, Py_ssize_t n,
                             const floating* x, const floating* s_prev,
                             floating* s, floating* h) noexcept nogil:
    """s = the cell's state from Z = U @ x + W @ s_prev + b (no b when bb is
    NULL), and h = f(Z) when not NULL; s must not alias s_prev."""
    cdef Py_ssize_t i
    for i in range(d):
        s[i] = 0
    _matvec(U, d, n, x, s)
    _matvec(W, d, d, s_prev, s)
    _cell_states(cell, s, 1, d, d, bb, s_prev, d, h, d)


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


cdef inline Py_ssize_t _online_columns(Py_ssize_t n, Py_ssize_t d, bint bias) noexcept nogil:
    """Sensitivity columns of online RTRL: [U W] row by row, then b (no S^0)."""
    return d * (n + d) + (d if bias else 0)


def _panel_columns():
    """Columns of one sensitivity panel: (float64, float32) in this build."""
    return 2 * CRNN_VWD, 2 * CRNN_VWF


def _online_work_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, bint bias=False):
    """Scalars of workspace ``_rtrl_online`` needs (either dtype)."""
    cdef Py_ssize_t ct = 2 * CRNN_VWF     # the wider of the two dtypes' panels
    cdef Py_ssize_t Qpad = (_online_columns(n, d, bias) + ct - 1) // ct * ct
    return (n + d) + 4 * d + 2 * m + Qpad + 2 * (m * d + m) + Qpad


def _rtrl_online(floating[::1] theta, const floating[:, ::1] X, const floating[:, ::1] target,
                 floating[::1] s, floating[:, ::1] P, Py_ssize_t[::1] cur,
                 floating g, floating lr, floating clip,
                 floating[:, ::1] Y, floating[::1] E, floating[::1] grad_sum,
                 floating[::1] last, floating[::1] work, int act, double leak):
    """Real-time recurrent learning over a chunk of one stream (Williams and Zipser).

    At each step t: the state and output from the current weights (the
    cell: act and leak, as ``_forward``); the sensitivities P^t = (1 - a)
    P^{t-1} + a f'(Z^t) (W P^{t-1} + direct^t) in the layout of
    ``_rtrl_item`` without the S^0 columns (u_ij and w_ij at i (n + d) + j
    and i (n + d) + n + j, then b_i at d (n + d) + i), held by panels of CT
    columns (panel, row l, column) as the batch kernel holds them, and
    updated by the same ``_rtrl_panels``; the gradient of E^t alone,
    dE^t/dtheta = sum_k sum_l e^t_k v_kl P^t[l, :], e^t S^t.T for V and e^t
    for c; its norm clipped to ``clip`` (0: no clipping); then theta -= lr
    dE^t/dtheta when lr > 0. The state is formed by the one-step helpers
    above (U x + W s, as this kernel always has). The cost of a step does
    not depend on how long the stream has run.

    Before a step changes anything it checks that its E^t and the weights
    it would make are finite; if not, it stops there, and that step has
    changed nothing.

    IN/OUT: theta (_parameter_size,): U, W, V, then b (d,) and c (m,) when
    the model has biases, updated when lr > 0; s (d,) the state; P (2,
    npanels d CT), two buffers of the sensitivities by panels, P[cur[0]] the
    current one (the next step writes the other; cur[0] is set to the one
    current after the call, here, so that no Python code runs between the
    steps and the choice of buffer); grad_sum (_gradient_size,): every
    step's gradient is added,
    in the layout of the batch kernels' gradient ([U W] by rows, V, then b
    and c); last (_gradient_size,): the last step's gradient, in that
    layout, when every step was made (else left as it was).
    IN: X (T, n), target (T, m). OUT: Y (T, m) the outputs (from the weights
    before the step's update), E (T,) each step's E^t.
    SCRATCH: work (_online_work_size(n, d, m, bias),).
    Returns the number of steps made: T, or the step that stopped (then the
    current buffer is P[cur[0]]); -1, with nothing done, when
    the weights, X or target hold a NaN or an infinity. Raises what a signal
    handler raised between two steps (``_stopped``); the steps made before
    it have changed the arrays, and the caller puts them back.
    """
    cdef Py_ssize_t T = X.shape[0], n = X.shape[1], d = s.shape[0], m = target.shape[1]
    cdef Py_ssize_t K1 = n + d, ct = _ct(<floating>0)
    cdef bint bias = theta.shape[0] > d * n + d * d + m * d
    cdef floating* U = &theta[0]
    cdef floating* W = U + d * n
    cdef floating* V = W + d * d
    cdef Py_ssize_t Q = _online_columns(n, d, bias)
    cdef Py_ssize_t npanels = (Q + ct - 1) // ct, Qpad = npanels * ct
    cdef Py_ssize_t nb = d if bias else 0
    cdef Py_ssize_t t, i, j, k, q, bad
    cdef floating* bb = V + m * d if bias else NULL
    cdef floating* cb = V + m * d + d if bias else NULL
    cdef floating* xs = &work[0]                    # (K1,): [x^t, s^{t-1}]
    cdef floating* s_new = xs + K1                  # (d,)
    cdef floating* cv = s_new + d                   # (d,): V.T e^t
    cdef floating* fp = cv + d                      # (d,): f'(Z^t)
    cdef floating* e = fp + d                       # (m,)
    cdef floating* y = e + m                        # (m,)
    cdef floating* gq = y + m                       # (Qpad,): dE^t/d[U W b]
    cdef floating* gv = gq + Qpad                   # (m d + m,): dE^t/d[V c]
    cdef floating* gn = gv + m * d + m              # (Q + m d + m,): for the norm
    cdef floating* Pp
    cdef floating* Pn
    cdef floating el, norm, scale, w
    cdef Py_ssize_t done = T, c0 = cur[0]
    cdef _Watch watch
    cdef _Cell cell = _cell(act, leak)
    cdef floating keep = <floating>(1.0 - leak)
    with nogil:
        _watch_start(&watch)
        bad = _nonfinite(U, theta.shape[0])
        if T > 0:
            bad = bad + _nonfinite(&X[0, 0], T * n) + _nonfinite(&target[0, 0], T * m)
        if bad:
            done = -1
            T = 0
        for t in range(T):
            # between steps, pending signals (a step is never cut in two)
            if t > 0 and _stopped(&watch, d * Qpad * (d + 2)):
                done = t
                break
            Pp = &P[(c0 + t) % 2, 0]
            Pn = &P[(c0 + t + 1) % 2, 0]
            _state_step(cell, U, W, bb, d, n, &X[t, 0], &s[0], s_new, fp if keep != 0 else NULL)
            el = g * _output_error(V, cb, m, d, s_new, &target[t, 0], g, y, e)
            for i in range(d):
                cv[i] = 0
            _matTvec(V, m, d, e, cv)
            for j in range(n):
                xs[j] = X[t, j]
            for j in range(d):
                xs[n + j] = s[j]
            _cell_gains(cell, fp if keep != 0 else s_new, fp, d)

            # the sensitivities and the gradient of E^t: Williams and Zipser's double
            # sum, the k-sum first (cv = V.T e^t)
            memset(gq, 0, Qpad * sizeof(floating))
            _rtrl_panels(d, K1, 0, npanels, W, Pp, Pn, xs, d * K1 if bias else -1,
                         fp, keep, cv, gq, 0, False)
            for k in range(m * d + (m if bias else 0)):
                gv[k] = 0
            _outer(gv, m, d, e, s_new)
            if bias:
                for k in range(m):
                    gv[m * d + k] = e[k]

            if clip > 0:
                # the norm over a copy in the order U, W, b, V, c, summed by
                # one plain loop: the order and the loop (which the compiler
                # vectorises in its own way) this kernel has always had
                k = 0
                for i in range(d):
                    for j in range(n):
                        gn[k] = gq[i * K1 + j]
                        k = k + 1
                for i in range(d):
                    for j in range(d):
                        gn[k] = gq[i * K1 + n + j]
                        k = k + 1
                for q in range(d * K1, Q):
                    gn[k] = gq[q]
                    k = k + 1
                for q in range(m * d + (m if bias else 0)):
                    gn[k] = gv[q]
                    k = k + 1
                norm = 0
                for q in range(k):
                    norm = norm + gn[q] * gn[q]
                norm = sqrt(norm)
                if norm > clip:
                    scale = clip / norm
                    for q in range(Q):
                        gq[q] = gq[q] * scale
                    for q in range(m * d + (m if bias else 0)):
                        gv[q] = gv[q] * scale

            # nothing is changed by a step that would leave E^t or a weight
            # not finite
            bad = _nonfinite(&el, 1)
            if lr > 0:
                for i in range(d):
                    for j in range(n):
                        w = U[i * n + j] - lr * gq[i * K1 + j]
                        bad = bad + _nonfinite(&w, 1)
                    for j in range(d):
                        w = W[i * d + j] - lr * gq[i * K1 + n + j]
                        bad = bad + _nonfinite(&w, 1)
                for k in range(m):
                    for j in range(d):
                        w = V[k * d + j] - lr * gv[k * d + j]
                        bad = bad + _nonfinite(&w, 1)
                if bias:
                    for i in range(d):
                        w = bb[i] - lr * gq[d * K1 + i]
                        bad = bad + _nonfinite(&w, 1)
                    for k in range(m):
                        w = cb[k] - lr * gv[m * d + k]
                        bad = bad + _nonfinite(&w, 1)
            if bad:
                done = t
                break
            E[t] = el
            for k in range(m):
                Y[t, k] = y[k]
            for q in range(d * K1):                 # the layout of _gradient_size
                grad_sum[q] = grad_sum[q] + gq[q]
            for q in range(m * d):
                grad_sum[d * K1 + q] = grad_sum[d * K1 + q] + gv[q]
            for i in range(nb):
                grad_sum[d * K1 + m * d + i] = grad_sum[d * K1 + m * d + i] + gq[d * K1 + i]
            if bias:
                for k in range(m):
                    grad_sum[d * K1 + m * d + d + k] = grad_sum[d * K1 + m * d + d + k] + gv[m * d + k]

            # carry the state (the sensitivities are in Pn), update the weights
            for j in range(d):
                s[j] = s_new[j]
            if lr > 0:
                for i in range(d):
                    for j in range(n):
                        U[i * n + j] = U[i * n + j] - lr * gq[i * K1 + j]
                    for j in range(d):
                        W[i * d + j] = W[i * d + j] - lr * gq[i * K1 + n + j]
                for k in range(m):
                    for j in range(d):
                        V[k * d + j] = V[k * d + j] - lr * gv[k * d + j]
                if bias:
                    for i in range(d):
                        bb[i] = bb[i] - lr * gq[d * K1 + i]
                    for k in range(m):
                        cb[k] = cb[k] - lr * gv[m * d + k]
        if done == T and T > 0:                     # the last step's gradient
            for q in range(d * K1):
                last[q] = gq[q]
            for q in range(m * d):
                last[d * K1 + q] = gv[q]
            for i in range(nb):
                last[d * K1 + m * d + i] = gq[d * K1 + i]
            if bias:
                for k in range(m):
                    last[d * K1 + m * d + d + k] = gv[m * d + k]
    if done > 0:
        cur[0] = (c0 + done) % 2
    if watch.stop:
        _raise_stopped()
    return done
