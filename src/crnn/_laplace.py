# SPDX-License-Identifier: BSD-3-Clause
"""The Laplace (Gauss-Newton) approximation of the weights' posterior: ``RNN.laplace``.

The model of the data: each target value is the network's output plus
Gaussian noise of variance sigma^2 (divided by its weight w, with
``sample_weight``), and theta has the prior N(0, I / alpha). Around the
current weights theta* (a minimum of the loss), the posterior is
approximated by N(theta*, Sigma) with

    Sigma^{-1} = A = beta H + alpha I,   H = sum w J^T J,   beta = 1 / sigma^2,

J the outputs' Jacobian (``RNN.output_jacobian``): the Gauss-Newton
approximation of the Hessian of the negative log posterior. beta and
alpha are chosen by maximising the evidence (MacKay 1992): with h_i the
eigenvalues of H, gamma = sum_i beta h_i / (beta h_i + alpha) well-determined
parameters, alternately alpha = gamma / |theta*|^2 and beta = (n - gamma) /
sum w r^2 (n values, r the residuals) until they settle; a given
``prior_precision`` fixes alpha and only beta is re-estimated.

Sigma is held whole up to P = ``FULL_MAX`` parameters (P^2 float64: 128 MB
at 4000); above, or with ``full=False``, only its diagonal, from the
diagonal of H (the eigenvalues above are then the diagonal's: a documented
approximation that ignores the correlations between weights).

Predictive standard deviations: one step ahead (``predict``), the variance
of an observed value is J Sigma J^T + sigma^2; in closed loop
(``generate``), each output, with its noise, is the next input, and the
forecast is linearised in the weights and in every step's noise: the
tangent of the state is carried through the loop, columns for theta and
for each step's noise, and the variance of step t is J_t Sigma J_t^T +
sigma^2 sum_j (dY^t / d eps^j)^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crnn import _kernels

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from crnn._typing import Trainable

    _Array = NDArray[Any]

__all__ = ["FULL_MAX", "Laplace", "closed_loop_std", "evidence", "predictive_std"]

#: The largest P whose posterior covariance is held whole by default.
FULL_MAX = 4000


@dataclass(frozen=True, repr=False)
class Laplace:
    """A Laplace approximation of the posterior over theta, as :meth:`RNN.laplace` returns it.

    Attributes
    ----------
    covariance : ndarray of shape (P, P) or (P,)
        Sigma, the posterior covariance of theta (order of
        :meth:`RNN.flat_weights`), or its diagonal; float64.
    noise_variance : float
        sigma^2, the variance of the noise on a target value of weight 1.
    prior_precision : float
        alpha, the precision of theta's Gaussian prior.
    """

    covariance: _Array
    noise_variance: float
    prior_precision: float

    @property
    def full(self) -> bool:
        """True when the whole covariance is held, False for its diagonal."""
        return bool(self.covariance.ndim == 2)

    def __repr__(self) -> str:
        kind = "full" if self.full else "diagonal"
        return (
            f"Laplace(P={self.covariance.shape[0]}, {kind}, noise_variance="
            f"{self.noise_variance:.4g}, prior_precision={self.prior_precision:.4g})"
        )


def evidence(
    h: _Array, theta_sq: float, rss: float, n: float, alpha: float | None
) -> tuple[float, float]:
    """Return (alpha, beta) maximising the evidence (MacKay 1992), alpha fixed when given.

    h: the eigenvalues of H (or its diagonal), theta_sq = |theta*|^2, rss
    the weighted sum of squared residuals, n the number of values.
    """
    h = np.maximum(h, 0.0)
    fixed = alpha is not None
    beta = n / max(rss, np.finfo(float).tiny)
    a = float(alpha) if alpha is not None else 1.0
    for _ in range(200):
        gamma = float(np.sum(beta * h / (beta * h + a)))
        a_new = a if fixed else max(gamma, 1e-12) / max(theta_sq, np.finfo(float).tiny)
        beta_new = max(n - gamma, 1e-12) / max(rss, np.finfo(float).tiny)
        done = abs(a_new - a) <= 1e-12 * a and abs(beta_new - beta) <= 1e-12 * beta
        a, beta = a_new, beta_new
        if done:
            break
    return a, beta


def fit_laplace(
    model: Trainable,
    H: _Array,
    rss: float,
    n: float,
    prior_precision: float | None,
) -> Laplace:
    """Return the Laplace approximation from H (P, P) or its diagonal (P,) at the model's weights."""
    theta = model.flat_weights().astype(np.float64)
    theta_sq = float(theta @ theta)
    if H.ndim == 2:
        h, Q = np.linalg.eigh(H)
        alpha, beta = evidence(h, theta_sq, rss, n, prior_precision)
        inv = 1.0 / (beta * np.maximum(h, 0.0) + alpha)
        cov = (Q * inv) @ Q.T
        cov = 0.5 * (cov + cov.T)
    else:
        alpha, beta = evidence(H, theta_sq, rss, n, prior_precision)
        cov = 1.0 / (beta * np.maximum(H, 0.0) + alpha)
    return Laplace(cov, 1.0 / beta, alpha)


def _quadratic(post: Laplace, J: _Array) -> _Array:
    """Return diag(J Sigma J^T) over the rows of J (..., P), float64."""
    Jf = J.astype(np.float64, copy=False)
    if post.full:
        out: _Array = np.einsum("...p,...p->...", Jf @ post.covariance, Jf)
        return out
    out = np.einsum("...p,...p->...", Jf * post.covariance, Jf)
    return out


def predictive_std(post: Laplace, J: _Array) -> _Array:
    """Return the one-step predictive standard deviations, J (..., m, P) -> (..., m)."""
    return np.sqrt(_quadratic(post, J) + post.noise_variance)


def closed_loop_std(
    model: Trainable,
    post: Laplace,
    x: _Array,
    s: _Array,
    sens: _Array,
    n_steps: int,
) -> _Array:
    """Return the standard deviations (N, n_steps, m) of ``generate``'s outputs, linearised.

    x (N, n): the first input; s (N, d) and sens (N, d, Q): the state and
    its sensitivities to [U W b] after the warm-up (``_kernels.sensitivities``).
    """
    n, d, m = model._size
    N = x.shape[0]
    P = model._theta.shape[0]
    th = model.flat_weights().astype(np.float64)
    U = th[: d * n].reshape(d, n)
    W = th[d * n : d * n + d * d].reshape(d, d)
    V = th[d * n + d * d : d * (n + d + m)].reshape(m, d)
    bias = model.bias
    b = th[d * (n + d + m) : d * (n + d + m) + d] if bias else np.zeros(d)
    c = th[d * (n + d + m) + d :] if bias else np.zeros(m)
    nuw, nv = d * n + d * d, m * d
    K = P + n_steps * m  # columns: theta, then each step's noise
    Sd = np.zeros((N, d, K))
    Sd[:, :, :nuw] = sens[:, :, :nuw]
    if bias:
        Sd[:, :, nuw + nv : nuw + nv + d] = sens[:, :, nuw:]
    Xd = np.zeros((N, n, K))
    xs, st = x.astype(np.float64), s.astype(np.float64)
    act, leak = model._cell
    rows = np.arange(d)
    var = np.empty((N, n_steps, m))
    for t in range(n_steps):
        z = xs @ U.T + st @ W.T + b
        h = _kernels.activate(z, act)
        fp = _kernels.activation_slope(h, act, leak)
        Zd = np.einsum("ij,bjk->bik", U, Xd) + np.einsum("ij,bjk->bik", W, Sd)
        for j in range(n):
            Zd[:, rows, rows * n + j] += xs[:, j : j + 1]
        for j in range(d):
            Zd[:, rows, d * n + rows * d + j] += st[:, j : j + 1]
        if bias:
            Zd[:, rows, nuw + nv + rows] += 1.0
        Sd = (1.0 - leak) * Sd + fp[:, :, None] * Zd
        st = (1.0 - leak) * st + leak * h
        y = st @ V.T + c
        Yd = np.einsum("ij,bjk->bik", V, Sd)
        for k in range(m):
            Yd[:, k, nuw + k * d : nuw + k * d + d] += st
            if bias:
                Yd[:, k, nuw + nv + d + k] += 1.0
            Yd[:, k, P + t * m + k] += 1.0  # this step's noise, in what is fed back
        noise = np.sum(Yd[:, :, P:] ** 2, axis=2)
        var[:, t] = _quadratic(post, Yd[:, :, :P]) + post.noise_variance * noise
        xs, Xd = y, Yd
    return np.sqrt(var)


def check_laplace(value: object, P: int) -> Laplace:
    """Return the model's Laplace approximation, or refuse when there is none or it does not fit."""
    if value is None:
        raise ValueError(
            "return_std needs the weights' posterior: call rnn.laplace(X, target) first "
            "(after training)"
        )
    if not isinstance(value, Laplace):
        raise TypeError(
            f"laplace_ must be what rnn.laplace(X, target) made, got {type(value).__name__}"
        )
    if value.covariance.shape[0] != P:
        raise ValueError(
            f"the model's Laplace approximation is for {value.covariance.shape[0]} parameters, "
            f"the model has {P}: call rnn.laplace(X, target) again"
        )
    return value


def from_file(cov: _Array, noise_variance: object, prior_precision: object, P: int) -> Laplace:
    """Rebuild a saved Laplace approximation, checked."""
    if cov.shape not in ((P, P), (P,)):
        raise ValueError(f"laplace_covariance has shape {cov.shape}, expected ({P}, {P}) or ({P},)")
    values = []
    for name, v in (("noise_variance", noise_variance), ("prior_precision", prior_precision)):
        if (
            not isinstance(v, (int, float))
            or isinstance(v, bool)
            or not (math.isfinite(v) and v > 0)
        ):
            raise ValueError(f"laplace_{name} must be a positive finite number, got {v!r}")
        values.append(float(v))
    return Laplace(cov.astype(np.float64), values[0], values[1])
