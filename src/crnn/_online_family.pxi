# SPDX-License-Identifier: BSD-3-Clause
# cython: language_level=3
#
# The online learning algorithms around exact RTRL (crnn.online), included by
# _core.pyx after _rtrl.pxi, whose one-step helpers they share (_state_step,
# _output_error, _matvec, _matTvec). One entry point, ``_online_family``,
# runs a chunk of one stream for any of them; each step is
#
#   the cell's step and the output error (as _rtrl_online forms them);
#   the algorithm's own influence update and its estimate of dE^t/d[U W b],
#     written for the parameters as one (d, K) matrix M = [U W b]
#     (row i: u_i., w_i., b_i), K = n + d (+ 1 with biases), whose direct
#     influence on S^t is D^t[l, (i, j)] = delta_li a f'(Z^t_i) xs_j with
#     xs = [x^t, S^{t-1}, 1] (Williams and Zipser's immediate term);
#   dE^t/dV = e^t S^t.T and dE^t/dc = e^t, exact for every algorithm;
#   the gradient's norm clipped, the step refused when E^t or a new weight
#   would not be finite (then it changed nothing), theta -= lr * gradient.
#
# The Jacobian of the state is J^t = dS^t/dS^{t-1} = (1 - a) I + diag(a f'(Z^t)) W.

from libc.stdint cimport uint64_t

cdef enum:
    ALG_RFLO = 1
    ALG_EPROP = 2
    ALG_TBPTT = 3
    ALG_UORO = 4
    ALG_KFRTRL = 5
    ALG_SNAP1 = 6
    ALG_SNAP2 = 7

# ints, the counters carried from call to call (int64 each):
#   [0] the current buffer of mem (0 or 1)     [1] the random state (splitmix64)
#   [2] TBPTT: the ring's next slot            [3] TBPTT: steps in the ring
#   [4] TBPTT: steps since the last update     [5] TBPTT: the horizon h
#   [6] TBPTT: the update period


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept nogil:
    """The next 64 random bits of splitmix64 (Steele, Lea and Flood, 2014)."""
    cdef uint64_t z
    state[0] = state[0] + <uint64_t>0x9E3779B97F4A7C15
    z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline double _sign(uint64_t* state) noexcept nogil:
    """+1 or -1 with probability 1/2 each: the top bit of the next draw."""
    return 1.0 if (_splitmix64(state) >> 63) else -1.0


cdef inline floating _norm(const floating* a, Py_ssize_t count) noexcept nogil:
    """The Euclidean norm of a[0 .. count - 1]."""
    cdef Py_ssize_t i
    cdef floating acc = 0
    for i in range(count):
        acc = acc + a[i] * a[i]
    return sqrt(acc)


def _online_family_sizes(int alg, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, bint bias,
                         Py_ssize_t horizon):
    """(rows, row size, work size) of an algorithm's carried memory and workspace, in scalars."""
    cdef Py_ssize_t K = n + d + (1 if bias else 0), P = d * K + m * d + (m if bias else 0)
    cdef Py_ssize_t rows = 2, size = 0
    if alg == ALG_RFLO or alg == ALG_EPROP or alg == ALG_SNAP1:
        size = d * K
    elif alg == ALG_TBPTT:
        rows = 1
        size = (horizon + 1) * (K + 2 * d) + m * d + m
    elif alg == ALG_UORO:
        size = d + d * K
    elif alg == ALG_KFRTRL:
        size = K + d * d
    elif alg == ALG_SNAP2:
        size = d * d * K
    return rows, size, K + 8 * d + 2 * m + 2 * d * K + 2 * (m * d + m) + P + d * d + 16


def _online_family(int alg, floating[::1] theta, const floating[:, ::1] X,
                   const floating[:, ::1] target, floating[::1] s, floating[:, ::1] mem,
                   Py_ssize_t[::1] ints, const floating[::1] mask, floating g, floating lr,
                   floating clip, floating[:, ::1] Y, floating[::1] E, floating[::1] grad_sum,
                   floating[::1] last, floating[::1] work, int act, double leak):
    """A chunk of one stream by the online algorithm ``alg`` (an ALG_ code).

    IN/OUT: theta (_parameter_size,) U, W, V (b, c), updated when lr > 0; s
    (d,) the state; mem (rows, size) of ``_online_family_sizes``: the
    algorithm's carried memory, mem[ints[0]] the current one for the double
    buffered (the step writes the other, so that a refused step changes
    nothing); ints (7,) the counters above; grad_sum (theta's size) every
    step's estimate added, in theta's layout; last (theta's size) the last
    step's estimate. IN: X (T, n), target (T, m); mask (d, d) SnAp-2's
    pattern (1 where W_li != 0 or l = i), unread by the others. OUT: Y (T,
    m) the outputs before each step's update, E (T,) each step's E^t.
    SCRATCH: work (the third of ``_online_family_sizes``).

    The memory, by algorithm (B, P as (d, K) or (d, d, K) row-major):

    - RFLO (Murray 2019, eq. 12-13): B^t = (1 - a) B^{t-1} + D^t on the
      diagonal l = i, dE^t/dM_ij ~ c_i B^t_ij, c = V.T e^t;
    - e-prop (Bellec et al. 2020, eq. 13-14, the rate form of Marschall et
      al. 2020): as RFLO with the diagonal of J^t, J_ii = (1 - a) + a f'_i
      w_ii, in place of 1 - a; SnAp-1 (Menick et al. 2021) is this same
      recursion (its pattern is the diagonal);
    - TBPTT: a ring of the last h + 1 steps' (xs, a f'(Z), c); every
      ``period`` steps the errors of the last period steps run back through
      the last h steps (Williams and Peng 1990), the update made then (V
      and c from the sums of the period);
    - UORO (Tallec and Ollivier 2018, Alg. 1): P ~ s~ th~.T, s~ <- rho0 J
      s~ + rho1 nu, th~ <- th~ / rho0 + nu.T D / rho1 with random signs nu,
      rho0 = sqrt(|th~| / (|J s~| + eps)) + eps, rho1 = sqrt(|nu.T D| /
      (|nu| + eps)) + eps;
    - KF-RTRL (Mujika et al. 2018, eq. 5-7): P[l, (i, j)] ~ A_li u_j, u <-
      c1 p1 u + c2 p2 xs, A <- c1 J A / p1 + c2 diag(a f') / p2, random
      signs c1, c2, p1 = sqrt(|J A| / |u|), p2 = sqrt(|diag(a f')| / |xs|)
      (each + eps in the quotient and after the root);
    - SnAp-2 (Menick et al. 2021): RTRL's P^t = (1 - a) P^{t-1} + a f'
      (W P^{t-1} + direct) kept on the pattern mask (P[l, i, :] for
      mask_li = 1), others 0.

    Returns the steps made: T, the step that stopped, or -1 with nothing
    done when the weights, X or target hold a NaN or an infinity. Raises
    what a signal handler raised between two steps; the steps made before
    changed the arrays, and the caller puts them back.
    """
    cdef Py_ssize_t T = X.shape[0], n = X.shape[1], d = s.shape[0], m = target.shape[1]
    cdef bint bias = theta.shape[0] > d * n + d * d + m * d
    cdef Py_ssize_t K = n + d + (1 if bias else 0), NP = theta.shape[0]
    cdef floating* U = &theta[0]
    cdef floating* W = U + d * n
    cdef floating* V = W + d * d
    cdef floating* bb = V + m * d if bias else NULL
    cdef floating* cb = V + m * d + d if bias else NULL
    cdef Py_ssize_t nv = m * d + (m if bias else 0)
    cdef floating* xs = &work[0]                    # (K,): [x^t, s^{t-1}, 1]
    cdef floating* s_new = xs + K                   # (d,)
    cdef floating* cv = s_new + d                   # (d,): V.T e^t
    cdef floating* fp = cv + d                      # (d,): a f'(Z^t)
    cdef floating* e = fp + d                       # (m,)
    cdef floating* y = e + m                        # (m,)
    cdef floating* gq = y + m                       # (d K,): dE^t/dM
    cdef floating* gv = gq + d * K                  # (m d + m,): dE^t/d[V c]
    cdef floating* gt = gv + m * d + m              # (NP,): the estimate, theta's layout
    cdef floating* t1 = gt + NP                     # (d,)
    cdef floating* t2 = t1 + d                      # (d,)
    cdef floating* nu = t2 + d                      # (d,)
    cdef floating* big = nu + d                     # (d K,) or (d, d)
    cdef floating* vacc = big + d * K + d * d       # (m d + m,): TBPTT's period sums
    cdef Py_ssize_t t, i, j, k, l, q, tau, slot, depth, bad, done = T, c0 = ints[0]
    cdef Py_ssize_t pos = ints[2], count = ints[3], phase = ints[4]
    cdef Py_ssize_t h = ints[5], period = ints[6], SL = K + 2 * d, ct = _ct(<floating>0)
    cdef uint64_t rng = <uint64_t>ints[1], rng_next
    cdef floating* Mp
    cdef floating* Mn
    cdef floating* ring = &mem[0, 0]
    cdef floating* sl
    cdef floating el, norm, scale, w, r0, r1, c1, c2, dot, fl, eps = <floating>1e-7
    cdef bint update
    cdef _Watch watch
    cdef _Cell cell = _cell(act, leak)
    cdef floating keep = <floating>(1.0 - leak)
    with nogil:
        _watch_start(&watch)
        bad = _nonfinite(U, NP)
        if T > 0:
            bad = bad + _nonfinite(&X[0, 0], T * n) + _nonfinite(&target[0, 0], T * m)
        if bad:
            done = -1
            T = 0
        for t in range(T):
            if t > 0 and _stopped(&watch, d * K * (d + 4)):
                done = t
                break
            Mp = &mem[c0 % mem.shape[0], 0]
            Mn = &mem[(c0 + 1) % mem.shape[0], 0]
            rng_next = rng
            # the cell's step and the output error
            _state_step(cell, U, W, bb, d, n, &X[t, 0], &s[0], s_new, fp if keep != 0 else NULL)
            el = g * _output_error(V, cb, m, d, s_new, &target[t, 0], g, y, e)
            for i in range(d):
                cv[i] = 0
            _matTvec(V, m, d, e, cv)
            for j in range(n):
                xs[j] = X[t, j]
            for j in range(d):
                xs[n + j] = s[j]
            if bias:
                xs[n + d] = 1
            _cell_gains(cell, fp if keep != 0 else s_new, fp, d)
            for k in range(nv):
                gv[k] = 0
            _outer(gv, m, d, e, s_new)
            if bias:
                for k in range(m):
                    gv[m * d + k] = e[k]
            update = True

            if alg == ALG_RFLO or alg == ALG_EPROP or alg == ALG_SNAP1:
                for i in range(d):
                    fl = keep if alg == ALG_RFLO else keep + fp[i] * W[i * d + i]
                    for j in range(K):
                        w = fl * Mp[i * K + j] + fp[i] * xs[j]
                        Mn[i * K + j] = w
                        gq[i * K + j] = cv[i] * w
            elif alg == ALG_UORO:
                # t1 = J s~ = (1 - a) s~ + a f' (W s~)
                for i in range(d):
                    t1[i] = 0
                _matvec(W, d, d, Mp, t1)
                for i in range(d):
                    t1[i] = keep * Mp[i] + fp[i] * t1[i]
                    nu[i] = <floating>_sign(&rng_next)
                for i in range(d):                  # big = nu.T D: nu_i a f'_i xs_j
                    for j in range(K):
                        big[i * K + j] = nu[i] * fp[i] * xs[j]
                r0 = sqrt(_norm(Mp + d, d * K) / (_norm(t1, d) + eps)) + eps
                r1 = sqrt(_norm(big, d * K) / (_norm(nu, d) + eps)) + eps
                dot = 0
                for i in range(d):
                    w = r0 * t1[i] + r1 * nu[i]
                    Mn[i] = w
                    dot = dot + cv[i] * w
                for q in range(d * K):
                    w = Mp[d + q] / r0 + big[q] / r1
                    Mn[d + q] = w
                    gq[q] = dot * w
            elif alg == ALG_KFRTRL:
                # big = J A = (1 - a) A + a f' (W A) (d x d), A = Mp + K
                _gemm(d, d, d, W, d, 1, Mp + K, ct, d, d, big, d, 0)
                for l in range(d):
                    for i in range(d):
                        big[l * d + i] = keep * Mp[K + l * d + i] + fp[l] * big[l * d + i]
                c1 = <floating>_sign(&rng_next)
                c2 = <floating>_sign(&rng_next)
                r0 = sqrt(_norm(big, d * d) / (_norm(Mp, K) + eps)) + eps
                r1 = sqrt(_norm(fp, d) / (_norm(xs, K) + eps)) + eps
                for j in range(K):
                    Mn[j] = c1 * r0 * Mp[j] + c2 * r1 * xs[j]
                for l in range(d):
                    for i in range(d):
                        Mn[K + l * d + i] = c1 * big[l * d + i] / r0
                    Mn[K + l * d + l] = Mn[K + l * d + l] + c2 * fp[l] / r1
                for i in range(d):                  # t2 = c.T A
                    t2[i] = 0
                for l in range(d):
                    for i in range(d):
                        t2[i] = t2[i] + cv[l] * Mn[K + l * d + i]
                for i in range(d):
                    for j in range(K):
                        gq[i * K + j] = t2[i] * Mn[j]
            elif alg == ALG_SNAP2:
                # Mn[l] = mask_l. ((1 - a) Mp[l] + a f'_l (sum_k w_lk Mp[k] + direct_l)),
                # W Mp as one product (d x d times d x d K)
                _gemm(d, d, d * K, W, d, 1, Mp, ct, d * K, d * K, Mn, d * K, 0)
                for l in range(d):
                    sl = Mn + l * d * K
                    for j in range(K):
                        sl[l * K + j] = sl[l * K + j] + xs[j]
                    for i in range(d):
                        if mask[l * d + i] == 0:
                            for j in range(K):
                                sl[i * K + j] = 0
                        else:
                            for j in range(K):
                                sl[i * K + j] = fp[l] * sl[i * K + j] + keep * Mp[(l * d + i) * K + j]
                for q in range(d * K):
                    gq[q] = 0
                for l in range(d):
                    for q in range(d * K):
                        gq[q] = gq[q] + cv[l] * Mn[l * d * K + q]
            elif alg == ALG_TBPTT:
                sl = ring + pos * SL                # this step's slot
                for j in range(K):
                    sl[j] = xs[j]
                for i in range(d):
                    sl[K + i] = fp[i]
                    sl[K + d + i] = cv[i]
                for k in range(nv):                 # V and c: the period's sums
                    vacc[k] = ring[(h + 1) * SL + k] + gv[k]
                update = phase + 1 == period
                for q in range(d * K):
                    gq[q] = 0
                if update:
                    depth = count + 1 if count + 1 < h else h
                    for i in range(d):
                        t1[i] = 0                   # dE/dS^tau carried back
                    for tau in range(depth):
                        slot = (pos - tau + h + 1) % (h + 1)
                        sl = ring + slot * SL
                        for i in range(d):
                            w = t1[i] + (sl[K + d + i] if tau < period else 0)
                            t2[i] = sl[K + i] * w   # dE/dZ^tau
                            t1[i] = keep * w
                        for i in range(d):
                            for j in range(K):
                                gq[i * K + j] = gq[i * K + j] + t2[i] * sl[j]
                        _matTvec(W, d, d, t2, t1)
                    for k in range(nv):
                        gv[k] = vacc[k]
                else:
                    for k in range(nv):
                        gv[k] = 0

            # the estimate in theta's layout: U, W, V, b, c
            for i in range(d):
                for j in range(n):
                    gt[i * n + j] = gq[i * K + j]
                for j in range(d):
                    gt[d * n + i * d + j] = gq[i * K + n + j]
            for k in range(m * d):
                gt[d * n + d * d + k] = gv[k]
            if bias:
                for i in range(d):
                    gt[d * n + d * d + m * d + i] = gq[i * K + n + d]
                for k in range(m):
                    gt[d * n + d * d + m * d + d + k] = gv[m * d + k]
            if clip > 0:
                norm = _norm(gt, NP)
                if norm > clip:
                    scale = clip / norm
                    for q in range(NP):
                        gt[q] = gt[q] * scale
            # nothing is changed by a step that would leave E^t, the estimate or a weight
            # not finite
            bad = _nonfinite(&el, 1) + _nonfinite(gt, NP)
            if lr > 0 and not bad:
                for q in range(NP):
                    w = U[q] - lr * gt[q]
                    bad = bad + _nonfinite(&w, 1)
            if bad:
                done = t
                break
            # commit the step
            E[t] = el
            for k in range(m):
                Y[t, k] = y[k]
            for q in range(NP):
                grad_sum[q] = grad_sum[q] + gt[q]
                last[q] = gt[q]
            for j in range(d):
                s[j] = s_new[j]
            if lr > 0:
                for q in range(NP):
                    U[q] = U[q] - lr * gt[q]
            rng = rng_next
            if alg == ALG_TBPTT:
                for k in range(nv):
                    ring[(h + 1) * SL + k] = 0 if update else vacc[k]
                pos = (pos + 1) % (h + 1)
                count = count + 1 if count < h else h
                phase = 0 if update else phase + 1
            else:
                c0 = (c0 + 1) % mem.shape[0]
    ints[0] = c0
    ints[1] = <Py_ssize_t>rng
    ints[2] = pos
    ints[3] = count
    ints[4] = phase
    if watch.stop:
        _raise_stopped()
    return done
