# SPDX-License-Identifier: BSD-3-Clause
"""Optimizers: vectorised numpy updates of a dict of weight arrays, in place."""

import math

import numpy as np

from crnn._validation import check_bool, check_lr, check_real

__all__ = ["OPTIMIZERS", "clip_by_norm", "make_optimizer"]


class _Optimizer:
    """Base class: ``step(params, grads)`` updates each params[k] in place."""

    name = ""

    def __init__(self, lr):
        self.lr = lr
        self.t = 0  # steps taken

    def _slot(self, key, like):
        store = self.__dict__.setdefault("_slots", {})
        if key not in store or store[key].shape != like.shape:
            store[key] = np.zeros_like(like)
        return store[key]

    def save(self):
        """Return a copy of the state (steps taken, slots) that ``restore`` puts back."""
        slots = self.__dict__.get("_slots", {})
        return self.t, {k: v.copy() for k, v in slots.items()}

    def restore(self, saved):
        """Put back the state ``save`` returned."""
        self.t = saved[0]
        self.__dict__["_slots"] = dict(saved[1])

    def step(self, params, grads):
        self.t += 1
        for key, grad in grads.items():
            params[key] -= self._delta(key, grad).astype(params[key].dtype, copy=False)

    def _delta(self, key, grad):  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum.

    ``v = momentum * v - lr * grad``; the step is ``v`` (or, with Nesterov,
    ``momentum * v - lr * grad``), as in scikit-learn's ``SGDOptimizer``.
    """

    name = "sgd"

    def __init__(self, lr, momentum=0.9, nesterov=False):
        super().__init__(lr)
        self.momentum = momentum
        self.nesterov = nesterov

    def _delta(self, key, grad):
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

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _delta(self, key, grad):
        m = self._slot(("m", key), grad)
        v = self._slot(("v", key), grad)
        m += (1 - self.beta1) * (grad - m)
        v += (1 - self.beta2) * (grad * grad - v)
        step = self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        return step * m / (np.sqrt(v) + self.eps)


class Adagrad(_Optimizer):
    """Adagrad (Duchi, Hazan and Singer, 2011)."""

    name = "adagrad"

    def __init__(self, lr, eps=1e-10):
        super().__init__(lr)
        self.eps = eps

    def _delta(self, key, grad):
        acc = self._slot(key, grad)
        acc += grad * grad
        return self.lr * grad / (np.sqrt(acc) + self.eps)


#: name -> (class, default learning rate)
OPTIMIZERS = {"sgd": (SGD, 0.01), "adam": (Adam, 0.01), "adagrad": (Adagrad, 0.1)}


def make_optimizer(name, lr=None, momentum=0.9, nesterov=False):
    """Return a new optimizer from its name and options, all validated."""
    if not isinstance(name, str):
        raise TypeError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {type(name).__name__}")
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    cls, default_lr = OPTIMIZERS[key]
    lr = default_lr if lr is None else check_lr(lr)
    if key == "sgd":
        momentum = check_real(momentum, "momentum", low=0, high=1, high_open=True)
        return SGD(lr, momentum, check_bool(nesterov, "nesterov"))
    return cls(lr)


def clip_by_norm(grads, max_norm):
    """Scale grads in place so that their joint Euclidean norm is at most max_norm.

    Returns the norm before clipping.
    """
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if max_norm is not None and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm
