# SPDX-License-Identifier: BSD-3-Clause
"""Training loops behind :meth:`RNN.fit` and :meth:`RNN.partial_fit`.

Every update is one exact gradient of a mini-batch of sequences (one call of
the compiled kernels) followed by a vectorised optimizer step; nothing loops
over time steps or weight elements in Python.

The optimizers see the *mean* loss per predicted value, E / (N T m), so that
learning rates do not depend on how much data there is (with
``sample_weight``, E divided by the sum of the weights), plus the weight
decay's penalty; ``loss_curve_`` and the validation scores are on the scale
of the mean loss, ``penalty_curve_`` holds the penalty.
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
from crnn._lm import lm_source
from crnn._objective import _count, add_penalty_gradient, penalty
from crnn._optim import clip_by_norm, make_optimizer
from crnn._validation import (
    as_float_array,
    as_sequence_pairs,
    check_bool,
    check_g,
    check_int,
    check_method,
    check_real,
    check_sample_weight,
    is_sequence_list,
    make_rng,
    sequence_weights,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

    from numpy.typing import ArrayLike, NDArray

    from crnn._optim import _Optimizer
    from crnn._typing import Trainable

    _Array = NDArray[Any]
    #: Held-out data: X, target (arrays, or lists of sequences), their
    #: weights or None, and whether it continues the training sequence.
    _Val = tuple[Any, Any, Any, bool]

_Model = TypeVar("_Model", bound="Trainable")

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
    model: Trainable, X: Any, target: Any, name_x: str = "X", name_t: str = "target"
) -> tuple[Any, Any]:
    """Return X, target as (N, T, n), (N, T, m) arrays of the model's dtype.

    A list of sequences (T_i, n) stays a list (of arrays of the model's
    dtype), and target a list of (T_i, m) arrays.
    """
    if is_sequence_list(X):
        return _as_lists(model, X, target, name_x, name_t)
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


def _given_as_batch(X: Any) -> bool:
    """Return True when X, as the user gave it, is a batch (N, T, n) or a list of sequences."""
    if is_sequence_list(X):
        return True
    try:
        return bool(np.ndim(X) == 3)
    except (ValueError, TypeError):  # refused by _as_batch, by name
        return False


def _as_lists(
    model: Trainable, X: object, target: object, name_x: str, name_t: str
) -> tuple[list[_Array], list[_Array]]:
    """Return the list form of ``_as_batch``: lists of (T_i, n) and (T_i, m) arrays."""
    Xs, ts = as_sequence_pairs(
        X, target, model.dtype, model.input_size, model.output_size, names=(name_x, name_t)
    )
    if not any(x.shape[0] for x in Xs):
        raise ValueError(f"{name_x} must have at least one time step, got only empty sequences")
    return Xs, ts


def _rows(data: Any, idx: Any) -> Any:
    """Return the sequences idx of a batch: an array's rows, or a list's items (None: None)."""
    if data is None or not isinstance(data, list):
        return None if data is None else data[idx]
    return [data[i] for i in idx]


def as_weights(
    model: Trainable,
    sample_weight: Any,
    X: Any,
    target: Any,
    batched: bool,
    name: str = "sample_weight",
) -> Any:
    """Return the weights of a fit's squared errors as an (N, T, m) array, or None.

    X and target are the (N, T, .) arrays of ``_as_batch`` (or its lists:
    then a list of (T_i, m) arrays); ``batched`` says whether the user gave
    a batch. All-zero weights leave nothing to fit.
    """
    if sample_weight is None:
        return None
    if isinstance(target, list):
        ws = sequence_weights(sample_weight, target, model.dtype, name)
        if not any(v.any() for v in ws):
            raise ValueError(
                f"{name} must have a weight > 0: all are 0, so there is nothing to fit"
            )
        return ws
    w = check_sample_weight(sample_weight, model.dtype, target.shape, batched, name)
    if w is None or not w.any():
        raise ValueError(f"{name} must have a weight > 0: all are 0, so there is nothing to fit")
    return w


def split_sequences(
    N: int, fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Return sorted indices (train, val) holding out a random fraction of N sequences."""
    n_val = max(1, round(fraction * N))
    if n_val >= N:
        raise ValueError(f"validation_fraction={fraction} leaves no sequence to train on")
    order = rng.permutation(N)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# For each dtype, the largest gradient element whose square is finite there
# (the optimizers square a gradient in its own dtype).
_SQUARE_MAX = {np.dtype(t): math.sqrt(float(np.finfo(t).max)) for t in (np.float32, np.float64)}


def apply_update(
    params: MutableMapping[str, _Array],
    optimizer: _Optimizer,
    grads: Mapping[str, _Array],
    loss: float,
    clip: float | None,
) -> None:
    """Make one optimizer step on params (in place) from grads, or refuse it.

    A loss or gradient that is not finite raises FloatingPointError before
    anything changes; grads are clipped to the norm ``clip``; a gradient
    element whose square would overflow an optimizer that squares it (Adam,
    Adagrad) raises FloatingPointError before the step; a step that makes a
    weight overflow is undone and raises FloatingPointError, so the weights
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
    norm = clip_by_norm(grads, clip)
    if clip is not None:
        norm = min(norm, clip)  # the norm of what the step is given
    if optimizer.squares and grads:
        limit = _SQUARE_MAX.get(next(iter(grads.values())).dtype, math.inf)
        big = norm if norm < limit else max(float(np.max(np.abs(v))) for v in grads.values())
        if big >= limit:
            raise FloatingPointError(
                f"fit diverged: a gradient element of {big:.3g} would overflow the "
                f"{optimizer.name} optimizer's squares; the model keeps the last finite "
                "weights (try clip=1.0, or a smaller lr)"
            )
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
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is found just below
        optimizer.step(params, grads)
    if all(np.isfinite(v).all() for v in params.values()):
        return True
    for k, v in params.items():
        v[...] = backup[k]
    return False


def _split(
    X: Any, target: Any, w: Any, fraction: float, rng: np.random.Generator
) -> tuple[Any, Any, Any, _Val]:
    """Hold out a fraction of the data (and of its weights w, or None) for validation.

    Several sequences: a random fraction of the sequences. One sequence: its
    last steps, which are then scored from the state the training part ends in.
    Returns X, target, w of the training part and (X, target, w, continues)
    of the held-out part.
    """
    N = len(X)
    if N > 1:
        train, val = split_sequences(N, fraction, rng)
        parts = [(_rows(a, train), _rows(a, val)) for a in (X, target, w)]
    else:
        T = X[0].shape[0]
        n_val = max(1, round(fraction * T))
        if n_val >= T:
            raise ValueError(f"validation_fraction={fraction} leaves no time step to train on")
        cut = T - n_val
        if isinstance(X, list):
            parts = [
                (None, None) if a is None else ([a[0][:cut]], [a[0][cut:]]) for a in (X, target, w)
            ]
        else:
            parts = [
                (None, None) if a is None else (a[:, :cut], a[:, cut:]) for a in (X, target, w)
            ]
    (Xt, Xv), (tt, tv), (wt, wv) = parts
    if w is not None and not _count(tt, wt):
        raise ValueError(
            "sample_weight is 0 on every value left to train on after the validation split"
        )
    return Xt, tt, wt, (Xv, tv, wv, N == 1)


class _Trainer:
    """One fit's settings and the loop over epochs and mini-batches."""

    def __init__(
        self,
        model: Trainable,
        *,
        g: float,
        method: Any,
        batch_size: int | None,
        shuffle: bool,
        clip: float | None,
        truncate: int | None,
        weight_decay: float = 0.0,
    ) -> None:
        self.model = model
        self.g = g
        self.method = method
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.clip = clip
        self.truncate = truncate
        self.weight_decay = weight_decay

    def _params(self) -> dict[str, _Array]:
        return self.model.parameters()

    def _update(
        self, optimizer: _Optimizer, X: Any, target: Any, s0: _Array | None, w: Any = None
    ) -> tuple[float, float]:
        """One exact gradient and one optimizer step; return (E, values scored).

        With weights w, the values scored are their sum; a mini-batch (or a
        window) whose weights are all 0 makes no step.
        """
        model = self.model
        count = _count(target, w)
        if count == 0:
            return 0.0, 0
        G = model.gradient(X, target, s0, self.g, self.method, sample_weight=w, check_finite=False)
        params = self._params()
        grads = {k: getattr(G, k) / count for k in params}
        add_penalty_gradient(grads, params, self.weight_decay)
        apply_update(params, optimizer, grads, G.loss, self.clip)
        return G.loss, count

    def epoch(
        self, optimizer: _Optimizer, X: Any, target: Any, w: Any, rng: np.random.Generator
    ) -> float:
        """One pass over the data (weights w or None); return the mean loss per predicted value."""
        if isinstance(X, list):
            return self._epoch_lists(optimizer, X, target, w, rng)
        N, T, _ = X.shape
        order = rng.permutation(N) if self.shuffle else np.arange(N)
        size = N if self.batch_size is None else min(self.batch_size, N)
        total, count = 0.0, 0.0
        for start in range(0, N, size):
            idx = (
                np.sort(order[start : start + size])
                if self.shuffle
                else order[start : start + size]
            )
            Xb, tb = X[idx], target[idx]
            wb = None if w is None else w[idx]
            if self.truncate is None or self.truncate >= T:
                E, c = self._update(optimizer, Xb, tb, None, wb)
                total, count = total + E, count + c
                continue
            # truncated BPTT: windows of `truncate` steps, the state carried across
            state = np.zeros((len(idx), self.model.hidden_size), dtype=self.model.dtype)
            for t0 in range(0, T, self.truncate):
                window = slice(t0, t0 + self.truncate)
                Xw, tw = Xb[:, window], tb[:, window]
                ww = None if wb is None else wb[:, window]
                S, _ = self.model.forward(Xw, state, check_finite=False)
                E, c = self._update(optimizer, Xw, tw, state, ww)
                total, count = total + E, count + c
                state = np.ascontiguousarray(S[:, -1])
        return total / count if count else 0.0

    def _epoch_lists(
        self,
        optimizer: _Optimizer,
        X: list[_Array],
        target: list[_Array],
        w: list[_Array] | None,
        rng: np.random.Generator,
    ) -> float:
        """``epoch`` on a list of sequences: mini-batches of sequences, truncated windows."""
        N = len(X)
        order = rng.permutation(N) if self.shuffle else np.arange(N)
        size = N if self.batch_size is None else min(self.batch_size, N)
        d, dt = self.model.hidden_size, self.model.dtype
        total, count = 0.0, 0.0
        for start in range(0, N, size):
            idx = order[start : start + size]
            if self.shuffle:
                idx = np.sort(idx)
            Xb, tb, wb = _rows(X, idx), _rows(target, idx), _rows(w, idx)
            longest = max(x.shape[0] for x in Xb)
            if self.truncate is None or self.truncate >= longest:
                E, c = self._update(optimizer, Xb, tb, None, wb)
                total, count = total + E, count + c
                continue
            # truncated BPTT: each sequence's windows, while it lasts, its state carried
            state = np.zeros((len(Xb), d), dtype=dt)
            for t0 in range(0, longest, self.truncate):
                t1 = t0 + self.truncate
                live = [j for j, x in enumerate(Xb) if x.shape[0] > t0]
                Xw = [Xb[j][t0:t1] for j in live]
                tw = [tb[j][t0:t1] for j in live]
                ww = None if wb is None else [wb[j][t0:t1] for j in live]
                s0 = np.ascontiguousarray(state[live])
                _, _, last = self.model.forward(Xw, s0, return_state=True, check_finite=False)
                E, c = self._update(optimizer, Xw, tw, s0, ww)
                total, count = total + E, count + c
                state[live] = last
        return total / count if count else 0.0

    def validation_loss(self, val: _Val, X_train: Any) -> float:
        """Mean loss per predicted value (per unit of weight) on the held-out data."""
        Xv, tv, wv, continues = val
        s0 = None
        if continues:  # the tail of one sequence: start from where training ends
            _, _, s0 = self.model.forward(X_train, return_state=True, check_finite=False)
        count = _count(tv, wv)
        E = self.model.loss(Xv, tv, s0, self.g, sample_weight=wv, check_finite=False)
        return E / count if count else 0.0


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
    model: Trainable, warm_start: object, has_val: bool, new_optimizer: Callable[[], _Optimizer]
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
        model.penalty_curve_ = []
        model.validation_scores_ = [] if has_val else None
        model.n_iter_ = 0
        model.best_loss_ = math.inf
        model.best_validation_score_ = math.inf if has_val else None
    if has_val and model.validation_scores_ is None:
        model.validation_scores_ = []
        model.best_validation_score_ = math.inf
    if getattr(model, "penalty_curve_", None) is None:  # a partial_fit's, or an older model's
        model.penalty_curve_ = [0.0] * len(model.loss_curve_)
    model._fit_state = {"optimizer": opt}
    return opt


class Source(Protocol):
    """Where :func:`run_epochs` gets its updates from (see there)."""

    def epoch(self, opt: _Optimizer) -> float: ...
    def validation_loss(self) -> float | None: ...
    def penalty(self) -> float: ...


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
        predicted value, or None without validation data;
        ``source.penalty()`` the weight decay's penalty at the current
        weights (0 without).
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
    best_penalty = 0.0 if math.isinf(model.best_loss_) else source.penalty()
    since_best = 0
    try:
        for epoch in range(1, epochs + 1):
            loss = source.epoch(opt)
            model.loss_curve_.append(float(loss))
            pen = source.penalty()
            model.penalty_curve_.append(pen)
            model.n_iter_ += 1
            score = source.validation_loss()
            if score is not None:
                score = float(score)
                model.validation_scores_.append(score)  # type: ignore[union-attr]
                improved = score < model.best_validation_score_ - tol  # type: ignore[operator]
                if score < model.best_validation_score_:  # type: ignore[operator]
                    model.best_validation_score_ = score
                    best_weights = {k: v.copy() for k, v in params.items()}
            else:  # the objective the optimizer sees: the loss and the penalty
                improved = loss + pen < model.best_loss_ + best_penalty - tol
                if loss + pen < model.best_loss_ + best_penalty:
                    best_penalty = pen
            model.best_loss_ = min(model.best_loss_, float(loss))
            progress.update(epoch, loss, score)
            if callback is not None:
                callback(model)
            since_best = 0 if improved else since_best + 1
            if since_best >= n_iter_no_change or getattr(source, "converged", False):
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
        X: Any,
        target: Any,
        w: Any,
        val: _Val | None,
        rng: np.random.Generator,
    ) -> None:
        self.trainer, self.X, self.target, self.w, self.val = trainer, X, target, w, val
        self.rng = rng

    def epoch(self, opt: _Optimizer) -> float:
        return self.trainer.epoch(opt, self.X, self.target, self.w, self.rng)

    def validation_loss(self) -> float | None:
        return None if self.val is None else self.trainer.validation_loss(self.val, self.X)

    def penalty(self) -> float:
        return penalty(self.trainer.model.parameters(), self.trainer.weight_decay)


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
    sample_weight: object,
    weight_decay: object,
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
    weight_decay = check_real(weight_decay, "weight_decay", low=0)
    batched = _given_as_batch(X)
    X, target = _as_batch(model, X, target)
    w = as_weights(model, sample_weight, X, target, batched)
    model._weights(check_finite=True)  # NaN weights: refused by name, not as a divergence
    check_writable(model, "fit")

    rng = make_rng(seed)
    val: _Val | None = None
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
            raise TypeError(
                "validation_data must be a pair (X_val, target_val) or a triple "
                "(X_val, target_val, sample_weight_val)"
            )
        Xv, tv = _as_batch(
            model,
            validation_data[0],
            validation_data[1],
            "validation_data[0]",
            "validation_data[1]",
        )
        wv = None
        if len(validation_data) == 3:
            wv = as_weights(
                model,
                validation_data[2],
                Xv,
                tv,
                _given_as_batch(validation_data[0]),
                "validation_data[2]",
            )
        val = (Xv, tv, wv, False)
    elif validation_fraction is not None:
        fraction = check_real(
            validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True
        )
        X, target, w, val = _split(X, target, w, fraction, rng)

    opt = start_history(
        model,
        warm_start,
        val is not None,
        lambda: make_optimizer(optimizer, lr, momentum, nesterov, full_batch=True),
    )
    trainer = _Trainer(
        model,
        g=g,
        method=method,
        batch_size=batch_size,
        shuffle=bool(shuffle),
        clip=clip,
        truncate=truncate,
        weight_decay=weight_decay,
    )
    source: Source = _LocalSource(trainer, X, target, w, val, rng)
    if isinstance(optimizer, str) and optimizer.lower() == "lm":  # Levenberg-Marquardt
        source, opt = lm_source(trainer, X, target, w, val, opt, batch_size=batch_size, lr=lr)
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
    sample_weight: object = None,
) -> _Model:
    check_method(method)
    g = check_g(g, model.dtype)
    clip = check_real(clip, "clip", low=0, low_open=True, allow_none=True)
    batched = _given_as_batch(X)
    X, target = _as_batch(model, X, target)
    w = as_weights(model, sample_weight, X, target, batched)
    model._weights(check_finite=True)  # NaN weights: refused by name, not as a divergence
    check_writable(model, "partial_fit")
    state = getattr(model, "_fit_state", None)
    if state is None:
        state = {"optimizer": make_optimizer(optimizer, lr)}
        model._fit_state = state
        model.loss_curve_ = []
        model.penalty_curve_ = []
        model.validation_scores_ = None
        model.n_iter_ = 0
        model.best_loss_ = math.inf
        model.best_validation_score_ = None
    trainer = _Trainer(
        model, g=g, method=method, batch_size=None, shuffle=False, clip=clip, truncate=None
    )
    E, count = trainer._update(state["optimizer"], X, target, None, w)
    loss = E / count
    model.loss_curve_.append(float(loss))
    if getattr(model, "penalty_curve_", None) is not None:
        model.penalty_curve_.append(0.0)
    model.n_iter_ += 1
    model.best_loss_ = min(model.best_loss_, float(loss))
    return model
