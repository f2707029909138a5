# SPDX-License-Identifier: BSD-3-Clause
"""The one caller of the compiled kernels (``crnn._core``).

The Python layer above validates; this module plans. It takes arrays
already checked and converted (C-contiguous, of the model's dtype, finite,
shapes that agree, batches as (N, T, .) and initial states as (N, d)) and
owns everything the kernels need besides: the layout of the model's
parameters in one vector theta (``parameters``), the workspaces (sized by the
kernels' own ``*_size`` functions, kept per Python thread and reused), the
thread count, the chunking of large batches, and the layout of the flat
gradient, which it cuts into named arrays. Every function makes the
kernel calls of one operation and returns new arrays.

The tuning constants below decide how work is split. None of them changes a
bit of any result: every split is made from the sizes alone, never from the
thread count (see the design note of ``crnn/_core.pyx``).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from crnn import _core
from crnn._validation import available_cpus, check_alloc, check_n_threads

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from numpy.typing import DTypeLike, NDArray

    _Array = NDArray[Any]
    #: (input_size, hidden_size, output_size)
    _Size = tuple[int, int, int]
    #: A call's cell: (activation code, leak rate)
    _Cell = tuple[int, float]
    _T = TypeVar("_T")

__all__ = [
    "ACTIVATIONS",
    "ELMAN",
    "GradientArrays",
    "OnlineState",
    "cell",
    "forward",
    "forward_list",
    "generate",
    "gradient",
    "gradient_list",
    "loss",
    "loss_list",
    "lyapunov",
    "parameter_layout",
    "parameters",
    "state_jacobians",
    "step",
    "threads",
]

# The cell's activations by name: the kernels' codes (crnn/_cell.pxi).
ACTIVATIONS: dict[str, int] = {"tanh": 0, "relu": 1, "identity": 2, "logistic": 3}

# A call's cell is (activation code, leak rate); Elman's is tanh without leak.
ELMAN: tuple[int, float] = (0, 1.0)


def cell(activation: str, leak: float) -> tuple[int, float]:
    """Return the cell the kernels take for an activation's name and a leak rate (checked)."""
    return (ACTIVATIONS[activation], float(leak))


# Below this many multiply-adds per call, a second thread costs more than it saves.
_PARALLEL_MIN_WORK = 200_000

# RTRL: sequences whose gradients are held at once before they are added to the total.
_SLOTS_PER_THREAD = 4
_SLOTS_BYTES = 8 << 20

# BPTT's final products run in up to this many parts, each over a group of
# sequences and at least this many (sequence, step) rows in all, their partial
# sums at most this large.
_PARTS = 4
_PART_MIN_STEPS = 512
_PARTS_BYTES = 32 << 20

# BPTT's buffers hold every state of the batch: a batch whose buffers would
# exceed this many bytes runs in chunks of sequences.
_BPTT_BYTES = 64 << 20

# BPTT's backward recurrence and the gradient's products run in blocks of
# steps of about this many (sequence, step) rows: its deltas are kept for one
# block only.
_BPTT_BLOCK_ROWS = 1024

# The compiled entry points, each specialised for one dtype: calling the
# specialisation skips the fused dispatch (about 2 us a call), which would
# read the buffer format of the arguments to choose it.
_SPECIALISED: dict[tuple[object, str, object], Callable[..., int]] = {}


def _kernel(name: str, dtype: object) -> Callable[..., int]:
    """Return the compiled entry point `name` of crnn._core for float32 or float64 arrays."""
    key = (_core, name, dtype)
    fn = _SPECIALISED.get(key)
    if fn is None:
        fn = getattr(_core, name)["double" if dtype == np.float64 else "float"]
        _SPECIALISED[key] = fn
    return fn


# Workspaces are kept per Python thread and reused by the next call (a fresh
# allocation costs a page fault per 4 KiB), except those above this size.
# A crnn call made by a signal handler that runs within a kernel (see
# crnn/_core.pyx) gets new ones: the interrupted call is still using them.
# (Between two kernel calls nothing is kept in them: a handler's call there
# may use them.)
_SCRATCH = threading.local()
_SCRATCH_KEEP = 64 << 20
_ALIGN = 64

# The workspaces of small calls are kept by the sizes they were made for (at
# most this many sets per thread, each at most this large).
_PLANS_KEEP = 16
_PLAN_BYTES = 256 << 10


class GradientArrays(NamedTuple):
    """What one gradient call returns: dE for each array, and each sequence's loss.

    ``b`` and ``c`` are None for a model without biases; ``s0`` is (N, d),
    one row per sequence; ``E`` is (N,); ``nonfinite`` the number of NaN and
    infinite values the kernels met in the weights and data.
    """

    U: _Array
    W: _Array
    V: _Array
    b: _Array | None
    c: _Array | None
    s0: _Array
    E: _Array
    nonfinite: int


# ---------------------------------------------------------------------- parameters


@functools.lru_cache(maxsize=64)
def parameter_layout(
    n: int, d: int, m: int, bias: bool
) -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """Where each parameter lies in theta: {name: (start, stop, shape)}.

    The kernels take the parameters as one vector theta: U (d, n), W (d, d),
    V (m, d), then with biases b (d,) and c (m,), each row-major and one
    after the other (the order of ``RNN.parameters``). The gradients they
    return have the same layout.
    """
    shapes: dict[str, tuple[int, ...]] = {"U": (d, n), "W": (d, d), "V": (m, d)}
    if bias:
        shapes.update(b=(d,), c=(m,))
    layout: dict[str, tuple[int, int, tuple[int, ...]]] = {}
    start = 0
    for name, shape in shapes.items():
        stop = start + (shape[0] * shape[1] if len(shape) == 2 else shape[0])
        layout[name] = (start, stop, shape)
        start = stop
    return layout


def parameters(
    n: int, d: int, m: int, bias: bool, dtype: DTypeLike
) -> tuple[_Array, dict[str, _Array]]:
    """Return theta, a zeroed vector of every parameter, and {name: its view}.

    Each view is an array of its parameter's shape that shares theta's
    memory (``parameter_layout``), so a change made through either is seen
    by both.
    """
    size = _core._parameter_size(n, d, m, bias)
    check_alloc((size,), dtype, "the weights")
    theta = _aligned_empty(size, dtype)
    theta[:] = 0
    views = {}
    for name, (start, stop, shape) in parameter_layout(n, d, m, bias).items():
        views[name] = theta[start:stop].reshape(shape)
    return theta, views


# ---------------------------------------------------------------------- threads

# OpenMP's thread pool does not survive fork: in a child of a process whose
# kernels ran on several threads, a parallel region would wait for ever on
# threads that do not exist. Such a child (and its children) runs every
# kernel on one thread, as other OpenMP libraries do; results do not depend
# on the thread count.
_threaded = False  # a kernel of this process ran on more than one thread
_single = False  # this process is such a child


def _after_fork_in_child() -> None:
    global _single
    _single = _single or _threaded
    _SCRATCH.__dict__.pop("plans", None)  # they hold thread counts
    _core._set_main_thread(threading.main_thread().ident)  # type: ignore[arg-type]


# signals: see crnn/_core.pyx (a started thread's ident is never None)
_core._set_main_thread(threading.main_thread().ident)  # type: ignore[arg-type]
os.register_at_fork(after_in_child=_after_fork_in_child)


def threads(n_threads: int | None, N: int, work: int) -> int:
    """Return the thread count for a call on N parallel items of `work` multiply-adds.

    ``n_threads`` is the model's setting: None chooses from the size of the
    work, up to the CPUs this process may use and OpenMP's own limit
    (OMP_NUM_THREADS, or threadpoolctl's ``threadpool_limits(k, "openmp")``),
    as scikit-learn's OpenMP code does. Never more than N; 1 when the
    kernels have no OpenMP, and in a child forked from a process whose
    kernels used several threads.
    """
    global _threaded
    if N <= 1 or _single or not _core._openmp_enabled():
        return 1
    if n_threads is None:
        nt = 1
        if work >= _PARALLEL_MIN_WORK:
            nt = max(1, min(N, available_cpus(), _core._openmp_max_threads()))
    else:
        nt = max(1, min(check_n_threads(n_threads), N))
    if nt > 1:
        _threaded = True
    return nt


# ---------------------------------------------------------------------- busy machines
#
# On a quiet machine a second thread nearly halves a large call. When another
# process (or another library's spinning thread pool: OpenBLAS's workers spin
# for a while after each numpy product) holds a core, a thread of ours waits
# for it at every barrier, a scheduler time slice (milliseconds) at a time,
# and a 0.1 ms call can take 50 times as long as on one thread. Neither the
# load average nor a short probe tells this in time, so the default
# (``n_threads=None``) measures: for each kind of call and size of work (a
# power of two of multiply-adds) it keeps the recent time per multiply-add on
# one thread and on several, uses the faster, and tries the other again once
# the calls of that kind and size have taken _RETRY_RATIO times as long as
# the last try did (so trying costs at most 1 / _RETRY_RATIO of crnn's own
# time, whatever else the program does between its calls). The first call
# of a kind and size runs on several threads, the second on one. None of
# this changes a bit of any result (no bit depends on the thread count).

_RETRY_RATIO = 40.0
_STALE_SECONDS = 1.0  # an older time is replaced rather than averaged


class _Speed:
    """Seconds per multiply-add of one kind and size of call, on one thread and on several."""

    __slots__ = ("budget", "many", "many_at", "one", "one_at", "spent")

    def __init__(self) -> None:
        self.one = self.many = -1.0  # unknown
        self.one_at = self.many_at = 0.0  # when they were measured
        self.spent = self.budget = 0.0  # seconds of calls since the last try, and before the next


_SPEEDS: dict[tuple[str, int], _Speed] = {}
_clock = time.perf_counter


def _choose(
    kind: str, n_threads: int | None, N: int, work: int
) -> tuple[int, tuple[str, int] | None]:
    """Return the thread count of a call and the key to report its time under (``_timed``).

    The count is ``threads``' (the quiet machine's), or 1 when the default
    measured one thread to be faster for calls of this kind and size (see
    above); the key is None when nothing is to be measured.
    """
    if n_threads == 1:
        return 1, None
    nt = threads(n_threads, N, work)
    if nt == 1 or n_threads is not None:
        return nt, None
    key = (kind, work.bit_length())
    speed = _SPEEDS.get(key)
    if speed is None or speed.many < 0:
        return nt, key
    if speed.one < 0:
        return 1, key
    many = speed.many <= speed.one
    if speed.spent >= speed.budget:
        many = not many  # try the other
    return (nt if many else 1), key


def _timed(key: tuple[str, int] | None, nt: int, work: int, call: Callable[[], _T]) -> _T:
    """Return call(), timed under ``key`` (from ``_choose``) for calls on nt threads."""
    if key is None:
        return call()
    start = _clock()
    result = call()
    end = _clock()
    speed = _SPEEDS.get(key)
    if speed is None:
        speed = _SPEEDS.setdefault(key, _Speed())
    per = (end - start) / max(work, 1)
    many = nt > 1
    old, at = (speed.many, speed.many_at) if many else (speed.one, speed.one_at)
    trying = old >= 0 and (speed.many <= speed.one) != many  # the mode not in use
    if old >= 0 and not trying and end - at < _STALE_SECONDS:
        per = 0.5 * (old + per)
    if many:
        speed.many, speed.many_at = per, end
    else:
        speed.one, speed.one_at = per, end
    if trying or old < 0:  # a try, or a first measure: the next try after a while
        speed.spent, speed.budget = 0.0, _RETRY_RATIO * (end - start)
    else:
        speed.spent += end - start
    return result


def _step_work(n: int, d: int, m: int) -> int:
    """Multiply-adds of one forward step."""
    return d * (n + d + m)


# ---------------------------------------------------------------------- workspaces


def _scratch(name: str, shape: tuple[int, ...], dtype: DTypeLike) -> _Array:
    """Return an uninitialised workspace array, reused by this thread's later calls.

    Each Python thread has its own buffers, so calls on one model from
    several threads at once never share one; a call from a signal handler
    that runs within a kernel gets a new one.
    """
    size = 1
    for k in shape:
        size *= int(k)
    if _core._in_signal_handler():
        return _aligned_empty(max(size, 1), dtype)[:size].reshape(shape)
    cache: dict[Any, Any] = _SCRATCH.__dict__
    key = (name, np.dtype(dtype))
    buf = cache.get(key)
    if buf is None or buf.size < size:
        buf = _aligned_empty(max(size, 1), dtype)
        if buf.nbytes <= _SCRATCH_KEEP:
            cache[key] = buf
        else:
            cache.pop(key, None)
    return buf[:size].reshape(shape)


def _aligned_empty(size: int, dtype: DTypeLike) -> _Array:
    """Return an uninitialised 1-d array of `size` elements on a 64-byte boundary.

    The kernels load whole cache lines (a 64-byte SIMD vector on AVX-512
    builds): from a buffer that starts mid-line every such load spans two
    lines (benchmarks/README.md has the cost).
    """
    dt = np.dtype(dtype)
    raw = np.empty(size * dt.itemsize + _ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + size * dt.itemsize].view(dt)


def _plan(key: Hashable, make: Callable[..., tuple[Any, ...]], *args: Any) -> tuple[Any, ...]:
    """Return ``make(*args)``: a call's thread count, sizes and workspaces, kept by `key` when small.

    Every plan is computed from the sizes (and the model's thread setting)
    alone, so a call with the sizes of a recent one (a stream of steps,
    mini-batches of one shape) finds its plan with one look-up. Plans whose
    workspaces are larger than _PLAN_BYTES are not kept.
    """
    if _core._in_signal_handler():  # the interrupted call's are in use
        return make(*args)
    plans = _SCRATCH.__dict__.get("plans")
    if plans is None:
        plans = _SCRATCH.__dict__["plans"] = {}
    plan: tuple[Any, ...] | None = plans.get(key)
    if plan is None:
        plan = make(*args)
        size = sum(a.nbytes for a in plan if isinstance(a, np.ndarray))
        if size <= _PLAN_BYTES:
            if len(plans) >= _PLANS_KEEP:
                plans.pop(next(iter(plans)))  # the oldest
            plans[key] = plan
    return plan


def _forward_scratch(n: int, d: int, m: int, N: int, nt: int, dtype: DTypeLike) -> _Array:
    """Return the workspace of ``_forward``, ``_loss``, ``_generate`` (weights packed, each thread's)."""

    def make() -> tuple[_Array]:
        size = _core._forward_workspace_size(N, n, d, m, nt)
        check_alloc((size,), dtype, "the forward workspace")
        return (_scratch("forward", (size,), dtype),)

    ws: _Array = _plan(("forward", _core, n, d, m, N, nt, dtype), make)[0]
    return ws


# ---------------------------------------------------------------------- forward


def forward(
    theta: _Array,
    size: _Size,
    X: _Array,
    s0: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
) -> tuple[_Array, _Array, int]:
    """Return the states S (N, T, d) and outputs Y (N, T, m) of the batch X (N, T, n).

    theta holds the parameters (``parameters``) of a model of ``size`` (n, d,
    m) whose cell is ``cell``, (activation code, leak rate), as every
    function here takes it. Also returns the number of NaN and infinite values the kernel met in
    theta, X and s0 (0 when N T = 0: nothing was read), as every function
    here.
    """
    N, T, _ = X.shape
    n, d, m = size
    dt = theta.dtype
    check_alloc((N, T, d + m), dt, "the states and outputs")
    S = np.empty((N, T, d), dtype=dt)
    Y = np.empty((N, T, m), dtype=dt)
    bad = 0
    if N * T:
        work = N * T * _step_work(n, d, m)
        nt, key = _choose("forward", n_threads, N, work)
        ws = _forward_scratch(n, d, m, N, nt, dt)
        run = _kernel("_forward", dt)
        bad = _timed(key, nt, work, lambda: run(theta, X, s0, S, Y, ws, nt, *cell))
    return S, Y, bad


def step(
    theta: _Array,
    size: _Size,
    x: _Array,
    s: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
) -> tuple[_Array, _Array, int]:
    """Return the new states (N, d), outputs (N, m) and the non-finite count of one step.

    x (N, n) and s (N, d): the forward pass of one step, in one unpacked
    kernel call when one thread does it (the same bits either way).
    """
    N = x.shape[0]
    n, d, m = size
    if N == 0 or threads(n_threads, N, N * _step_work(n, d, m)) > 1:
        S, Y, bad = forward(theta, size, x.reshape(N, 1, n), s, n_threads, cell)
        return S.reshape(N, d), Y.reshape(N, m), bad
    dt = theta.dtype
    s_new = np.empty((N, d), dtype=dt)
    y = np.empty((N, m), dtype=dt)
    return s_new, y, _kernel("_step", dt)(theta, x, s, s_new, y, *cell)


def loss(
    theta: _Array,
    size: _Size,
    X: _Array,
    target: _Array,
    s0: _Array,
    g: float,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    weight: _Array | None = None,
) -> tuple[_Array, int]:
    """Return each sequence's loss E (N,) on the batch X, target, and the non-finite count.

    ``weight``: None, or the weights of the squared errors, shaped as target
    (as every function here takes it).
    """
    N, T, _ = X.shape
    n, d, m = size
    dt = theta.dtype
    E = np.zeros(N, dtype=dt)
    bad = 0
    if N * T:
        work = N * T * _step_work(n, d, m)
        nt, key = _choose("loss", n_threads, N, work)
        ws = _forward_scratch(n, d, m, N, nt, dt)
        run = _kernel("_loss", dt)
        bad = _timed(key, nt, work, lambda: run(theta, X, target, weight, s0, g, E, ws, nt, *cell))
    return E, bad


def generate(
    theta: _Array,
    size: _Size,
    x0: _Array,
    s0: _Array,
    out: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
) -> tuple[_Array, int]:
    """Run the closed loop from the inputs x0 (N, n); fill out (N, T, m).

    Returns S^T (N, d) and the non-finite count of the weights, x0 and s0.
    """
    N, T, _ = out.shape
    n, d, m = size
    dt = theta.dtype
    final = np.empty((N, d), dtype=dt)
    if N == 0:
        return final, 0
    work = N * T * _step_work(n, d, m)
    nt, key = _choose("generate", n_threads, N, work)
    ws = _forward_scratch(n, d, m, N, nt, dt)
    run = _kernel("_generate", dt)
    bad = _timed(key, nt, work, lambda: run(theta, x0, s0, out, final, ws, nt, *cell))
    return final, bad


# ---------------------------------------------------------------------- gradients


def _bptt_steps(N: int, T: int) -> int:
    """Return the steps per block of BPTT's backward pass (from the sizes alone)."""
    return max(1, min(T, -(-_BPTT_BLOCK_ROWS // N)))


def _bptt_plan(
    N: int, T: int, n: int, d: int, m: int, P: int, nt: int, leaky: bool, dt: np.dtype[Any]
) -> tuple[int, int, _Array, Callable[..., int]]:
    """Return BPTT's steps per block, gradient parts, workspace and kernel for these sizes."""
    L = _bptt_steps(N, T)
    # the final products in parts, each over a group of sequences (threads
    # share them out without packing the same operand twice); the count
    # depends on the sizes alone, so that no bit depends on the threads
    parts = max(1, min(_PARTS, N, N * T // _PART_MIN_STEPS, _PARTS_BYTES // (P * dt.itemsize)))
    # what grows with the data is checked (the rest is a few times the
    # model's size): the states and errors, and the parts when several
    check_alloc((sum(_core._bptt_buffer_sizes(N, T, n, d, m, L)),), dt, "the bptt workspace")
    if parts > 1:
        check_alloc((parts, P), dt, "the gradient parts")
    bias = _core._parameter_size(n, d, m) < P
    wsize = _core._bptt_workspace_size(N, T, n, d, m, L, parts, bias, leaky, nt)
    if leaky:  # H^t of every step too
        check_alloc((wsize,), dt, "the bptt workspace")
    return L, parts, _scratch("bptt", (wsize,), dt), _kernel("_bptt_gradient", dt)


def _bptt(
    theta: _Array,
    size: _Size,
    X: _Array,
    target: _Array,
    s0: _Array,
    g: float,
    out: _Array,
    n_threads: int | None,
    cell: _Cell,
    weight: _Array | None,
) -> int:
    """One BPTT kernel call on the sequences of X (N >= 1, T >= 1); the non-finite count."""
    N, T, _ = X.shape
    n, d, m = size
    dt = theta.dtype
    P = theta.shape[0]  # the gradient's size
    if n_threads == 1:
        nt, key, work = 1, None, 0
    else:
        work = N * T * _step_work(n, d, m) * 3
        nt, key = _choose("bptt", n_threads, N, work)
    leaky = cell[1] != 1
    run: Callable[..., int]
    L, parts, ws, run = _plan(
        ("bptt", _core, N, T, n, d, m, P, nt, leaky, dt),
        _bptt_plan,
        N,
        T,
        n,
        d,
        m,
        P,
        nt,
        leaky,
        dt,
    )
    if key is None:
        return run(theta, X, target, weight, s0, g, out, ws, parts, L, nt, *cell)
    return _timed(
        key, nt, work, lambda: run(theta, X, target, weight, s0, g, out, ws, parts, L, nt, *cell)
    )


def _rtrl_plan(
    N: int, n: int, d: int, m: int, P: int, nt: int, dt: np.dtype[Any]
) -> tuple[int, int, _Array, Callable[..., int]]:
    """Return RTRL's chunks per sequence, slots, workspace and kernel for these sizes."""
    bias = d * (n + d + m) < P
    nch = 1 if nt <= N else -(-nt // N)
    # as many slots as fit in _SLOTS_BYTES (fewer passes over the batch)
    k = min(N, max(_SLOTS_PER_THREAD * nt, _SLOTS_BYTES // (P * dt.itemsize)))
    need = _core._rtrl_workspace_size(n, d, m, nch, bias, 0, nt)  # no slots
    check_alloc((need,), dt, "the rtrl workspace")
    check_alloc((k + 1, P), dt, "the gradient slots")
    wsize = _core._rtrl_workspace_size(n, d, m, nch, bias, k, nt)
    return nch, k, _scratch("rtrl", (wsize,), dt), _kernel("_rtrl_gradient", dt)


def _rtrl(
    theta: _Array,
    size: _Size,
    X: _Array,
    target: _Array,
    s0: _Array,
    g: float,
    out: _Array,
    n_threads: int | None,
    cell: _Cell,
    weight: _Array | None,
) -> int:
    """One RTRL kernel call on the sequences of X (N >= 1, T >= 1); the non-finite count."""
    N, T, _ = X.shape
    n, d, m = size
    dt = theta.dtype
    P = theta.shape[0]  # the gradient's size
    if n_threads == 1:
        nt, key, work = 1, None, 0
    else:
        # one sequence's sensitivity columns may be split over threads
        work = N * T * d * d * (d * n + d * d + d)
        nt, key = _choose("rtrl", n_threads, N * available_cpus(), work)

    run: Callable[..., int]
    nch, k, ws, run = _plan(
        ("rtrl", _core, N, n, d, m, P, nt, dt), _rtrl_plan, N, n, d, m, P, nt, dt
    )
    if key is None:
        return run(theta, X, target, weight, s0, g, out, ws, k, nch, nt, *cell)
    return _timed(
        key, nt, work, lambda: run(theta, X, target, weight, s0, g, out, ws, k, nch, nt, *cell)
    )


def gradient(
    theta: _Array,
    size: _Size,
    X: _Array,
    target: _Array,
    s0: _Array,
    g: float,
    method: str,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    weight: _Array | None = None,
) -> GradientArrays:
    """Return the exact gradient of E over the batch, by "bptt" or "rtrl".

    Returns
    -------
    GradientArrays
        dE/dU, dE/dW, dE/dV (and dE/db, dE/dc with biases) summed over the
        batch, dE/dS^0 (N, d) and each sequence's loss E (N,).
    """
    N, T, _ = X.shape
    n, d, m = size
    dt = theta.dtype
    P = theta.shape[0]  # dE/dtheta has theta's layout
    # one array: dE/dtheta, dE/dS^0 (N, d), E (N,), as the kernels write them
    out = np.zeros(P + N * d + N, dtype=dt)
    bad = 0
    if not N * T:
        pass
    elif method == "rtrl":
        bad = _rtrl(theta, size, X, target, s0, g, out, n_threads, cell, weight)
    elif N == 1 or (chunk := _bptt_chunk(N, T, n, d, m, dt, cell)) == N:
        bad = _bptt(theta, size, X, target, s0, g, out, n_threads, cell, weight)
    else:
        # BPTT keeps every state of the batch: sequences in chunks whose
        # buffers fit in _BPTT_BYTES (a size-only rule: no bit depends on
        # the thread count), their gradients added in order
        for start in range(0, N, chunk):
            stop = min(N, start + chunk)
            part = np.empty(P + (stop - start) * (d + 1), dtype=dt)  # not a workspace: see _SCRATCH
            wpart = None if weight is None else weight[start:stop]
            bad += _bptt(
                theta,
                size,
                X[start:stop],
                target[start:stop],
                s0[start:stop],
                g,
                part,
                n_threads,
                cell,
                wpart,
            )
            if start:
                out[:P] += part[:P]
            else:
                out[:P] = part[:P]
            out[P + start * d : P + stop * d] = part[P : P + (stop - start) * d]
            out[P + N * d + start : P + N * d + stop] = part[P + (stop - start) * d :]
    bias = d * (n + d + m) < P
    r = np.ndarray((), _gradient_fields(n, d, m, bias, N, dt), out)
    return GradientArrays(
        r["U"],
        r["W"],
        r["V"],
        r["b"] if bias else None,
        r["c"] if bias else None,
        r["s0"],
        r["E"],
        bad,
    )


@functools.lru_cache(maxsize=64)
def _gradient_fields(
    n: int, d: int, m: int, bias: bool, N: int, dt: np.dtype[Any]
) -> np.dtype[Any]:
    """Return the gradient kernels' output as one record: dE/dtheta, dE/dS^0, E.

    Its fields are the output's arrays, each cut out by one look-up (a
    slice and a reshape make two arrays each, which a call on a small model
    notices).
    """
    fields = [(name, dt, shape) for name, (_, _, shape) in parameter_layout(n, d, m, bias).items()]
    return np.dtype([*fields, ("s0", dt, (N, d)), ("E", dt, (N,))])


def _bptt_chunk(N: int, T: int, n: int, d: int, m: int, dt: np.dtype[Any], cell: _Cell) -> int:
    """Return the sequences per BPTT call: as many as fit in _BPTT_BYTES (at least 1)."""
    per_seq = sum(_core._bptt_buffer_sizes(1, T, n, d, m, 1)) * dt.itemsize
    if cell[1] != 1:  # a leaky cell's H^t
        per_seq += T * d * dt.itemsize
    return max(1, min(N, _BPTT_BYTES // per_seq))


def _views(vector: _Array, n: int, d: int, m: int, bias: bool) -> tuple[Any, ...]:
    """U, W, V, b, c (b, c None without biases) as views of a vector in theta's layout."""
    (u, us), (w, ws), (v, vs), (b, _), (c, _) = _slices(n, d, m, bias)
    if b is None:
        return vector[u].reshape(us), vector[w].reshape(ws), vector[v].reshape(vs), None, None
    return vector[u].reshape(us), vector[w].reshape(ws), vector[v].reshape(vs), vector[b], vector[c]


@functools.lru_cache(maxsize=64)
def _slices(n: int, d: int, m: int, bias: bool) -> tuple[tuple[Any, Any], ...]:
    """``parameter_layout`` as (slice, shape) pairs for U, W, V, b, c ((None, None) for no bias).

    Kept: every gradient call cuts its result up with them.
    """
    pairs = tuple((slice(a, b), shape) for a, b, shape in parameter_layout(n, d, m, bias).values())
    return pairs + ((None, None),) * (5 - len(pairs))


def _unpack_gradient(
    grad: _Array, n: int, d: int, m: int, bias: bool
) -> tuple[_Array, _Array, _Array, _Array | None, _Array | None]:
    """Cut the kernels' flat gradient [dU dW] (d, n + d), dV (m, d), db (d,), dc (m,)."""
    dUW = grad[: d * (n + d)].reshape(d, n + d)
    dU = np.ascontiguousarray(dUW[:, :n])
    dW = np.ascontiguousarray(dUW[:, n:])
    dV = grad[d * (n + d) : d * (n + d) + m * d].reshape(m, d)
    db = dc = None
    if bias:
        db = grad[d * (n + d) + m * d : d * (n + d) + m * d + d]
        dc = grad[d * (n + d) + m * d + d :]
    return dU, dW, dV, db, dc


# ---------------------------------------------------------------------- sequences of different lengths
#
# A list of sequences (T_i, n) runs as batches of the sequences of one
# length: each sequence's states, outputs and loss are those it has alone
# (a sequence's numbers never depend on the others of its batch), and no
# step is computed for padding, so the cost follows sum T_i. A gradient is
# each sequence's alone, added in the order of the list.


def _by_length(lengths: list[int]) -> list[tuple[int, list[int]]]:
    """Return [(T, indices)]: the sequences of each length, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for i, T in enumerate(lengths):
        groups.setdefault(T, []).append(i)
    return list(groups.items())


def _stack(arrays: list[_Array], idx: list[int]) -> _Array:
    """Return the arrays idx (all of one shape) as one C-contiguous batch."""
    if len(idx) == 1:
        return arrays[idx[0]][np.newaxis]
    return np.stack([arrays[i] for i in idx])


def _run_items(nt: int, count: int, fn: Callable[[int], None]) -> None:
    """Call fn(i) for i in range(count) on nt threads (this one and nt - 1 more).

    Each item is a kernel call with the GIL released, so the threads run
    at once; the items are taken in order from a shared counter. The first
    exception (a Ctrl-C in this thread too) stops the others at their next
    item and is raised here once they have stopped.
    """
    if nt <= 1 or count <= 1:
        for i in range(count):
            fn(i)
        return
    items = iter(range(count))
    lock = threading.Lock()
    failed: list[BaseException] = []

    def work() -> None:
        while not failed:
            with lock:
                i = next(items, None)
            if i is None:
                return
            try:
                fn(i)
            except BaseException as exc:  # noqa: BLE001 - raised in the calling thread below
                failed.append(exc)
                return

    helpers = [threading.Thread(target=work, daemon=True) for _ in range(nt - 1)]
    for h in helpers:
        h.start()
    try:
        work()
    except BaseException as exc:  # noqa: BLE001 - raised below, once the others stop
        failed.append(exc)
    finally:
        for h in helpers:
            h.join()
    if failed:
        raise failed[0]


def _list_threads(
    kind: str, n_threads: int | None, lengths: list[int], size: _Size, passes: int
) -> tuple[int, tuple[str, int] | None, int]:
    """Return the threads of a call on a list of sequences, its ``_choose`` key and its work.

    The threads share out the items, each item on one thread.
    """
    n, d, m = size
    work = sum(lengths) * _step_work(n, d, m) * passes
    return (*_choose(kind, n_threads, len(lengths), work), work)


def forward_list(
    theta: _Array,
    size: _Size,
    Xs: list[_Array],
    s0: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
) -> tuple[list[_Array], list[_Array], int]:
    """Return the states, outputs (lists of (T_i, d), (T_i, m)) and the non-finite count.

    Xs: a list of (T_i, n) arrays; s0 (N, d). The sequences run as one
    batch that shrinks as they end: sorted by length, the steps up to the
    shortest length run for all of them, the steps from there to the next
    length for those that are longer, and so on, each part from the states
    the part before ended in. A forward pass run in parts from the states
    between them is the pass run at once, bit for bit, and a sequence's
    numbers do not depend on the others of its batch: each sequence gets
    what it gets alone, and no step is computed twice or for padding.
    """
    n, d, m = size
    N = len(Xs)
    dt = theta.dtype
    lengths = np.array([x.shape[0] for x in Xs], dtype=np.intp)
    order = np.argsort(-lengths, kind="stable")  # longest first: the running ones are a prefix
    longest = int(lengths[order[0]]) if N else 0
    # the inputs, longest first, in one array (each part a slice of it, copied
    # at C speed); only the states and outputs of real steps are computed
    check_alloc((N, longest, n + d + m), dt, "the inputs, states and outputs")
    Xp = np.empty((N, longest, n), dtype=dt)
    for j, i in enumerate(order):
        Xp[j, : lengths[i]] = Xs[i]
    S = np.empty((N, longest, d), dtype=dt)
    Y = np.empty((N, longest, m), dtype=dt)
    state = s0[order]
    bad, t0 = 0, 0
    ends = np.unique(lengths)
    for t1 in ends[ends > 0]:
        live = int(np.count_nonzero(lengths > t0))  # those longer than t0: T_i >= t1
        X = np.ascontiguousarray(Xp[:live, t0:t1])
        St, Yt, b = forward(theta, size, X, state[:live], n_threads, cell)
        bad += b
        S[:live, t0:t1] = St
        Y[:live, t0:t1] = Yt
        state = np.ascontiguousarray(St[:, -1])
        t0 = int(t1)
    at = np.empty(N, dtype=np.intp)
    at[order] = np.arange(N)  # where each sequence is in the sorted arrays
    return (
        [S[at[i], :T] for i, T in enumerate(lengths)],
        [Y[at[i], :T] for i, T in enumerate(lengths)],
        bad,
    )


def loss_list(
    theta: _Array,
    size: _Size,
    Xs: list[_Array],
    targets: list[_Array],
    s0: _Array,
    g: float,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    weights: list[_Array] | None = None,
) -> tuple[_Array, int]:
    """Return each sequence's loss E (N,) on the lists Xs, targets (weights, or None)."""
    E = np.zeros(len(Xs), dtype=theta.dtype)
    groups = _by_length([x.shape[0] for x in Xs])
    nt, key, work = 1, None, 0
    if len(groups) > 1:
        nt, key, work = _list_threads("loss_list", n_threads, [x.shape[0] for x in Xs], size, 1)
    bad = [0] * len(groups)

    def run(k: int) -> None:
        _, idx = groups[k]
        w = None if weights is None else _stack(weights, idx)
        E[idx], bad[k] = loss(
            theta,
            size,
            _stack(Xs, idx),
            _stack(targets, idx),
            s0[idx],
            g,
            1 if nt > 1 else n_threads,
            cell,
            w,
        )

    _timed(key, nt, work, lambda: _run_items(nt, len(groups), run))
    return E, sum(bad)


# sequences of a list whose gradients are held at once before they are added
_LIST_SLOTS_BYTES = 8 << 20


def gradient_list(
    theta: _Array,
    size: _Size,
    Xs: list[_Array],
    targets: list[_Array],
    s0: _Array,
    g: float,
    method: str,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    weights: list[_Array] | None = None,
) -> GradientArrays:
    """Return the gradient (GradientArrays) summed over the list, each sequence's alone.

    Each sequence's gradient is its own kernel call (several at once on
    several threads), and they are added in the order of the list: the sum
    a user makes of the gradients taken one by one, whatever the threads.
    """
    N = len(Xs)
    n, d, m = size
    dt = theta.dtype
    P = theta.shape[0]
    out = np.zeros(P + N * d + N, dtype=dt)
    total, ds0, E = out[:P], out[P : P + N * d].reshape(N, d), out[P + N * d :]
    lengths = [x.shape[0] for x in Xs]
    nt, key, work = _list_threads("gradient_list", n_threads, lengths, size, 3)
    per = 1 if nt > 1 else n_threads
    K = max(1, min(N, _LIST_SLOTS_BYTES // (P * dt.itemsize)))
    check_alloc((K, P), dt, "the gradients of the sequences")
    slots = np.zeros((K, P), dtype=dt)
    bad = [0] * N

    for start in range(0, N, K):
        stop = min(N, start + K)

        def run(k: int, start: int = start) -> None:
            i = start + k
            slots[k] = 0
            w = None if weights is None else weights[i]
            bad[i] = _sequence_gradient(
                theta,
                size,
                Xs[i],
                targets[i],
                s0[i],
                g,
                method,
                per,
                cell,
                w,
                slots[k],
                ds0[i],
                E[i:],
            )

        part = work * sum(lengths[start:stop]) // max(sum(lengths), 1)
        _timed(key, nt, part, lambda: _run_items(nt, stop - start, run))  # noqa: B023 - called here
        for k in range(stop - start):  # in the order of the list
            total += slots[k]
    bias = _core._parameter_size(n, d, m) < P
    dU, dW, dV, db, dc = _views(total, n, d, m, bias)
    return GradientArrays(dU, dW, dV, db, dc, ds0, E, sum(bad))


def _sequence_gradient(
    theta: _Array,
    size: _Size,
    x: _Array,
    target: _Array,
    s0: _Array,
    g: float,
    method: str,
    n_threads: int | None,
    cell: _Cell,
    weight: _Array | None,
    row: _Array,
    ds0: _Array,
    E: _Array,
) -> int:
    """Write one sequence's dE/dtheta into row (P,), dE/dS^0 into ds0 (d,), E into E[0].

    x (T, n), target (T, m), s0 (d,), weight (T, m) or None. A sequence of
    no steps scores nothing: it writes nothing (the caller's zeros stand).
    Returns the non-finite count.
    """
    if x.shape[0] == 0:
        return 0
    w = None if weight is None else weight[np.newaxis]
    G = gradient(
        theta,
        size,
        x[np.newaxis],
        target[np.newaxis],
        s0[np.newaxis],
        g,
        method,
        n_threads,
        cell,
        w,
    )
    at = 0
    for part in (G.U, G.W, G.V, G.b, G.c):
        if part is not None:
            row[at : at + part.size] = part.ravel()
            at += part.size
    ds0[:] = G.s0[0]
    E[0] = G.E[0]
    return G.nonfinite


# ---------------------------------------------------------------------- online RTRL


class OnlineState:
    """What online RTRL carries from step to step besides the model and the state.

    The sensitivities, in two buffers by panels (the kernel reads one and
    writes the other at each step; ``cur`` is the current one), the sum of
    the per-step gradients (the layout of the batch gradient), and a
    workspace.
    """

    def __init__(
        self, n: int, d: int, m: int, bias: bool, dtype: DTypeLike, cell: _Cell = ELMAN
    ) -> None:
        dtype = np.dtype(dtype)
        self.sizes = (n, d, m, bias)
        self.cell = cell
        ct = _core._panel_columns()[0 if dtype == np.float64 else 1]
        Q = d * (n + d) + (d if bias else 0)
        size = -(-Q // ct) * ct * d
        work = _core._online_work_size(n, d, m, bias)
        check_alloc((2, size), dtype, "the RTRL sensitivities")
        check_alloc((work,), dtype, "the online RTRL workspace")
        self.ct = ct
        self.P = np.zeros((2, size), dtype=dtype)
        self.cur = np.zeros(1, dtype=np.intp)  # set by the kernel: see _rtrl_online
        self.grad = np.zeros(_core._gradient_size(n, d, m, bias), dtype=dtype)
        self.work = np.empty(work, dtype=dtype)
        self.last = np.zeros_like(self.grad)  # the last step's gradient (``estimate``)
        self.E1 = np.empty(1, dtype=dtype)  # E of a one-step call

    def learn(
        self,
        theta: _Array,
        X: _Array,
        target: _Array,
        state: _Array,
        g: float,
        lr: float,
        clip: float,
    ) -> tuple[_Array, _Array, int]:
        """Run the kernel over X (T, n), the weights, state and this state updated in place.

        ``clip`` 0 means none. Returns the outputs Y (T, m), each step's E^t
        (T,) and the steps made: fewer than T when a step would have made
        the loss or a weight not finite (that step changed nothing), -1 when
        the weights, X or target hold a NaN or an infinity (nothing ran).
        """
        T = X.shape[0]
        dt = theta.dtype
        Y = np.empty((T, self.sizes[2]), dtype=dt)
        E = self.E1 if T == 1 else np.empty(T, dtype=dt)  # read by the caller before the next call
        done = 0
        if T:
            done = _kernel("_rtrl_online", dt)(
                theta,
                X,
                target,
                state,
                self.P,
                self.cur,
                g,
                lr,
                clip,
                Y,
                E,
                self.grad,
                self.last,
                self.work,
                *self.cell,
            )
        return Y, E, done

    def save(self) -> tuple[int, _Array, _Array]:
        """Return a copy of what ``restore`` puts back."""
        cur = int(self.cur[0])
        return cur, self.P[cur].copy(), self.grad.copy()

    def restore(self, saved: tuple[int, _Array, _Array]) -> None:
        """Put back what ``save`` returned."""
        self.P[saved[0]] = saved[1]
        self.cur[0] = saved[0]
        self.grad[...] = saved[2]

    def sensitivities(self) -> _Array:
        """Return the sensitivities as a new (d, Q) array, in the order users see.

        dS_l/du_ij at column i*n + j, dS_l/dw_ij at d*n + i*d + j and, with
        biases, dS_l/db_i at d*n + d*d + i.
        """
        n, d, _, bias = self.sizes
        K1, ct = n + d, self.ct
        by_panels = self.P[self.cur[0]].reshape(-1, d, ct)
        P = by_panels.transpose(1, 0, 2).reshape(d, -1)  # the kernel's column order
        i = np.arange(d)[:, None]
        order = [(i * K1 + np.arange(n)).ravel(), (i * K1 + n + np.arange(d)).ravel()]
        if bias:
            order.append(d * K1 + np.arange(d))
        return P[:, np.concatenate(order)]  # type: ignore[no-any-return]

    def gradient(self) -> tuple[_Array, _Array, _Array, _Array | None, _Array | None]:
        """Return the sum of the per-step gradients: new U, W, V, b, c (b, c None without biases)."""
        n, d, m, bias = self.sizes
        return tuple(  # type: ignore[return-value]
            None if a is None else a.copy() for a in _unpack_gradient(self.grad, n, d, m, bias)
        )

    def estimate(self) -> tuple[_Array, _Array, _Array, _Array | None, _Array | None]:
        """Return the last step's gradient (zeros before the first): new U, W, V, b, c."""
        n, d, m, bias = self.sizes
        return tuple(  # type: ignore[return-value]
            None if a is None else a.copy() for a in _unpack_gradient(self.last, n, d, m, bias)
        )


# ---------------------------------------------------------------------- crnn.online: the algorithms around RTRL

# The algorithms' codes in the kernel (the ALG_ enum of crnn/_online_family.pxi).
ONLINE_ALGORITHMS: dict[str, int] = {
    "rflo": 1,
    "eprop": 2,
    "tbptt": 3,
    "uoro": 4,
    "kfrtrl": 5,
    "snap1": 6,
    "snap2": 7,
}


class OnlineFamilyState:
    """What an approximate online algorithm carries from step to step (``_online_family``).

    Its memory (two buffers, the kernel reading one and writing the other,
    except TBPTT's ring of steps), its counters (the current buffer, the
    random state, TBPTT's ring), the sum of the per-step estimates and the
    last one (theta's layout), and a workspace. ``mask`` is SnAp-2's
    pattern (d, d); ``seed`` the random state's start (UORO, KF-RTRL).
    """

    def __init__(
        self,
        algorithm: str,
        n: int,
        d: int,
        m: int,
        bias: bool,
        dtype: DTypeLike,
        cell: _Cell = ELMAN,
        *,
        horizon: int = 1,
        period: int = 1,
        seed: int = 0,
        mask: _Array | None = None,
    ) -> None:
        dtype = np.dtype(dtype)
        self.alg = ONLINE_ALGORITHMS[algorithm]
        self.sizes = (n, d, m, bias)
        self.cell = cell
        rows, size, work = _core._online_family_sizes(self.alg, n, d, m, bias, horizon)
        check_alloc((rows, size), dtype, f"the memory of {algorithm}")
        self.mem = np.zeros((rows, size), dtype=dtype)
        self.ints = np.zeros(7, dtype=np.intp)
        self.ints[1] = np.array(seed, dtype=np.uint64).view(np.int64)
        self.ints[5], self.ints[6] = horizon, period
        self.mask = np.zeros(0, dtype=dtype) if mask is None else mask.astype(dtype).ravel()
        P = _core._parameter_size(n, d, m, bias)
        self.grad = np.zeros(P, dtype=dtype)
        self.last = np.zeros(P, dtype=dtype)
        self.E1 = np.empty(1, dtype=dtype)  # E of a one-step call
        self.work = np.empty(work, dtype=dtype)

    def learn(
        self,
        theta: _Array,
        X: _Array,
        target: _Array,
        state: _Array,
        g: float,
        lr: float,
        clip: float,
    ) -> tuple[_Array, _Array, int]:
        """Run the kernel over X (T, n): as ``OnlineState.learn``."""
        T = X.shape[0]
        dt = theta.dtype
        Y = np.empty((T, self.sizes[2]), dtype=dt)
        E = self.E1 if T == 1 else np.empty(T, dtype=dt)  # read by the caller before the next call
        done = 0
        if T:
            done = _kernel("_online_family", dt)(
                self.alg,
                theta,
                X,
                target,
                state,
                self.mem,
                self.ints,
                self.mask,
                g,
                lr,
                clip,
                Y,
                E,
                self.grad,
                self.last,
                self.work,
                *self.cell,
            )
        return Y, E, done

    def save(self) -> tuple[_Array, _Array, _Array, _Array]:
        """Return a copy of what ``restore`` puts back."""
        return self.mem.copy(), self.ints.copy(), self.grad.copy(), self.last.copy()

    def restore(self, saved: tuple[_Array, _Array, _Array, _Array]) -> None:
        """Put back what ``save`` returned."""
        self.mem[...], self.ints[...], self.grad[...], self.last[...] = saved

    def gradient(self) -> tuple[_Array, _Array, _Array, _Array | None, _Array | None]:
        """Return the sum of the per-step estimates: new U, W, V, b, c (b, c None without biases)."""
        return tuple(  # type: ignore[return-value]
            None if a is None else a.copy() for a in _views(self.grad, *self.sizes)
        )

    def estimate(self) -> tuple[_Array, _Array, _Array, _Array | None, _Array | None]:
        """Return the last step's estimate (zeros before the first): new U, W, V, b, c."""
        return tuple(  # type: ignore[return-value]
            None if a is None else a.copy() for a in _views(self.last, *self.sizes)
        )


# ---------------------------------------------------------------------- dynamics (crnn.dynamics)


def state_jacobians(
    theta: _Array,
    size: _Size,
    X: _Array,
    P: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    inputs: bool = False,
) -> tuple[_Array, _Array, _Array | None]:
    """Return F(P[r]) (R, d), dF/ds (R, d, d) and, with ``inputs``, dF/dx (R, d, n).

    The state map F(s) = (1 - a) s + a f(U x + W s + b) and its Jacobians at
    R independent points: the inputs X (R, n) and the states P (R, d) they
    meet (``_dyn_jacobians``). The rows run in parallel.
    """
    R = X.shape[0]
    n, d, m = size
    dt = theta.dtype
    check_alloc((R, d, d + (n if inputs else 0) + 1), dt, "the Jacobians")
    S = np.empty((R, d), dtype=dt)
    J = np.empty((R, d, d), dtype=dt)
    Jx = np.empty((R if inputs else 0, d, n), dtype=dt)
    if R:
        nt = threads(n_threads, R, R * d * (n + 2 * d))
        ws = _aligned_empty(_core._dyn_jacobians_work_size(d, nt), dt)
        _kernel("_dyn_jacobians", dt)(theta, X, P, S, J, Jx, ws, m, nt, *cell)
    return S, J, (Jx if inputs else None)


def lyapunov(
    theta: _Array,
    size: _Size,
    X: _Array,
    s0: _Array,
    Q: _Array,
    warmup: int,
    every: int,
    cell: _Cell = ELMAN,
) -> tuple[_Array, _Array, _Array, _Array]:
    """Run Benettin's QR method along X (T, n) from s0 (d,) with the tangent rows Q (k, d).

    ``every`` is the steps between two QRs, or 0 to let the kernel choose
    them as it goes. Returns log |r_ii| of every QR (C, k), the steps after
    the warm-up each QR closes (C,), the final state (d,) and the final
    tangent basis (k, d). T > warmup.
    """
    T = X.shape[0]
    d, k = s0.shape[0], Q.shape[0]
    dt = theta.dtype
    rows = T - warmup if every == 0 else -(-(T - warmup) // every)
    check_alloc((rows, k + 1), dt, "the running Lyapunov estimates")
    logs = np.empty((rows, k), dtype=dt)
    at = np.empty(rows, dtype=np.intp)
    s = s0.copy()
    basis = Q.copy()
    ws = _aligned_empty(_core._dyn_lyapunov_work_size(d, k), dt)
    count = _kernel("_dyn_lyapunov", dt)(
        theta, X, s, basis, warmup, every, logs, at, ws, size[2], *cell
    )
    return logs[:count], at[:count], s, basis


# ---------------------------------------------------------------------- output Jacobians
#
# dY/dtheta in forward mode (crnn/_jacobian.pxi), per-sequence gradients and
# the Gauss-Newton products J^T J and J^T r that Levenberg-Marquardt and the
# Laplace approximation take. Every function returns new arrays.

# The rows of J (m P scalars each) held at once by ``gauss_newton``: it runs
# the data in windows of sequences and steps of at most this many bytes of J,
# carrying the state and the sensitivities from one window to the next.
_GN_BYTES = 16 << 20


def _jacobian_window(
    theta: _Array,
    size: _Size,
    X: _Array,
    s: _Array,
    sens: _Array,
    n_threads: int | None,
    cell: _Cell,
) -> tuple[_Array, _Array, int]:
    """One kernel call: J (N, T, m, P) and Y (N, T, m) of X (N >= 1, T >= 1); s, sens carried."""
    N, T, _ = X.shape
    n, d, m = size
    dt = theta.dtype
    P = theta.shape[0]
    bias = _core._parameter_size(n, d, m) < P
    Q = _core._jacobian_sensitivity_columns(n, d, bias)
    J = np.empty((N, T, m, P), dtype=dt)
    Y = np.empty((N, T, m), dtype=dt)
    work = N * T * d * Q * (d + m)
    nt, key = _choose("jacobian", n_threads, N, work)
    wsize = _core._jacobian_workspace_size(n, d, bias, nt)
    check_alloc((wsize,), dt, "the jacobian workspace")
    ws = _scratch("jacobian", (wsize,), dt)
    run = _kernel("_output_jacobian", dt)
    bad = _timed(key, nt, work, lambda: run(theta, X, s, sens, J, Y, ws, nt, *cell))
    return J, Y, bad


def jacobian_start(theta: _Array, size: _Size, s0: _Array) -> tuple[_Array, _Array]:
    """Return the state and zero sensitivities (N, d, Q) a sequence starts from (copies)."""
    n, d, m = size
    bias = theta.shape[0] > _core._parameter_size(n, d, m)
    Q = _core._jacobian_sensitivity_columns(n, d, bias)
    check_alloc((s0.shape[0], d, Q), theta.dtype, "the sensitivities")
    return s0.copy(), np.zeros((s0.shape[0], d, Q), dtype=theta.dtype)


def output_jacobian(
    theta: _Array,
    size: _Size,
    X: _Array,
    s0: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    carry: tuple[_Array, _Array] | None = None,
) -> tuple[_Array, _Array, int]:
    """Return J = dY/dtheta (N, T, m, P), the outputs Y (N, T, m) and the non-finite count.

    ``carry``: (state, sensitivities) from ``jacobian_start`` to go on from
    (updated in place to those of the last step); None starts afresh from s0.
    """
    N, T, _ = X.shape
    m = size[2]
    P = theta.shape[0]
    check_alloc((N, T, m, P), theta.dtype, "the jacobian")
    if N * T == 0:
        return np.zeros((N, T, m, P), theta.dtype), np.zeros((N, T, m), theta.dtype), 0
    s, sens = jacobian_start(theta, size, s0) if carry is None else carry
    return _jacobian_window(theta, size, X, s, sens, n_threads, cell)


def gauss_newton(
    theta: _Array,
    size: _Size,
    X: _Array | list[_Array],
    target: _Array | list[_Array],
    s0: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    weight: _Array | list[_Array] | None = None,
    diagonal: bool = False,
) -> tuple[_Array, _Array, _Array, int]:
    """Return H = sum w J^T J, v = sum w J^T (Y - target), each sequence's sum w (Y - target)^2.

    X, target (and the weights w, or None for 1): a batch (N, T, .) or lists
    of (T_i, .) arrays. H is (P, P), or its diagonal (P,) when ``diagonal``;
    H and v are float64 whatever the model's dtype. J is never held whole:
    the data runs in windows of sequences and steps, each at most
    _GN_BYTES of J (the state and sensitivities carried across), so the
    memory is O(P^2) (O(P) with ``diagonal``) plus one window. Also returns
    the non-finite count.
    """
    m = size[2]
    P = theta.shape[0]
    dt = theta.dtype
    items: list[tuple[_Array, _Array, _Array, _Array | None]] = []
    if isinstance(X, list):
        for i, x in enumerate(X):
            w = None if weight is None else weight[i][np.newaxis]
            items.append((x[np.newaxis], target[i][np.newaxis], s0[i : i + 1], w))
    else:
        items.append((X, target, s0, weight))  # type: ignore[arg-type]
    check_alloc((P,) if diagonal else (P, P + 1), np.float64, "the Gauss-Newton matrix")
    HV = np.zeros((0, 0) if diagonal else (P, P + 1))  # [H v]: J^T [J r]
    H, v = (np.zeros(P), np.zeros(P)) if diagonal else (HV[:, :P], HV[:, P])
    E = np.zeros(len(X))
    rows = max(1, _GN_BYTES // (m * P * dt.itemsize))  # (sequence, step) rows per window
    bad = 0
    at = 0
    for Xb, tb, sb, wb in items:
        N, T, _ = Xb.shape
        if T == 0:
            at += N
            continue
        nc = max(1, min(N, rows // T))  # sequences per window
        tc = T if nc > 1 else min(T, rows)  # steps per window
        for a in range(0, N, nc):
            b = min(N, a + nc)
            carry = jacobian_start(theta, size, np.ascontiguousarray(sb[a:b]))
            for t0 in range(0, T, tc):
                t1 = min(T, t0 + tc)
                Xw = np.ascontiguousarray(Xb[a:b, t0:t1])
                J, Y, nb = _jacobian_window(theta, size, Xw, *carry, n_threads, cell)
                bad += nb
                R = (Y - tb[a:b, t0:t1]).astype(np.float64)
                if wb is not None:
                    sw = np.sqrt(wb[a:b, t0:t1].astype(np.float64))
                    R *= sw
                E[at + a : at + b] += (R * R).sum(axis=(1, 2))
                # [J r], weighted, float64: H += J^T J and v += J^T r in one product
                Jr = np.empty((J.shape[0] * J.shape[1] * m, P + 1))
                Jr[:, :P] = J.reshape(-1, P)
                Jr[:, P] = R.ravel()
                if wb is not None:
                    Jr[:, :P] *= sw.reshape(-1, 1)
                if diagonal:
                    H += np.einsum("rp,rp->p", Jr[:, :P], Jr[:, :P])
                    v += np.einsum("rp,r->p", Jr[:, :P], Jr[:, P])
                else:
                    _gram(Jr, HV, n_threads)
        at += N
    if diagonal:
        return H, v, E, bad
    H = np.triu(HV[:, :P])  # the kernels summed the upper triangle: J^T J is symmetric
    H += np.triu(H, 1).T
    return H, HV[:, P].copy(), E, bad


def _gram(Jr: _Array, HV: _Array, n_threads: int | None) -> None:
    """HV (P, P + 1) += J^T [J r] (upper triangle) for Jr = [J r] (R, P + 1), float64."""
    P = HV.shape[0]
    work = Jr.shape[0] * P * (P + 1) // 2
    nt, key = _choose("gram", n_threads, -(-P // 8), work)
    Bp = _scratch("gram", (Jr.size,), np.float64)
    run = _kernel("_gram_update", np.float64)
    _timed(key, nt, work, lambda: run(Jr, Bp, HV, nt))


def gradient_per_sequence(
    theta: _Array,
    size: _Size,
    Xs: list[_Array],
    targets: list[_Array],
    s0: _Array,
    g: float,
    method: str,
    n_threads: int | None,
    cell: _Cell = ELMAN,
    weights: list[_Array] | None = None,
) -> tuple[_Array, _Array, _Array, int]:
    """Return each sequence's own gradient: dE_i/dtheta (N, P), dE_i/dS^0_i (N, d), E (N,).

    Xs, targets (and weights): lists of (T_i, .) arrays, the sequences of a
    batch or of a list. Each sequence is its own kernel call (several at
    once on several threads); a sequence's numbers are those it gets alone.
    Also returns the non-finite count.
    """
    N = len(Xs)
    d = size[1]
    dt = theta.dtype
    P = theta.shape[0]
    check_alloc((N, P + d + 1), dt, "the gradients of the sequences")
    grads = np.zeros((N, P), dtype=dt)
    ds0 = np.zeros((N, d), dtype=dt)
    E = np.zeros(N, dtype=dt)
    lengths = [x.shape[0] for x in Xs]
    nt, key, work = _list_threads("gradient_per_sequence", n_threads, lengths, size, 3)
    per = 1 if nt > 1 else n_threads
    bad = [0] * N

    def run(i: int) -> None:
        w = None if weights is None else weights[i]
        bad[i] = _sequence_gradient(
            theta, size, Xs[i], targets[i], s0[i], g, method, per, cell, w, grads[i], ds0[i], E[i:]
        )

    _timed(key, nt, work, lambda: _run_items(nt, N, run))
    return grads, ds0, E, sum(bad)


def activation_slope(h: _Array, act: int, leak: float) -> _Array:
    """Return a f'(z) from h = f(z) by the kernels' own slope (a new array)."""
    out: _Array = np.array(h, order="C")
    if out.size:
        _core._slope_array(out.ravel(), act)
    if leak != 1:
        out *= leak
    return out


def activate(z: _Array, act: int) -> _Array:
    """Return f(z) by the kernels' own activation (a new array)."""
    out: _Array = np.array(z, order="C")
    if out.size:
        _core._activate_array(out.ravel(), act)
    return out


def sensitivities(
    theta: _Array,
    size: _Size,
    X: _Array,
    s0: _Array,
    n_threads: int | None,
    cell: _Cell = ELMAN,
) -> tuple[_Array, _Array, int]:
    """Return S^T (N, d) and dS^T/d[U W b] (N, d, Q) after X (N, T, n), and the non-finite count.

    Runs the Jacobian kernel in windows of steps (of at most _GN_BYTES of
    J each), keeping none of J: memory does not grow with T.
    """
    N, T, _ = X.shape
    m = size[2]
    s, sens = jacobian_start(theta, size, s0)
    bad = 0
    if N == 0:
        return s, sens, 0
    tc = max(1, min(T, _GN_BYTES // (N * m * theta.shape[0] * theta.dtype.itemsize)))
    for t0 in range(0, T, tc):
        Xw = np.ascontiguousarray(X[:, t0 : t0 + tc])
        bad += _jacobian_window(theta, size, Xw, s, sens, n_threads, cell)[2]
    return s, sens, bad
