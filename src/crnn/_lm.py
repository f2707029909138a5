# SPDX-License-Identifier: BSD-3-Clause
"""Levenberg-Marquardt training: ``RNN.fit(..., optimizer="lm")``.

The objective is the one every optimizer of ``fit`` sees, the mean loss
per predicted value plus the weight decay's penalty,

    F(theta) = g sum w (Y - target)^2 / count + lambda (|U|^2 + |W|^2 + |V|^2),

a sum of squares. One iteration (an "epoch" of ``fit``) takes the
Gauss-Newton products H = sum w J^T J and v = sum w J^T (Y - target) over
the full batch in one pass (``crnn._kernels.gauss_newton``: J in forward
mode, never held whole), then solves

    (g H / count + lambda D + mu I) delta = -(g v / count + lambda D theta)

(D: 1 on U, W, V, 0 on the biases) and tries theta + delta: the step is
taken when it lowers F, and mu is multiplied by 0.1; otherwise mu is
multiplied by 10 and the system solved again, from the same H (Marquardt
1963, with the identity as the damping matrix and the bounds of MATLAB's
``trainlm``). Training ends when mu passes mu_max = 1e10: no step lowers F
(a minimum, to rounding). Early stopping on validation data, the training
lock, Ctrl-C and the history are those of every fit (``crnn._fit``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from crnn import _kernels
from crnn._guard import uninterrupted
from crnn._objective import _count, penalty
from crnn._optim import LevenbergMarquardt, make_optimizer

if TYPE_CHECKING:
    from typing import Protocol

    from numpy.typing import NDArray

    from crnn._optim import _Optimizer
    from crnn._typing import Trainable

    _Array = NDArray[Any]
    _Val = tuple[Any, Any, Any, bool]  # held-out data, as crnn._fit keeps it

    class _Trainer(Protocol):
        """What LM uses of fit's settings (``crnn._fit._Trainer``, which imports this module)."""

        model: Trainable
        g: float
        clip: float | None
        truncate: int | None
        weight_decay: float

        def validation_loss(self, val: _Val, X_train: Any) -> float: ...


__all__ = ["LMSource", "lm_source"]


def lm_source(
    trainer: _Trainer,
    X: Any,
    target: Any,
    w: Any,
    val: _Val | None,
    opt: _Optimizer,
    *,
    batch_size: int | None,
    lr: object,
) -> tuple[LMSource, LevenbergMarquardt]:
    """Return fit's source of Levenberg-Marquardt iterations and its state (mu), checked.

    Refuses the options of gradient steps that LM does not have: mini-batches
    smaller than the data, truncated windows and clipping.
    """
    N = len(X)
    if batch_size is not None and batch_size < N:
        raise ValueError(
            f"batch_size must be None (the full batch) for optimizer='lm', got {batch_size} "
            f"for {N} sequences"
        )
    if trainer.truncate is not None:
        raise ValueError(
            f"truncate must be None for optimizer='lm' (full sequences), got {trainer.truncate}"
        )
    if trainer.clip is not None:
        raise ValueError(
            f"clip must be None for optimizer='lm' (its steps are damped by mu), got {trainer.clip}"
        )
    if not isinstance(opt, LevenbergMarquardt):  # warm start after another optimizer
        opt = make_optimizer("lm", lr, full_batch=True)
        trainer.model._fit_state = {"optimizer": opt}
    assert isinstance(opt, LevenbergMarquardt)
    return LMSource(trainer, X, target, w, val), opt


class LMSource:
    """The iterations of Levenberg-Marquardt, as ``crnn._fit.run_epochs`` takes them.

    ``converged`` becomes True when mu passes mu_max: no step lowers the
    objective any more, and the loop stops.
    """

    def __init__(self, trainer: _Trainer, X: Any, target: Any, w: Any, val: _Val | None) -> None:
        self.trainer, self.X, self.target, self.w, self.val = trainer, X, target, w, val
        self.converged = False
        self._last: tuple[bytes, float] | None = None  # (theta's bytes, its loss) of the last step
        model = trainer.model
        n, d, m = model._size
        self.mask = np.zeros(model._theta.shape[0])  # D: the weights the penalty decays
        self.mask[: d * (n + d + m)] = 1.0

    def _loss(self, theta: _Array) -> float:
        """Return g sum w (Y - target)^2 at theta (the loss kernels'), inf when not finite."""
        model = self.trainer.model
        s0 = np.zeros((len(self.X), model.hidden_size), dtype=model.dtype)
        args = (self.trainer.g, model._n_threads, model._cell, self.w)
        if isinstance(self.X, list):
            E, bad = _kernels.loss_list(theta, model._size, self.X, self.target, s0, *args)
        else:
            E, bad = _kernels.loss(theta, model._size, self.X, self.target, s0, *args)
        total = float(np.sum(E, dtype=np.float64))
        return total if not bad and np.isfinite(total) else np.inf

    def epoch(self, opt: _Optimizer) -> float:
        """One iteration; return the mean loss per predicted value at the weights it leaves."""
        assert isinstance(opt, LevenbergMarquardt)
        trainer = self.trainer
        model = trainer.model
        theta = model._theta
        count = _count(self.target, self.w)
        scale = trainer.g / count
        lam = trainer.weight_decay
        s0 = np.zeros((len(self.X), model.hidden_size), dtype=model.dtype)
        H, v, _, bad = _kernels.gauss_newton(
            theta, model._size, self.X, self.target, s0, model._n_threads, model._cell, self.w
        )
        last = self._last
        E0 = last[1] if last is not None and last[0] == theta.tobytes() else self._loss(theta)
        if bad or not (np.isfinite(E0) and np.isfinite(H).all() and np.isfinite(v).all()):
            raise FloatingPointError(
                "fit diverged: the loss or its Jacobian is not finite; the model keeps the "
                "last finite weights"
            )
        t64 = theta.astype(np.float64)
        F0 = scale * E0 + lam * float(self.mask @ (t64 * t64))
        A = scale * H
        A[np.diag_indices_from(A)] += lam * self.mask
        grad = scale * v + lam * self.mask * t64
        diag = np.diag_indices_from(A)
        base = A[diag].copy()
        while opt.mu <= opt.mu_max:
            A[diag] = base + opt.mu
            try:
                delta = np.linalg.solve(A, -grad)
            except np.linalg.LinAlgError:
                delta = None
            if delta is not None and np.isfinite(delta).all():
                trial = (t64 + delta).astype(theta.dtype)
                E1 = self._loss(trial)
                t1 = trial.astype(np.float64)
                F1 = scale * E1 + lam * float(self.mask @ (t1 * t1))
                if F1 < F0:
                    with uninterrupted():
                        theta[...] = trial
                        opt.t += 1
                        opt.mu = max(opt.mu * opt.mu_dec, 1e-20)
                    self._last = (trial.tobytes(), E1)
                    return scale * E1
            opt.mu *= opt.mu_inc
        self.converged = True  # no step lowers F: a minimum, to rounding
        return scale * E0

    def validation_loss(self) -> float | None:
        return None if self.val is None else self.trainer.validation_loss(self.val, self.X)

    def penalty(self) -> float:
        return penalty(self.trainer.model.parameters(), self.trainer.weight_decay)
