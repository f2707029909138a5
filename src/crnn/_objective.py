# SPDX-License-Identifier: BSD-3-Clause
"""The parts of the training objective every training loop shares.

``RNN.fit`` with a gradient optimizer (``crnn._fit``), with
Levenberg-Marquardt (``crnn._lm``) and ``crnn.distributed.fit`` minimise the
same objective, the mean loss per predicted value plus the weight decay's
penalty,

    F(theta) = E / count + lambda (|U|^2 + |W|^2 + |V|^2),

where count is the number of predicted values (with sample weights, the
sum of the weights). Its parts are here, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping

    from numpy.typing import NDArray

    _Array = NDArray[Any]

__all__ = ["_count", "add_penalty_gradient", "penalty"]


def _count(target: Any, w: Any) -> float:
    """Return what a batch scores: the count of its values, or the sum of their weights."""
    if w is None:
        return sum(t.size for t in target) if isinstance(target, list) else int(target.size)
    if isinstance(w, list):
        return float(sum(np.sum(v, dtype=np.float64) for v in w))
    return float(np.sum(w, dtype=np.float64))


def penalty(params: Mapping[str, _Array], weight_decay: float) -> float:
    """Return the weight decay's penalty, weight_decay (|U|^2 + |W|^2 + |V|^2) (no biases)."""
    if not weight_decay:
        return 0.0
    return weight_decay * sum(float(np.vdot(params[k], params[k])) for k in ("U", "W", "V"))


def add_penalty_gradient(
    grads: MutableMapping[str, _Array], params: Mapping[str, _Array], weight_decay: float
) -> None:
    """Add the penalty's gradient, 2 weight_decay U (W, V), to grads (in place)."""
    if weight_decay:
        for k in ("U", "W", "V"):
            grads[k] = grads[k] + (2 * weight_decay) * params[k]
