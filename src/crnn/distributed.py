# SPDX-License-Identifier: BSD-3-Clause
"""crnn on a Dask cluster: data-parallel training, batch inference, parameter sweeps.

An optional extra (``pip install 'crnn[dask]'``): ``import crnn`` never
imports Dask; ``import crnn.distributed`` does, and says which extra to
install when it is missing.

- :func:`fit` trains a model on data held by the workers: a dask array of
  sequences chunked along the batch axis, or lists of arrays or futures.
  Each update sends the current weights to the workers, each worker computes
  the exact gradient of its chunks with the compiled kernels, the gradients
  are summed by a tree of tasks on the workers, and the client makes one
  optimizer update with crnn's own optimizers. The result equals
  :meth:`crnn.RNN.fit` on the same data, to rounding.
- :func:`forward` and :func:`predict` run a model over a dask array, chunk
  by chunk, and return lazy dask arrays.
- :func:`sweep` fits one model per configuration in parallel on the cluster
  and returns a table of validation scores and the best model.

Every function takes ``client=``; by default the current Dask client
(``distributed.Client()`` starts a ``LocalCluster`` on this machine,
``distributed.Client("tcp://host:8786")`` connects to an existing cluster).
"""

from __future__ import annotations

import concurrent.futures
import copy
import inspect
import itertools
import math
import operator
import time
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple, overload

import numpy as np

try:
    import dask
    import dask.array as da
    import distributed
    from distributed.comm.core import CommClosedError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "crnn.distributed needs Dask (dask[array] and distributed), which crnn does not "
        "install by itself: pip install 'crnn[dask]'"
    ) from exc

from crnn._fit import (
    _as_batch,
    _given_as_batch,
    apply_update,
    as_weights,
    check_loop_options,
    run_epochs,
    split_sequences,
    start_history,
)
from crnn._guard import check_writable, exclusive, interrupts_deferrable
from crnn._objective import _count, add_penalty_gradient, penalty
from crnn._optim import make_optimizer
from crnn._rnn import RNN
from crnn._validation import (
    as_float_array,
    as_sequence_list,
    as_sequence_pairs,
    check_g,
    check_int,
    check_method,
    check_n_threads,
    check_real,
    check_sample_weight,
    is_sequence_list,
    make_rng,
    sequence_weights,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import NDArray

    from crnn._optim import _Optimizer
    from crnn._typing import ArrayLike, Method, OptimizerName, Seed

    _Array = NDArray[Any]
    #: A partial result summed over chunks: (flat gradient or None, E, values).
    _Part = tuple[_Array | None, float, float]
    #: Rows of a mini-batch by chunk: (chunk, its rows, or None for all of them).
    _Batch = list[tuple[int, _Array | None]]
    #: Data for the workers: a dask array, or a list of arrays or futures.
    _Data = Any
    #: A chunk on a worker: (X, target, weights or None), each an (N_i, T_i, .)
    #: array, or a list of (T, .) arrays (sequences of different lengths).
    _Chunk = tuple[Any, Any, Any]

__all__ = ["SweepResult", "fit", "forward", "predict", "sweep"]

#: Failures of the cluster (not of the computation) after which a step is rerun:
#: a lost worker, lost data, a closed connection.
_LOST = (concurrent.futures.CancelledError, distributed.KilledWorker, CommClosedError)

#: Partial results summed by one task of the reduction tree.
_FAN_IN = 4

#: Weights up to this many bytes, times the tasks of a step, travel inside the tasks.
_EMBED_BYTES = 1 << 20


# ---------------------------------------------------------------------- helpers


def _client(client: distributed.Client | None) -> distributed.Client:
    """Return the client to use: the one given, or the current one."""
    if client is None:
        try:
            return distributed.get_client()
        except ValueError:
            raise ValueError(
                "no Dask client: start one, e.g. distributed.Client() (a LocalCluster on this "
                "machine) or distributed.Client('tcp://scheduler:8786'), or pass client="
            ) from None
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    return client


def _snapshot(model: RNN, n_threads: int | None) -> RNN:
    """Return a copy of the model for the workers: its weights, not its training state."""
    snap = copy.copy(model)
    for name in ("_fit_state", "loss_curve_", "validation_scores_", "_state"):
        snap.__dict__.pop(name, None)
    snap.set_parameters(model.parameters(), check_finite=False)  # copies
    snap.n_threads = n_threads
    return snap


def _check_dask_array(arr: object, name: str, ndim: int = 3) -> None:
    """Refuse anything but a dask array chunked along its first axis only."""
    if not isinstance(arr, da.Array):
        raise TypeError(
            f"{name} must be a dask array of shape (sequences, time, features) chunked along "
            f"its first axis, got {type(arr).__module__}.{type(arr).__name__}; for a numpy "
            f"array use dask.array.from_array({name}, chunks=(k, -1, -1)), or the model's own "
            "methods"
        )
    if arr.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D dask array (sequences, time, features), got shape "
            f"{arr.shape}"
        )
    if any(math.isnan(c) for c in arr.chunks[0]):
        raise ValueError(
            f"{name} has chunks of unknown size along the batch axis: call "
            f"{name}.compute_chunk_sizes() first"
        )
    for axis, what in ((1, "time (axis 1)"), (2, "features (axis 2)"))[: ndim - 1]:
        if len(arr.chunks[axis]) != 1:
            raise ValueError(
                f"{name} is chunked along {what} with chunks {arr.chunks[axis]}; crnn splits "
                f"the batch axis only (each sequence whole on one worker): use "
                f"{name}.rechunk({{{axis}: -1}})"
            )


# ---------------------------------------------------------------------- worker side
# Module-level functions, pickled by reference: the workers import crnn.


def _make_shard(
    X: Any, target: Any, w: Any, dtype: np.dtype[Any], n: int, m: int, index: int
) -> _Chunk:
    """Check and convert one chunk: (X, target, weights or None).

    X and target become C-contiguous (N, T, n), (N, T, m) arrays, or, when
    X is a list of sequences (T_i, n), lists of C-contiguous arrays; the
    weights (as ``RNN.fit`` takes them) become arrays shaped as target.
    """
    where = f" (chunk {index})"
    if is_sequence_list(X):
        Xs, ts = as_sequence_pairs(X, target, dtype, n, m, names=("X" + where, "target" + where))
        if not any(x.shape[0] for x in Xs):
            raise ValueError(f"X{where} must have at least one time step, got only empty sequences")
        ws = None if w is None else sequence_weights(w, ts, dtype, "sample_weight" + where)
        return Xs, ts, ws
    X = as_float_array(X, "X" + where, dtype, 3)
    target = as_float_array(target, "target" + where, dtype, 3)
    if X.shape[2] != n:
        raise ValueError(f"X{where} must have {n} features in its last axis, got {X.shape}")
    if target.shape != (*X.shape[:2], m):
        raise ValueError(
            f"target{where} must have shape {(*X.shape[:2], m)} (X's batch and time axes and "
            f"the model's output_size), got {target.shape}"
        )
    if X.shape[1] == 0:
        raise ValueError(f"X{where} must have at least one time step, got shape {X.shape}")
    if w is not None:
        w = check_sample_weight(w, dtype, target.shape, True, "sample_weight" + where)
    return X, target, w


def _identity(x: object) -> object:
    return x


def _shard_counts(shard: _Chunk) -> _Array:
    """Return what each sequence of a chunk scores: its count of values, or its weights' sum."""
    _, target, w = shard
    if w is None:
        return np.array([t.size for t in target], dtype=np.float64)
    return np.array([np.sum(v, dtype=np.float64) for v in w], dtype=np.float64)


def _rows_of(data: Any, idx: _Array) -> Any:
    """Return the sequences idx of a chunk's array or list (None stays None)."""
    if data is None:
        return None
    if isinstance(data, list):
        return [data[i] for i in idx]
    return np.ascontiguousarray(data[idx])


def _take(shard: _Chunk, idx: _Array) -> _Chunk:
    X, target, w = shard
    return _rows_of(X, idx), _rows_of(target, idx), _rows_of(w, idx)


def _shard_gradient(
    shard: _Chunk, model: RNN, idx: _Array | None, g: float, method: Method
) -> _Part:
    """Exact gradient of E over one chunk (or the rows idx of it): (flat gradient, E, count).

    The flat gradient is dU, dW, dV (then db, dc with biases), raveled in the
    order of ``model.parameters()``; the count is the values scored (the sum
    of their weights with weights).
    """
    X, target, w = shard if idx is None else _take(shard, idx)
    G = model.gradient(X, target, None, g, method, sample_weight=w, check_finite=False)
    flat = np.concatenate([getattr(G, k).ravel() for k in model.parameters()])
    return flat, G.loss, _count(target, w)


def _shard_loss(shard: _Chunk, model: RNN, g: float) -> _Part:
    X, target, w = shard
    E = model.loss(X, target, None, g, sample_weight=w, check_finite=False)
    return None, E, _count(target, w)


def _add(*parts: _Part) -> _Part:
    """Sum partial results (flat gradient or None, E, count), in the order given."""
    flat, E, count = parts[0]
    flat = None if flat is None else flat.copy()
    for f, e, c in parts[1:]:
        if flat is not None:
            flat += f
        E += e
        count += c
    return flat, E, count


def _block_s0(s0: _Array | None) -> _Array | None:
    """s0 of one chunk: None, shared (d,), or (N_i, 1, d) as map_blocks aligns it."""
    return s0 if s0 is None or s0.ndim == 1 else s0[:, 0]


def _forward_block(X: _Array, model: RNN, s0: _Array | None = None) -> _Array:
    S, Y = model.forward(X, _block_s0(s0))
    return np.concatenate((S, Y), axis=2)


def _predict_block(X: _Array, model: RNN, s0: _Array | None = None) -> _Array:
    return model.predict(X, _block_s0(s0))


# ---------------------------------------------------------------------- data on the workers


class _Shard:
    """One chunk of (X, target) held by the workers, and how to rebuild it.

    ``make()`` returns a new future of the chunk. A chunk computed from a
    dask array is recomputed by Dask itself when its worker dies; one
    scattered from this client is lost with its worker, and is then
    scattered again from the client's arrays.
    """

    def __init__(self, make: Callable[[], Any], future: Any = None) -> None:
        self._make = make
        self.future = future

    def ensure(self) -> Any:
        if self.future is None or self.future.status in ("cancelled", "lost"):
            self.future = self._make()
        return self.future

    def release(self) -> None:
        self.future = None


def _scatter_one(client: distributed.Client, shard: _Chunk) -> Callable[[], Any]:
    """Recipe of a chunk scattered from the client: scatter it again."""
    return lambda: client.scatter([shard], hash=False)[0]


def _submit_shard(
    client: distributed.Client, x: Any, t: Any, w: Any, dt: np.dtype[Any], n: int, m: int, i: int
) -> Callable[[], Any]:
    """Recipe of a chunk given as futures (and arrays): check it on a worker."""

    def make() -> Any:
        xf, tf, wf = (
            v if v is None or isinstance(v, distributed.Future) else client.scatter(v, hash=False)
            for v in (x, t, w)
        )
        return client.submit(_make_shard, xf, tf, wf, dt, n, m, i, pure=False)

    return make


def _group_sequences(lengths: Sequence[int], k: int) -> list[range]:
    """Cut a list of sequences into at most k runs of neighbours with about equal steps."""
    total = sum(lengths) or 1
    bounds: list[range] = []
    start, acc = 0, 0
    for i, T in enumerate(lengths):
        acc += T
        if acc * k >= total * (len(bounds) + 1) and i + 1 < len(lengths):
            bounds.append(range(start, i + 1))
            start = i + 1
    bounds.append(range(start, len(lengths)))
    return [b for b in bounds if len(b)]


def _weight_blocks(w: Any, X: da.Array, target: da.Array, name: str) -> list[Any]:
    """Return the weights of each chunk of X: a dask array's blocks, or one shared array."""
    if isinstance(w, da.Array):
        if w.ndim not in (2, 3) or w.shape != target.shape[: w.ndim]:
            raise ValueError(
                f"{name} must be a dask array of shape {target.shape[:2]} or {target.shape} "
                f"(target's), got {w.shape}"
            )
        _check_dask_array(w, name, w.ndim)
        if w.chunks[0] != X.chunks[0]:
            raise ValueError(
                f"{name} must be chunked like X along the batch axis, got {w.chunks[0]} and "
                f"{X.chunks[0]}: use {name}.rechunk({{0: X.chunks[0]}})"
            )
        return list(w.to_delayed().ravel())
    arr = as_float_array(w, name, np.float64, (1, 2))  # per step (T,) or (T, m): every sequence's
    return [arr] * len(X.chunks[0])


def _shards(
    client: distributed.Client,
    model: RNN,
    X: _Data,
    target: _Data,
    weight: _Data = None,
    names: tuple[str, str, str] = ("X", "target", "sample_weight"),
) -> tuple[list[_Shard], list[_Array]]:
    """Put (X, target, weights) on the workers, chunk by chunk.

    Returns the chunks and, for each, what each of its sequences scores (the
    count of its values, or the sum of its weights).
    """
    dt, n, m = model.dtype, model.input_size, model.output_size
    nx, nt, nw = names
    if is_sequence_list(X):  # sequences of different lengths: cut into chunks here
        Xs, ts = as_sequence_pairs(X, target, dt, n, m, names=(nx, nt))
        ws = None if weight is None else sequence_weights(weight, ts, dt, nw)
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        runs = _group_sequences([x.shape[0] for x in Xs], 2 * workers)
        X = [[Xs[i] for i in r] for r in runs]
        target = [[ts[i] for i in r] for r in runs]
        weight = None if ws is None else [[ws[i] for i in r] for r in runs]
    if isinstance(X, da.Array) or isinstance(target, da.Array):
        _check_dask_array(X, nx)
        _check_dask_array(target, nt)
        if X.shape[2] != n:
            raise ValueError(f"{nx} must have {n} features in its last axis, got shape {X.shape}")
        if target.shape != (*X.shape[:2], m):
            raise ValueError(
                f"{nt} must have shape {(*X.shape[:2], m)} ({nx}'s batch and time axes and the "
                f"model's output_size), got {target.shape}"
            )
        if X.chunks[0] != target.chunks[0]:
            raise ValueError(
                f"{nx} and {nt} must be chunked alike along the batch axis, got {X.chunks[0]} "
                f"and {target.chunks[0]}: use {nt}.rechunk({{0: {nx}.chunks[0]}})"
            )
        make_shard = dask.delayed(_make_shard, pure=False)
        wblocks = (
            [None] * len(X.chunks[0]) if weight is None else _weight_blocks(weight, X, target, nw)
        )
        blocks = zip(X.to_delayed().ravel(), target.to_delayed().ravel(), wblocks, strict=True)
        recipes: list[Callable[[], Any]] = [
            # a lost chunk is recomputed from its recipe, the dask graph
            lambda xb=xb, tb=tb, wb=wb, i=i: make_shard(xb, tb, wb, dt, n, m, i)  # type: ignore[misc]
            for i, (xb, tb, wb) in enumerate(blocks)
        ]
        futures = client.compute([r() for r in recipes])  # one call: spread over the workers
        shards = [
            _Shard(lambda r=r: client.compute(r()), f)  # type: ignore[misc]
            for r, f in zip(recipes, futures, strict=True)
        ]
    elif isinstance(X, (list, tuple)) and isinstance(target, (list, tuple)):
        if len(X) != len(target) or not X:
            raise ValueError(
                f"{nx} and {nt} must be lists of the same non-zero length, got {len(X)} and "
                f"{len(target)}"
            )
        if weight is not None and (type(weight) not in (list, tuple) or len(weight) != len(X)):
            raise ValueError(
                f"{nw} must be a list of {len(X)} arrays or futures, one for each chunk of {nx}, "
                f"got {type(weight).__name__}"
                + (f" of length {len(weight)}" if isinstance(weight, (list, tuple)) else "")
            )
        shards, local = [], {}
        wlist = [None] * len(X) if weight is None else weight
        for i, (x, t, w) in enumerate(zip(X, target, wlist, strict=True)):
            for value, name in ((x, nx), (t, nt), (w, nw)):
                if isinstance(value, da.Array):
                    raise TypeError(
                        f"{name}[{i}] is a dask array: pass the dask array itself, not a list"
                    )
            if any(isinstance(v, distributed.Future) for v in (x, t, w)):
                shards.append(_Shard(_submit_shard(client, x, t, w, dt, n, m, i)))
            else:
                local[i] = _make_shard(x, t, w, dt, n, m, i)  # checked here, on the client
                shards.append(_Shard(_scatter_one(client, local[i])))
        if local:  # one scatter: spread over the workers
            futures = client.scatter(list(local.values()), hash=False)
            for i, f in zip(local, futures, strict=True):
                shards[i].future = f
    else:
        what = X if not isinstance(X, (list, tuple)) else target
        raise TypeError(
            f"{nx} and {nt} must both be dask arrays (chunked along the batch axis) or both "
            f"lists of arrays or futures, got {type(X).__name__} and {type(target).__name__}"
            + (
                f"; for a numpy array use dask.array.from_array({nx}, chunks=(k, -1, -1)), "
                "or RNN.fit on one machine"
                if isinstance(what, np.ndarray)
                else ""
            )
        )
    for s in shards:
        s.ensure()
    distributed.wait([s.future for s in shards])
    counts = client.gather([client.submit(_shard_counts, s.future, pure=False) for s in shards])
    keep = [i for i, c in enumerate(counts) if len(c)]  # dask arrays may have empty chunks
    shards, counts = [shards[i] for i in keep], [counts[i] for i in keep]
    if not shards:
        raise ValueError(f"{nx} must hold at least one sequence")
    return shards, counts


def _tree_sum(client: distributed.Client, futures: list[Any]) -> Any:
    """Sum partial results by a tree of tasks on the workers, in a fixed order."""
    while len(futures) > 1:
        futures = [
            client.submit(_add, *group, pure=False) if len(group) > 1 else group[0]
            for group in (futures[i : i + _FAN_IN] for i in range(0, len(futures), _FAN_IN))
        ]
    return futures[0]


def _split_rows(idx: _Array, offsets: _Array) -> list[tuple[int, _Array]]:
    """Split sorted global row numbers into (chunk, local rows) pairs."""
    cuts = np.searchsorted(idx, offsets)
    return [
        (j, idx[cuts[j] : cuts[j + 1]] - offsets[j])
        for j in range(len(offsets) - 1)
        if cuts[j + 1] > cuts[j]
    ]


class _Cluster:
    """The steps of one fit on the workers, each rerun if the cluster loses a worker or data."""

    def __init__(
        self, client: distributed.Client, model: RNN, n_threads: int | None, retries: int
    ) -> None:
        self.client = client
        self.model = model
        self.n_threads = n_threads
        self.retries = retries
        self.updates = 0

    def run(
        self, func: Callable[..., _Part], items: list[tuple[_Shard, tuple[Any, ...]]], what: str
    ) -> _Part:
        """Sum func(chunk, weights, *args) over items [(shard, args)] on the workers.

        The weights travel inside the tasks when they are small, else as one
        task whose result the workers fetch from each other. Either way every
        task has a recipe, so Dask can recompute what a dead worker held.
        """
        client = self.client
        for attempt in range(self.retries + 1):
            try:
                snap = _snapshot(self.model, self.n_threads)
                size = sum(a.nbytes for a in snap.parameters().values())
                if size * len(items) > _EMBED_BYTES:
                    snap = client.submit(_identity, snap, pure=False)
                parts = [
                    client.submit(func, shard.ensure(), snap, *args, pure=False)
                    for shard, args in items
                ]
                return _tree_sum(client, parts).result()  # type: ignore[no-any-return]
            except _LOST as exc:
                if attempt == self.retries:
                    raise RuntimeError(
                        f"crnn.distributed.fit: {what} failed {attempt + 1} times because the "
                        f"cluster lost a worker or data ({type(exc).__name__}: {exc}). The model "
                        f"keeps the weights of its last completed update ({self.updates} in "
                        "this fit). Futures of scattered data cannot be rebuilt once their "
                        "worker dies: pass a dask array or numpy arrays"
                    ) from exc
                time.sleep(0.2 * (attempt + 1))  # let the client hear of what was lost
        raise AssertionError("unreachable")  # pragma: no cover - the last attempt raises

    def gradient(self, shards: list[_Shard], batch: _Batch, g: float, method: Method) -> _Part:
        items: list[tuple[_Shard, tuple[Any, ...]]] = [
            (shards[j], (rows, g, method)) for j, rows in batch
        ]
        return self.run(_shard_gradient, items, "a gradient step")

    def loss(self, shards: list[_Shard], g: float) -> _Part:
        return self.run(_shard_loss, [(s, (g,)) for s in shards], "a validation score")


# ---------------------------------------------------------------------- fit


def fit(
    model: RNN,
    X: _Data,
    target: _Data,
    *,
    client: distributed.Client | None = None,
    epochs: int = 200,
    optimizer: OptimizerName = "adam",
    lr: float | None = None,
    momentum: float = 0.9,
    nesterov: bool = False,
    batch_size: int | None = None,
    shuffle: bool = True,
    method: Method = "bptt",
    clip: float | None = None,
    truncate: None = None,
    tol: float = 1e-6,
    n_iter_no_change: int = 20,
    validation_fraction: float | None = None,
    validation_data: tuple[_Data, ...] | None = None,
    g: float = 1.0,
    seed: Seed = None,
    warm_start: bool = False,
    verbose: bool = False,
    callback: Callable[[RNN], object] | None = None,
    retries: int = 3,
    n_threads: int | None = 1,
    weight_decay: float = 0.0,
    sample_weight: _Data = None,
) -> RNN:
    """Train a model on a Dask cluster, data-parallel: :meth:`crnn.RNN.fit` at scale.

    The data stays on the workers for the whole fit (one chunk of
    sequences per task). Each update sends the current weights to every
    worker, computes the exact gradient of each chunk of the mini-batch
    there, sums the gradients by a tree of tasks on the workers and makes
    one optimizer update on the client, with the gradient divided by the
    number of predicted values of the mini-batch, as :meth:`crnn.RNN.fit`
    does. With the same data, initial weights and options the result equals
    ``model.fit(numpy X, numpy target, ...)`` to rounding, mini-batches,
    shuffling and validation split included.

    Parameters
    ----------
    model : crnn.RNN
        Trained in place, from its current weights: U, W, V, and the biases
        b and c when it has them (``bias=True``).
    X : dask.array.Array of shape (N, T, n), or list of arrays or futures
        Input sequences. A dask array must be chunked along its first axis
        only (each sequence whole in one chunk). A list holds chunks of
        shape (N_i, T_i, n), as numpy arrays (scattered to the workers) or
        futures of arrays already on the cluster; T_i may differ between
        chunks, and a chunk may itself be a list of sequences (T_j, n) of
        different lengths. A list of 2-D arrays (T_i, n) is a list of
        sequences of different lengths, as :meth:`crnn.RNN.fit` takes it:
        it is cut into chunks of neighbouring sequences, two per worker.
    target : like X, of shape (N, T, m)
        Targets, chunked exactly like X.
    sample_weight : optional
        Weights of the squared errors, as :meth:`crnn.RNN.fit` takes them
        (non-negative, finite; the gradient is divided by the sum of the
        weights of the mini-batch, and a mini-batch whose weights are all 0
        makes no step): with a dask X, a dask array of shape (N, T) or
        (N, T, m) chunked like X along its first axis, or one array of
        shape (T,) or (T, m) shared by every sequence; with a list, a list
        like X (an array or future for each chunk; for a list of sequences,
        one (T_i,) or (T_i, m) array for each).
    client : distributed.Client, optional
        The cluster to use; the current client by default.
    epochs, optimizer, lr, momentum, nesterov, batch_size, shuffle, method, clip, tol,
    n_iter_no_change, validation_fraction, g, seed, warm_start, verbose, weight_decay
        As in :meth:`crnn.RNN.fit` (the penalty's gradient is added on the
        client). A mini-batch is a random set of sequences
        from every chunk, as in a local fit.
    truncate : None
        Truncated BPTT is not supported here: cut long sequences into
        windows (:func:`crnn.datasets.windows`) instead.
    validation_data : (X_val, target_val) or (X_val, target_val, sample_weight_val), optional
        numpy arrays or lists of sequences (scored on the client) or, like X
        and target, dask arrays or lists of chunks (scored on the workers).
    callback : callable, optional
        Called on the client as ``callback(model)`` after each epoch.
    retries : int, default 3
        How many times a step is rerun, from the same weights, after the
        cluster lost a worker or data (a chunk computed from a dask array is
        recomputed by Dask, one scattered from numpy arrays is scattered
        again). Then the fit raises RuntimeError, keeping the weights of the
        last completed update. A step never applies a partial gradient.
    n_threads : int, default 1
        Threads of each task's kernel call on the workers (Dask's own
        threads and processes run the chunks in parallel).

    Returns
    -------
    crnn.RNN
        The model itself, trained, with ``loss_curve_``,
        ``validation_scores_``, ``best_loss_``, ``best_validation_score_``
        and ``n_iter_`` as :meth:`crnn.RNN.fit` sets them.

    Raises
    ------
    TypeError, ValueError
        For bad arguments: numpy arrays where a dask array or list is
        needed, chunking along time, X and target chunked differently.
    FloatingPointError
        If the fit diverges (the model keeps the last finite weights).
    RuntimeError
        If the cluster keeps losing workers or data, or another call is
        training the same model.
    """
    if not isinstance(model, RNN):
        raise TypeError(f"model must be a crnn.RNN, got {type(model).__name__}")
    with exclusive("crnn.distributed.fit", model), interrupts_deferrable():
        return _fit(
            model,
            X,
            target,
            client=client,
            epochs=epochs,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            batch_size=batch_size,
            shuffle=shuffle,
            method=method,
            clip=clip,
            truncate=truncate,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            validation_fraction=validation_fraction,
            validation_data=validation_data,
            g=g,
            seed=seed,
            warm_start=warm_start,
            verbose=verbose,
            callback=callback,
            retries=retries,
            n_threads=n_threads,
            weight_decay=weight_decay,
            sample_weight=sample_weight,
        )


def _fit(
    model: RNN,
    X: _Data,
    target: _Data,
    *,
    client: object,
    epochs: object,
    optimizer: object,
    lr: object,
    momentum: object,
    nesterov: object,
    batch_size: object,
    shuffle: object,
    method: Any,
    clip: object,
    truncate: object,
    tol: object,
    n_iter_no_change: object,
    validation_fraction: object,
    validation_data: Any,
    g: object,
    seed: object,
    warm_start: object,
    verbose: object,
    callback: Any,
    retries: object,
    n_threads: Any,
    weight_decay: object,
    sample_weight: Any,
) -> RNN:
    client = _client(client)
    epochs, n_iter_no_change, tol, clip, batch_size = check_loop_options(
        epochs=epochs,
        n_iter_no_change=n_iter_no_change,
        tol=tol,
        clip=clip,
        shuffle=shuffle,
        warm_start=warm_start,
        batch_size=batch_size,
    )
    retries = check_int(retries, "retries", low=0)
    weight_decay = check_real(weight_decay, "weight_decay", low=0)
    check_n_threads(n_threads)
    if truncate is not None:
        raise ValueError(
            "truncate is not supported by crnn.distributed.fit (the state would travel between "
            "updates): cut long sequences into windows (crnn.datasets.windows) or use RNN.fit"
        )
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    check_method(method)
    g = check_g(g, model.dtype)
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_fraction is not None:
        fraction = check_real(
            validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True
        )
    if validation_data is not None and not (
        isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)
    ):
        raise TypeError(
            "validation_data must be a pair (X_val, target_val) or a triple "
            "(X_val, target_val, sample_weight_val)"
        )
    new_opt = None
    if not (warm_start and getattr(model, "_fit_state", None) is not None):
        new_opt = make_optimizer(optimizer, lr, momentum, nesterov)  # checked before any work
    rng = make_rng(seed)
    model._weights(check_finite=True)  # NaN weights: refused by name, not as a divergence
    check_writable(model, "crnn.distributed.fit")

    shards, counts = _shards(client, model, X, target, sample_weight)
    if sample_weight is not None and not sum(float(c.sum()) for c in counts):
        raise ValueError(
            "sample_weight must have a weight > 0: all are 0, so there is nothing to fit"
        )
    val_local: tuple[Any, Any, Any] | None = None
    val_shards: list[_Shard] | None = None
    if validation_data is not None:
        Xv, tv, *rest = validation_data
        wv = rest[0] if rest else None
        names = ("validation_data[0]", "validation_data[1]", "validation_data[2]")
        on_workers = isinstance(Xv, da.Array) or isinstance(tv, da.Array)
        if isinstance(Xv, (list, tuple)) and not is_sequence_list(Xv):
            on_workers = True  # a list of chunks
        if on_workers:
            val_shards, _ = _shards(client, model, Xv, tv, wv, names)
        else:
            Xv, tv = _as_batch(model, Xv, tv, names[0], names[1])
            wv = as_weights(model, wv, Xv, tv, _given_as_batch(validation_data[0]), names[2])
            val_local = (Xv, tv, wv)
    elif validation_fraction is not None:
        shards, counts, val_shards = _split(client, shards, counts, fraction, rng)
    has_val = val_local is not None or val_shards is not None

    cluster = _Cluster(client, model, n_threads, retries)
    source = _DaskSource(
        cluster,
        model,
        shards,
        counts,
        val_local,
        val_shards,
        batch_size,
        shuffle,
        rng,
        g,
        method,
        clip,
        weight_decay,
    )
    opt = start_history(model, warm_start, has_val, lambda: new_opt)  # type: ignore[arg-type, return-value]
    return run_epochs(
        model,
        source,
        opt,
        epochs=epochs,
        tol=tol,
        n_iter_no_change=n_iter_no_change,
        verbose=verbose,
        callback=callback,
    )


class _DaskSource:
    """The gradient source of crnn.distributed.fit: gradients summed from the cluster."""

    def __init__(
        self,
        cluster: _Cluster,
        model: RNN,
        shards: list[_Shard],
        counts: list[_Array],
        val_local: tuple[Any, Any, Any] | None,
        val_shards: list[_Shard] | None,
        batch_size: int | None,
        shuffle: object,
        rng: np.random.Generator,
        g: float,
        method: Method,
        clip: float | None,
        weight_decay: float = 0.0,
    ) -> None:
        self.weight_decay = weight_decay
        self.cluster, self.model, self.shards, self.counts = cluster, model, shards, counts
        self.val_local, self.val_shards = val_local, val_shards
        self.batch_size, self.shuffle, self.rng = batch_size, shuffle, rng
        self.g, self.method, self.clip = g, method, clip
        self.N = sum(len(c) for c in counts)
        self.offsets = np.concatenate(([0], np.cumsum([len(c) for c in counts])))
        self.per_row = np.concatenate(counts)  # what each sequence scores
        self.params = model.parameters()  # the model's own arrays, b and c with biases

    def epoch(self, opt: _Optimizer) -> float:
        """One pass of updates over every chunk; the mean loss per predicted value."""
        N, counts = self.N, self.counts
        # the same random draws as RNN.fit, so the same seed gives the same batches
        order = self.rng.permutation(N) if self.shuffle else np.arange(N)
        size = N if self.batch_size is None else min(self.batch_size, N)
        total, count = 0.0, 0.0
        for start in range(0, N, size):
            rows = order[start : start + size]
            if self.shuffle:
                rows = np.sort(rows)
            expected = float(self.per_row[rows].sum())
            if expected == 0:  # weights all 0: no step, as RNN.fit
                continue
            batch: _Batch
            if len(rows) == N:
                batch = [(j, None) for j in range(len(self.shards))]
            else:
                batch = [
                    (j, None if len(r) == len(counts[j]) else r)
                    for j, r in _split_rows(rows, self.offsets)
                ]
            E, c = _update(
                self.cluster,
                opt,
                self.params,
                self.shards,
                batch,
                self.g,
                self.method,
                self.clip,
                self.weight_decay,
            )
            if not math.isclose(c, expected, rel_tol=1e-9):  # pragma: no cover - a guard
                raise RuntimeError(f"the gradient covers {c} values instead of {expected}")
            total, count = total + E, count + c
        return total / count if count else 0.0

    def penalty(self) -> float:
        """Return the weight decay's penalty at the current weights."""
        return penalty(self.params, self.weight_decay)

    def validation_loss(self) -> float | None:
        """Return the mean validation loss per predicted value, or None."""
        if self.val_local is not None:
            Xv, tv, wv = self.val_local
            count = _count(tv, wv)
            E = self.model.loss(Xv, tv, None, self.g, sample_weight=wv, check_finite=False)
            return E / count if count else 0.0
        if self.val_shards is not None:
            _, Ev, cv = self.cluster.loss(self.val_shards, self.g)
            return Ev / cv if cv else 0.0
        return None


def _update(
    cluster: _Cluster,
    opt: _Optimizer,
    params: dict[str, _Array],
    shards: list[_Shard],
    batch: _Batch,
    g: float,
    method: Method,
    clip: float | None,
    weight_decay: float = 0.0,
) -> tuple[float, float]:
    """One distributed gradient, then one optimizer step on the client, as RNN.fit makes."""
    flat, E, count = cluster.gradient(shards, batch, g, method)
    assert flat is not None  # a gradient step's parts all hold one
    grads, start = {}, 0
    for k, v in params.items():  # the order of model.parameters(), as the workers ravel
        grads[k] = flat[start : start + v.size].reshape(v.shape) / count
        start += v.size
    if start != flat.size:  # pragma: no cover - a guard, never expected to fire
        raise RuntimeError(f"the gradient has {flat.size} values instead of {start}")
    add_penalty_gradient(grads, params, weight_decay)
    apply_update(params, opt, grads, E, clip)
    cluster.updates += 1
    return E, count


def _split(
    client: distributed.Client,
    shards: list[_Shard],
    counts: list[_Array],
    fraction: float,
    rng: np.random.Generator,
) -> tuple[list[_Shard], list[_Array], list[_Shard]]:
    """Hold out a random fraction of the sequences, as RNN.fit does for a batch."""
    N = sum(len(c) for c in counts)
    if N < 2:
        raise ValueError("validation_fraction needs at least 2 sequences; give validation_data")
    train, val = split_sequences(N, fraction, rng)
    offsets = np.concatenate(([0], np.cumsum([len(c) for c in counts])))

    def part(rows: _Array) -> tuple[list[_Shard], list[_Array]]:
        out, out_counts = [], []
        for j, r in _split_rows(rows, offsets):
            base = shards[j]
            out.append(
                _Shard(lambda base=base, r=r: client.submit(_take, base.ensure(), r, pure=False))  # type: ignore[misc]
            )
            out_counts.append(counts[j][r])
        return out, out_counts

    train_shards, train_counts = part(train)
    val_shards, _ = part(val)
    for s in train_shards + val_shards:
        s.ensure()
    distributed.wait([s.future for s in train_shards + val_shards])
    for s in shards:  # the chunks live on in their two parts
        s.release()
    if not sum(float(c.sum()) for c in train_counts):
        raise ValueError(
            "sample_weight is 0 on every value left to train on after the validation split"
        )
    return train_shards, train_counts, val_shards


# ---------------------------------------------------------------------- inference


def _map(
    model: RNN,
    X: da.Array,
    s0: Any,
    n_threads: int | None,
    func: Callable[..., _Array],
    width: int,
    token: str,
) -> da.Array:
    """map_blocks of func(X chunk, model, s0=...) over a dask array; (N, T, width) out."""
    if not isinstance(model, RNN):
        raise TypeError(f"model must be a crnn.RNN, got {type(model).__name__}")
    check_n_threads(n_threads)
    _check_dask_array(X, "X")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"X must be an array of real numbers, got dtype {X.dtype}")
    if X.shape[2] != model.input_size:
        raise ValueError(
            f"X must have {model.input_size} features in its last axis (the model's "
            f"input_size), got shape {X.shape}"
        )
    dt, d = model.dtype, model.hidden_size
    # one copy of the weights in the graph, shared by every chunk
    snap = dask.delayed(_snapshot(model, n_threads), pure=True)
    arrays, kwargs = [X, snap], {}
    if s0 is not None:
        if not isinstance(s0, da.Array):
            s0 = as_float_array(s0, "s0", dt, (1, 2))
        if s0.ndim == 1:
            if s0.shape != (d,):
                raise ValueError(f"s0 must have shape ({d},) or (N, {d}), got {s0.shape}")
            kwargs["s0"] = np.asarray(s0, dtype=dt)  # small: shared by every chunk
        elif s0.ndim == 2 and s0.shape == (X.shape[0], d):
            s0 = da.asarray(s0)[:, np.newaxis, :].astype(dt)
            arrays.append(s0.rechunk((X.chunks[0], 1, d)))
        else:
            raise ValueError(
                f"s0 must have shape ({d},) or ({X.shape[0]}, {d}) (one state per sequence), "
                f"got {s0.shape}"
            )
    return da.map_blocks(
        func,
        *arrays,
        **kwargs,
        chunks=(X.chunks[0], X.chunks[1], (width,)),
        dtype=dt,
        meta=np.empty((0, 0, 0), dtype=dt),
        token=token,
    )


def _list_forward(X: list[_Array], model: RNN, s0: _Array | None) -> tuple[Any, Any]:
    """Return the states and outputs of a chunk of a list of sequences (on a worker)."""
    S, Y = model.forward(X, s0, check_finite=False)
    return S, Y


def _map_list(
    model: RNN, X: Sequence[ArrayLike], s0: Any, n_threads: int | None, chunk_size: object
) -> tuple[list[da.Array], list[da.Array]]:
    """``forward`` on a list of sequences: lists of lazy (T_i, d) and (T_i, m) arrays."""
    if not isinstance(model, RNN):
        raise TypeError(f"model must be a crnn.RNN, got {type(model).__name__}")
    check_n_threads(n_threads)
    dt, d, m = model.dtype, model.hidden_size, model.output_size
    Xs = as_sequence_list(X, "X", dt, model.input_size, "the model's input_size")
    N = len(Xs)
    if s0 is not None:
        s0 = as_float_array(s0, "s0", dt, (1, 2))
        if s0.shape not in ((d,), (N, d)):
            raise ValueError(f"s0 must have shape ({d},) or ({N}, {d}), got {s0.shape}")
        if s0.ndim == 1:
            s0 = np.broadcast_to(s0, (N, d))
    size = check_int(chunk_size, "chunk_size", low=1)
    snap = dask.delayed(_snapshot(model, n_threads), pure=True)
    S: list[da.Array] = []
    Y: list[da.Array] = []
    for start in range(0, N, size):
        part = Xs[start : start + size]
        s0_part = None if s0 is None else np.ascontiguousarray(s0[start : start + size])
        out = dask.delayed(_list_forward, pure=True, nout=2)(part, snap, s0_part)
        for j, x in enumerate(part):
            T = x.shape[0]
            S.append(da.from_delayed(out[0][j], shape=(T, d), dtype=dt))
            Y.append(da.from_delayed(out[1][j], shape=(T, m), dtype=dt))
    return S, Y


@overload
def forward(
    model: RNN,
    X: list[ArrayLike],
    s0: ArrayLike | da.Array | None = None,
    *,
    n_threads: int | None = 1,
    chunk_size: int = 64,
) -> tuple[list[da.Array], list[da.Array]]: ...
@overload
def forward(
    model: RNN,
    X: da.Array,
    s0: ArrayLike | da.Array | None = None,
    *,
    n_threads: int | None = 1,
    chunk_size: int = 64,
) -> tuple[da.Array, da.Array]: ...
def forward(
    model: RNN,
    X: da.Array | list[ArrayLike],
    s0: ArrayLike | da.Array | None = None,
    *,
    n_threads: int | None = 1,
    chunk_size: int = 64,
) -> tuple[da.Array, da.Array] | tuple[list[da.Array], list[da.Array]]:
    """Run a model over a dask array of sequences, chunk by chunk, lazily.

    Parameters
    ----------
    model : crnn.RNN
        Its weights are copied into the graph now: later changes to the model
        do not change the result.
    X : dask.array.Array of shape (N, T, n), or list of arrays (T_i, n)
        A dask array chunked along the first axis only, or a list of
        sequences of different lengths, run in tasks of ``chunk_size``
        neighbouring sequences.
    s0 : array_like or dask array of shape (d,) or (N, d), optional
        Initial states, zeros by default (an array_like for a list).
    n_threads : int, default 1
        Threads of each chunk's kernel call.
    chunk_size : int, default 64
        Sequences per task, for a list.

    Returns
    -------
    S : dask.array.Array of shape (N, T, d), or list of them (T_i, d)
    Y : dask.array.Array of shape (N, T, m), or list of them (T_i, m)
        Lazy, chunked like X along the batch axis, of the model's dtype;
        ``dask.compute(S, Y)`` runs the network once per chunk. For a list,
        lists of lazy arrays, one per sequence; ``dask.compute(*Y)`` runs
        each task once.
    """
    if is_sequence_list(X):
        return _map_list(model, X, s0, n_threads, chunk_size)
    d = model.hidden_size if isinstance(model, RNN) else 0
    width = d + model.output_size if isinstance(model, RNN) else 0
    SY = _map(model, X, s0, n_threads, _forward_block, width, "crnn-forward")
    return SY[:, :, :d], SY[:, :, d:]


@overload
def predict(
    model: RNN,
    X: list[ArrayLike],
    s0: ArrayLike | da.Array | None = None,
    *,
    n_threads: int | None = 1,
    chunk_size: int = 64,
) -> list[da.Array]: ...
@overload
def predict(
    model: RNN,
    X: da.Array,
    s0: ArrayLike | da.Array | None = None,
    *,
    n_threads: int | None = 1,
    chunk_size: int = 64,
) -> da.Array: ...
def predict(
    model: RNN,
    X: da.Array | list[ArrayLike],
    s0: ArrayLike | da.Array | None = None,
    *,
    n_threads: int | None = 1,
    chunk_size: int = 64,
) -> da.Array | list[da.Array]:
    """Return the outputs Y of a model over a dask array, lazily: see :func:`forward`.

    Returns
    -------
    dask.array.Array of shape (N, T, m), or list of them (T_i, m)
        Chunked like X along the batch axis, of the model's dtype; for a
        list of sequences, one lazy array per sequence.
    """
    if is_sequence_list(X):
        return _map_list(model, X, s0, n_threads, chunk_size)[1]
    m = model.output_size if isinstance(model, RNN) else 0
    return _map(model, X, s0, n_threads, _predict_block, m, "crnn-predict")


# ---------------------------------------------------------------------- sweep


class SweepResult(NamedTuple):
    """What :func:`sweep` returns.

    Attributes
    ----------
    table : list of dict, or pandas.DataFrame
        One row per configuration, in the order given: its parameters, then
        ``validation_score`` (the best mean validation loss per predicted
        value, lower is better; inf if the fit diverged), ``loss`` (the last
        epoch's training loss), ``epochs``, ``seconds`` (of the fit, on its
        worker) and ``error`` (None, or why the fit diverged).
    best_model : crnn.RNN
        The model of the lowest validation score, with its best weights.
    best_params : dict
        Its configuration.
    best_score : float
        Its validation score.
    """

    table: Any
    best_model: RNN
    best_params: dict[str, Any]
    best_score: float


_MODEL_KEYS = ("hidden_size", "init", "spectral_radius", "dtype", "bias")
_FIT_KEYS = tuple(
    k
    for k in inspect.signature(RNN.fit).parameters
    if k not in ("self", "X", "target", "validation_data", "validation_fraction", "warm_start")
)


def _grid(params: object) -> list[dict[str, Any]]:
    """Expand a grid (dict of lists) or take a list of dicts; check every key."""
    if isinstance(params, dict):
        keys, values = list(params), []
        for k in keys:
            v = params[k]
            if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
                v = [v]
            values.append(list(v))
        configs = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    elif isinstance(params, (list, tuple)) and all(isinstance(c, dict) for c in params):
        configs = [dict(c) for c in params]
    else:
        raise TypeError(
            "params must be a dict of lists (a grid) or a list of dicts (configurations), "
            f"got {type(params).__name__}"
        )
    if not configs:
        raise ValueError("params gives no configuration")
    allowed = set(_MODEL_KEYS) | set(_FIT_KEYS)
    for c in configs:
        for k in c:
            if k not in allowed:
                raise ValueError(
                    f"unknown parameter {k!r}: a sweep varies RNN's {', '.join(_MODEL_KEYS)} "
                    f"and fit's {', '.join(_FIT_KEYS)}"
                )
    return configs


def _sweep_fit(
    X: Any,
    target: Any,
    Xv: Any,
    tv: Any,
    config: Mapping[str, Any],
    model_params: Mapping[str, Any],
    fit_params: Mapping[str, Any],
    seed: Seed,
) -> tuple[dict[str, Any], RNN]:
    """Fit one configuration on a worker; return (row, model)."""
    model_kw = {**model_params, **{k: v for k, v in config.items() if k in _MODEL_KEYS}}
    fit_kw = {**fit_params, **{k: v for k, v in config.items() if k not in _MODEL_KEYS}}
    seed = fit_kw.pop("seed", seed)
    model_kw.setdefault("n_threads", 1)
    hidden_size = model_kw.pop("hidden_size")
    model = RNN(_width(X), hidden_size, _width(target), seed=seed, **model_kw)
    start = time.perf_counter()
    error = None
    try:
        model.fit(X, target, validation_data=(Xv, tv), seed=seed, **fit_kw)
    except FloatingPointError as exc:
        error = str(exc)
    score = model.best_validation_score_ if error is None else math.inf
    row = {
        **config,
        "validation_score": float(score),  # type: ignore[arg-type]
        "loss": float(model.loss_curve_[-1]) if model.loss_curve_ else math.nan,
        "epochs": int(model.n_iter_),
        "seconds": time.perf_counter() - start,
        "error": error,
    }
    return row, model


def sweep(
    X: ArrayLike | da.Array,
    target: ArrayLike | da.Array,
    params: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    *,
    client: distributed.Client | None = None,
    validation_data: tuple[ArrayLike | da.Array, ArrayLike | da.Array] | None = None,
    validation_fraction: float = 0.2,
    seed: int = 0,
    model_params: Mapping[str, Any] | None = None,
    fit_params: Mapping[str, Any] | None = None,
    as_frame: bool = False,
) -> SweepResult:
    """Fit one model per configuration, in parallel on the cluster; score and rank them.

    Every configuration is fitted by :meth:`crnn.RNN.fit` as one task on a
    worker, on the same training data, and scored on the same validation
    data (held out once, before any fit).

    Parameters
    ----------
    X : array_like or dask array of shape (N, T, n) or (T, n), or list of arrays (T_i, n)
        Input sequences (sent to the workers once); a list holds sequences
        of different lengths, as :meth:`crnn.RNN.fit` takes them.
    target : like X, of shape (N, T, m) or (T, m)
        Targets.
    params : dict of lists, or list of dicts
        The configurations: a grid ``{"hidden_size": [8, 32], "lr": [0.003, 0.01]}``
        (every combination) or a list of dicts. Keys are the RNN's
        ``hidden_size``, ``init``, ``spectral_radius``, ``dtype``, ``bias``, and
        :meth:`crnn.RNN.fit`'s options (``lr``, ``epochs``, ``optimizer``,
        ``batch_size``, ``clip``, ``seed``, ...). ``seed`` seeds both the
        initial weights and the fit.
    client : distributed.Client, optional
        The cluster; the current client by default.
    validation_data : (X_val, target_val), optional
        Held-out data to score on; by default a random ``validation_fraction``
        of the sequences is held out (with ``seed``).
    validation_fraction : float in (0, 1), default 0.2
    seed : int, default 0
        Seed of the validation split, and of every configuration that sets
        no ``seed`` of its own.
    model_params, fit_params : dict, optional
        Fixed arguments of every ``RNN(...)`` and ``fit(...)``.
        ``model_params["n_threads"]`` is the kernel threads of each fit
        (default 1: Dask runs the fits in parallel).
    as_frame : bool, default False
        Return the table as a pandas DataFrame (pandas must be installed).

    Returns
    -------
    SweepResult
        ``(table, best_model, best_params, best_score)``.

    Raises
    ------
    RuntimeError
        If every configuration diverged.
    """
    client = _client(client)
    configs = _grid(params)
    model_params = dict(model_params or {})
    fit_params = dict(fit_params or {})
    for name, given, allowed in (
        ("model_params", model_params, (*_MODEL_KEYS, "n_threads")),
        ("fit_params", fit_params, _FIT_KEYS),
    ):
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise ValueError(f"{name} holds unknown arguments {unknown}")
    for c in configs:
        if "hidden_size" not in c and "hidden_size" not in model_params:
            raise ValueError("give hidden_size in params or in model_params")
    if as_frame:
        try:
            import pandas
        except ImportError:
            raise ImportError("as_frame=True needs pandas: pip install pandas") from None

    data = _sweep_data(X, target, validation_data, validation_fraction, seed)
    if isinstance(data[0], da.Array):
        futures = client.compute(list(data))
    else:
        futures = client.scatter(list(data), broadcast=True, hash=False)
    tag = uuid.uuid4().hex[:8]
    fits = [
        client.submit(
            _sweep_fit,
            *futures,
            config,
            model_params,
            fit_params,
            seed,
            key=f"crnn-sweep-{tag}-{i}",
        )
        for i, config in enumerate(configs)
    ]
    rows = client.gather([client.submit(operator.getitem, f, 0, pure=False) for f in fits])
    scores = [r["validation_score"] for r in rows]
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        raise RuntimeError(f"every configuration diverged; the first: {rows[0]['error']}")
    best = min(finite, key=scores.__getitem__)
    best_model = client.submit(operator.getitem, fits[best], 1, pure=False).result()
    best_model.n_threads = model_params.get("n_threads")
    table = pandas.DataFrame(rows) if as_frame else rows
    return SweepResult(table, best_model, dict(configs[best]), scores[best])


def _sweep_data(
    X: Any, target: Any, validation_data: Any, validation_fraction: object, seed: Seed
) -> tuple[Any, Any, Any, Any]:
    """Return (X, target, X_val, target_val): numpy arrays, or dask arrays to compute."""

    def check(X: Any, target: Any, nx: str, nt: str) -> tuple[Any, Any]:
        if is_sequence_list(X):  # sequences of different lengths
            n = np.shape(X[0])[-1]
            m = np.shape(target[0])[-1] if is_sequence_list(target) else 0
            return as_sequence_pairs(X, target, np.float64, n, m, names=(nx, nt))
        if isinstance(X, da.Array) != isinstance(target, da.Array):
            raise TypeError(f"{nx} and {nt} must both be dask arrays or both array_like")
        if isinstance(X, da.Array):
            if X.ndim not in (2, 3) or target.ndim != X.ndim:
                raise ValueError(f"{nx} and {nt} must be 2-D or 3-D, got {X.shape}, {target.shape}")
        else:
            X = as_float_array(X, nx, np.float64, (2, 3))
            target = as_float_array(target, nt, np.float64, X.ndim)
        if target.shape[:-1] != X.shape[:-1]:
            raise ValueError(
                f"{nt} must have {nx}'s batch and time axes {X.shape[:-1]}, got {target.shape}"
            )
        return X, target

    X, target = check(X, target, "X", "target")
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise TypeError("validation_data must be a pair (X_val, target_val)")
        Xv, tv = check(*validation_data, "validation_data[0]", "validation_data[1]")  # type: ignore[call-arg]
        if _width(Xv) != _width(X) or _width(tv) != _width(target):
            raise ValueError("validation_data must have the features of X and target")
        if isinstance(Xv, list) != isinstance(X, list):
            raise TypeError(
                "validation_data must be a list of sequences when X is, and arrays when X is"
            )
        if isinstance(Xv, da.Array) != isinstance(X, da.Array):
            Xv, tv = (
                (da.asarray(Xv), da.asarray(tv))
                if isinstance(X, da.Array)
                else (
                    np.asarray(Xv.compute()),
                    np.asarray(tv.compute()),
                )
            )
        return X, target, Xv, tv
    fraction = check_real(
        validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True
    )
    N = len(X) if isinstance(X, list) else X.shape[0] if X.ndim == 3 else 1
    if N < 2:
        raise ValueError(
            "validation_fraction needs at least 2 sequences (N, T, n); give validation_data"
        )
    train, val = split_sequences(N, fraction, make_rng(seed))
    if isinstance(X, list):
        return (
            [X[i] for i in train],
            [target[i] for i in train],
            [X[i] for i in val],
            [target[i] for i in val],
        )
    return X[train], target[train], X[val], target[val]


def _width(data: Any) -> int:
    """Return the features of an array's or a list of sequences' last axis."""
    return int(data[0].shape[-1] if isinstance(data, list) else data.shape[-1])
