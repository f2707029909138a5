# SPDX-License-Identifier: BSD-3-Clause
"""Training loops behind :meth:`RNN.fit` and :meth:`RNN.partial_fit`.

Every update is one exact gradient of a mini-batch of sequences (one call of
the compiled kernels) followed by a vectorised optimizer step; nothing loops
over time steps or weight elements in Python.

The optimizers see the *mean* loss per predicted value, E / (N T m), so that
learning rates do not depend on how much data there is; ``loss_curve_`` and
the validation scores are on the same scale.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from crnn._guard import (
    check_writable,
    deferral_is_cheap,
    exclusive,
    interrupts_deferrable,
    uninterrupted,
)
from crnn._optim import clip_by_norm, make_optimizer
from crnn._validation import (
    as_float_array,
    check_bool,
    check_g,
    check_int,
    check_method,
    check_real,
    make_rng,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

    from numpy.typing import ArrayLike, NDArray

    from crnn._optim import _Optimizer
    from crnn._rnn import RNN

    _Array = NDArray[Any]
    #: Held-out data: X, target, and whether it continues the training sequence.
    _Val = tuple[_Array, _Array, bool]

_Model = TypeVar("_Model", bound="RNN")

__all__ = ["fit"]


class _Progress:
    """A tqdm bar when tqdm is installed, else a line to stderr now and then."""

    def __init__(self, epochs: int, enabled: bool) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=epochs, desc="fit", unit="epoch", leave=True)

    def update(self, epoch: int, loss: float, val: float | None) -> None:
        if not self.enabled:
            return
        info = {"loss": f"{loss:.4g}"}
        if val is not None:
            info["val_loss"] = f"{val:.4g}"
        if self.bar is not None:
            self.bar.set_postfix(info, refresh=False)
            self.bar.update(1)
        elif epoch == 1 or epoch % max(1, self.epochs // 10) == 0 or epoch == self.epochs:
            text = "  ".join(f"{k} {v}" for k, v in info.items())
            print(f"epoch {epoch}/{self.epochs}  {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _as_batch(
    model: RNN, X: ArrayLike, target: ArrayLike, name_x: str = "X", name_t: str = "target"
) -> tuple[_Array, _Array]:
    """Return X, target as (N, T, n), (N, T, m) arrays of the model's dtype."""
    X = as_float_array(X, name_x, model.dtype, (2, 3))
    target = as_float_array(target, name_t, model.dtype, X.ndim)
    if X.ndim == 2:
        X, target = X[np.newaxis], target[np.newaxis]
    if X.shape[-1] != model.input_size:
        raise ValueError(
            f"{name_x} must have {model.input_size} features in its last axis, got shape {X.shape}"
        )
    expected = (*X.shape[:-1], model.output_size)
    if target.shape != expected:
        raise ValueError(f"{name_t} must have shape {expected}, got {target.shape}")
    if X.shape[1] == 0:
        raise ValueError(f"{name_x} must have at least one time step, got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name_x} must hold at least one sequence, got shape {X.shape}")
    return X, target


def split_sequences(
    N: int, fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Return sorted indices (train, val) holding out a random fraction of N sequences."""
    n_val = max(1, round(fraction * N))
    if n_val >= N:
        raise ValueError(f"validation_fraction={fraction} leaves no sequence to train on")
    order = rng.permutation(N)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def apply_update(
    params: MutableMapping[str, _Array],
    optimizer: _Optimizer,
    grads: Mapping[str, _Array],
    loss: float,
    clip: float | None,
) -> None:
    """Make one optimizer step on params (in place) from grads, or refuse it.

    A loss or gradient that is not finite raises FloatingPointError before
    anything changes; grads are clipped to the norm ``clip``; a step that makes
    a weight overflow is undone and raises FloatingPointError, so the weights
    are always the last finite ones. A Ctrl-C never leaves half a step: in a
    fit's loop it waits until the step is whole; elsewhere (partial_fit) it
    undoes the step. The weights and the optimizer's state are always those
    of one update.
    """
    if not (math.isfinite(loss) and all(np.isfinite(v).all() for v in grads.values())):
        raise FloatingPointError(
            "fit diverged: the loss or its gradient is not finite; the model keeps the "
            "last finite weights (try a smaller lr, or clip=1.0)"
        )
    clip_by_norm(grads, clip)
    backup = {k: v.copy() for k, v in params.items()}
    if deferral_is_cheap():
        with uninterrupted():
            finite = _step(params, optimizer, grads, backup)
    else:  # a handler swapped at each update would cost more than the step
        saved = optimizer.save()
        try:
            finite = _step(params, optimizer, grads, backup)
        except BaseException:
            with uninterrupted():
                optimizer.restore(saved)
                for k, v in params.items():
                    v[...] = backup[k]
            raise
    if not finite:
        raise FloatingPointError(
            "fit diverged: an update made the weights overflow; the model keeps the "
            "last finite weights (try a smaller lr, or clip=1.0)"
        )


def _step(
    params: MutableMapping[str, _Array],
    optimizer: _Optimizer,
    grads: Mapping[str, _Array],
    backup: Mapping[str, _Array],
) -> bool:
    """Make the optimizer's step; undo it and return False when a weight is not finite."""
    optimizer.step(params, grads)
    if all(np.isfinite(v).all() for v in params.values()):
        return True
    for k, v in params.items():
        v[...] = backup[k]
    return False


def _split(
    X: _Array, target: _Array, fraction: float, rng: np.random.Generator
) -> tuple[_Array, _Array, _Val]:
    """Hold out a fraction of the data for validation.

    Several sequences: a random fraction of the sequences. One sequence: its
    last steps, which are then scored from the state the training part ends in.
    """
    N, T, _ = X.shape
    if N > 1:
        train, val = split_sequences(N, fraction, rng)
        return X[train], target[train], (X[val], target[val], False)
    n_val = max(1, round(fraction * T))
    if n_val >= T:
        raise ValueError(f"validation_fraction={fraction} leaves no time step to train on")
    cut = T - n_val
    return X[:, :cut], target[:, :cut], (X[:, cut:], target[:, cut:], True)


class _Trainer:
    """One fit's settings and the loop over epochs and mini-batches."""

    def __init__(
        self,
        model: RNN,
        *,
        g: float,
        method: Any,
        batch_size: int | None,
        shuffle: bool,
        clip: float | None,
        truncate: int | None,
    ) -> None:
        self.model = model
        self.g = g
        self.method = method
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.clip = clip
        self.truncate = truncate

    def _params(self) -> dict[str, _Array]:
        return self.model.parameters()

    def _update(
        self, optimizer: _Optimizer, X: _Array, target: _Array, s0: _Array | None
    ) -> tuple[float, int]:
        """One exact gradient and one optimizer step; return (E, values scored)."""
        model = self.model
        G = model.gradient(X, target, s0, self.g, self.method, check_finite=False)
        count = target.size
        grads = {k: getattr(G, k) / count for k in model.parameters()}
        apply_update(self._params(), optimizer, grads, G.loss, self.clip)
        return G.loss, count

    def epoch(
        self, optimizer: _Optimizer, X: _Array, target: _Array, rng: np.random.Generator
    ) -> float:
        """One pass over the data; return the mean loss per predicted value."""
        N, T, _ = X.shape
        order = rng.permutation(N) if self.shuffle else np.arange(N)
        size = N if self.batch_size is None else min(self.batch_size, N)
        total, count = 0.0, 0
        for start in range(0, N, size):
            idx = (
                np.sort(order[start : start + size])
                if self.shuffle
                else order[start : start + size]
            )
            Xb, tb = X[idx], target[idx]
            if self.truncate is None or self.truncate >= T:
                E, c = self._update(optimizer, Xb, tb, None)
                total, count = total + E, count + c
                continue
            # truncated BPTT: windows of `truncate` steps, the state carried across
            state = np.zeros((len(idx), self.model.hidden_size), dtype=self.model.dtype)
            for t0 in range(0, T, self.truncate):
                Xw = Xb[:, t0 : t0 + self.truncate]
                tw = tb[:, t0 : t0 + self.truncate]
                S, _ = self.model.forward(Xw, state, check_finite=False)
                E, c = self._update(optimizer, Xw, tw, state)
                total, count = total + E, count + c
                state = np.ascontiguousarray(S[:, -1])
        return total / count

    def validation_loss(self, val: _Val, X_train: _Array) -> float:
        """Mean loss per predicted value on the held-out data."""
        Xv, tv, continues = val
        s0 = None
        if continues:  # the tail of one sequence: start from where training ends
            S, _ = self.model.forward(X_train, check_finite=False)
            s0 = S[:, -1]
        return self.model.loss(Xv, tv, s0, self.g, check_finite=False) / tv.size


# ---------------------------------------------------------------------- the one training loop


def check_loop_options(
    *,
    epochs: object,
    n_iter_no_change: object,
    tol: object,
    clip: object,
    shuffle: object,
    warm_start: object,
    batch_size: object,
) -> tuple[int, int, float, float | None, int | None]:
    """Check the options every fit shares (local or distributed); return them converted.

    Returns epochs, n_iter_no_change, tol, clip and batch_size.
    """
    epochs = check_int(epochs, "epochs", low=1)
    n_iter_no_change = check_int(n_iter_no_change, "n_iter_no_change", low=1)
    clip = check_real(clip, "clip", low=0, low_open=True, allow_none=True)
    tol = check_real(tol, "tol", low=0)
    check_bool(shuffle, "shuffle")
    check_bool(warm_start, "warm_start")
    batch_size = check_int(batch_size, "batch_size", low=1, allow_none=True)
    return epochs, n_iter_no_change, tol, clip, batch_size


def start_history(
    model: RNN, warm_start: object, has_val: bool, new_optimizer: Callable[[], _Optimizer]
) -> _Optimizer:
    """Return a fit's optimizer and set up its bookkeeping on the model.

    With ``warm_start`` and an earlier fit, its optimizer, ``loss_curve_`` and
    ``n_iter_`` go on; otherwise ``new_optimizer()`` and a fresh history.
    """
    state = getattr(model, "_fit_state", None)
    if warm_start and state is not None:
        opt: _Optimizer = state["optimizer"]
    else:
        opt = new_optimizer()
        model.loss_curve_ = []
        model.validation_scores_ = [] if has_val else None
        model.n_iter_ = 0
        model.best_loss_ = math.inf
        model.best_validation_score_ = math.inf if has_val else None
    if has_val and model.validation_scores_ is None:
        model.validation_scores_ = []
        model.best_validation_score_ = math.inf
    model._fit_state = {"optimizer": opt}
    return opt


class Source(Protocol):
    """Where :func:`run_epochs` gets its updates from (see there)."""

    def epoch(self, opt: _Optimizer) -> float: ...
    def validation_loss(self) -> float | None: ...


def run_epochs(
    model: _Model,
    source: Source,
    opt: _Optimizer,
    *,
    epochs: int,
    tol: float,
    n_iter_no_change: int,
    verbose: object,
    callback: Callable[[_Model], object] | None = None,
) -> _Model:
    """Run the epochs of :meth:`RNN.fit` and :func:`crnn.distributed.fit`: the one loop.

    Parameters
    ----------
    model : RNN
        Trained in place; its history (``loss_curve_``...) set up by
        :func:`start_history`.
    source : object
        Where the gradients come from: ``source.epoch(opt)`` makes one
        pass of updates and returns the mean loss per predicted value;
        ``source.validation_loss()`` returns the mean validation loss per
        predicted value, or None without validation data.
    opt : optimizer
    epochs, tol, n_iter_no_change, verbose
        As in :meth:`RNN.fit`, already checked.
    callback : callable, optional
        ``callback(model)`` after each epoch.

    Returns
    -------
    RNN
        The model, holding the weights of the best validation score seen
        when there is validation data (early stopping), else the last ones.

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C: the model keeps the weights of its last update, its
        history the epochs completed. The exception's ``best_weights`` is
        {name: array}, the weights of the best validation score so far, or
        None (no validation data, or no epoch completed).
    """
    params = model.parameters()
    progress = _Progress(epochs, bool(verbose))
    best_weights = None
    since_best = 0
    try:
        for epoch in range(1, epochs + 1):
            loss = source.epoch(opt)
            model.loss_curve_.append(float(loss))
            model.n_iter_ += 1
            score = source.validation_loss()
            if score is not None:
                score = float(score)
                model.validation_scores_.append(score)  # type: ignore[union-attr]
                improved = score < model.best_validation_score_ - tol  # type: ignore[operator]
                if score < model.best_validation_score_:  # type: ignore[operator]
                    model.best_validation_score_ = score
                    best_weights = {k: v.copy() for k, v in params.items()}
            else:
                improved = loss < model.best_loss_ - tol
            model.best_loss_ = min(model.best_loss_, float(loss))
            progress.update(epoch, loss, score)
            if callback is not None:
                callback(model)
            since_best = 0 if improved else since_best + 1
            if since_best >= n_iter_no_change:
                break
    except KeyboardInterrupt as exc:
        exc.best_weights = best_weights  # type: ignore[attr-defined]
        raise
    finally:
        progress.close()
    if best_weights is not None:  # early stopping keeps the best weights seen
        with uninterrupted():
            for k, v in params.items():
                v[...] = best_weights[k]
    return model


class _LocalSource:
    """The gradient source of RNN.fit: the model's own gradient over mini-batches."""

    def __init__(
        self,
        trainer: _Trainer,
        X: _Array,
        target: _Array,
        val: _Val | None,
        rng: np.random.Generator,
    ) -> None:
        self.trainer, self.X, self.target, self.val, self.rng = trainer, X, target, val, rng

    def epoch(self, opt: _Optimizer) -> float:
        return self.trainer.epoch(opt, self.X, self.target, self.rng)

    def validation_loss(self) -> float | None:
        return None if self.val is None else self.trainer.validation_loss(self.val, self.X)


def fit(model: _Model, X: ArrayLike, target: ArrayLike, **options: Any) -> _Model:
    """Train model in place; see :meth:`RNN.fit` for the parameters.

    A second training call on the same model while this one runs (from
    another thread) raises RuntimeError instead of racing with it.
    """
    with exclusive("fit", model), interrupts_deferrable():
        return _fit(model, X, target, **options)


def _fit(
    model: _Model,
    X: ArrayLike,
    target: ArrayLike,
    *,
    epochs: object,
    optimizer: object,
    lr: object,
    momentum: object,
    nesterov: object,
    batch_size: object,
    shuffle: object,
    method: object,
    clip: object,
    truncate: object,
    tol: object,
    n_iter_no_change: object,
    validation_fraction: object,
    validation_data: object,
    g: object,
    seed: object,
    warm_start: object,
    verbose: object,
) -> _Model:
    epochs, n_iter_no_change, tol, clip, batch_size = check_loop_options(
        epochs=epochs,
        n_iter_no_change=n_iter_no_change,
        tol=tol,
        clip=clip,
        shuffle=shuffle,
        warm_start=warm_start,
        batch_size=batch_size,
    )
    truncate = check_int(truncate, "truncate", low=1, allow_none=True)
    check_method(method)
    g = check_g(g, model.dtype)
    X, target = _as_batch(model, X, target)
    model._weights(check_finite=True)  # NaN weights: refused by name, not as a divergence
    check_writable(model, "fit")

    rng = make_rng(seed)
    val: _Val | None = None
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise TypeError("validation_data must be a pair (X_val, target_val)")
        Xv, tv = _as_batch(model, *validation_data, "validation_data[0]", "validation_data[1]")  # type: ignore[call-arg]
        val = (Xv, tv, False)
    elif validation_fraction is not None:
        fraction = check_real(
            validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True
        )
        X, target, val = _split(X, target, fraction, rng)

    opt = start_history(
        model,
        warm_start,
        val is not None,
        lambda: make_optimizer(optimizer, lr, momentum, nesterov),
    )
    trainer = _Trainer(
        model,
        g=g,
        method=method,
        batch_size=batch_size,
        shuffle=bool(shuffle),
        clip=clip,
        truncate=truncate,
    )
    source = _LocalSource(trainer, X, target, val, rng)
    return run_epochs(
        model,
        source,
        opt,
        epochs=epochs,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        verbose=verbose,
    )


def partial_fit(model: _Model, X: ArrayLike, target: ArrayLike, **options: Any) -> _Model:
    """One pass over (X, target) as one mini-batch, continuing any earlier fit."""
    with exclusive("partial_fit", model):
        return _partial_fit(model, X, target, **options)


def _partial_fit(
    model: _Model,
    X: ArrayLike,
    target: ArrayLike,
    *,
    g: object,
    method: object,
    clip: object,
    optimizer: object,
    lr: object,
) -> _Model:
    check_method(method)
    g = check_g(g, model.dtype)
    clip = check_real(clip, "clip", low=0, low_open=True, allow_none=True)
    X, target = _as_batch(model, X, target)
    model._weights(check_finite=True)  # NaN weights: refused by name, not as a divergence
    check_writable(model, "partial_fit")
    state = getattr(model, "_fit_state", None)
    if state is None:
        state = {"optimizer": make_optimizer(optimizer, lr)}
        model._fit_state = state
        model.loss_curve_ = []
        model.validation_scores_ = None
        model.n_iter_ = 0
        model.best_loss_ = math.inf
        model.best_validation_score_ = None
    trainer = _Trainer(
        model, g=g, method=method, batch_size=None, shuffle=False, clip=clip, truncate=None
    )
    E, count = trainer._update(state["optimizer"], X, target, None)
    loss = E / count
    model.loss_curve_.append(float(loss))
    model.n_iter_ += 1
    model.best_loss_ = min(model.best_loss_, float(loss))
    return model
