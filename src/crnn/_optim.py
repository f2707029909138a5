# SPDX-License-Identifier: BSD-3-Clause
"""Optimizers: vectorised numpy updates of a dict of weight arrays, in place."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from crnn._validation import check_bool, check_lr, check_real

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping, MutableMapping

    from numpy.typing import NDArray

    _Array = NDArray[Any]
    #: What ``_Optimizer.save`` returns: the steps taken and a copy of the slots.
    _Saved = tuple[int, dict[Hashable, _Array]]

__all__ = ["OPTIMIZERS", "clip_by_norm", "make_optimizer"]


class _Optimizer:
    """Base class: ``step(params, grads)`` updates each params[k] in place."""

    name = ""
    #: The step squares the gradient (Adam's second moment, Adagrad's sum):
    #: a gradient element beyond the square root of the dtype's largest
    #: number would overflow it (``apply_update`` refuses such a step).
    squares = False

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.t = 0  # steps taken

    def _slot(self, key: Hashable, like: _Array) -> _Array:
        store: dict[Hashable, _Array] = self.__dict__.setdefault("_slots", {})
        if key not in store or store[key].shape != like.shape:
            store[key] = np.zeros_like(like)
        return store[key]

    def save(self) -> _Saved:
        """Return a copy of the state (steps taken, slots) that ``restore`` puts back."""
        slots = self.__dict__.get("_slots", {})
        return self.t, {k: v.copy() for k, v in slots.items()}

    def restore(self, saved: _Saved) -> None:
        """Put back the state ``save`` returned."""
        self.t = saved[0]
        self.__dict__["_slots"] = dict(saved[1])

    def step(self, params: MutableMapping[str, _Array], grads: Mapping[str, _Array]) -> None:
        self.t += 1
        for key, grad in grads.items():
            params[key] -= self._delta(key, grad).astype(params[key].dtype, copy=False)

    def _delta(self, key: str, grad: _Array) -> _Array:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum.

    ``v = momentum * v - lr * grad``; the step is ``v`` (or, with Nesterov,
    ``momentum * v - lr * grad``), as in scikit-learn's ``SGDOptimizer``.
    """

    name = "sgd"

    def __init__(self, lr: float, momentum: float = 0.9, nesterov: bool = False) -> None:
        super().__init__(lr)
        self.momentum = momentum
        self.nesterov = nesterov

    def _delta(self, key: str, grad: _Array) -> _Array:
        if self.momentum == 0:
            return self.lr * grad
        v = self._slot(key, grad)
        v *= self.momentum
        v -= self.lr * grad
        if self.nesterov:
            return -(self.momentum * v - self.lr * grad)
        return -v


class Adam(_Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction."""

    name = "adam"
    squares = True

    def __init__(
        self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _delta(self, key: str, grad: _Array) -> _Array:
        m = self._slot(("m", key), grad)
        v = self._slot(("v", key), grad)
        m += (1 - self.beta1) * (grad - m)
        v += (1 - self.beta2) * (grad * grad - v)
        step = self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        return step * m / (np.sqrt(v) + self.eps)


class Adagrad(_Optimizer):
    """Adagrad (Duchi, Hazan and Singer, 2011)."""

    name = "adagrad"
    squares = True

    def __init__(self, lr: float, eps: float = 1e-10) -> None:
        super().__init__(lr)
        self.eps = eps

    def _delta(self, key: str, grad: _Array) -> _Array:
        acc = self._slot(key, grad)
        acc += grad * grad
        return self.lr * grad / (np.sqrt(acc) + self.eps)


class LevenbergMarquardt(_Optimizer):
    """The state of Levenberg-Marquardt (``fit(..., optimizer="lm")``): the damping mu.

    Its iterations are made by ``crnn._lm`` on the full batch, from J^T J
    and J^T r, not from a gradient: ``step`` refuses. ``lr`` is the first
    mu; on an accepted step mu is multiplied by ``mu_dec``, on a rejected
    one by ``mu_inc``, and training ends when mu would pass ``mu_max``
    (MATLAB's ``trainlm``: 0.001, 0.1, 10, 1e10).
    """

    name = "lm"

    def __init__(
        self, lr: float, mu_dec: float = 0.1, mu_inc: float = 10.0, mu_max: float = 1e10
    ) -> None:
        super().__init__(lr)
        self.mu, self.mu_dec, self.mu_inc, self.mu_max = lr, mu_dec, mu_inc, mu_max

    def step(self, params: MutableMapping[str, _Array], grads: Mapping[str, _Array]) -> None:
        raise ValueError(_LM_FULL_BATCH)


_LM_FULL_BATCH = (
    "optimizer='lm' (Levenberg-Marquardt) takes whole Gauss-Newton steps on the full batch: "
    "it is an optimizer of RNN.fit only; partial_fit and crnn.distributed take "
    "'adam', 'sgd' or 'adagrad'"
)

#: name -> (class, default learning rate; for "lm", the first damping mu)
OPTIMIZERS: dict[str, tuple[type[_Optimizer], float]] = {
    "sgd": (SGD, 0.01),
    "adam": (Adam, 0.01),
    "adagrad": (Adagrad, 0.1),
    "lm": (LevenbergMarquardt, 0.001),
}


def make_optimizer(
    name: object,
    lr: object = None,
    momentum: object = 0.9,
    nesterov: object = False,
    full_batch: bool = False,
) -> _Optimizer:
    """Return a new optimizer from its name and options, all validated.

    "lm" only with ``full_batch`` (``RNN.fit``): it makes no gradient steps.
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {type(name).__name__}")
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    if key == "lm" and not full_batch:
        raise ValueError(_LM_FULL_BATCH)
    cls, default_lr = OPTIMIZERS[key]
    lr = default_lr if lr is None else check_lr(lr)
    if key == "sgd":
        momentum = check_real(momentum, "momentum", low=0, high=1, high_open=True)
        return SGD(lr, momentum, check_bool(nesterov, "nesterov"))
    return cls(lr)


def clip_by_norm(grads: Mapping[str, _Array], max_norm: float | None) -> float:
    """Scale grads in place so that their joint Euclidean norm is at most max_norm.

    Returns the norm before clipping.
    """
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if math.isinf(norm):  # the squares overflowed: the norm of grads / their largest element
        big = max((float(np.max(np.abs(g))) for g in grads.values() if g.size), default=0.0)
        if math.isfinite(big) and big > 0:
            norm = big * math.sqrt(sum(float(np.vdot(g / big, g / big)) for g in grads.values()))
    if max_norm is not None and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm
