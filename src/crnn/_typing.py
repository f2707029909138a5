# SPDX-License-Identifier: BSD-3-Clause
"""The types of crnn's public API, for type checkers.

The modules of crnn import this one under ``TYPE_CHECKING`` only (their
annotations are strings: ``from __future__ import annotations``), so no call
pays for typing. The string options are ``Literal`` types in lower case, the
spelling the documentation uses; the validators in ``crnn._validation``
still take any case at run time. tests/test_typing.py checks that each
``Literal`` here names exactly the values its validator takes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

if sys.version_info >= (3, 11):
    from typing import Self
elif TYPE_CHECKING:  # Python 3.10: for type checkers only (no run-time dependency)
    from typing_extensions import Self

__all__ = [
    "Activation",
    "ArrayLike",
    "FloatArray",
    "FloatDType",
    "Init",
    "InitFunction",
    "InitName",
    "Method",
    "OptimizerName",
    "PathLike",
    "Seed",
    "Self",
    "Trainable",
]

#: An array of the model's dtype (float32 or float64): what crnn returns.
FloatArray: TypeAlias = NDArray[np.floating[Any]]

#: The precisions the kernels are compiled for.
FloatDType: TypeAlias = (
    type[np.float32]
    | type[np.float64]
    | type[float]
    | np.dtype[np.float32]
    | np.dtype[np.float64]
    | Literal["float32", "float64"]
)

#: The activations of the cell (``crnn._validation.ACTIVATION_NAMES``).
Activation: TypeAlias = Literal["tanh", "relu", "identity", "logistic"]

#: How a gradient is computed (``crnn._validation.METHODS``).
Method: TypeAlias = Literal["bptt", "rtrl"]

#: The optimizers of ``fit`` (``crnn._optim.OPTIMIZERS``).
OptimizerName: TypeAlias = Literal["adam", "sgd", "adagrad", "lm"]

#: The named initialisers of ``RNN(init=...)`` (``crnn._init.INITS``).
InitName: TypeAlias = Literal["uniform", "glorot", "normal", "orthogonal"]

#: ``init(shape, fan_in, fan_out, rng)`` returns one weight array.
InitFunction: TypeAlias = Callable[[tuple[int, int], int, int, np.random.Generator], ArrayLike]

#: ``RNN(init=...)``: a name or a function.
Init: TypeAlias = InitName | InitFunction

#: What ``numpy.random.default_rng`` takes (``crnn._validation.make_rng``).
Seed: TypeAlias = (
    int
    | Sequence[int]
    | np.random.SeedSequence
    | np.random.BitGenerator
    | np.random.Generator
    | None
)

#: A file name.
PathLike: TypeAlias = str | os.PathLike[str]


class Trainable(Protocol):
    """What the training code uses of a model; :class:`crnn.RNN` is one.

    ``crnn._fit``, ``_lm``, ``_guard`` and ``_laplace`` annotate the model
    they are given with this rather than with ``RNN``: ``crnn._rnn`` imports
    them, so none of them names it back, not even in an annotation.
    """

    _cell: tuple[int, float]
    _n_threads: int | None
    _size: tuple[int, int, int]
    _theta: FloatArray
    _fit_state: dict[str, Any]
    loss_curve_: list[float]
    validation_scores_: list[float] | None
    best_loss_: float
    best_validation_score_: float | None
    n_iter_: int
    penalty_curve_: list[float]

    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def output_size(self) -> int: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def bias(self) -> bool: ...
    def parameters(self) -> dict[str, FloatArray]: ...
    def flat_weights(self) -> FloatArray: ...
    def _weights(self, check_finite: bool) -> FloatArray: ...
    def _writable(self) -> bool: ...
    def forward(self, *args: Any, **kwargs: Any) -> Any: ...
    def loss(self, *args: Any, **kwargs: Any) -> Any: ...
    def gradient(self, *args: Any, **kwargs: Any) -> Any: ...
