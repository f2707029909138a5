# SPDX-License-Identifier: BSD-3-Clause
"""Exact online learning: real-time recurrent learning on a stream."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from crnn import _kernels
from crnn._guard import check_writable, exclusive, uninterrupted
from crnn._rnn import Gradient
from crnn._validation import as_float_array, check_g, check_lr, check_real, check_shape

if TYPE_CHECKING:
    from crnn._rnn import RNN
    from crnn._typing import ArrayLike, FloatArray

    #: What ``_learn`` saves to put back: theta, the state, the carried sensitivities.
    _Backup = tuple[FloatArray, FloatArray, Any]

__all__ = ["OnlineRTRL"]


class _Online:
    """What every online learner of :mod:`crnn.online` shares; a subclass supplies its carried state.

    The options (lr, g, clip), the stream's state, ``step`` and ``learn``
    under the model's training lock (one compiled call per chunk; the model,
    the state and the carried state put back whole when a chunk diverges or
    is interrupted), ``gradient_sum_`` and ``gradient_estimate_``. A
    subclass sets ``_name`` (how the training lock and the messages name
    it), ``_method`` (the ``method`` of its gradients) and ``_carry`` (a new
    carried state for the model: an object with ``learn``, ``save``,
    ``restore``, ``gradient`` and ``estimate``, as
    ``crnn._kernels.OnlineState``).
    """

    _name = "OnlineRTRL"
    _learning = "OnlineRTRL.learn"  # the call's name for the training lock (``_name``.learn)
    _method = "rtrl"
    _carried: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._learning = f"{cls._name}.learn"

    def _carry(self) -> Any:
        """Return a new carried state for the model (the algorithm's own)."""
        raise NotImplementedError

    def _options(self) -> str:
        """Return the algorithm's own options, for repr (such as ``", horizon=8"``)."""
        return ""

    def __init__(
        self,
        model: RNN,
        lr: float = 0.01,
        g: float = 1.0,
        clip: float | None = None,
        s0: ArrayLike | None = None,
    ) -> None:
        from crnn._rnn import RNN

        if not isinstance(model, RNN):
            raise TypeError(f"model must be a crnn.RNN, got {type(model).__name__}")
        self._model = model
        self.lr = lr
        self.g = g
        self.clip = clip
        self._s0 = None
        self.reset(s0)

    # ------------------------------------------------------------------ options

    @property
    def model(self) -> RNN:
        """The model being trained (fixed for the life of the trainer)."""
        return self._model

    @property
    def lr(self) -> float:
        """The learning rate (>= 0)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = check_lr(value)

    @property
    def g(self) -> float:
        """The loss scale (> 0)."""
        return self._g

    @g.setter
    def g(self, value: float) -> None:
        self._g = check_g(value, self.model.dtype)

    @property
    def clip(self) -> float | None:
        """The largest norm of one step's gradient, or None."""
        return self._clip

    @clip.setter
    def clip(self, value: float | None) -> None:
        if value is not None and check_real(value, "clip", low=0) == 0:
            raise ValueError("clip must be None or a number > 0, got 0")
        dtype = self.model.dtype
        if value is not None and dtype.type(float(value)) == 0:  # the kernel reads 0 as "none"
            raise ValueError(f"clip must be > 0 in the model's dtype {dtype.name}, got {value}")
        self._clip = None if value is None else float(value)

    # ------------------------------------------------------------------ stream

    def reset(self, s0: ArrayLike | None = None) -> None:
        """Start a new stream: the state from s0 (zeros), sensitivities and sums zero."""
        with exclusive(f"{self._name}.reset", self):
            self._reset(s0)

    def _reset(self, s0: ArrayLike | None) -> None:
        m = self.model
        d = m.hidden_size
        if s0 is None:
            self._state = np.zeros(d, dtype=m.dtype)
        else:
            s0 = as_float_array(s0, "s0", m.dtype, 1)
            check_shape(s0, "s0", (d,))
            self._state = s0.copy()
        self._carried = self._carry()
        self.n_steps_ = 0
        self.loss_ = 0.0
        self._last = 0.0  # the last step's E^t

    @property
    def state(self) -> FloatArray:
        """The current state, shape (d,)."""
        return self._state

    @state.setter
    def state(self, value: ArrayLike) -> None:
        value = as_float_array(value, "state", self.model.dtype, 1)
        check_shape(value, "state", (self.model.hidden_size,))
        with exclusive(f"{self._name}.state", self):
            self._state = value.copy()

    def step(self, x: ArrayLike, target: ArrayLike) -> FloatArray:
        """Predict one step, then learn from its target.

        Parameters
        ----------
        x : array_like of shape (n,)
        target : array_like of shape (m,)

        Returns
        -------
        ndarray of shape (m,)
            The prediction y^t, made before the update.
        """
        m = self._model
        n, _, k = m._size
        x = as_float_array(x, "x", m._dtype, 1, check_finite=False)
        target = as_float_array(target, "target", m._dtype, 1, check_finite=False)
        if x.shape[0] != n:
            check_shape(x, "x", (n,))
        if target.shape[0] != k:
            check_shape(target, "target", (k,))
        with exclusive(self._learning, self, m):
            return self._learn(x[np.newaxis], target[np.newaxis], (x, target))[0]  # type: ignore[no-any-return]

    def learn(self, X: ArrayLike, target: ArrayLike) -> FloatArray:
        """Run over a chunk of the stream, learning at every step.

        Parameters
        ----------
        X : array_like of shape (T, n)
        target : array_like of shape (T, m)

        Returns
        -------
        ndarray of shape (T, m)
            The predictions, each made before its step's update.

        Raises
        ------
        FloatingPointError
            If the weights stop being finite; the model, state and
            sensitivities are then put back as they were before this call.
        RuntimeError
            If this trainer, or another training call on its model, is
            running in another thread.
        KeyboardInterrupt
            On Ctrl-C during a chunk of several steps (checked every 50 ms):
            the model, state and sensitivities are put back as they were
            before this call.
        """
        with exclusive(self._learning, self, self.model):
            return self._learn(X, target)

    def _learn(
        self,
        X: Any,  # array_like, or the array step checked
        target: Any,
        step: tuple[FloatArray, FloatArray] | None = None,
    ) -> FloatArray:
        """``learn`` in the training lock.

        ``step``: the (x, target) that ``step`` checked, X and target their
        views as one step: then they are not checked again, and a NaN is
        named as in x or target.
        """
        m = self._model
        if step is None:
            X = as_float_array(X, "X", m.dtype, 2, check_finite=False)
            target = as_float_array(target, "target", m.dtype, 2, check_finite=False)
            if X.shape[1] != m.input_size:
                raise ValueError(f"X must have shape (T, {m.input_size}), got {X.shape}")
            check_shape(target, "target", (X.shape[0], m.output_size))
        checks = (X, target) if step is None else step
        theta = m._kernel_weights()  # the model's own parameters: the kernel updates them
        if theta is None or X.shape[0] == 0:
            theta = self._own_weights(*checks)
        try:
            if not m._writable():
                check_writable(m, self._name)
        except ValueError:
            self._own_weights(*checks)  # a NaN is named first, as the complete checks do
            raise
        T = X.shape[0]
        if T == 0:
            return np.empty((0, m.output_size), dtype=m.dtype)
        # a step that would diverge changes nothing, so that one step needs no backup
        backup: _Backup | None = None
        if T > 1:
            backup = (theta.copy(), self._state.copy(), self._carried.save())
        clip = 0.0 if self._clip is None else self._clip
        try:
            Y, E, done = self._carried.learn(theta, X, target, self._state, self._g, self._lr, clip)
        except BaseException:  # a signal handler raised between two steps (T > 1)
            self._put_back(theta, backup)
            raise
        if done < 0:  # a NaN or an infinity: the complete checks name it
            self._own_weights(*checks)
            raise ValueError("the weights or data hold NaN or infinite values")
        loss = math.inf  # the E of steps not made are not set
        if done == T == 1:
            loss = last = float(E[0])
        elif done == T:
            with np.errstate(over="ignore"):  # a sum beyond the float range diverged too
                loss = float(np.sum(E, dtype=np.float64))
        if not math.isfinite(loss):
            self._put_back(theta, backup)
            raise FloatingPointError(
                "online learning diverged: the loss or the weights are no longer finite; "
                "the model and the stream are as before this call (try a smaller lr or clip)"
            )
        self.n_steps_ += T
        self.loss_ += loss
        self._last = last if T == 1 else float(E[T - 1])
        return Y  # type: ignore[no-any-return]

    def _put_back(self, theta: FloatArray, backup: _Backup | None) -> None:
        """Put the weights, state and sensitivities back as ``_learn`` saved them (whole)."""
        if backup is None:
            return
        with uninterrupted():
            theta[...] = backup[0]
            self._state[...] = backup[1]
            self._carried.restore(backup[2])

    def _own_weights(self, X: FloatArray, target: FloatArray) -> FloatArray:
        """Run the complete checks of X (x for a step), target and the weights; return theta.

        Refuses a NaN or an infinity by name.
        """
        m = self.model
        as_float_array(X, "X" if X.ndim == 2 else "x", m.dtype, X.ndim)
        as_float_array(target, "target", m.dtype, target.ndim)
        return m._weights(check_finite=True)

    @property
    def gradient_sum_(self) -> Gradient:
        """The sum of the per-step gradients since the last reset, as a Gradient."""
        m = self.model
        d = m.hidden_size
        U, W, V, b, c = self._carried.gradient()
        s0 = np.zeros(d, dtype=m.dtype)
        if self._method == "rtrl":
            return Gradient(U=U, W=W, V=V, s0=s0, loss=self.loss_, method="rtrl", b=b, c=c)
        return Gradient._of(U, W, V, s0, self.loss_, self._method, b, c)

    @property
    def gradient_estimate_(self) -> Gradient:
        """The last step's gradient estimate, the one its update used (after ``clip``).

        Zeros before the first step. For :class:`crnn.OnlineRTRL` it is the exact
        gradient of E^t, the yardstick the approximations are compared with.
        """
        m = self.model
        U, W, V, b, c = self._carried.estimate()
        s0 = np.zeros(m.hidden_size, dtype=m.dtype)
        return Gradient._of(U, W, V, s0, self._last, self._method, b, c)

    def __repr__(self) -> str:
        return (
            f"{self._name}({self.model!r}, lr={self._lr}, g={self._g}, clip={self._clip}"
            f"{self._options()}, n_steps_={self.n_steps_})"
        )


class OnlineRTRL(_Online):
    r"""Learn from a stream, one time step at a time, by real-time recurrent learning.

    Given the input :math:`x^t` and the target :math:`\hat y^t` of step t, it
    returns the prediction :math:`y^t` made by the current weights, then
    updates U, W and V at once by the exact gradient of that step's error
    :math:`E^t = g \sum_k (\hat y^t_k - y^t_k)^2`,

    .. math::

        \frac{\partial E^t}{\partial u_{ij}} = \sum_k \sum_l e^t_k v_{kl}
        \frac{\partial s^t_l}{\partial u_{ij}}

    (likewise for W and, with biases, b; :math:`e^t_k s^t_j` for V and
    :math:`e^t_k` for c), with the sensitivities
    :math:`\partial s^t_l / \partial u_{ij}` carried forward from step to step
    (Williams and Zipser, 1989). The state and the sensitivities live in this
    object between calls, so a stream can be fed in pieces of any length; the
    cost of a step does not depend on how long the stream has run
    (O(d^3 (n + d)) time, O(d^2 (n + d)) memory).

    Parameters
    ----------
    model : RNN
        The model to train; its weights are updated in place.
    lr : float, default 0.01
        Learning rate of the per-step update ``theta -= lr * dE^t/dtheta``.
        0 only accumulates gradients (then ``gradient_sum_`` over a sequence
        equals the BPTT gradient of the whole sequence).
    g : float, default 1.0
        Loss scale.
    clip : float, optional
        Largest Euclidean norm of one step's gradient.
    s0 : array_like of shape (d,), optional
        The state the stream starts from; zeros by default.

    Attributes
    ----------
    state : ndarray of shape (d,)
        The current state (assignable).
    sensitivities : ndarray of shape (d, d*n + d*d) or (d, d*n + d*d + d)
        A copy of dS_l/du_ij (column i*n + j), dS_l/dw_ij (column
        d*n + i*d + j) and, when the model has biases, dS_l/db_i (column
        d*n + d*d + i).
    gradient_sum_ : Gradient
        The sum of the per-step gradients since the last :meth:`reset`
        (``s0`` holds zeros: the initial state is not learned online).
    n_steps_ : int
        Steps seen since the last :meth:`reset`.
    loss_ : float
        Sum of E^t since the last :meth:`reset`.

    Notes
    -----
    With lr > 0 the sensitivities mix derivatives taken at the successive
    weights, as in every online RTRL; with lr = 0 they are exact.

    References
    ----------
    R. J. Williams and D. Zipser, "A learning algorithm for continually
    running fully recurrent neural networks", Neural Computation 1(2),
    270-280, 1989.
    """

    def _carry(self) -> _kernels.OnlineState:
        m = self.model
        return _kernels.OnlineState(
            m.input_size,
            m.hidden_size,
            m.output_size,
            m.bias,
            m.dtype,
            _kernels.cell(m.activation, m.leak),
        )

    @property
    def sensitivities(self) -> FloatArray:
        """A copy of dS_l/dtheta, shape (d, Q).

        Columns: u_ij at i*n + j, w_ij at d*n + i*d + j, b_i at d*n + d*d + i
        (with biases).
        """
        return self._carried.sensitivities()  # type: ignore[no-any-return]
