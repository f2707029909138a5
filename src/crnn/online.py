# SPDX-License-Identifier: BSD-3-Clause
r"""Online learning: exact RTRL and the algorithms that approximate it, on one interface.

Every learner here trains a :class:`crnn.RNN` on one stream, a step at a
time: ``step(x, target)`` predicts step t with the current weights, then
updates U, W, V (and b, c) by ``theta -= lr * G^t``, where G^t is the
algorithm's estimate of the gradient of that step's error
:math:`E^t = g \sum_k (\hat y^t_k - y^t_k)^2`; ``learn(X, target)`` does the
same over a chunk in one compiled call. They are written for the model's
cell,

.. math::

    Z^t = U x^t + W S^{t-1} + b, \quad S^t = (1 - a) S^{t-1} + a f(Z^t), \quad
    y^t = V S^t + c,

and differ only in how they carry the influence of the weights U, W, b on
the state (V and c get their exact gradient :math:`e^t S^{t\top}`,
:math:`e^t` in every algorithm):

=========  ===========================================  =============  ========
class      influence carried                            time / step    memory
=========  ===========================================  =============  ========
RTRL       exact, d x d(n + d) (Williams, Zipser)       d^3 (n + d)    d^2(n+d)
SnAp(n=2)  RTRL's, on the entries W reaches in 2 steps  as RTRL         d^2(n+d)
SnAp(n=1)  the diagonal l = i (= EProp)                 d (n + d)      d(n + d)
EProp      the diagonal, with J_ii                      d (n + d)      d(n + d)
RFLO       the diagonal, with 1 - a                     d (n + d)      d(n + d)
KFRTRL     a Kronecker product u (x) A, unbiased        d^3            d^2
UORO       an outer product s~ th~^T, unbiased          d (n + d)      d(n + d)
TBPTT      none: the last ``horizon`` steps, kept       h/p d (n + d)  h(n + d)
=========  ===========================================  =============  ========

(SnAp-2 is computed as RTRL and then masked: on a sparse W it costs what
RTRL costs.) Every learner has :class:`~crnn.OnlineRTRL`'s interface and
guarantees: ``step``, ``learn``, ``reset``, ``state``, ``gradient_sum_``
(the sum of the per-step estimates), ``n_steps_``, ``loss_``, plus
``gradient_estimate_`` (the last step's estimate, to compare with
:class:`RTRL`'s exact one); one compiled call per chunk, a cost per step
that does not depend on how long the stream has run, the model's training
lock, a chunk that diverges or is interrupted put back whole.

References
----------
R. J. Williams and D. Zipser, Neural Computation 1(2), 1989 (RTRL).
R. J. Williams and J. Peng, Neural Computation 2(4), 1990 (truncated BPTT).
C. Tallec and Y. Ollivier, "Unbiased online recurrent optimization", ICLR 2018.
A. Mujika, F. Meier and A. Steger, "Approximating real-time recurrent
learning with random Kronecker factors", NeurIPS 2018.
J. Menick, E. Elsen, U. Evci, S. Osindero, K. Simonyan and A. Graves,
"Practical real-time recurrent learning with a sparse approximation", ICLR 2021.
J. M. Murray, "Local online learning in recurrent networks with random
feedback", eLife 8:e43299, 2019.
G. Bellec et al., "A solution to the learning dilemma for recurrent networks
of spiking neurons", Nature Communications 11:3625, 2020.
O. Marschall, K. Cho and C. Savin, "A unified framework of online learning
algorithms for training recurrent neural networks", JMLR 21(135), 2020.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from crnn import _kernels
from crnn._online import OnlineRTRL, _Online
from crnn._validation import check_int, make_rng

if TYPE_CHECKING:
    from crnn._rnn import RNN
    from crnn._typing import ArrayLike

__all__ = ["KFRTRL", "RFLO", "RTRL", "TBPTT", "UORO", "EProp", "SnAp"]

#: Williams and Zipser's exact real-time recurrent learning (:class:`crnn.OnlineRTRL`).
RTRL = OnlineRTRL


class _Approximate(_Online):
    """An approximate algorithm: its kernel is ``_online_family`` (crnn/_online_family.pxi)."""

    _algorithm = ""

    def _carry(self) -> _kernels.OnlineFamilyState:
        m = self.model
        return _kernels.OnlineFamilyState(
            self._algorithm,
            m.input_size,
            m.hidden_size,
            m.output_size,
            m.bias,
            m.dtype,
            _kernels.cell(m.activation, m.leak),
            **self._kernel_options(),
        )

    def _kernel_options(self) -> dict[str, Any]:
        return {}


class RFLO(_Approximate):
    r"""Random-feedback local online learning (Murray 2019), with the output weights' feedback.

    Keeps one eligibility trace per weight of the state,

    .. math::

        B^t_{ij} = (1 - a) B^{t-1}_{ij} + a f'(Z^t_i) [x^t, S^{t-1}, 1]_j,
        \qquad \frac{\partial E^t}{\partial m_{ij}} \approx (V^\top e^t)_i B^t_{ij}

    (Murray 2019, eq. 12-13, with :math:`1/\tau = a`; m_ij the weights of
    row i of [U W b]): RTRL with the recurrence through W dropped. Murray
    feeds the error back through a fixed random matrix; here, as in Marschall
    et al. (2020)'s comparison, through V^T. O(d(n + d)) time and memory per
    step; biased.

    Parameters
    ----------
    model, lr, g, clip, s0
        As :class:`crnn.OnlineRTRL`.
    """

    _name = "RFLO"
    _method = "rflo"
    _algorithm = "rflo"


class EProp(_Approximate):
    r"""E-prop (Bellec et al. 2020) for the rate network, as Marschall et al. (2020) write it.

    The eligibility trace follows each unit's own dynamics,

    .. math::

        \epsilon^t_{ij} = J^t_{ii}\, \epsilon^{t-1}_{ij} + a f'(Z^t_i) [x^t, S^{t-1}, 1]_j,
        \quad J^t_{ii} = (1 - a) + a f'(Z^t_i) w_{ii},
        \qquad \frac{\partial E^t}{\partial m_{ij}} \approx (V^\top e^t)_i \epsilon^t_{ij}

    (Bellec et al. 2020, eq. 13-14: the eligibility vector carried by
    :math:`\partial S^t_i / \partial S^{t-1}_i`, the learning signal
    :math:`V^\top e^t`, the symmetric feedback). RFLO with the diagonal of
    the Jacobian; the same recursion as SnAp-1. O(d(n + d)) per step; biased.

    Parameters
    ----------
    model, lr, g, clip, s0
        As :class:`crnn.OnlineRTRL`.
    """

    _name = "EProp"
    _method = "eprop"
    _algorithm = "eprop"


class TBPTT(_Approximate):
    r"""Online truncated backpropagation through time (Williams and Peng 1990).

    Keeps the last ``horizon`` steps (their inputs, states, a f'(Z) and
    :math:`V^\top e`). Every ``period`` steps, the errors of the last
    ``period`` steps are propagated back through the last ``horizon`` steps
    with the current weights,

    .. math::

        G^\tau = [\tau > t - p] V^\top e^\tau + (1 - a) G^{\tau+1} + W^\top \delta^{\tau+1},
        \quad \delta^\tau = a f'(Z^\tau) G^\tau,
        \quad \frac{\partial E}{\partial m_{ij}} \approx \sum_\tau \delta^\tau_i
        [x^\tau, S^{\tau-1}, 1]_j

    (τ from t down to t - horizon + 1), and the weights are updated then,
    V and c by the exact sums of the period; the estimate of the other steps
    is 0. A horizon at least as long as the stream gives BPTT's gradient of
    the stream (with lr = 0, ``gradient_sum_`` is ``RNN.gradient``'s).
    O(horizon / period d(n + d)) time and O(horizon (n + d)) memory per step.

    Parameters
    ----------
    model, lr, g, clip, s0
        As :class:`crnn.OnlineRTRL`.
    horizon : int, default 10
        h, the steps the errors are propagated back through (>= 1).
    period : int, default 1
        p, the steps between two updates, 1 <= p <= h.
    """

    _name = "TBPTT"
    _method = "tbptt"
    _algorithm = "tbptt"

    def __init__(
        self,
        model: RNN,
        lr: float = 0.01,
        g: float = 1.0,
        clip: float | None = None,
        s0: ArrayLike | None = None,
        *,
        horizon: int = 10,
        period: int = 1,
    ) -> None:
        self._horizon = check_int(horizon, "horizon", low=1)
        period = check_int(period, "period", low=1)
        if period > self._horizon:
            raise ValueError(f"period must be an integer in [1, horizon={horizon}], got {period}")
        self._period = period
        super().__init__(model, lr, g, clip, s0)

    @property
    def horizon(self) -> int:
        """The steps the errors are propagated back through."""
        return self._horizon

    @property
    def period(self) -> int:
        """The steps between two updates."""
        return self._period

    def _kernel_options(self) -> dict[str, Any]:
        return {"horizon": self._horizon, "period": self._period}

    def _options(self) -> str:
        return f", horizon={self._horizon}, period={self._period}"


class _Stochastic(_Approximate):
    """An algorithm with random signs: ``seed`` (as ``RNN``'s), a new draw of it at each reset."""

    def __init__(
        self,
        model: RNN,
        lr: float = 0.01,
        g: float = 1.0,
        clip: float | None = None,
        s0: ArrayLike | None = None,
        *,
        seed: object = None,
    ) -> None:
        self._rng = make_rng(seed)
        super().__init__(model, lr, g, clip, s0)

    def _kernel_options(self) -> dict[str, Any]:
        return {"seed": int(self._rng.integers(0, 2**63))}


class UORO(_Stochastic):
    r"""Unbiased online recurrent optimisation (Tallec and Ollivier 2018).

    Carries the influence :math:`P^t = dS^t / dm` as one outer product
    :math:`\tilde s \tilde\theta^\top`; at each step, with random signs
    :math:`\nu` and the direct influence :math:`D^t = \mathrm{diag}(a f'(Z^t))
    \otimes [x^t, S^{t-1}, 1]`,

    .. math::

        \tilde s \leftarrow \rho_0 J^t \tilde s + \rho_1 \nu, \quad
        \tilde\theta \leftarrow \tilde\theta / \rho_0 + \nu^\top D^t / \rho_1,
        \qquad \frac{\partial E^t}{\partial m} \approx
        (V^\top e^t \cdot \tilde s)\, \tilde\theta

    with :math:`\rho_0 = \sqrt{|\tilde\theta| / |J \tilde s|}`,
    :math:`\rho_1 = \sqrt{|\nu^\top D| / |\nu|}` (Tallec and Ollivier 2018,
    Algorithm 1; each with 1e-7 in the quotient and after the root). Its
    expectation over the signs is RTRL's gradient (unbiased, with lr = 0);
    O(d(n + d)) per step.

    Parameters
    ----------
    model, lr, g, clip, s0
        As :class:`crnn.OnlineRTRL`.
    seed : None, int or numpy.random.Generator
        Source of the random signs (each :meth:`reset` draws a new stream of
        them from it): the same seed, the same numbers.
    """

    _name = "UORO"
    _method = "uoro"
    _algorithm = "uoro"


class KFRTRL(_Stochastic):
    r"""Kronecker-factored RTRL (Mujika, Meier and Steger 2018).

    Carries the influence of row i, column j of [U W b] on unit l as a
    Kronecker product, :math:`P[l, (i, j)] \approx A_{li} u_j`; at each step,
    with random signs :math:`c_1, c_2`,

    .. math::

        u \leftarrow c_1 p_1 u + c_2 p_2 [x^t, S^{t-1}, 1], \quad
        A \leftarrow c_1 J^t A / p_1 + c_2\, \mathrm{diag}(a f'(Z^t)) / p_2,
        \qquad \frac{\partial E^t}{\partial m_{ij}} \approx (A^\top V^\top e^t)_i u_j

    with :math:`p_1 = \sqrt{|J A| / |u|}`, :math:`p_2 = \sqrt{|a f'| /
    |[x, S, 1]|}` (Mujika et al. 2018, eq. 5-7 and Lemma 1; each with 1e-7
    in the quotient and after the root). Unbiased; O(d^3) time and O(d^2)
    memory per step (RTRL's d^3 (n + d) and d^2 (n + d) divided by n + d).

    Parameters
    ----------
    model, lr, g, clip, s0
        As :class:`crnn.OnlineRTRL`.
    seed : None, int or numpy.random.Generator
        Source of the random signs, as :class:`UORO`'s.
    """

    _name = "KFRTRL"
    _method = "kfrtrl"
    _algorithm = "kfrtrl"


class SnAp(_Approximate):
    r"""The sparse n-step approximation of RTRL (Menick et al. 2021), n = 1 or 2.

    RTRL's recursion :math:`P^t = J^t P^{t-1} + D^t`, with the influence of
    row i of [U W b] on unit l kept only where the weight reaches l within n
    steps, and set to 0 elsewhere after every step: n = 1 keeps l = i (then
    :math:`P^t_{i,(i,j)} = J^t_{ii} P^{t-1}_{i,(i,j)} + a f'(Z^t_i) [x^t,
    S^{t-1}, 1]_j`, the recursion of :class:`EProp`, O(d(n + d)) per step);
    n = 2 keeps l = i and :math:`w_{li} \ne 0`, the pattern of W when the
    stream starts (:meth:`reset`). On a dense W, SnAp-2 is exact RTRL.

    Parameters
    ----------
    model, lr, g, clip, s0
        As :class:`crnn.OnlineRTRL`.
    n : {1, 2}, default 1
        The steps of the pattern.
    """

    _name = "SnAp"

    def __init__(
        self,
        model: RNN,
        lr: float = 0.01,
        g: float = 1.0,
        clip: float | None = None,
        s0: ArrayLike | None = None,
        *,
        n: int = 1,
    ) -> None:
        n = check_int(n, "n", low=1)
        if n > 2:
            raise ValueError(f"n must be 1 or 2, got {n}")
        self._n = n
        self._method = f"snap{n}"
        self._algorithm = f"snap{n}"
        super().__init__(model, lr, g, clip, s0)

    @property
    def n(self) -> int:
        """The steps of the pattern (1 or 2)."""
        return self._n

    def _kernel_options(self) -> dict[str, Any]:
        if self._n == 1:
            return {}
        W = self.model.W
        return {"mask": (W != 0) | np.eye(W.shape[0], dtype=bool)}

    def _options(self) -> str:
        return f", n={self._n}"
