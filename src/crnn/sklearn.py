# SPDX-License-Identifier: BSD-3-Clause
"""The Elman network as a scikit-learn estimator: :class:`RNNRegressor`.

It needs scikit-learn (``pip install 'crnn[sklearn]'``), which ``import
crnn`` never imports: this module is imported on first use of
``crnn.sklearn``.

A sample is a sequence: X holds N sequences of T steps of n inputs, y their
targets, N sequences of T steps of m outputs, so that scikit-learn's
splitters (cross-validation, grid search) split along the sequences.

Examples
--------
>>> import numpy as np
>>> from crnn.sklearn import RNNRegressor
>>> from sklearn.model_selection import cross_val_score
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(12, 30, 2))
>>> y = np.cumsum(X, axis=1)[..., :1] / 5  # (12, 30, 1): a running sum to learn
>>> reg = RNNRegressor(hidden_size=8, epochs=20, random_state=0)
>>> cross_val_score(reg, X, y, cv=3).shape
(3,)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.metrics import r2_score
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:
    raise ImportError(
        f"crnn.sklearn needs scikit-learn >= 1.6: pip install 'crnn[sklearn]' ({exc})"
    ) from exc

from crnn._rnn import RNN
from crnn._validation import as_real_array, make_rng

__all__ = ["RNNRegressor"]


def _keyword_options(function: Callable[..., Any], leave_out: Iterable[str]) -> tuple[str, ...]:
    """Return the names of function's keyword-only parameters, but those in leave_out."""
    return tuple(
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name not in leave_out
    )


# What the regressor passes on, read from the signatures of RNN, RNN.fit and
# RNN.partial_fit: an option added to them reaches the model as soon as the
# regressor's constructor has a parameter of that name (a test checks that
# every one has). The sizes come from the data, the seeds from random_state,
# and validation_data is data, not a hyperparameter.
MODEL_OPTIONS = _keyword_options(RNN.__init__, {"seed"})
FIT_OPTIONS = _keyword_options(RNN.fit, {"seed", "validation_data", "sample_weight"})
PARTIAL_FIT_OPTIONS = _keyword_options(RNN.partial_fit, {"sample_weight"})

_X_HINTS = {
    2: " (X holds sequences, (N, T, n): X[np.newaxis] for one sequence, X[..., np.newaxis] "
    "for univariate ones, or a list of sequences)"
}
_Y_HINTS = {2: " (y holds sequences, (N, T, m): y[..., np.newaxis] for one output)"}


def _sequences(value: Any, name: str, hints: dict[int, str] | None) -> Any:
    """Return the sequences of X or y as a list of (T_i, k) arrays, or a (N, T, k) array.

    Checked, not copied: a list (or tuple) is a list of sequences, anything
    else one array of them.
    """
    if isinstance(value, (list, tuple)):
        return [as_real_array(s, f"{name}[{i}]", 2) for i, s in enumerate(value)]
    return as_real_array(value, name, 3, hints)


def _per_value(sample_weight: Any, X: Any) -> Any:
    """Return one weight per sequence (N,) as the model's weights of its values, or None.

    (N, T) for a batch, a list of (T_i,) arrays for a list of sequences.
    """
    if sample_weight is None:
        return None
    w = as_real_array(sample_weight, "sample_weight", 1)
    N = len(X)
    if w.shape != (N,):
        raise ValueError(
            f"sample_weight must hold one weight per sequence, shape ({N},), got {w.shape}"
        )
    if isinstance(X, (list, tuple)):
        return [np.full(np.shape(x)[0], v) for x, v in zip(X, w, strict=True)]
    return np.repeat(w[:, np.newaxis], np.shape(X)[1], axis=1)


def _sizes(X: Any, y: Any) -> tuple[int, int]:
    """Return (n, m), the sizes of the inputs and outputs of X and y, checked to agree.

    The model checks the values again (and converts them); this names y as
    the caller knows it.
    """
    if y is None:  # scikit-learn's words, which its checks look for
        raise ValueError("RNNRegressor requires y to be passed, but the target y is None")
    Xs = _sequences(X, "X", _X_HINTS)
    ys = _sequences(y, "y", _Y_HINTS)
    if len(Xs) != len(ys):
        raise ValueError(f"X and y must hold as many sequences, got {len(Xs)} and {len(ys)}")
    if len(Xs) == 0:
        raise ValueError("X must hold at least one sequence, got none")
    if isinstance(Xs, np.ndarray) and isinstance(ys, np.ndarray):
        if ys.shape[:2] != Xs.shape[:2]:
            raise ValueError(
                f"y must have the sequences and steps of X, shape ({Xs.shape[0]}, "
                f"{Xs.shape[1]}, m), got {ys.shape}"
            )
    else:  # a list of sequences, maybe of several lengths
        for name, seqs in (("X", Xs), ("y", ys)):
            for i, s in enumerate(seqs):
                if s.shape[-1] != seqs[0].shape[-1]:
                    raise ValueError(
                        f"{name}[{i}] must have the {seqs[0].shape[-1]} features of "
                        f"{name}[0] in its last axis, got shape {s.shape}"
                    )
        for i, (x, t) in enumerate(zip(Xs, ys, strict=True)):
            if t.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y[{i}] must have the {x.shape[0]} steps of X[{i}], got shape {t.shape}"
                )
    n, m = Xs[0].shape[-1], ys[0].shape[-1]
    if n == 0 or m == 0:
        raise ValueError(
            f"X and y must have at least one feature in their last axis, got {n} and {m}"
        )
    return n, m


def _describe(seqs: Any) -> str:
    """Return the shape of an array of sequences, or the shapes of a list of them."""
    if isinstance(seqs, np.ndarray):
        return str(seqs.shape)
    return f"a list of {len(seqs)} sequences of shapes {[s.shape for s in seqs]}"


class RNNRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """The Elman network trained on sequences, as a scikit-learn regressor.

    ``fit(X, y)`` builds a :class:`crnn.RNN` of the sizes of the data and
    trains it with :meth:`crnn.RNN.fit`; every option of the two is a
    parameter here, so that :func:`sklearn.base.clone`, pipelines,
    :class:`~sklearn.model_selection.GridSearchCV` and
    :func:`~sklearn.model_selection.cross_val_score` work, splitting along
    the sequences.

    Parameters
    ----------
    hidden_size : int, default 32
        d, the size of the state.
    dtype, n_threads, init, spectral_radius, bias, activation, leak
        As in :class:`crnn.RNN`.
    epochs, optimizer, lr, momentum, nesterov, batch_size, shuffle, method, \
clip, truncate, tol, n_iter_no_change, validation_fraction, g, warm_start, verbose, \
weight_decay
        As in :meth:`crnn.RNN.fit` (``validation_data``, data rather than a
        setting, is not one of them). With ``warm_start=True`` a second fit
        continues the model of the first (same sizes), its optimizer and its
        history, as in :meth:`crnn.RNN.fit`, when the data have the same
        sizes and the model's parameters (but ``n_threads``) are the same;
        otherwise each fit starts a new model.
    random_state : None, int or numpy.random.Generator, default None
        The seed of the initial weights and of the training (shuffling, the
        validation split): an int gives the model of ``crnn.RNN(n,
        hidden_size, m, seed=random_state, ...)`` trained by ``fit(X, y,
        seed=random_state, ...)``, bit for bit. A Generator is drawn from by
        both, in this order.

    Attributes
    ----------
    model_ : crnn.RNN
        The trained model.
    n_features_in_ : int
        n, the size of each input.
    loss_curve_, validation_scores_, best_loss_, best_validation_score_, n_iter_
        The model's (see :meth:`crnn.RNN.fit`).

    Notes
    -----
    X is an array of shape (N, T, n) or a list of N sequences of shape
    (T, n); y likewise, (N, T, m) or a list of (T, m), the target of every
    step. A list passes to the model as it is (its sequences must have one
    length). pandas DataFrames are sequences (T, k) and Series univariate
    ones (T, 1), in a list; predictions are numpy arrays.

    What of scikit-learn's ``check_estimator`` applies is run by
    ``tests/test_sklearn.py``: the checks of the API (cloning, parameters,
    tags, repr, not fitted...) pass. The checks that fit or predict on
    scikit-learn's own data do not apply and are listed there with their
    reasons: they give X as a table (n_samples, n_features) and y as
    (n_samples,), where a sample here is a sequence (T, n) with a target
    (T, m); the tests check the same properties on sequences instead.
    """

    def __init__(
        self,
        hidden_size: int = 32,
        *,
        dtype: Any = np.float64,
        n_threads: int | None = None,
        init: Any = "uniform",
        spectral_radius: float | None = None,
        bias: bool = False,
        activation: str = "tanh",
        leak: float = 1.0,
        epochs: int = 200,
        optimizer: str = "adam",
        lr: float | None = None,
        momentum: float = 0.9,
        nesterov: bool = False,
        batch_size: int | None = None,
        shuffle: bool = True,
        method: str = "bptt",
        clip: float | None = None,
        truncate: int | None = None,
        tol: float = 1e-6,
        n_iter_no_change: int = 20,
        validation_fraction: float | None = None,
        g: float = 1.0,
        warm_start: bool = False,
        verbose: bool = False,
        weight_decay: float = 0.0,
        random_state: Any = None,
    ) -> None:
        # scikit-learn's convention: each parameter stored as it came, under
        # its name (get_params, set_params and clone read them back);
        # checked when fit uses them
        params = dict(locals())
        del params["self"]
        self.__dict__.update(params)

    # ------------------------------------------------------------------ scikit-learn

    def __sklearn_tags__(self) -> Any:
        """Tell scikit-learn that a sample is a sequence: X is 3-D, not a table."""
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.random_state is None
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # ------------------------------------------------------------------ training

    def _options(self, names: Iterable[str]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names}

    def _new_model(self, n: int, m: int, rng: Any) -> RNN:
        self._built_for = self._build(n, m)
        return RNN(n, self.hidden_size, m, seed=rng, **self._options(MODEL_OPTIONS))

    def _build(self, n: int, m: int) -> tuple[Any, ...]:
        """Return what a model is built from: the data's sizes and the model's parameters.

        All of them but n_threads, which a model can change.
        """
        options = self._options(name for name in MODEL_OPTIONS if name != "n_threads")
        return (n, m, self.hidden_size, options)

    def _seeds(self) -> tuple[Any, Any]:
        """Return the seeds of the initial weights and of the training, from random_state.

        An int is the seed of both (as ``RNN(..., seed=s).fit(..., seed=s)``);
        None or a Generator gives one Generator, which both draw from in turn.
        """
        seed = self.random_state
        rng = make_rng(seed, "random_state")  # a bad one is refused by its name
        if seed is None or isinstance(seed, np.random.Generator):
            return rng, rng
        return seed, seed

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RNNRegressor:
        """Build a model of the sizes of the data and train it.

        Parameters
        ----------
        X : array_like of shape (N, T, n), or a list of N arrays (T, n)
            The input sequences.
        y : array_like of shape (N, T, m), or a list of N arrays (T, m)
            Their targets, one for every step.
        sample_weight : array_like of shape (N,), optional
            A weight for each sequence (scikit-learn's samples), given to
            each of its values (:meth:`crnn.RNN.fit`'s ``sample_weight``).

        Returns
        -------
        RNNRegressor
            The regressor itself, fitted.
        """
        n, m = _sizes(X, y)
        weights = _per_value(sample_weight, X)
        init_seed, fit_seed = self._seeds()
        model = getattr(self, "model_", None)
        if self.warm_start and model is not None and self._built_for == self._build(n, m):
            model.n_threads = self.n_threads
        else:
            model = self._new_model(n, m, init_seed)
        model.fit(X, y, seed=fit_seed, sample_weight=weights, **self._options(FIT_OPTIONS))
        self.model_ = model
        self.n_features_in_ = n
        return self

    def partial_fit(self, X: Any, y: Any) -> RNNRegressor:
        """Make one update on one mini-batch, continuing the model (built at the first call).

        Parameters
        ----------
        X, y
            As in :meth:`fit`.

        Returns
        -------
        RNNRegressor
            The regressor itself.
        """
        n, m = _sizes(X, y)
        if not hasattr(self, "model_"):
            self.model_ = self._new_model(n, m, self._seeds()[0])
            self.n_features_in_ = n
        self.model_.partial_fit(X, y, **self._options(PARTIAL_FIT_OPTIONS))
        return self

    # ------------------------------------------------------------------ prediction

    def predict(self, X: Any) -> Any:
        """Return the outputs of the trained model on the sequences X.

        Parameters
        ----------
        X : array_like of shape (N, T, n), or a list of N arrays (T, n)

        Returns
        -------
        ndarray of shape (N, T, m)
            The output of every step (:meth:`crnn.RNN.predict`).
        """
        check_is_fitted(self)
        if not isinstance(X, (list, tuple)):
            as_real_array(X, "X", 3, _X_HINTS)  # a single sequence is refused, with a hint
        return self.model_.predict(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Return R², the coefficient of determination, over every predicted value.

        All the values of every step, output and sequence count as one
        sample each: 1 - Σ(y - ŷ)² / Σ(y - ȳ)², ȳ their mean.

        Parameters
        ----------
        X, y
            As in :meth:`fit`.
        sample_weight : array_like of shape (N,), optional
            A weight for each sequence, given to each of its values.

        Returns
        -------
        float
        """
        pred = _sequences(self.predict(X), "the predictions", None)
        true = _sequences(y, "y", _Y_HINTS)
        if [s.shape for s in true] != [s.shape for s in pred]:
            raise ValueError(
                f"y must have the shape of the predictions of X, {_describe(pred)}, "
                f"got {_describe(true)}"
            )
        if sample_weight is not None:
            w = as_real_array(sample_weight, "sample_weight", 1)
            if w.shape != (len(pred),):
                raise ValueError(
                    f"sample_weight must hold one weight per sequence, shape ({len(pred)},), "
                    f"got {w.shape}"
                )
            sample_weight = np.repeat(w, [s.size for s in pred])
        # every value of every step, output and sequence, in one flat array
        true, pred = (np.concatenate([np.ravel(s) for s in seqs]) for seqs in (true, pred))
        return float(r2_score(true, pred, sample_weight=sample_weight))

    # ------------------------------------------------------------------ the model's history

    @property
    def loss_curve_(self) -> list[float]:
        """The mean loss per predicted value of each epoch (the model's)."""
        check_is_fitted(self)
        return self.model_.loss_curve_

    @property
    def validation_scores_(self) -> list[float] | None:
        """The mean validation loss of each epoch, or None (the model's)."""
        check_is_fitted(self)
        return self.model_.validation_scores_

    @property
    def best_loss_(self) -> float:
        """The lowest training loss (the model's)."""
        check_is_fitted(self)
        return self.model_.best_loss_

    @property
    def best_validation_score_(self) -> float | None:
        """The lowest validation loss, or None (the model's)."""
        check_is_fitted(self)
        return self.model_.best_validation_score_

    @property
    def n_iter_(self) -> int:
        """The number of epochs run (the model's)."""
        check_is_fitted(self)
        return self.model_.n_iter_
