# SPDX-License-Identifier: BSD-3-Clause
"""The oracle: the Elman network's equations as plain Python loops, one sequence at a time.

Everything here is written to be read next to the equations, not to be fast:
nested lists of floats, explicit loops, no numpy. The compiled kernels of
:mod:`crnn` are tested against these functions on small sizes.

Notation (Elman 1990; Williams and Zipser 1989): ``U`` is (d, n), ``W`` is (d, d), ``V`` is
(m, d), ``X`` is a list of T inputs of length n, ``target`` a list of T
targets of length m, ``s0`` the initial state of length d (zeros by default)
and ``g`` the loss scale::

    z^t = U x^t + W s^{t-1} + b,   h^t = f(z^t),   s^t = (1 - a) s^{t-1} + a h^t,
    y^t = V s^t + c,
    E   = sum_t E^t,               E^t = g sum_k w^t_k (target^t_k - y^t_k)^2

The Elman network of this notation is f = tanh, a = 1 (s^t = tanh(z^t)), no
biases and every weight w = 1. The options are keyword arguments:
``b`` (length d) and ``c`` (length m), zeros by default (the gradients with
respect to them are returned too); ``activation`` f, one of ``"tanh"``,
``"relu"`` (derivative 0 at 0), ``"identity"``, ``"logistic"``; ``leak``
a in (0, 1]; ``weight`` w, a list of T lists of m weights (or an array of
that shape), ones by default.

Arguments may be nested lists or numpy arrays; results are nested lists of
Python floats (and a float for the loss).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crnn._typing import Activation, ArrayLike

__all__ = ["forward", "gradient_bptt", "gradient_rtrl", "jacobians", "loss", "online"]

_Matrix = list[list[float]]


def _f(activation: str, z: float) -> float:
    """Return f(z) for one pre-activation z."""
    if activation == "tanh":
        return math.tanh(z)
    if activation == "relu":
        return z if z > 0 else 0.0
    if activation == "identity":
        return z
    if activation == "logistic":
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    raise ValueError(f"unknown activation {activation!r}")


def _f_prime(activation: str, z: float) -> float:
    """Return f'(z) for one pre-activation z."""
    if activation == "tanh":
        return 1.0 - math.tanh(z) ** 2
    if activation == "relu":
        return 1.0 if z > 0 else 0.0
    if activation == "identity":
        return 1.0
    if activation == "logistic":
        h = _f("logistic", z)
        return h * (1.0 - h)
    raise ValueError(f"unknown activation {activation!r}")


def _matrix(A: Any) -> _Matrix:
    """Return A as a list of lists of floats."""
    if hasattr(A, "tolist"):
        A = A.tolist()
    return [[float(a) for a in row] for row in A]


def _vector(a: Any) -> list[float]:
    """Return a as a list of floats."""
    if hasattr(a, "tolist"):
        a = a.tolist()
    return [float(v) for v in a]


def _zeros(rows: int, cols: int) -> _Matrix:
    return [[0.0] * cols for _ in range(rows)]


def _setup(
    U: Any, W: Any, V: Any, X: Any, s0: Any, b: Any = None, c: Any = None
) -> tuple[_Matrix, _Matrix, _Matrix, _Matrix, list[float], list[float], list[float]]:
    U, W, V, X = _matrix(U), _matrix(W), _matrix(V), _matrix(X)
    d, m = len(W), len(V)
    s0 = [0.0] * d if s0 is None else _vector(s0)
    b = [0.0] * d if b is None else _vector(b)
    c = [0.0] * m if c is None else _vector(c)
    return U, W, V, X, s0, b, c


def forward(
    U: ArrayLike,
    W: ArrayLike,
    V: ArrayLike,
    X: ArrayLike,
    s0: ArrayLike | None = None,
    *,
    b: ArrayLike | None = None,
    c: ArrayLike | None = None,
    activation: Activation = "tanh",
    leak: float = 1.0,
) -> tuple[_Matrix, _Matrix]:
    """Run the RNN over one sequence.

    Returns
    -------
    S : list of T lists of d floats
        The states s^1 .. s^T.
    Y : list of T lists of m floats
        The outputs y^1 .. y^T.
    """
    U, W, V, X, s_prev, b, c = _setup(U, W, V, X, s0, b, c)
    d, n, m = len(U), len(U[0]) if U else 0, len(V)
    S, Y = [], []
    for x in X:
        # z^t_i = sum_j u_ij x^t_j + sum_j w_ij s^{t-1}_j + b_i
        z = [
            sum(U[i][j] * x[j] for j in range(n))
            + sum(W[i][j] * s_prev[j] for j in range(d))
            + b[i]
            for i in range(d)
        ]
        # s^t_i = (1 - a) s^{t-1}_i + a f(z^t_i)
        s = [(1.0 - leak) * s_prev[i] + leak * _f(activation, z[i]) for i in range(d)]
        # y^t_k = sum_l v_kl s^t_l + c_k
        y = [sum(V[k][l] * s[l] for l in range(d)) + c[k] for k in range(m)]
        S.append(s)
        Y.append(y)
        s_prev = s
    return S, Y


def loss(
    U: ArrayLike,
    W: ArrayLike,
    V: ArrayLike,
    X: ArrayLike,
    target: ArrayLike,
    s0: ArrayLike | None = None,
    g: float = 1.0,
    *,
    b: ArrayLike | None = None,
    c: ArrayLike | None = None,
    activation: Activation = "tanh",
    leak: float = 1.0,
    weight: ArrayLike | None = None,
) -> float:
    """Return E = g * sum_t sum_k w^t_k (target^t_k - y^t_k)^2 for one sequence."""
    _, Y = forward(U, W, V, X, s0, b=b, c=c, activation=activation, leak=leak)
    target = _matrix(target)
    w = _weights(weight, target)
    g = float(g)
    E = 0.0
    for t in range(len(Y)):
        E += g * sum(w[t][k] * (target[t][k] - Y[t][k]) ** 2 for k in range(len(Y[t])))
    return E


def _weights(weight: ArrayLike | None, target: _Matrix) -> _Matrix:
    """Return the weights w^t_k: ones, or weight as a list of lists."""
    if weight is None:
        return [[1.0] * len(row) for row in target]
    return _matrix(weight)


def gradient_rtrl(
    U: ArrayLike,
    W: ArrayLike,
    V: ArrayLike,
    X: ArrayLike,
    target: ArrayLike,
    s0: ArrayLike | None = None,
    g: float = 1.0,
    *,
    b: ArrayLike | None = None,
    c: ArrayLike | None = None,
    activation: Activation = "tanh",
    leak: float = 1.0,
    weight: ArrayLike | None = None,
) -> dict[str, Any]:
    """Gradient of E by real-time recurrent learning, as Williams and Zipser write it.

    The sensitivities ds^t_l/du_ij and ds^t_l/dw_ij are carried forward
    (a = 1 gives Williams and Zipser's equations; with a < 1 each
    sensitivity also keeps (1 - a) of its value at the step before)::

        ds^0_l/du_ij = 0
        ds^t_l/du_ij = (1 - a) ds^{t-1}_l/du_ij
                       + a f'(z^t_l) (x^t_j delta_li + sum_m w_lm ds^{t-1}_m/du_ij)
        ds^t_l/dw_ij = (1 - a) ds^{t-1}_l/dw_ij
                       + a f'(z^t_l) (s^{t-1}_j delta_li + sum_m w_lm ds^{t-1}_m/dw_ij)

    and at every step the double sum over k and l gives::

        dE^t/du_ij = sum_k sum_l -2g w^t_k (target^t_k - y^t_k) v_kl ds^t_l/du_ij
        dE^t/dv_ij = -2g w^t_i (target^t_i - y^t_i) s^t_j

    The initial state is a parameter too: ds^0_l/ds0_j = delta_lj, and
    ds^t_l/ds0_j = (1 - a) ds^{t-1}_l/ds0_j + a f'(z^t_l) sum_m w_lm
    ds^{t-1}_m/ds0_j. The biases: ds^t_l/db_i = (1 - a) ds^{t-1}_l/db_i + a
    f'(z^t_l) (delta_li + sum_m w_lm ds^{t-1}_m/db_i) and dE^t/dc_k = -2g
    w^t_k (target^t_k - y^t_k).

    Returns
    -------
    dict
        ``"U"``, ``"W"``, ``"V"``, ``"s0"``, ``"b"``, ``"c"`` (nested lists,
        the gradients) and ``"loss"`` (E).
    """
    U, W, V, X, s_prev, b, c = _setup(U, W, V, X, s0, b, c)
    target = _matrix(target)
    w = _weights(weight, target)
    g = float(g)
    a = float(leak)
    d, n, m = len(U), len(U[0]) if U else 0, len(V)
    delta = [[1.0 if p == q else 0.0 for q in range(d)] for p in range(d)]

    # sensitivities: dSdU[l][i][j] = ds_l/du_ij, dSdW[l][i][j] = ds_l/dw_ij,
    # dSds0[l][j] = ds_l/ds0_j
    dSdU = [_zeros(d, n) for _ in range(d)]
    dSdW = [_zeros(d, d) for _ in range(d)]
    dSds0 = [row[:] for row in delta]
    dSdb = _zeros(d, d)  # dSdb[l][i] = ds_l/db_i

    dU, dW, dV = _zeros(d, n), _zeros(d, d), _zeros(m, d)
    ds0, db, dc = [0.0] * d, [0.0] * d, [0.0] * m
    E = 0.0
    for t, x in enumerate(X):
        z = [
            sum(U[i][j] * x[j] for j in range(n))
            + sum(W[i][j] * s_prev[j] for j in range(d))
            + b[i]
            for i in range(d)
        ]
        s = [(1.0 - a) * s_prev[i] + a * _f(activation, z[i]) for i in range(d)]
        y = [sum(V[k][l] * s[l] for l in range(d)) + c[k] for k in range(m)]
        f_prime = [_f_prime(activation, z_l) for z_l in z]

        # the sensitivity recursion, from step t-1 to step t
        new_dSdU, new_dSdW, new_dSds0, new_dSdb = [], [], [], []
        for l in range(d):
            new_dSdU.append(
                [
                    [
                        (1.0 - a) * dSdU[l][i][j]
                        + a
                        * f_prime[l]
                        * (x[j] * delta[l][i] + sum(W[l][mm] * dSdU[mm][i][j] for mm in range(d)))
                        for j in range(n)
                    ]
                    for i in range(d)
                ]
            )
            new_dSdW.append(
                [
                    [
                        (1.0 - a) * dSdW[l][i][j]
                        + a
                        * f_prime[l]
                        * (
                            s_prev[j] * delta[l][i]
                            + sum(W[l][mm] * dSdW[mm][i][j] for mm in range(d))
                        )
                        for j in range(d)
                    ]
                    for i in range(d)
                ]
            )
            new_dSds0.append(
                [
                    (1.0 - a) * dSds0[l][j]
                    + a * f_prime[l] * sum(W[l][mm] * dSds0[mm][j] for mm in range(d))
                    for j in range(d)
                ]
            )
            new_dSdb.append(
                [
                    (1.0 - a) * dSdb[l][i]
                    + a
                    * f_prime[l]
                    * (delta[l][i] + sum(W[l][mm] * dSdb[mm][i] for mm in range(d)))
                    for i in range(d)
                ]
            )
        dSdU, dSdW, dSds0, dSdb = new_dSdU, new_dSdW, new_dSds0, new_dSdb

        # dE^t/dy_k = -2g w^t_k (target^t_k - y^t_k)
        e = [-2.0 * g * w[t][k] * (target[t][k] - y[k]) for k in range(m)]
        E += g * sum(w[t][k] * (target[t][k] - y[k]) ** 2 for k in range(m))

        # Williams and Zipser's double sum over k and l
        for i in range(d):
            for j in range(n):
                dU[i][j] += sum(e[k] * V[k][l] * dSdU[l][i][j] for k in range(m) for l in range(d))
            for j in range(d):
                dW[i][j] += sum(e[k] * V[k][l] * dSdW[l][i][j] for k in range(m) for l in range(d))
        for j in range(d):
            ds0[j] += sum(e[k] * V[k][l] * dSds0[l][j] for k in range(m) for l in range(d))
            db[j] += sum(e[k] * V[k][l] * dSdb[l][j] for k in range(m) for l in range(d))
        for i in range(m):
            for j in range(d):
                dV[i][j] += e[i] * s[j]
            dc[i] += e[i]
        s_prev = s
    return {"U": dU, "W": dW, "V": dV, "s0": ds0, "b": db, "c": dc, "loss": E}


def gradient_bptt(
    U: ArrayLike,
    W: ArrayLike,
    V: ArrayLike,
    X: ArrayLike,
    target: ArrayLike,
    s0: ArrayLike | None = None,
    g: float = 1.0,
    *,
    b: ArrayLike | None = None,
    c: ArrayLike | None = None,
    activation: Activation = "tanh",
    leak: float = 1.0,
    weight: ArrayLike | None = None,
) -> dict[str, Any]:
    """Gradient of E by backpropagation through time.

    With G^t = dE/ds^t (through every path) and delta^t = dE/dz^t::

        G^{T+1} = delta^{T+1} = 0,   e^t_k = -2g w^t_k (target^t_k - y^t_k)
        G^t = V^T e^t + W^T delta^{t+1} + (1 - a) G^{t+1}
        delta^t = a f'(z^t) * G^t
        dE/dU = sum_t delta^t (x^t)^T,  dE/dW = sum_t delta^t (s^{t-1})^T,
        dE/dV = sum_t e^t (s^t)^T,      dE/ds0 = W^T delta^1 + (1 - a) G^1
        dE/db = sum_t delta^t,          dE/dc = sum_t e^t

    (a = 1: delta^t = f'(z^t) * (V^T e^t + W^T delta^{t+1}), the textbook form.)

    Returns
    -------
    dict
        The same keys as :func:`gradient_rtrl`.
    """
    U, W, V, X, s_init, b, c = _setup(U, W, V, X, s0, b, c)
    target = _matrix(target)
    w = _weights(weight, target)
    g = float(g)
    a = float(leak)
    d, n, m = len(U), len(U[0]) if U else 0, len(V)
    S, Y = forward(U, W, V, X, s_init, b=b, c=c, activation=activation, leak=leak)
    states = [s_init, *S]  # states[t] = s^t, t = 0..T
    T = len(X)

    dU, dW, dV = _zeros(d, n), _zeros(d, d), _zeros(m, d)
    db, dc = [0.0] * d, [0.0] * m
    E = 0.0
    delta_next = [0.0] * d
    G_next = [0.0] * d
    for t in range(T - 1, -1, -1):  # step t+1 of the equations (1-based)
        s, s_prev, x = states[t + 1], states[t], X[t]
        z = [
            sum(U[i][j] * x[j] for j in range(n))
            + sum(W[i][j] * s_prev[j] for j in range(d))
            + b[i]
            for i in range(d)
        ]
        e = [-2.0 * g * w[t][k] * (target[t][k] - Y[t][k]) for k in range(m)]
        E += g * sum(w[t][k] * (target[t][k] - Y[t][k]) ** 2 for k in range(m))
        G = [
            sum(V[k][l] * e[k] for k in range(m))
            + sum(W[i][l] * delta_next[i] for i in range(d))
            + (1.0 - a) * G_next[l]
            for l in range(d)
        ]
        delta = [a * _f_prime(activation, z[l]) * G[l] for l in range(d)]
        for i in range(d):
            for j in range(n):
                dU[i][j] += delta[i] * x[j]
            for j in range(d):
                dW[i][j] += delta[i] * s_prev[j]
            db[i] += delta[i]
        for k in range(m):
            for j in range(d):
                dV[k][j] += e[k] * s[j]
            dc[k] += e[k]
        delta_next, G_next = delta, G
    ds0 = [sum(W[i][j] * delta_next[i] for i in range(d)) + (1.0 - a) * G_next[j] for j in range(d)]
    return {"U": dU, "W": dW, "V": dV, "s0": ds0, "b": db, "c": dc, "loss": E}


# ---------------------------------------------------------------------- online learning (crnn.online)
#
# The algorithms of crnn.online on one stream, one step at a time, with the
# weights updated after every step. The parameters of the state are taken
# as one (d, K) matrix M = [U W b] (row i: u_i., w_i., b_i; K = n + d + 1,
# or n + d and M = [U W] without biases), whose direct influence on s^t is
# D^t[l][i][j] = delta_li a f'(z^t_i) xs^t_j with xs^t = [x^t, s^{t-1}, 1]
# (without the 1 when there are no biases); the Jacobian of the state is
# J^t[l][k] = (1 - a) delta_lk + a f'(z^t_l) w_lk.

ONLINE_ALGORITHMS = ("rtrl", "rflo", "eprop", "tbptt", "uoro", "kfrtrl", "snap1", "snap2")


def online(
    algorithm: str,
    U: ArrayLike,
    W: ArrayLike,
    V: ArrayLike,
    X: ArrayLike,
    target: ArrayLike,
    s0: ArrayLike | None = None,
    g: float = 1.0,
    *,
    lr: float = 0.0,
    clip: float | None = None,
    b: ArrayLike | None = None,
    c: ArrayLike | None = None,
    activation: Activation = "tanh",
    leak: float = 1.0,
    horizon: int = 1,
    period: int = 1,
    signs: Any = None,
) -> dict[str, Any]:
    """Learn online from one stream by one of the algorithms of :mod:`crnn.online`.

    At each step t: the state and output from the current weights, e^t =
    -2g (target^t - y^t), c^t = V^T e^t, the algorithm's estimate G^t of
    dE^t/dtheta (dE^t/dV = e^t s^t^T and dE^t/dc = e^t exactly; for M, with
    the influence P^t[l][i][j] of m_ij on s^t_l that it carries, G^t_M[i][j]
    = sum_l c^t_l P^t[l][i][j]), its norm clipped to ``clip``, then
    theta -= lr G^t. Influences, by ``algorithm``:

    - ``"rtrl"``:  P^t = J^t P^{t-1} + D^t (Williams and Zipser 1989);
    - ``"rflo"``:  P^t[i][i][j] = (1 - a) P^{t-1}[i][i][j] + D^t[i][i][j],
      the rest 0 (Murray 2019);
    - ``"eprop"``: as rflo with J^t[i][i] for (1 - a) (Bellec et al. 2020);
    - ``"snap1"``, ``"snap2"``: RTRL's update kept on SnAp-n's pattern,
      P[l][i] for l = i (n = 1) or l = i or w_li != 0 in the first W
      (n = 2), the rest 0 (Menick et al. 2021);
    - ``"uoro"``: P ~ st th^T: with nu the next d of ``signs``,
      rho0 = sqrt(norm(th) / (norm(J st) + eps)) + eps, rho1 =
      sqrt(norm(nu^T D) / (norm(nu) + eps)) + eps, st <- rho0 J st + rho1 nu,
      th <- th / rho0 + nu^T D / rho1 (Tallec and Ollivier 2018), eps = 1e-7
      and norm the Euclidean norm;
    - ``"kfrtrl"``: P[l][i][j] ~ A_li u_j: with c1, c2 the next two of
      ``signs``, p1 = sqrt(norm(J A) / (norm(u) + eps)) + eps, p2 =
      sqrt(norm(a f') / (norm(xs) + eps)) + eps, u <- c1 p1 u + c2 p2 xs,
      A <- c1 J A / p1 + c2 diag(a f') / p2 (Mujika et al. 2018);
    - ``"tbptt"``: every ``period`` steps, the errors of the last period
      steps are propagated back through the last ``horizon`` steps (by the
      recursion of :func:`gradient_bptt`, with the weights of that step),
      and the update is made then (Williams and Peng 1990); G^t is 0 at the
      other steps.

    Parameters
    ----------
    signs : iterator of floats, optional
        The random signs (+1 or -1) of UORO and KF-RTRL, in the order drawn.

    Returns
    -------
    dict
        ``Y`` (T lists of m), ``E`` (T floats), ``estimates`` (T lists, each
        G^t flattened in theta's order U, W, V, then b, c when b or c was
        given) and the final ``U``, ``W``, ``V``, ``b``, ``c`` and ``s``.
    """
    if algorithm not in ONLINE_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ONLINE_ALGORITHMS}, got {algorithm!r}")
    with_bias = b is not None or c is not None
    U, W, V, X, s, b, c = _setup(U, W, V, X, s0, b, c)
    target = _matrix(target)
    d, n, m = len(U), len(U[0]) if U else 0, len(V)
    K, a, eps = n + d + (1 if with_bias else 0), float(leak), 1e-7
    mask = [[1.0 if (l == i or W[l][i] != 0) else 0.0 for i in range(d)] for l in range(d)]
    if algorithm in ("rflo", "eprop", "snap1"):
        mask = [[1.0 if l == i else 0.0 for i in range(d)] for l in range(d)]
    P = [[[0.0] * K for _ in range(d)] for _ in range(d)]  # P[l][i][j]
    st, th = [0.0] * d, _zeros(d, K)  # UORO
    u, A = [0.0] * K, _zeros(d, d)  # KF-RTRL
    ring: list[tuple[list[float], list[float], list[float]]] = []  # TBPTT: (xs, a f', c)
    sumV, sumc = _zeros(m, d), [0.0] * m
    Ys, Es, estimates = [], [], []
    for t, x in enumerate(X):
        z = [
            sum(U[i][j] * x[j] for j in range(n)) + sum(W[i][j] * s[j] for j in range(d)) + b[i]
            for i in range(d)
        ]
        s_new = [(1.0 - a) * s[i] + a * _f(activation, z[i]) for i in range(d)]
        y = [sum(V[k][l] * s_new[l] for l in range(d)) + c[k] for k in range(m)]
        e = [-2.0 * g * (target[t][k] - y[k]) for k in range(m)]
        E = g * sum((target[t][k] - y[k]) ** 2 for k in range(m))
        cv = [sum(V[k][l] * e[k] for k in range(m)) for l in range(d)]
        fp = [a * _f_prime(activation, z[i]) for i in range(d)]
        xs = [*x, *s, *([1.0] if with_bias else [])]
        J = [[(1.0 - a) * (l == k) + fp[l] * W[l][k] for k in range(d)] for l in range(d)]
        GM = _zeros(d, K)
        gV = [[e[k] * s_new[j] for j in range(d)] for k in range(m)]
        gc = list(e)
        if algorithm in ("rtrl", "snap1", "snap2", "rflo", "eprop"):
            new = [[[0.0] * K for _ in range(d)] for _ in range(d)]
            for l in range(d):
                for i in range(d):
                    if algorithm == "rflo":
                        carry = [(1.0 - a) * P[l][i][j] for j in range(K)]
                    elif algorithm == "eprop":
                        carry = [J[l][l] * P[l][i][j] for j in range(K)]
                    else:
                        carry = [sum(J[l][k] * P[k][i][j] for k in range(d)) for j in range(K)]
                    for j in range(K):
                        value = carry[j] + (fp[i] * xs[j] if l == i else 0.0)
                        new[l][i][j] = value if (algorithm == "rtrl" or mask[l][i]) else 0.0
            P = new
            GM = [[sum(cv[l] * P[l][i][j] for l in range(d)) for j in range(K)] for i in range(d)]
        elif algorithm == "uoro":
            nu = [float(next(signs)) for _ in range(d)]
            Js = [sum(J[l][k] * st[k] for k in range(d)) for l in range(d)]
            nuD = [[nu[i] * fp[i] * xs[j] for j in range(K)] for i in range(d)]
            norm_th = math.sqrt(sum(v * v for row in th for v in row))
            norm_nuD = math.sqrt(sum(v * v for row in nuD for v in row))
            rho0 = math.sqrt(norm_th / (math.sqrt(sum(v * v for v in Js)) + eps)) + eps
            rho1 = math.sqrt(norm_nuD / (math.sqrt(sum(v * v for v in nu)) + eps)) + eps
            st = [rho0 * Js[l] + rho1 * nu[l] for l in range(d)]
            th = [[th[i][j] / rho0 + nuD[i][j] / rho1 for j in range(K)] for i in range(d)]
            cs = sum(cv[l] * st[l] for l in range(d))
            GM = [[cs * th[i][j] for j in range(K)] for i in range(d)]
        elif algorithm == "kfrtrl":
            c1, c2 = float(next(signs)), float(next(signs))
            JA = [[sum(J[l][k] * A[k][i] for k in range(d)) for i in range(d)] for l in range(d)]
            norm_JA = math.sqrt(sum(v * v for row in JA for v in row))
            p1 = math.sqrt(norm_JA / (math.sqrt(sum(v * v for v in u)) + eps)) + eps
            p2 = (
                math.sqrt(
                    math.sqrt(sum(v * v for v in fp)) / (math.sqrt(sum(v * v for v in xs)) + eps)
                )
                + eps
            )
            u = [c1 * p1 * u[j] + c2 * p2 * xs[j] for j in range(K)]
            A = [
                [c1 * JA[l][i] / p1 + (c2 * fp[l] / p2 if l == i else 0.0) for i in range(d)]
                for l in range(d)
            ]
            cA = [sum(cv[l] * A[l][i] for l in range(d)) for i in range(d)]
            GM = [[cA[i] * u[j] for j in range(K)] for i in range(d)]
        else:  # tbptt
            ring = [*ring, (xs, fp, cv)][-horizon:]
            for k in range(m):
                for j in range(d):
                    sumV[k][j] += gV[k][j]
                sumc[k] += gc[k]
            gV, gc = _zeros(m, d), [0.0] * m
            if (t + 1) % period == 0:
                G = [0.0] * d  # dE/ds^tau, carried back
                for tau, (xs_t, fp_t, cv_t) in enumerate(reversed(ring)):
                    G = [G[i] + (cv_t[i] if tau < period else 0.0) for i in range(d)]
                    delta = [fp_t[i] * G[i] for i in range(d)]
                    for i in range(d):
                        for j in range(K):
                            GM[i][j] += delta[i] * xs_t[j]
                    G = [
                        (1.0 - a) * G[k] + sum(W[i][k] * delta[i] for i in range(d))
                        for k in range(d)
                    ]
                gV, gc = sumV, sumc
                sumV, sumc = _zeros(m, d), [0.0] * m
        est = [GM[i][j] for i in range(d) for j in range(n)]
        est += [GM[i][n + j] for i in range(d) for j in range(d)]
        est += [v for row in gV for v in row]
        if with_bias:
            est += [GM[i][n + d] for i in range(d)] + list(gc)
        norm = math.sqrt(sum(v * v for v in est))
        if clip is not None and norm > clip:
            est = [v * clip / norm for v in est]
        Ys.append(y)
        Es.append(E)
        estimates.append(est)
        s = s_new
        it = iter(est)
        U = [[U[i][j] - lr * next(it) for j in range(n)] for i in range(d)]
        W = [[W[i][j] - lr * next(it) for j in range(d)] for i in range(d)]
        V = [[V[k][j] - lr * next(it) for j in range(d)] for k in range(m)]
        if with_bias:
            b = [b[i] - lr * next(it) for i in range(d)]
            c = [c[k] - lr * next(it) for k in range(m)]
    return {
        "Y": Ys,
        "E": Es,
        "estimates": estimates,
        "U": U,
        "W": W,
        "V": V,
        "b": b,
        "c": c,
        "s": s,
    }


# ---------------------------------------------------------------------- dynamics (crnn.dynamics)


def jacobians(
    U: ArrayLike,
    W: ArrayLike,
    X: ArrayLike,
    s0: ArrayLike | None = None,
    *,
    b: ArrayLike | None = None,
    activation: Activation = "tanh",
    leak: float = 1.0,
) -> tuple[list[_Matrix], list[_Matrix]]:
    """Return the Jacobians of every step along one sequence, d s^t / d s^{t-1} and d s^t / d x^t.

    With z^t = U x^t + W s^{t-1} + b::

        d s^t_i / d s^{t-1}_j = (1 - a) [i == j] + a f'(z^t_i) w_ij
        d s^t_i / d x^t_j     = a f'(z^t_i) u_ij

    Returns two lists of T matrices, (d, d) and (d, n).
    """
    U, W, _, X, s_prev, b, _ = _setup(U, W, [], X, s0, b, None)
    d, n = len(U), len(U[0]) if U else 0
    Js, Jxs = [], []
    for x in X:
        z = [
            sum(U[i][j] * x[j] for j in range(n))
            + sum(W[i][j] * s_prev[j] for j in range(d))
            + b[i]
            for i in range(d)
        ]
        gain = [leak * _f_prime(activation, z[i]) for i in range(d)]
        J = [
            [(1.0 - leak if i == j else 0.0) + gain[i] * W[i][j] for j in range(d)]
            for i in range(d)
        ]
        Jx = [[gain[i] * U[i][j] for j in range(n)] for i in range(d)]
        Js.append(J)
        Jxs.append(Jx)
        s_prev = [(1.0 - leak) * s_prev[i] + leak * _f(activation, z[i]) for i in range(d)]
    return Js, Jxs
