# SPDX-License-Identifier: BSD-3-Clause
"""Compiled kernels of crnn: the Elman network's forward pass, loss and gradients.

Design
------
The model (Elman 1990; the gradients of Williams and Zipser 1989 and of
backpropagation through time)::

    Z^t = U X^t + W S^{t-1} (+ b),   S^t = (1 - a) S^{t-1} + a f(Z^t),
    Y^t = V S^t (+ c),               E = g sum_t sum_k w^t_k (target^t_k - Y^t_k)^2

f is tanh, relu, the identity or the logistic function, a the leak rate in
(0, 1], w the weights of the squared errors (1 when none are given). Elman's
network is f = tanh, a = 1, no weights.

This is the private, compiled layer. Its only caller is ``crnn._kernels``,
which validates nothing but plans everything: it hands over arrays already
checked by the Python layer (shapes agree, C-contiguous, one floating dtype,
N >= 1 and T >= 1) and workspaces sized by the ``*_size`` functions here,
the one place that knows the layouts. With bounds checks off the kernels do
not look again. Values are the one thing they check: every entry point
counts the NaN and infinite values of its weights and inputs in a pass of
its own (cheap next to the kernel) and returns the count, and the Python
layer refuses them by name when it is not 0.

Units (one compiled module; the ``.pxi`` files are included below)::

    _simd.h     C: SIMD vector types, the register tiles (each written once
                for float64 and float32), a multiply-add rounded as the tiles
                round it, the tanh's bit helpers, the CPU's instruction sets
    _gemm.pxi   the matrix products: packed panels, _gemm, _gemm_tn
    _cell.pxi   the cell: the activation, its slope, how a state is formed
    _core.pyx   (this file) what every kernel shares, the forward pass, the
                loss and closed-loop generation
    _bptt.pxi   backpropagation through time
    _rtrl.pxi   real-time recurrent learning, batch and online
    _dynamics.pxi  the network as a dynamical system: the state map's
                Jacobians, the Lyapunov spectrum (crnn.dynamics)
    _jacobian.pxi  the outputs' Jacobian dY/dtheta in forward mode (for
                Levenberg-Marquardt and the Laplace approximation)

Adding an activation (or changing how a state is formed): ``_cell.pxi``
alone. The kernels call ``_cell_states`` to turn pre-activations into
states, ``_cell_gains`` for a f'(Z^t) (RTRL) and ``_cell_back`` for BPTT's
step back through the cell; nothing else in them knows f or a. An
activation is a code, a branch-free loop in ``_activate``, a line of slope
in ``_slope`` and a line in each of the two dispatchers: about 15 lines (see
the head of ``_cell.pxi``), and its name in ``crnn._kernels.ACTIVATIONS``.

Builds: this file is compiled once per instruction set (``_core_baseline``,
``_core_avx2`` with AVX2 and FMA, ``_core_avx512``; see CMakeLists.txt) and
``crnn/_core.py`` imports the widest one the CPU runs (runtime dispatch,
from ``_cpu_features`` of the baseline build).

Layers:

(a) the products (``_gemm.pxi``) and the cell (``_cell.pxi``);
(b) blocks of sequences, time-major: the forward pass and the two BPTT
    recurrences of a block take one matrix product per step ([x, s] [U.T;
    W.T] forward, [e, delta] [V; W] backward), while the outputs V S, which
    do not feed the recurrence, are one product for several steps; RTRL
    carries the sensitivities in column panels, one sequence's columns
    split over threads;
(c) ``def`` entry points: release the GIL once and run blocks, sequences or
    column chunks in parallel with ``prange`` (OpenMP when built with it).
    One per operation: ``_forward``, ``_loss``, ``_generate``,
    ``_bptt_gradient``, ``_rtrl_gradient``, ``_rtrl_online``.

Determinism: every element of every product is one multiply-add chain in
the order of k, whichever tile, panel, row block or k chunk it falls in, so
a sequence's states, outputs, E and dE/dS^0 do not depend on the other
sequences of its block nor on the thread count. BPTT's batch gradient is a
number of parts that depends on the sizes alone, each a product over the
steps of a group of sequences whose elements are one chain each, the parts
added in order. RTRL computes each sequence's gradient into a slot of its
own, and the slots are added in sequence order. The numbers differ between
builds only by rounding (FMA contracts a*b + c).

Signals: a call that takes long must answer Ctrl-C. Every kernel, between
steps, lets the calling thread run Python's pending signal handlers (with
the GIL, every 50 ms, when it is the main thread: ``_stopped``); when one
raises, every thread leaves its work and the entry point raises that
exception. The outputs and workspaces are then unfinished, and nothing else
has changed (online RTRL: see ``_rtrl_online``).

Biases (optional): b is added to Z and c to Y after their products; BPTT
adds db = sum delta and dc = sum e, RTRL carries d more sensitivity columns
(direct term 1); an empty array at the entry points means none.

RTRL's sensitivities have one layout, shared by the batch and the online
kernel (row i of [U W], then b, then S^0 in the batch only), held by
panels and updated by one routine (``_rtrl_panels``); every gradient
vector has one layout (``_gradient_size``). Online RTRL forms a step's
state with scalar one-step helpers, as U x + W s (two sums), where the
batch kernels sum [x, s] in one chain: it always has, and keeping it keeps
its results bit for bit.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport sqrt
from libc.string cimport memset

cdef extern from "_simd.h":
    const int CRNN_OPENMP
    const int CRNN_DEBUG
    const char* CRNN_ISA
    int crnn_cpu_avx2() noexcept nogil
    int crnn_cpu_avx512() noexcept nogil
    Py_ssize_t crnn_nonfinite_d(const double* a, Py_ssize_t n) noexcept nogil
    Py_ssize_t crnn_nonfinite_f(const float* a, Py_ssize_t n) noexcept nogil
    int crnn_omp_max_threads() noexcept nogil
    double crnn_clock() noexcept nogil
    int crnn_flag_get(int* f) noexcept nogil
    void crnn_flag_set(int* f) noexcept nogil

cdef extern from "Python.h":
    # called with the GIL by ``_stopped`` alone; a handler's exception stays set
    int PyErr_CheckSignals()
    unsigned long PyThread_get_thread_ident() nogil

include "_gemm.pxi"
include "_cell.pxi"


# ---------------------------------------------------------------------------
# the build, and test hooks
# ---------------------------------------------------------------------------

def _openmp_enabled():
    """Return True when the kernels were compiled with OpenMP."""
    return bool(CRNN_OPENMP)


def _openmp_max_threads():
    """OpenMP's thread count for this thread: OMP_NUM_THREADS or omp_set_num_threads' (1 without)."""
    return crnn_omp_max_threads()


def _debug_build():
    """Return True when the kernels were compiled with bounds checks on."""
    return bool(CRNN_DEBUG)


def _simd_info():
    """(instruction set name, float64 lanes, float32 lanes) of this build."""
    return (CRNN_ISA.decode(), CRNN_VWD, CRNN_VWF)


def _cpu_features():
    """The instruction sets this CPU and its operating system run: {"avx2": bool, "avx512": bool}.

    From the compiler's runtime CPU detection (cpuid, and xgetbv for the
    registers the operating system saves); False for both where it has none.
    "avx2" means AVX2 and FMA; "avx512" AVX-512 F, DQ, BW and VL with them.
    """
    return {"avx2": bool(crnn_cpu_avx2()), "avx512": bool(crnn_cpu_avx512())}


def _tanh_array(floating[::1] z):
    """z = tanh(z) in place by the kernels' tanh (a test hook)."""
    _activate_array(z, CELL_TANH)


def _activate_array(floating[::1] z, int act):
    """z = f(z) in place by the kernels' activation f (a ``CELL_`` code; a test hook)."""
    cdef _Cell cell = _cell(act, 1.0)
    if z.shape[0] > 0:
        _activate(cell, &z[0], z.shape[0])


def _slope_array(floating[::1] h, int act):
    """h = f'(z) in place from h = f(z), by the kernels' slope (a test hook)."""
    cdef _Cell cell = _cell(act, 1.0)
    if h.shape[0] > 0:
        _cell_gains(cell, &h[0], &h[0], h.shape[0])


cdef inline _Cell _cell(int act, double leak) noexcept nogil:
    """The cell of a call: the activation (a ``CELL_`` code) and the leak rate."""
    cdef _Cell cell
    cell.f = act
    cell.a = leak
    return cell


# ---------------------------------------------------------------------------
# stopping a call: pending signals
# ---------------------------------------------------------------------------

cdef unsigned long _main_thread = 0        # Python's main thread (its ident)
cdef int _handlers = 0                      # signal handlers running from within a kernel


def _set_main_thread(unsigned long ident):
    """Name Python's main thread, the one thread that runs signal handlers."""
    global _main_thread
    _main_thread = ident


def _in_signal_handler():
    """True while a signal handler runs from within a kernel call.

    That call's workspaces are in use: a crnn call the handler makes must
    get workspaces of its own (``crnn._kernels._plan``).
    """
    return _handlers > 0


cdef struct _Watch:
    # One kernel call's watch for signals. The calling thread (thread 0 of
    # the call's team), when it is Python's main thread, runs the pending
    # signal handlers every _WATCH_SECONDS; if one raises, it sets stop, and
    # every thread leaves its work at its next step. The entry point then
    # raises that exception: the call has changed none of its arguments but
    # its outputs and workspaces (online RTRL: the steps before; see there).
    int stop
    bint main           # the call runs in Python's main thread
    double work         # multiply-adds since thread 0 last read the clock
    double next         # when thread 0 runs the handlers next


cdef double _WATCH_SECONDS = 0.05          # stopped within about this, or a step
cdef double _WATCH_WORK = 1e6              # multiply-adds between two reads of the clock


cdef inline void _watch_start(_Watch* w) noexcept nogil:
    """Set up the watch of a call made by this thread."""
    w.stop = 0
    w.main = PyThread_get_thread_ident() == _main_thread
    w.work = 0
    w.next = 0                                      # no clock read for small calls


cdef inline bint _stopped(_Watch* w, double work) noexcept nogil:
    """True when the call must stop: a signal handler raised (its exception is set).

    Called by every thread between steps of ``work`` multiply-adds; thread 0
    reads the clock once per _WATCH_WORK of them and, when it is time, runs
    the pending handlers with the GIL.
    """
    if crnn_flag_get(&w.stop):
        return True
    if not w.main or threadid() != 0:
        return False
    w.work = w.work + work
    if w.work < _WATCH_WORK:
        return False
    w.work = 0
    if crnn_clock() < w.next:
        return False
    global _handlers
    cdef int raised
    with gil:
        _handlers += 1
        raised = PyErr_CheckSignals()
        _handlers -= 1
    if raised != 0:
        crnn_flag_set(&w.stop)
        return True
    w.next = crnn_clock() + _WATCH_SECONDS
    return False


cdef int _raise_stopped() except -1:
    """Raise the exception a signal handler set while the GIL was released."""
    return -1


# ---------------------------------------------------------------------------
# shared by the kernels: packed weights, residuals, biases, blocks
# ---------------------------------------------------------------------------

cdef enum:
    _YC = 32                    # the most steps whose outputs are one product


cdef inline Py_ssize_t _up16(Py_ssize_t k) noexcept nogil:
    """k rounded up to a multiple of 16 scalars: parts of a workspace start on cache lines."""
    return (k + 15) // 16 * 16


cdef inline Py_ssize_t _packed(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m) noexcept nogil:
    """Scalars of the packed weights (``_pack_weights``)."""
    return (n + d) * d + d * m + (m + d) * d + d * d + m * d


cdef inline Py_ssize_t _rows(Py_ssize_t N, int n_threads) noexcept nogil:
    """Sequences per block when N sequences are split over n_threads threads."""
    return (N + n_threads - 1) // n_threads


cdef inline Py_ssize_t _grad_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                                  bint bias) noexcept nogil:
    """Scalars of the gradient vector: [dU dW] (d, n + d), dV (m, d), then db (d,), dc (m,)."""
    return d * (n + d) + m * d + ((d + m) if bias else 0)


def _gradient_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, bint bias=False):
    """Scalars of the gradient vector: [dU dW] (d, n + d), dV (m, d), then db (d,), dc (m,)."""
    return _grad_size(n, d, m, bias)


def _rows_per_block(Py_ssize_t N, int n_threads):
    """Sequences per block when N sequences are split over n_threads threads."""
    return _rows(N, n_threads)


cdef inline Py_ssize_t _parameter_count(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m) noexcept nogil:
    """Scalars of U, W and V."""
    return d * n + d * d + m * d


def _parameter_size(Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, bint bias=False):
    """Scalars of the parameter vector theta: U (d, n), W (d, d), V (m, d), then b (d,), c (m,)."""
    return d * n + d * d + m * d + ((d + m) if bias else 0)


cdef inline const floating* _bias_of(const floating* theta, Py_ssize_t size, Py_ssize_t n,
                                     Py_ssize_t d, Py_ssize_t m, bint c) noexcept nogil:
    """b (c False) or c (c True) in theta of ``size`` scalars, or NULL without biases."""
    cdef Py_ssize_t at = d * n + d * d + m * d
    if size == at:
        return NULL
    return theta + at + (d if c else 0)


cdef void _to_theta_layout(const floating* grad, floating* out, Py_ssize_t n,
                           Py_ssize_t d, Py_ssize_t P) noexcept nogil:
    """out = the gradient vector grad (``_gradient_size`` P) in theta's layout.

    The kernels build the gradient with [dU dW] as one (d, n + d) matrix;
    theta holds U (d, n) then W (d, d). What follows (V, b, c) is in the
    same order in both.
    """
    cdef Py_ssize_t K1 = n + d, i, j
    for i in range(d):
        for j in range(n):
            out[i * n + j] = grad[i * K1 + j]
    for i in range(d):
        for j in range(d):
            out[d * n + i * d + j] = grad[i * K1 + n + j]
    for i in range(d * K1, P):
        out[i] = grad[i]


cdef inline Py_ssize_t _nonfinite(const floating* a, Py_ssize_t count) noexcept nogil:
    """How many of a[0 .. count - 1] are NaN or infinite."""
    if floating is double:
        return crnn_nonfinite_d(a, count)
    else:
        return crnn_nonfinite_f(a, count)


cdef void _pack_weights(const floating* theta, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                        floating* pack, bint full) noexcept nogil:
    """Pack the weights U, W, V of theta once per call (``_packed`` scalars), in this order
    (the forward pass needs the first two; with ``full`` all are packed):

    UW = [U.T; W.T] ((n + d) x d: Z = [x, s] UW), Vt = V.T (d x m: y = s Vt),
    VW = [V; W] ((m + d) x d: [e, delta] VW = V.T e + W.T delta),
    Wr = W (d x d: W.T delta) and Vr = V (m x d: V.T e).
    """
    cdef floating* UW = pack
    cdef floating* Vt = UW + (n + d) * d
    cdef floating* VW = Vt + d * m
    cdef floating* Wr = VW + (m + d) * d
    cdef floating* Vr = Wr + d * d
    cdef const floating* U = theta
    cdef const floating* W = U + d * n
    cdef const floating* V = W + d * d
    _pack(U, n, d, 1, n, UW, n + d, 0)
    _pack(W, d, d, 1, d, UW, n + d, n)
    _pack(V, d, m, 1, d, Vt, d, 0)
    if not full:
        return
    _pack(V, m, d, d, 1, VW, m + d, 0)
    _pack(W, d, d, d, 1, VW, m + d, m)
    _pack(W, d, d, d, 1, Wr, d, 0)
    _pack(V, m, d, d, 1, Vr, m, 0)


cdef inline floating _residuals(const floating* target, const floating* wt, floating* ye,
                                Py_ssize_t m, floating g, floating sq) noexcept nogil:
    """ye = e = -2 g w (target - y) in place of y; return sq + sum_k w_k (target_k - y_k)^2.

    w is the weights wt (m,) of the outputs, or 1 when wt is NULL. The
    squares are stored before they are added, in order, so that the sum is
    the same bits wherever this is inlined and however the compiler
    vectorises it (no multiply-add contraction across the two loops).
    """
    cdef floating q[64]
    cdef floating rr
    cdef Py_ssize_t j0 = 0, j, c
    while j0 < m:
        c = m - j0 if m - j0 < 64 else 64
        if wt == NULL:
            for j in range(c):
                rr = target[j0 + j] - ye[j0 + j]
                q[j] = rr * rr
                ye[j0 + j] = -2 * g * rr
        else:
            for j in range(c):
                rr = target[j0 + j] - ye[j0 + j]
                q[j] = wt[j0 + j] * rr * rr
                ye[j0 + j] = -2 * g * (wt[j0 + j] * rr)
        for j in range(c):
            sq = sq + q[j]
        j0 = j0 + 64
    return sq


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


# ---------------------------------------------------------------------------
# forward pass, loss and closed-loop generation
# ---------------------------------------------------------------------------

cdef void _forward_block(_Cell cell, Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T, Py_ssize_t n,
                         Py_ssize_t d, Py_ssize_t m, const floating* X,
                         const floating* s0, const floating* pack,
                         const floating* bb, const floating* cb,
                         floating* S, floating* Y, const floating* target,
                         const floating* weight, floating g, floating* E, floating* work,
                         _Watch* w) noexcept nogil:
    """Forward pass of sequences b0 .. b0 + R - 1, all R at each step.

    bb (d,) and cb (m,) are the biases b and c, or NULL for none.
    OUT: S (states) and Y (outputs) of those sequences when not NULL, and,
    when target is not NULL, E[b] = g sum_t sum_k w (target - Y)^2, w the
    weights (shaped as target) or 1 when weight is NULL.
    The outputs do not feed the recurrence: those of yc steps at a time are
    one product per sequence (of yc rows, not one), from S or, when S is
    NULL, from the states kept in work (yc = ``_hist_steps``). Returns
    early, its outputs unfinished, when the call is stopped (``_stopped``).
    work (``_forward_work``): the rows [x^t, s^{t-1}] of the step and
    of the next one, the states of yc steps and the outputs of yc steps.
    """
    cdef Py_ssize_t K1 = n + d, t, t0 = 0, tc, r, j, ars
    cdef Py_ssize_t yc = _hist_steps(R, d)
    cdef const floating* UW = pack
    cdef const floating* Vt = pack + K1 * d
    cdef floating* cur = work
    cdef floating* nxt = work + R * K1
    cdef floating* hist = nxt + R * K1                 # (yc, R, d)
    cdef floating* y = hist + yc * R * d              # (_YC, m)
    cdef const floating* src
    cdef floating* out
    cdef floating* tmp
    for r in range(R):
        for j in range(d):
            cur[r * K1 + n + j] = s0[(b0 + r) * d + j]
        if target != NULL:
            E[b0 + r] = 0
    for t in range(T):
        if _stopped(w, R * (K1 + m) * d):
            return
        for r in range(R):
            for j in range(n):
                cur[r * K1 + j] = X[((b0 + r) * T + t) * n + j]
        # Z = [x, s] [U.T; W.T] + b, then the cell's S, into the next row's s part
        _gemm_packed(R, K1, d, cur, K1, 1, UW, nxt + n, K1, 0)
        _cell_states(cell, nxt + n, R, K1, d, bb, cur + n, K1, NULL, 0)
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
                        E[b0 + r] = _residuals(
                            target + ((b0 + r) * T + t0 + j) * m,
                            weight + ((b0 + r) * T + t0 + j) * m if weight != NULL else NULL,
                            out + j * m, m, g, E[b0 + r])
            t0 = t + 1
        tmp = cur
        cur = nxt
        nxt = tmp
    if target != NULL:
        for r in range(R):
            E[b0 + r] = g * E[b0 + r]


cdef void _generate_block(_Cell cell, Py_ssize_t b0, Py_ssize_t R, Py_ssize_t T, Py_ssize_t n,
                          Py_ssize_t d, const floating* x0, const floating* s0,
                          const floating* pack, const floating* bb, const floating* cb,
                          floating* out, floating* sT, floating* work,
                          _Watch* w) noexcept nogil:
    """Closed loop for sequences b0 .. b0 + R - 1 (output size = input size n).

    x^1 = x0, x^{t+1} = Y^t: out (N, T, n) gets Y^1 .. Y^T and sT (N, d) the
    state S^T. Each step is the forward pass's step (the same chains), so
    the outputs are those ``_forward_block`` gives on the fed-back inputs.
    work holds 2 R (n + d) scalars. Returns early when the call is stopped.
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
        if _stopped(w, R * (K1 + n) * d):
            return
        _gemm_packed(R, K1, d, cur, K1, 1, UW, nxt + n, K1, 0)
        _cell_states(cell, nxt + n, R, K1, d, bb, cur + n, K1, NULL, 0)
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


cdef inline Py_ssize_t _forward_work(Py_ssize_t R, Py_ssize_t n, Py_ssize_t d,
                                     Py_ssize_t m) noexcept nogil:
    """Scalars of workspace one thread needs for a block of R sequences."""
    return 2 * R * (n + d) + _hist_steps(R, d) * R * d + _YC * m


cdef inline Py_ssize_t _forward_ws(Py_ssize_t N, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                                   int n_threads) noexcept nogil:
    """Scalars of the workspace of ``_forward``, ``_loss`` and ``_generate``:
    U, W and V packed, then each thread's own part (each from a cache line)."""
    return (_up16(_packed(n, d, m))
            + n_threads * _up16(_forward_work(_rows(N, n_threads), n, d, m)))


def _forward_workspace_size(Py_ssize_t N, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                            int n_threads):
    """Scalars of the workspace ``_forward``, ``_loss`` and ``_generate`` take."""
    return _forward_ws(N, n, d, m, n_threads)


cdef Py_ssize_t _forward_batch(_Cell cell, const floating* theta, Py_ssize_t size, Py_ssize_t N,
                               Py_ssize_t T, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                               const floating* X, const floating* s0, floating* S, floating* Y,
                               const floating* target, const floating* weight, floating g,
                               floating* E, floating* ws, int n_threads,
                               _Watch* wp) noexcept nogil:
    """The forward pass of a batch for ``_forward`` (S and Y) and ``_loss``
    (target, weight or NULL, g and E; S and Y NULL), in blocks of sequences,
    one per thread. Returns the number of NaN and infinite values in theta
    and the inputs."""
    cdef Py_ssize_t R = _rows(N, n_threads), blk, b0, Rb
    cdef Py_ssize_t at = _up16(_packed(n, d, m)), stride = _up16(_forward_work(R, n, d, m))
    cdef const floating* bb = _bias_of(theta, size, n, d, m, False)
    cdef const floating* cb = _bias_of(theta, size, n, d, m, True)
    cdef Py_ssize_t bad
    _watch_start(wp)
    bad = _nonfinite(theta, size) + _nonfinite(X, N * T * n) + _nonfinite(s0, N * d)
    if target != NULL:
        bad = bad + _nonfinite(target, N * T * m)
    if weight != NULL:
        bad = bad + _nonfinite(weight, N * T * m)
    _pack_weights(theta, n, d, m, ws, False)
    if n_threads == 1:  # no thread team: each of its barriers is a system call
        if N > 0:
            _forward_block(cell, 0, N, T, n, d, m, X, s0, ws, bb, cb, S, Y, target, weight,
                           g, E, ws + at, wp)
        return bad
    for blk in prange(n_threads, num_threads=n_threads, schedule="static"):
        b0 = blk * R
        Rb = N - b0 if N - b0 < R else R
        if Rb > 0:
            _forward_block(cell, b0, Rb, T, n, d, m, X, s0, ws, bb, cb, S, Y, target, weight,
                           g, E, ws + at + threadid() * stride, wp)
    return bad


def _forward(const floating[::1] theta, const floating[:, :, ::1] X, const floating[:, ::1] s0,
             floating[:, :, ::1] S, floating[:, :, ::1] Y, floating[::1] ws, int n_threads,
             int act, double leak):
    """Forward pass over a batch.

    IN: theta (_parameter_size,): U (d, n), W (d, d), V (m, d), then b (d,)
    and c (m,) when the model has biases, each row-major; X (N, T, n), s0
    (N, d); the cell: act, the activation (a ``CELL_`` code of _cell.pxi),
    and leak, the leak rate a in (0, 1].
    OUT: S (N, T, d), Y (N, T, m), overwritten.
    SCRATCH: ws (_forward_workspace_size(N, n, d, m, n_threads),).

    Returns the number of NaN and infinite values in the weights and inputs;
    raises what a signal handler raised while it ran (``_Watch``).
    """
    cdef _Watch watch
    cdef Py_ssize_t bad
    with nogil:
        bad = _forward_batch(_cell(act, leak), &theta[0], theta.shape[0], X.shape[0], X.shape[1],
                             X.shape[2], s0.shape[1], Y.shape[2], &X[0, 0, 0], &s0[0, 0],
                             &S[0, 0, 0], &Y[0, 0, 0], NULL, NULL, 0, NULL, &ws[0], n_threads,
                             &watch)
    if watch.stop:
        _raise_stopped()
    return bad


cdef void _step_row(_Cell cell, const floating* theta, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
                    const floating* bb, const floating* cb, const floating* x,
                    const floating* s, floating* s_new, floating* y) noexcept nogil:
    """One step of one sequence from U, W, V as they lie in theta (no packing).

    z_j = sum_k [x, s]_k [U W]_jk is one multiply-add chain in the order of
    k (four rows at a time, for the processor's sake), then b is added and f
    applied; y_k = sum_j s_new_j V_kj, one chain, then c. These are the
    chains of the forward pass's products, so a step gives its bits.
    """
    cdef const floating* U = theta
    cdef const floating* W = U + d * n
    cdef const floating* V = W + d * d
    cdef Py_ssize_t j = 0, k
    cdef floating a0, a1, a2, a3, v
    while j + 4 <= d:
        a0 = 0
        a1 = 0
        a2 = 0
        a3 = 0
        for k in range(n):
            v = x[k]
            a0 = _fma(v, U[j * n + k], a0)
            a1 = _fma(v, U[(j + 1) * n + k], a1)
            a2 = _fma(v, U[(j + 2) * n + k], a2)
            a3 = _fma(v, U[(j + 3) * n + k], a3)
        for k in range(d):
            v = s[k]
            a0 = _fma(v, W[j * d + k], a0)
            a1 = _fma(v, W[(j + 1) * d + k], a1)
            a2 = _fma(v, W[(j + 2) * d + k], a2)
            a3 = _fma(v, W[(j + 3) * d + k], a3)
        s_new[j] = a0
        s_new[j + 1] = a1
        s_new[j + 2] = a2
        s_new[j + 3] = a3
        j = j + 4
    while j < d:
        a0 = 0
        for k in range(n):
            a0 = _fma(x[k], U[j * n + k], a0)
        for k in range(d):
            a0 = _fma(s[k], W[j * d + k], a0)
        s_new[j] = a0
        j = j + 1
    _cell_states(cell, s_new, 1, d, d, bb, s, d, NULL, 0)
    for k in range(m):
        a0 = 0
        for j in range(d):
            a0 = _fma(s_new[j], V[k * d + j], a0)
        y[k] = a0
    _add_bias(y, 1, m, m, cb)


def _step(const floating[::1] theta, const floating[:, ::1] x, const floating[:, ::1] s,
          floating[:, ::1] s_new, floating[:, ::1] y, int act, double leak):
    """One step of N sequences on one thread: the forward pass of T = 1, unpacked.

    IN: theta, act and leak as ``_forward``; x (N, n) the inputs, s (N, d)
    the states.
    OUT: s_new (N, d) the new states, y (N, m) the outputs (the bits of
    ``_forward`` on the same step).
    Returns the number of NaN and infinite values in theta, x and s.
    """
    cdef Py_ssize_t N = x.shape[0], n = x.shape[1], d = s.shape[1], m = y.shape[1], r
    cdef const floating* th = &theta[0]
    cdef const floating* bb = _bias_of(th, theta.shape[0], n, d, m, False)
    cdef const floating* cb = _bias_of(th, theta.shape[0], n, d, m, True)
    cdef Py_ssize_t bad
    cdef _Cell cell = _cell(act, leak)
    with nogil:
        bad = (_nonfinite(th, theta.shape[0]) + _nonfinite(&x[0, 0], N * n)
               + _nonfinite(&s[0, 0], N * d))
        for r in range(N):
            _step_row(cell, th, n, d, m, bb, cb, &x[r, 0], &s[r, 0], &s_new[r, 0], &y[r, 0])
    return bad


def _generate(const floating[::1] theta, const floating[:, ::1] x0, const floating[:, ::1] s0,
              floating[:, :, ::1] out, floating[:, ::1] sT,
              floating[::1] ws, int n_threads, int act, double leak):
    """Closed-loop forecasting over a batch: each output is the next input (m == n).

    IN: theta, act and leak as ``_forward``; x0 (N, n) the first inputs, s0 (N, d).
    OUT: out (N, T, n) the outputs, sT (N, d) the final states.
    SCRATCH: ws (_forward_workspace_size(N, n, d, m, n_threads),).

    Returns the number of NaN and infinite values in the weights and inputs;
    raises what a signal handler raised while it ran (``_Watch``).
    """
    cdef Py_ssize_t N = out.shape[0], T = out.shape[1], n = out.shape[2]
    cdef Py_ssize_t d = s0.shape[1], m = n
    cdef Py_ssize_t R = _rows(N, n_threads), blk, b0, Rb
    cdef floating* pack = &ws[0]
    cdef Py_ssize_t at = _up16(_packed(n, d, m)), stride = _up16(_forward_work(R, n, d, m))
    cdef const floating* U = &theta[0]
    cdef const floating* bb = _bias_of(U, theta.shape[0], n, d, m, False)
    cdef const floating* cb = _bias_of(U, theta.shape[0], n, d, m, True)
    cdef Py_ssize_t bad
    cdef _Watch watch
    cdef _Watch* wp = &watch
    with nogil:
        _watch_start(wp)
        bad = _nonfinite(U, theta.shape[0])
        if N > 0:
            bad = bad + _nonfinite(&x0[0, 0], N * n) + _nonfinite(&s0[0, 0], N * d)
        _pack_weights(U, n, d, m, pack, False)
        if n_threads == 1:  # no thread team (as _forward_batch)
            if N > 0:
                _generate_block(_cell(act, leak), 0, N, T, n, d, &x0[0, 0], &s0[0, 0], pack, bb,
                                cb, &out[0, 0, 0], &sT[0, 0], pack + at, wp)
        else:
            for blk in prange(n_threads, num_threads=n_threads, schedule="static"):
                b0 = blk * R
                Rb = N - b0 if N - b0 < R else R
                if Rb > 0:
                    _generate_block(_cell(act, leak), b0, Rb, T, n, d, &x0[0, 0], &s0[0, 0], pack,
                                    bb, cb, &out[0, 0, 0], &sT[0, 0],
                                    pack + at + threadid() * stride, wp)
    if watch.stop:
        _raise_stopped()
    return bad


def _loss(const floating[::1] theta, const floating[:, :, ::1] X, const floating[:, :, ::1] target,
          const floating[:, :, ::1] weight, const floating[:, ::1] s0, floating g,
          floating[::1] E, floating[::1] ws, int n_threads, int act, double leak):
    """Loss of every sequence of a batch, without storing states.

    IN: as ``_forward``, target (N, T, m), weight (N, T, m) the weights of
    the squared errors, or None (or empty) for none, g.
    OUT: E (N,), E[b] = g sum_t sum_k w (target - Y)^2 of sequence b.
    SCRATCH: ws as ``_forward``.

    Returns the number of NaN and infinite values in the weights and inputs;
    raises what a signal handler raised while it ran (``_Watch``).
    """
    cdef _Watch watch
    cdef Py_ssize_t bad
    with nogil:
        bad = _forward_batch(_cell(act, leak), &theta[0], theta.shape[0], X.shape[0], X.shape[1],
                             X.shape[2], s0.shape[1], target.shape[2], &X[0, 0, 0], &s0[0, 0],
                             NULL, NULL, &target[0, 0, 0],
                             &weight[0, 0, 0] if weight is not None and weight.shape[0] > 0 else NULL, g, &E[0],
                             &ws[0], n_threads, &watch)
    if watch.stop:
        _raise_stopped()
    return bad


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------

include "_bptt.pxi"
include "_rtrl.pxi"
include "_online_family.pxi"

include "_dynamics.pxi"

include "_jacobian.pxi"
