# SPDX-License-Identifier: BSD-3-Clause
r"""The trained network as a dynamical system: Jacobians, Lyapunov spectrum, fixed points.

A model's cell, driven by inputs :math:`X^t`, is the map

.. math::

    S^t = F(S^{t-1}, X^t) = (1 - a) S^{t-1} + a f(U X^t + W S^{t-1} + b)

(f the activation, a the leak rate, b zero without biases), whose Jacobians
are

.. math::

    J^t = \frac{\partial S^t}{\partial S^{t-1}} = (1 - a) I + a\,
    \mathrm{diag}(f'(Z^t))\, W, \qquad
    \frac{\partial S^t}{\partial X^t} = a\, \mathrm{diag}(f'(Z^t))\, U,

with :math:`Z^t = U X^t + W S^{t-1} + b`. Every function here uses these
exact Jacobians, computed by compiled kernels (``crnn/_dynamics.pxi``):

- :func:`jacobians`, :func:`input_jacobians`: along the trajectory that X
  drives;
- :func:`lyapunov_spectrum`: the Lyapunov exponents by the QR method
  (Benettin et al. 1980), as in Engelken, Wolf and Abbott (2020);
- :func:`fixed_points`: the fixed points (and slow points) of
  :math:`s \mapsto F(s, x)` for a constant input, as in Sussillo and Barak
  (2013), found by Levenberg-Marquardt on
  :math:`q(s) = \tfrac12 \lVert F(s, x) - s \rVert^2` with the exact
  Jacobian;
- :func:`gradient_by_lag`: how the gradient of each step's error falls (or
  grows) with the lag, :math:`\lVert \partial E^t / \partial S^{t-k} \rVert`;
- :func:`plot_fixed_points`, :func:`plot_lyapunov`: figures, with matplotlib.

Everything is computed in float64, whatever the model's dtype (a float32
model's weights and data are converted exactly); the states visited are
those of :meth:`crnn.RNN.forward` on the same data.

References
----------
D. Sussillo and O. Barak, "Opening the black box: low-dimensional dynamics
in high-dimensional recurrent neural networks", Neural Computation 25(3),
626-649, 2013.

M. D. Golub and D. Sussillo, "FixedPointFinder: a TensorFlow toolbox for
identifying and characterizing fixed points in recurrent neural networks",
Journal of Open Source Software 3(31), 1003, 2018.

R. Engelken, F. Wolf and L. F. Abbott, "Lyapunov spectra of chaotic
recurrent neural networks", arXiv:2006.02427, 2020.

G. Benettin, L. Galgani, A. Giorgilli and J.-M. Strelcyn, "Lyapunov
characteristic exponents for smooth dynamical systems and for Hamiltonian
systems; a method for computing all of them", Meccanica 15, 9-20 and 21-30,
1980.

J. L. Kaplan and J. A. Yorke, "Chaotic behavior of multidimensional
difference equations", Lecture Notes in Mathematics 730, 204-227, 1979.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crnn import _kernels
from crnn._rnn import RNN
from crnn._validation import (
    as_float_array,
    check_alloc,
    check_g,
    check_int,
    check_real,
    check_shape,
    make_rng,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from crnn._typing import ArrayLike, FloatArray, Seed

__all__ = [
    "FixedPoints",
    "LyapunovSpectrum",
    "fixed_points",
    "gradient_by_lag",
    "input_jacobians",
    "jacobians",
    "kaplan_yorke",
    "lyapunov_spectrum",
    "plot_fixed_points",
    "plot_lyapunov",
]

_F64 = np.dtype(np.float64)


# ---------------------------------------------------------------------- shared


def _model(model: object) -> tuple[RNN, FloatArray]:
    """Return the model and its parameters theta in float64, checked (finite, shapes)."""
    if not isinstance(model, RNN):
        raise TypeError(f"model must be a crnn.RNN, got {type(model).__name__}")
    theta = model._weights(True)
    return model, np.ascontiguousarray(theta, dtype=_F64)


def _trajectory(
    rnn: RNN, theta: FloatArray, X: ArrayLike, s0: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray, bool]:
    """Return X (N, T, n), the states S (N, T, d) and the states before each step P (N, T, d).

    X and s0 are checked as :meth:`crnn.RNN.forward` checks them (and
    converted to the model's dtype, then to float64); the last value says
    whether X was a batch.
    """
    X3, _, s02, batched, _ = rnn._data(X, None, s0, True, False)
    X3 = np.ascontiguousarray(X3, dtype=_F64)
    s02 = np.ascontiguousarray(s02, dtype=_F64)
    S, _, _ = _kernels.forward(theta, rnn._size, X3, s02, rnn.n_threads, rnn._cell)
    P = np.concatenate([s02[:, np.newaxis], S[:, :-1]], axis=1)
    return X3, S, P, batched


def _jacobians(
    model: RNN, X: ArrayLike, s0: ArrayLike | None, inputs: bool
) -> tuple[FloatArray, FloatArray | None, bool]:
    rnn, theta = _model(model)
    X3, _, P, batched = _trajectory(rnn, theta, X, s0)
    N, T, n = X3.shape
    d = rnn.hidden_size
    _, J, Jx = _kernels.state_jacobians(
        theta,
        rnn._size,
        X3.reshape(N * T, n),
        P.reshape(N * T, d),
        rnn.n_threads,
        rnn._cell,
        inputs,
    )
    J = J.reshape(N, T, d, d)
    if Jx is not None:
        Jx = Jx.reshape(N, T, d, n)
    return J, Jx, batched


def jacobians(model: RNN, X: ArrayLike, s0: ArrayLike | None = None) -> FloatArray:
    r"""Return the Jacobians :math:`\partial S^t / \partial S^{t-1}` along the trajectory X drives.

    .. math:: J^t = (1 - a) I + a\, \mathrm{diag}(f'(Z^t))\, W,
        \qquad Z^t = U X^t + W S^{t-1} + b

    exact, in float64, for t = 1..T, from the states of
    :meth:`crnn.RNN.forward` (S^0 = ``s0``).

    Parameters
    ----------
    model : crnn.RNN
    X : array_like of shape (T, n) or (N, T, n)
        The inputs, as :meth:`crnn.RNN.forward` takes them.
    s0 : array_like of shape (d,) or (N, d), optional
        The initial state; zeros by default.

    Returns
    -------
    ndarray of shape (T, d, d) or (N, T, d, d)
        ``J[t - 1]`` (``J[i, t - 1]`` for sequence i) is :math:`J^t`.

    Raises
    ------
    TypeError, ValueError
        When model is not a :class:`crnn.RNN`, or X or s0 does not fit it.
    """
    J, _, batched = _jacobians(model, X, s0, False)
    return J if batched else J[0]


def input_jacobians(model: RNN, X: ArrayLike, s0: ArrayLike | None = None) -> FloatArray:
    r"""Return the Jacobians :math:`\partial S^t / \partial X^t = a\, \mathrm{diag}(f'(Z^t))\, U`.

    As :func:`jacobians`, of shape (T, d, n) or (N, T, d, n).
    """
    _, Jx, batched = _jacobians(model, X, s0, True)
    assert Jx is not None
    return Jx if batched else Jx[0]


# ---------------------------------------------------------------------- Lyapunov spectrum


@dataclass(frozen=True)
class LyapunovSpectrum:
    r"""The result of :func:`lyapunov_spectrum`.

    Attributes
    ----------
    exponents : ndarray of shape (k,)
        The k largest Lyapunov exponents, in natural-log units per step,
        sorted descending.
    running : ndarray of shape (C, k)
        The estimates after each of the C orthonormalisations (columns in
        the order of ``exponents``): their convergence shows whether the
        trajectory was long enough (the error falls as 1/T).
    steps : ndarray of shape (C,)
        The steps (after the warm-up) each row of ``running`` covers.
    kaplan_yorke : float
        The Kaplan-Yorke (Lyapunov) dimension of these exponents,
        :math:`j + (\lambda_1 + \dots + \lambda_j) / |\lambda_{j+1}|`, j the
        largest index whose partial sum is >= 0 (0 when the first exponent
        is negative; k when every partial sum is >= 0).
    state : ndarray of shape (d,)
        The state at the end of the trajectory.
    """

    exponents: FloatArray
    running: FloatArray
    steps: NDArray[np.int64]
    kaplan_yorke: float
    state: FloatArray


def kaplan_yorke(exponents: ArrayLike) -> float:
    """Return the Kaplan-Yorke dimension of Lyapunov exponents (sorted here, descending)."""
    lam = np.sort(as_float_array(exponents, "exponents", _F64, 1, False))[::-1]
    if lam.size == 0 or not lam[0] >= 0:
        return 0.0
    partial = np.cumsum(lam)
    j = int(np.flatnonzero(partial >= 0)[-1]) + 1
    if j == lam.size:
        return float(j)
    return float(j + partial[j - 1] / abs(lam[j]))


def lyapunov_spectrum(
    model: RNN,
    X: ArrayLike | None = None,
    *,
    n_steps: int | None = None,
    s0: ArrayLike | None = None,
    k: int | None = None,
    warmup: int = 0,
    qr_every: int | None = None,
    seed: Seed = None,
) -> LyapunovSpectrum:
    r"""Return the k largest Lyapunov exponents by the QR method (Benettin et al. 1980).

    k orthonormal tangent vectors :math:`Q` (random, from ``seed``) are
    carried along the trajectory, :math:`Q \leftarrow J^t Q` with the exact
    Jacobian :math:`J^t = (1 - a) I + a\, \mathrm{diag}(f'(Z^t)) W`, and
    orthonormalised by a QR decomposition, :math:`Q = Q' R`, every
    few steps (``qr_every``); the i-th exponent is the mean growth rate
    :math:`\lambda_i = \frac{1}{T} \sum \log |R_{ii}|` (Engelken, Wolf and
    Abbott 2020). The whole loop is one compiled call (a Gram-Schmidt QR
    with reorthogonalisation in the kernel).

    Parameters
    ----------
    model : crnn.RNN
    X : array_like of shape (T, n), optional
        The inputs that drive the trajectory. None: the autonomous system
        (zero input) for ``warmup + n_steps`` steps.
    n_steps : int, optional
        The steps to average over when X is None (>= 1; not with X).
    s0 : array_like of shape (d,), optional
        The initial state, zeros by default. (From zeros with zero input
        and no biases the state stays 0: give a state off it.)
    k : int, optional
        How many exponents, 1 <= k <= d; all d by default.
    warmup : int, default 0
        Steps run first, the state alone, so that the trajectory reaches
        its attractor (with X, its first ``warmup`` steps; fewer than T).
    qr_every : int, optional
        Steps between two orthonormalisations. In exact arithmetic the
        exponents do not depend on it (the R factors of successive QRs
        multiply), and a QR every few steps is faster; in floating point it
        is exact only while the tangent vectors grow apart by less than
        about 1e4 in between. By default (None) the kernel chooses it as it
        goes: after each QR, the next interval keeps both the spread of the
        :math:`\log |R_{ii}|` and their size, at the rates of the last interval,
        below ln 1e4 (1 to 64 steps; 1 for a stiff spectrum, where every
        step needs its QR). ``qr_every=1`` is the textbook method.
    seed : None, int or numpy.random.Generator
        The random initial tangent vectors.

    Returns
    -------
    LyapunovSpectrum
        ``exponents`` (k,), ``running`` estimates, ``steps``,
        ``kaplan_yorke`` and the final ``state``.

    Raises
    ------
    TypeError, ValueError
        When model is not a :class:`crnn.RNN`, X or s0 does not fit it,
        X and n_steps are both given or both missing, or k, warmup or
        qr_every is out of range.

    Notes
    -----
    An exponent whose direction collapses (a zero R_ii, e.g. relu units
    that are all off) is -inf. The estimates converge as 1/T.
    """
    rnn, theta = _model(model)
    n, d, _ = rnn._size
    warmup = check_int(warmup, "warmup", low=0)
    qr_every = check_int(qr_every, "qr_every", low=1, allow_none=True)
    k = d if k is None else check_int(k, "k", low=1)
    if k > d:
        raise ValueError(f"k must be in [1, {d}] (the model's hidden_size), got {k}")
    if X is None:
        if n_steps is None:
            raise ValueError("give X (the inputs) or n_steps (steps of the autonomous system)")
        n_steps = check_int(n_steps, "n_steps", low=1)
        check_alloc((warmup + n_steps, n), _F64, "the zero inputs")
        X2 = np.zeros((warmup + n_steps, n))
    else:
        if n_steps is not None:
            raise ValueError("give X or n_steps, not both (n_steps is for the autonomous system)")
        X2 = as_float_array(X, "X", rnn.dtype, 2)
        if X2.shape[1] != n:
            raise ValueError(
                f"X must have {n} features in its last axis (the model's input_size), "
                f"got shape {X2.shape}"
            )
        if X2.shape[0] <= warmup:
            raise ValueError(f"warmup must be less than X's {X2.shape[0]} steps (T), got {warmup}")
        X2 = np.ascontiguousarray(X2, dtype=_F64)
    if s0 is None:
        state0 = np.zeros(d)
    else:
        state0 = np.ascontiguousarray(as_float_array(s0, "s0", rnn.dtype, 1), dtype=_F64)
        check_shape(state0, "s0", (d,))
    rng = make_rng(seed)
    basis = np.ascontiguousarray(np.linalg.qr(rng.standard_normal((d, k)))[0].T)
    every = 0 if qr_every is None else qr_every
    logs, at, state, _ = _kernels.lyapunov(
        theta, rnn._size, X2, state0, basis, warmup, every, rnn._cell
    )
    steps = at.astype(np.int64)
    with np.errstate(invalid="ignore"):
        running = np.cumsum(logs, axis=0) / steps[:, np.newaxis]
    exponents = running[-1]
    order = np.argsort(-exponents, kind="stable")
    exponents = exponents[order].copy()
    return LyapunovSpectrum(
        exponents=exponents,
        running=np.ascontiguousarray(running[:, order]),
        steps=steps,
        kaplan_yorke=kaplan_yorke(exponents),
        state=state,
    )


# ---------------------------------------------------------------------- fixed points


@dataclass(frozen=True)
class FixedPoints:
    """The result of :func:`fixed_points`: K distinct points, by increasing q.

    Attributes
    ----------
    states : ndarray of shape (K, d)
        The points s.
    q : ndarray of shape (K,)
        q(s) = ½ ‖F(s, x) - s‖².
    jacobians : ndarray of shape (K, d, d)
        dF/ds at each point.
    eigenvalues : ndarray of shape (K, d), complex
        The eigenvalues of each Jacobian, largest modulus first.
    stable : ndarray of shape (K,), bool
        Every eigenvalue of modulus < 1 (an attractor of the map).
    fixed : ndarray of shape (K,), bool
        q < tol: a fixed point; False for a slow point (only with ``slow``).
    x : ndarray of shape (n,)
        The constant input.
    """

    states: FloatArray
    q: FloatArray
    jacobians: FloatArray
    eigenvalues: NDArray[np.complex128]
    stable: NDArray[np.bool_]
    fixed: NDArray[np.bool_]
    x: FloatArray


def _sample_states(
    rnn: RNN, theta: FloatArray, x: FloatArray, count: int, rng: np.random.Generator
) -> FloatArray:
    """States from the model's own trajectories under the constant input x.

    ``count`` trajectories of 32 steps from random (standard normal) states,
    each sampled at a random step, the start included.
    """
    d = rnn.hidden_size
    T = 32
    start = rng.standard_normal((count, d))
    X3 = np.broadcast_to(x, (count, T, x.shape[0])).copy()
    S, _, _ = _kernels.forward(theta, rnn._size, X3, start, rnn.n_threads, rnn._cell)
    S = np.concatenate([start[:, np.newaxis], S], axis=1)
    at = rng.integers(0, T + 1, size=count)
    return np.ascontiguousarray(S[np.arange(count), at])


def fixed_points(
    model: RNN,
    x: ArrayLike | None = None,
    *,
    inits: ArrayLike | None = None,
    n_inits: int = 64,
    noise: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 200,
    merge_tol: float = 1e-6,
    slow: float | None = None,
    seed: Seed = None,
) -> FixedPoints:
    r"""Return the fixed points of the state map :math:`s \mapsto F(s, x)` for a constant input x.

    A fixed point :math:`s^* = F(s^*, x)` is a zero of
    :math:`q(s) = \tfrac12 \lVert F(s, x) - s \rVert^2` (Sussillo and Barak
    2013). From each starting state, Levenberg-Marquardt steps on the
    residual r(s) = F(s, x) - s with its exact Jacobian A = J - I,

    .. math:: (A^\top A + \mu I)\, \delta = -A^\top r,

    (μ shrinks after each step that lowers q and grows after one that does
    not: Newton's quadratic convergence near a regular point, gradient
    descent far from one), all starts at once, until q < ``tol``. Points
    closer than ``merge_tol`` are one; each is classified by the eigenvalues
    of :math:`J = (1 - a) I + a\, \mathrm{diag}(f'(z)) W` there: stable when
    every modulus is below 1.

    Parameters
    ----------
    model : crnn.RNN
    x : array_like of shape (n,), optional
        The constant input; zeros by default.
    inits : array_like of shape (M, d), optional
        The starting states, e.g. states of trajectories
        (``model.forward(X)[0].reshape(-1, d)``). By default, ``n_inits``
        states sampled from the model's own trajectories under x, from
        random states.
    n_inits : int, default 64
        Starting states to sample when ``inits`` is None (>= 1).
    noise : float, default 0.0
        Standard deviation of Gaussian noise added to the starting states
        (as FixedPointFinder does, to leave a trajectory's attractor).
    tol : float, default 1e-10
        q below which a point is fixed (> 0).
    max_iter : int, default 200
        Levenberg-Marquardt steps at most.
    merge_tol : float, default 1e-6
        Points closer than this (Euclidean distance) are merged.
    slow : float, optional
        Also return slow points: where the search ends with tol <= q <
        ``slow`` (local minima of q; ``fixed`` False).
    seed : None, int or numpy.random.Generator
        For the sampled starting states and the noise.

    Returns
    -------
    FixedPoints
        ``states``, ``q``, ``jacobians``, ``eigenvalues``, ``stable``,
        ``fixed``, ``x``.

    Raises
    ------
    TypeError, ValueError
        When model is not a :class:`crnn.RNN`, x or inits does not fit it
        or holds NaN or infinity, or an option is out of range.
    """
    rnn, theta = _model(model)
    n, d, _ = rnn._size
    if x is None:
        x1 = np.zeros(n)
    else:
        x1 = np.ascontiguousarray(as_float_array(x, "x", rnn.dtype, 1), dtype=_F64)
        check_shape(x1, "x", (n,))
    n_inits = check_int(n_inits, "n_inits", low=1)
    noise = check_real(noise, "noise", low=0.0)
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    max_iter = check_int(max_iter, "max_iter", low=1)
    merge_tol = check_real(merge_tol, "merge_tol", low=0.0)
    slow_q = check_real(slow, "slow", low=tol, low_open=True, allow_none=True)
    rng = make_rng(seed)
    if inits is None:
        start = _sample_states(rnn, theta, x1, n_inits, rng)
    else:
        start = as_float_array(inits, "inits", rnn.dtype, 2)
        if start.shape[1] != d or start.shape[0] == 0:
            raise ValueError(
                f"inits must have shape (M, {d}) with M >= 1 (d = the model's hidden_size), "
                f"got {start.shape}"
            )
        start = np.array(start, dtype=_F64)
    if noise > 0:
        start = start + noise * rng.standard_normal(start.shape)
    S, q = _minimise_q(rnn, theta, x1, start, tol, max_iter)
    keep_q = tol if slow_q is None else slow_q
    found = np.flatnonzero(q < keep_q)
    found = found[np.argsort(q[found], kind="stable")]
    kept: list[int] = []
    for i in found:
        if all(np.linalg.norm(S[i] - S[j]) > merge_tol for j in kept):
            kept.append(int(i))
    states = np.ascontiguousarray(S[kept]).reshape(len(kept), d)
    _, _, J = _map(rnn, theta, x1, states)
    eig: NDArray[np.complex128] = np.empty((len(kept), d), np.complex128)
    if len(kept):
        eig[...] = np.linalg.eigvals(J)
    eig = np.take_along_axis(eig, np.argsort(-np.abs(eig), axis=1, kind="stable"), axis=1)
    qs = q[kept]
    return FixedPoints(
        states=states,
        q=qs,
        jacobians=J,
        eigenvalues=eig,
        stable=np.abs(eig).max(axis=1, initial=0.0) < 1,
        fixed=qs < tol,
        x=x1,
    )


def _map(
    rnn: RNN, theta: FloatArray, x: FloatArray, S: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return r = F(S, x) - S (M, d), q (M,) and J = dF/ds (M, d, d) at the states S (M, d)."""
    M = S.shape[0]
    X = np.broadcast_to(x, (M, x.shape[0])).copy()
    F, J, _ = _kernels.state_jacobians(theta, rnn._size, X, S, rnn.n_threads, rnn._cell)
    r = F - S
    return r, 0.5 * np.einsum("ij,ij->i", r, r), J


def _minimise_q(
    rnn: RNN, theta: FloatArray, x: FloatArray, start: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, FloatArray]:
    """Levenberg-Marquardt on q from every starting state at once: the states reached and their q.

    A start stops when its q is below tol and a step no longer moves it (by
    1e-12 of its norm, or no step lowers q: converged to rounding), when no
    step lowers q any more (a local minimum: a slow point), or after
    max_iter steps.
    """
    S = np.ascontiguousarray(start)
    M, d = S.shape
    eye = np.eye(d)
    r, q, J = _map(rnn, theta, x, S)
    mu = np.full(M, 1e-3)
    settled = np.zeros(M, dtype=bool)
    for _ in range(max_iter):
        active = ~((q < tol) & settled) & (mu < 1e15) & (q > 0)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        A = J[idx] - eye
        At = A.transpose(0, 2, 1)
        H = At @ A
        g = (At @ r[idx][..., np.newaxis])[..., 0]
        scale = np.maximum(np.trace(H, axis1=1, axis2=2) / d, 1e-300)
        H[:, np.arange(d), np.arange(d)] += (mu[idx] * scale)[:, np.newaxis]
        try:
            step = np.linalg.solve(H, -g[..., np.newaxis])[..., 0]
        except np.linalg.LinAlgError:  # a singular system: a gradient step instead
            step = -g / scale[:, np.newaxis]
        trial = S[idx] + step
        r_t, q_t, J_t = _map(rnn, theta, x, np.ascontiguousarray(trial))
        better = q_t < q[idx]
        up, down = idx[better], idx[~better]
        S[up], r[up], q[up], J[up] = trial[better], r_t[better], q_t[better], J_t[better]
        moved = np.linalg.norm(step[better], axis=1)
        settled[up] = moved <= 1e-12 * (1 + np.linalg.norm(S[up], axis=1))
        settled[down] = True
        mu[up] = np.maximum(mu[up] / 10, 1e-15)
        mu[down] *= 10
    return S, q


# ---------------------------------------------------------------------- gradient by lag


def gradient_by_lag(
    model: RNN,
    X: ArrayLike,
    target: ArrayLike,
    s0: ArrayLike | None = None,
    *,
    g: float = 1.0,
    max_lag: int | None = None,
) -> FloatArray:
    r"""Return, for each lag k, the mean over t of :math:`\lVert \partial E^t / \partial S^{t-k} \rVert`.

    :math:`E^t = g \sum_k (\hat Y^t_k - Y^t_k)^2` is step t's term of the
    loss, and

    .. math::

        \frac{\partial E^t}{\partial S^{t-k}} = (J^{t-k+1})^\top \cdots
        (J^t)^\top V^\top e^t, \qquad e^t = -2 g (\hat Y^t - Y^t),

    exact (the Jacobians of :func:`jacobians`): the profile of vanishing or
    exploding gradients. The mean runs over the steps t = max(k, 1) .. T
    (and the sequences of a batch); lag t reaches S^0.

    Parameters
    ----------
    model : crnn.RNN
    X : array_like of shape (T, n) or (N, T, n)
    target : array_like of shape (T, m) or (N, T, m)
    s0 : array_like of shape (d,) or (N, d), optional
    g : float, default 1.0
        The loss scale, as in :meth:`crnn.RNN.loss`.
    max_lag : int, optional
        The largest lag, 0 <= max_lag <= T; T by default. The cost is
        O(T max_lag d^2).

    Returns
    -------
    ndarray of shape (max_lag + 1,)
        Entry k is the mean norm at lag k.

    Raises
    ------
    TypeError, ValueError
        When model is not a :class:`crnn.RNN`, the data do not fit it, or
        max_lag is out of range.
    """
    rnn, theta = _model(model)
    g = check_g(g)
    X3, t3, s02, _, _ = rnn._data(X, target, s0, True, True)
    T = X3.shape[1]
    if T == 0:
        raise ValueError("X must have at least one step (T >= 1)")
    lag = T if max_lag is None else check_int(max_lag, "max_lag", low=0)
    if lag > T:
        raise ValueError(f"max_lag must be in [0, {T}] (X's steps), got {lag}")
    J = jacobians(rnn, X3, s02)
    _, Y, _ = _kernels.forward(
        theta,
        rnn._size,
        np.ascontiguousarray(X3, dtype=_F64),
        np.ascontiguousarray(s02, dtype=_F64),
        rnn.n_threads,
        rnn._cell,
    )
    e = -2.0 * g * (np.asarray(t3, dtype=_F64) - Y)
    V = theta[_v_slice(rnn)].reshape(rnn.output_size, rnn.hidden_size)
    cur = e @ V  # dE^t/dS^t, (N, T, d)
    out = np.empty(lag + 1)
    out[0] = np.linalg.norm(cur, axis=2).mean()
    for k in range(1, lag + 1):
        # rows t >= k (0-based i >= k - 1): dE^t/dS^{t-k} = (J^{t-k+1}).T dE^t/dS^{t-k+1}
        part = cur[:, k - 1 :, np.newaxis, :] @ J[:, : T - k + 1]
        cur[:, k - 1 :] = part[:, :, 0, :]
        out[k] = np.linalg.norm(cur[:, k - 1 :], axis=2).mean()
    return out


def _v_slice(rnn: RNN) -> slice:
    """Where V lies in theta."""
    start, stop, _ = _kernels.parameter_layout(*rnn._size, rnn.bias)["V"]
    return slice(start, stop)


# ---------------------------------------------------------------------- plots


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install 'crnn[plot]' (or matplotlib)"
        ) from None
    return plt


def plot_fixed_points(
    points: FixedPoints, trajectories: ArrayLike | None = None, *, ax: Any = None
) -> Any:
    """Plot fixed points (filled: stable, open: unstable) and trajectories in their top two principal components.

    ``trajectories`` (T, d) or (N, T, d), e.g. the states of
    :meth:`crnn.RNN.forward`, set the components when given (else the
    points do). Returns the matplotlib Axes.
    """
    if not isinstance(points, FixedPoints):
        raise TypeError(f"points must be a FixedPoints, got {type(points).__name__}")
    plt = _pyplot()
    d = points.states.shape[1]
    traj = None
    if trajectories is not None:
        traj = as_float_array(trajectories, "trajectories", _F64, (2, 3))
        if traj.shape[-1] != d:
            raise ValueError(
                f"trajectories must have {d} states in their last axis, got {traj.shape}"
            )
        traj = traj.reshape(-1 if traj.ndim == 2 else traj.shape[0], *traj.shape[-2:])
    basis = traj.reshape(-1, d) if traj is not None else points.states
    mean = basis.mean(axis=0)
    _, _, Vt = np.linalg.svd(basis - mean, full_matrices=False)
    pcs = Vt[:2].T if Vt.shape[0] >= 2 else np.eye(d)[:, :2]
    if ax is None:
        _, ax = plt.subplots()
    if traj is not None:
        for seq in traj.reshape(-1, traj.shape[-2], d):
            p = (seq - mean) @ pcs
            ax.plot(p[:, 0], p[:, 1], lw=0.5, alpha=0.5, color="0.5")
    p = (points.states - mean) @ pcs
    st = points.stable
    ax.scatter(p[st, 0], p[st, 1], color="k", zorder=3, label="stable")
    ax.scatter(p[~st, 0], p[~st, 1], facecolors="none", edgecolors="r", zorder=3, label="unstable")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend()
    return ax


def plot_lyapunov(spectrum: LyapunovSpectrum, *, axes: Any = None) -> Any:
    """Plot a Lyapunov spectrum (left) and the convergence of its estimates (right); return the Axes."""
    if not isinstance(spectrum, LyapunovSpectrum):
        raise TypeError(f"spectrum must be a LyapunovSpectrum, got {type(spectrum).__name__}")
    plt = _pyplot()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    left, right = axes
    k = spectrum.exponents.shape[0]
    left.plot(np.arange(1, k + 1), spectrum.exponents, "o-", ms=3)
    left.axhline(0, color="0.5", lw=0.5)
    left.set_xlabel("i")
    left.set_ylabel("λ_i (per step)")
    right.plot(spectrum.steps, spectrum.running, lw=0.5)
    right.set_xscale("log")
    right.set_xlabel("steps")
    right.set_ylabel("running estimate")
    return axes
