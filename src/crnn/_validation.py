# SPDX-License-Identifier: BSD-3-Clause
"""Checks and conversions run before any compiled kernel is entered.

The kernels in ``crnn._core`` run with bounds checks off and trust their
arguments completely. Everything a user passes goes through a function here
first; each refusal is a ``TypeError`` or ``ValueError`` (``MemoryError`` for
sizes that cannot be allocated) that names the argument, what was expected and
what came.

The scalar checks are one small declarative family, in the spirit of
scikit-learn's ``utils/_param_validation.py`` (``Interval``): say what a
value must be and the message follows from it.

- :func:`check_int` -- an integer, optionally None, with a lower bound;
- :func:`check_real` -- a finite real number in an interval whose ends may
  be open or closed, optionally None;
- :func:`check_bool` -- True or False (numpy's too);
- :func:`check_lr` -- a learning rate, the one rule for every optimizer;
- :func:`make_rng` -- the one way a seed becomes a numpy Generator.

Each refuses bools where numbers are expected (``True`` is not 1 here),
raises TypeError for a value of the wrong kind and ValueError for one out of
range, and begins its message with the argument's name.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import sys
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import TypeGuard

    from numpy.typing import DTypeLike, NDArray

#: The floating dtypes the kernels are compiled for.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Gradient methods, as the kernels number them.
METHODS = {"bptt": 0, "rtrl": 1}

#: The cell's activations (their kernel codes: crnn._kernels.ACTIVATIONS).
ACTIVATION_NAMES = ("tanh", "relu", "identity", "logistic")


def _describe(value: object) -> str:
    """Name the type of a value for an error message."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}" if np.isscalar(value) else type(value).__name__


# ---------------------------------------------------------------------- scalars

#: The boolean types: refused where a number is expected, the only ones where a flag is.
BOOL_TYPES = (bool, np.bool_)


def is_integer(value: object) -> TypeGuard[numbers.Integral]:
    """Whether value is an integer and not a bool (Python's or numpy's)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, BOOL_TYPES)


def is_real(value: object) -> TypeGuard[numbers.Real]:
    """Whether value is a real number and not a bool (Python's or numpy's)."""
    return isinstance(value, numbers.Real) and not isinstance(value, BOOL_TYPES)


@overload
def check_int(
    value: object, name: str, *, low: int | None = None, allow_none: Literal[False] = False
) -> int: ...
@overload
def check_int(
    value: object, name: str, *, low: int | None = None, allow_none: bool
) -> int | None: ...
def check_int(
    value: object, name: str, *, low: int | None = None, allow_none: bool = False
) -> int | None:
    """Return value as an int >= low (None passes with allow_none).

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        The argument's name, which every message begins with.
    low : int, optional
        The smallest value accepted.
    allow_none : bool, default False
        Accept (and return) None.

    Raises
    ------
    TypeError
        If value is not an integer (floats and bools are refused).
    ValueError
        If value is below low.
    """
    if value is None and allow_none:
        return None
    what = "an integer" if low is None else f"an integer >= {low}"
    what = f"None or {what}" if allow_none else what
    if not is_integer(value):
        raise TypeError(f"{name} must be {what}, got {_describe(value)}")
    value = operator.index(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


@overload
def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: Literal[False] = False,
) -> float: ...
@overload
def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool,
) -> float | None: ...
def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """Return value as a finite float in an interval (None passes with allow_none).

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        The argument's name, which every message begins with.
    low, high : float, optional
        The ends of the interval; None leaves that side unbounded.
    low_open, high_open : bool, default False
        Exclude that end (``low_open=True`` with ``low=0`` means > 0).
    allow_none : bool, default False
        Accept (and return) None.

    Raises
    ------
    TypeError
        If value is not a real number (bools, complex numbers, strings and
        arrays are refused).
    ValueError
        If value is NaN, infinite, an int beyond the float range, or
        outside the interval.
    """
    if value is None and allow_none:
        return None
    span = _interval(low, high, low_open, high_open)
    none = "None or " if allow_none else ""
    if not is_real(value):
        raise TypeError(f"{name} must be {none}a real number{span}, got {_describe(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range (too long to print, maybe)
        raise ValueError(
            f"{name} must be a finite real number{span}, got an int beyond it"
        ) from None
    if (
        not math.isfinite(value)
        or (low is not None and (value < low or (low_open and value == low)))
        or (high is not None and (value > high or (high_open and value == high)))
    ):
        raise ValueError(f"{name} must be {none}a finite real number{span}, got {value}")
    return value


def check_lr(lr: object) -> float:
    """Return a learning rate as a finite float >= 0: the one rule of every optimizer.

    0 is a learning rate like any other: no step is taken (``fit`` keeps the
    weights; :class:`crnn.OnlineRTRL` only accumulates ``gradient_sum_``).
    The ``crnn train`` command refuses 0 on its own, as a training command
    that cannot train.
    """
    return check_real(lr, "lr", low=0)


def check_size(value: object, name: str) -> int:
    """Return value as a positive int; refuse bools, floats and values below 1."""
    return check_int(value, name, low=1)


def check_dtype(dtype: object, name: str = "dtype") -> np.dtype[Any]:
    """Return dtype as np.float32 or np.float64, refusing any other."""
    try:
        dt: np.dtype[Any] = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise TypeError(f"{name} must be numpy.float32 or numpy.float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def check_g(g: object, dtype: DTypeLike | None = None) -> float:
    """Return the loss scale g as a finite float > 0 (also once converted to dtype)."""
    if type(g) is float and 1e-30 <= g <= 1e30:  # the common case: > 0 and finite in float32 too
        return g
    g = check_real(g, "g", low=0, low_open=True)
    if dtype is not None:
        with np.errstate(over="ignore", under="ignore"):
            cast = np.dtype(dtype).type(g)  # type: ignore[call-overload]
        if not (np.isfinite(cast) and cast > 0):
            raise ValueError(
                f"g must be a finite number > 0 in the model's dtype {np.dtype(dtype)}, got {g}"
            )
    return g


def check_bool(value: object, name: str) -> bool:
    """Return value if it is True or False (numpy's too); refuse 0, 1, "yes" and the rest."""
    if not isinstance(value, BOOL_TYPES):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_method(method: object) -> int:
    """Return the kernel code of a gradient method name."""
    if not isinstance(method, str):
        raise TypeError(f"method must be 'bptt' or 'rtrl', got {_describe(method)}")
    try:
        return METHODS[method.lower()]
    except KeyError:
        raise ValueError(f"method must be 'bptt' or 'rtrl', got {method!r}") from None


def check_activation(activation: object) -> str:
    """Return the name of an activation of the cell (one of ``ACTIVATION_NAMES``)."""
    if not isinstance(activation, str):
        raise TypeError(
            f"activation must be one of {', '.join(map(repr, ACTIVATION_NAMES))}, "
            f"got {_describe(activation)}"
        )
    if activation not in ACTIVATION_NAMES:
        raise ValueError(
            f"activation must be one of {', '.join(map(repr, ACTIVATION_NAMES))}, "
            f"got {activation!r}"
        )
    return activation


def check_leak(leak: object) -> float:
    """Return the cell's leak rate as a float in (0, 1]."""
    if type(leak) is float and 0 < leak <= 1:  # the common case
        return leak
    return check_real(leak, "leak", low=0, high=1, low_open=True)


def check_sample_weight(
    sample_weight: object,
    dtype: DTypeLike,
    shape: tuple[int, int, int],
    batched: bool,
    name: str = "sample_weight",
) -> NDArray[Any] | None:
    """Return sample_weight as weights of the squared errors, of ``shape`` (N, T, m), or None.

    Accepted: (T,) per step (shared by the sequences of a batch), (N, T) per
    sequence and step for a batch, or the full (T, m) / (N, T, m); each is
    broadcast over the axes it lacks. Values must be finite and >= 0.
    """
    if sample_weight is None:
        return None
    N, T, m = shape
    w = as_float_array(sample_weight, name, dtype, (1, 2, 3) if batched else (1, 2))
    forms: dict[int, tuple[tuple[int, ...], str]]
    if batched:
        forms = {1: ((T,), "(T,)"), 2: ((N, T), "(N, T)"), 3: ((N, T, m), "(N, T, m)")}
    else:
        forms = {1: ((T,), "(T,)"), 2: ((T, m), "(T, m)")}
    expected, _ = forms[w.ndim]
    if w.shape != expected:
        allowed = " or ".join(f"{form} = {dims}" for dims, form in forms.values())
        raise ValueError(f"{name} must have shape {allowed}, got {w.shape}")
    if (w < 0).any():
        raise ValueError(f"{name} must be >= 0, got a negative weight")
    if batched and w.ndim == 1:
        w = w[np.newaxis, :, np.newaxis]
    elif w.ndim == (2 if batched else 1):
        w = w[..., np.newaxis]
    if not batched:
        w = w[np.newaxis]
    check_alloc(shape, dtype, "the sample weights")
    return np.ascontiguousarray(np.broadcast_to(w, shape))


def available_cpus() -> int:
    """Return the number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Threads a call never exceeds, however many are asked for, unless the
#: machine has more CPUs: each OpenMP thread reserves a stack, and a process
#: that cannot start one is aborted by the OpenMP runtime (no exception), so
#: ``n_threads=10**6`` must not reach it. Results do not depend on the count.
MAX_THREADS = 64


def max_threads() -> int:
    """Return the most threads a call uses: MAX_THREADS, or the CPU count if larger."""
    return max(MAX_THREADS, available_cpus())


@overload
def check_n_threads(n_threads: None) -> None: ...
@overload
def check_n_threads(n_threads: int) -> int: ...
@overload
def check_n_threads(n_threads: object) -> int | None: ...
def check_n_threads(n_threads: object) -> int | None:
    """Validate a thread count with scikit-learn's conventions.

    None means "choose" (returned as None); a positive integer is used as
    given, up to :func:`max_threads`; -1 means all available CPUs, -2 all but
    one, and so on (never fewer than one); 0 is refused.
    """
    if n_threads is None:
        return None
    if not is_integer(n_threads):
        raise TypeError(f"n_threads must be None or a non-zero integer, got {_describe(n_threads)}")
    n_threads = operator.index(n_threads)
    if n_threads == 0:
        raise ValueError("n_threads must be None or a non-zero integer, got 0")
    if n_threads < 0:
        return max(1, available_cpus() + 1 + n_threads)
    return min(n_threads, max_threads())


def make_rng(seed: object, name: str = "seed") -> np.random.Generator:
    """Return numpy.random.default_rng(seed), refusing a bad seed with its name.

    The one RNG builder of crnn: None (fresh entropy), an int >= 0, or a
    numpy Generator (used as it is), or anything else numpy.random.default_rng
    takes (a SeedSequence, a BitGenerator, a sequence of ints >= 0). Bools
    are refused.
    """
    if isinstance(seed, BOOL_TYPES):
        raise TypeError(f"{name} must be None, an int >= 0 or a numpy Generator, got bool")
    try:
        return np.random.default_rng(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"{name} must be None, an int >= 0 or a numpy Generator, got {_describe(seed)} ({exc})"
        ) from None


def as_real_array(
    value: object, name: str, ndim: int | Iterable[int], hints: Mapping[int, str] | None = None
) -> NDArray[Any]:
    """Return value as an ndarray of real numbers with one of the ranks in ndim (not copied).

    Integer, boolean and floating inputs pass; complex, object, string and
    other non-numeric inputs are refused. ``hints`` maps a wrong rank to a
    text added to its message. pandas objects are read as
    :func:`from_pandas` says.
    """
    if value is None:
        raise TypeError(f"{name} must be an array of numbers, got None")
    if type(value) is not np.ndarray:
        value = from_pandas(value, name, ndim)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be a rectangular array of numbers: {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {arr.dtype}")
    if kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in ndims:
        want = " or ".join(f"{k}-D" for k in ndims)
        hint = (hints or {}).get(arr.ndim, "")
        raise ValueError(f"{name} must be {want}, got {arr.ndim}-D with shape {arr.shape}{hint}")
    return arr


def from_pandas(value: object, name: str, ndim: int | Iterable[int]) -> object:
    """Return a pandas Series or DataFrame as an ndarray; anything else as it is.

    - A Series is one univariate series: (T,) becomes (T, 1) where a
      sequence is expected (``ndim`` holds 2 but not 1); where a vector is
      (``s0``, the ``x`` of one step) it is that vector.
    - A list or tuple that holds Series or DataFrames is a list of
      sequences: each of them is read as a sequence, named ``name[i]``.
    - Columns of pandas' nullable dtypes ("Float64", "Int64", "boolean")
      become their numpy dtype. A missing value in one of them (``pd.NA``)
      is refused, naming the argument, the column and the row, whatever
      ``check_finite`` says; NaN in a numpy float column is a NaN, as in an
      array.

    The index is not read: rows are taken in order. pandas is never
    imported here: a pandas object exists only once pandas has been, so
    without it (and for every ndarray, which never comes here) the cost is
    one dictionary look-up.
    """
    pd = sys.modules.get("pandas")
    if pd is None:
        return value
    pandas_types = (pd.Series, pd.DataFrame)
    if isinstance(value, (list, tuple)):
        for v in value:  # a loop, not any(): no generator to make for a short list
            if isinstance(v, pandas_types):
                return [from_pandas(v, f"{name}[{i}]", 2) for i, v in enumerate(value)]
        return value
    if not isinstance(value, pandas_types):
        return value
    series = isinstance(value, pd.Series)
    frame = value.to_frame() if series else value
    dtypes = list(frame.dtypes)
    numpy_dtypes = [
        dt if isinstance(dt, np.dtype) else getattr(dt, "numpy_dtype", None) for dt in dtypes
    ]
    if not (numpy_dtypes and all(isinstance(dt, np.dtype) for dt in numpy_dtypes)):
        # no column, or one numpy has no dtype for (strings, categories...): what
        # numpy makes of it, refused after if not numbers
        arr = frame.to_numpy()
    else:
        nullable = [j for j, dt in enumerate(dtypes) if not isinstance(dt, np.dtype)]
        if nullable:
            missing = frame.iloc[:, nullable].isna().to_numpy()
            if missing.any():
                i, j = np.argwhere(missing)[0]
                label = frame.index[i]
                label = label.item() if isinstance(label, np.generic) else label
                where = f"index {label!r} (row {i})"
                if not series:
                    where = f"column {frame.columns[nullable[j]]!r}, {where}"
                raise ValueError(
                    f"{name} must not hold missing values; found one at {where} "
                    "(fill or drop them first)"
                )
        arr = frame.to_numpy(dtype=np.result_type(*numpy_dtypes))
    if series:
        ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        return arr if 2 in ndims and 1 not in ndims else arr[:, 0]
    return arr


def as_float_array(
    value: object,
    name: str,
    dtype: DTypeLike,
    ndim: int | Iterable[int],
    check_finite: bool = True,
) -> NDArray[Any]:
    """Return value as a C-contiguous array of dtype with one of the ranks in ndim.

    Integer, boolean and other floating inputs are converted; complex,
    object, string and other non-numeric inputs are refused. The result may
    share memory with the input, so kernels must only read it.
    """
    if (
        type(value) is np.ndarray
        and (value.dtype is dtype or value.dtype == dtype)
        and (value.ndim == ndim if type(ndim) is int else value.ndim in ndim)  # type: ignore[operator]
        and value.flags.c_contiguous
    ):  # already as asked: no conversion, and the rank is right
        arr = value
    else:
        arr = as_real_array(value, name, ndim)
        if arr.dtype != dtype or not arr.flags.c_contiguous:
            # a copy is made: refuse one that cannot fit (a broadcast view may be huge)
            check_alloc(arr.shape, dtype, name)
            with np.errstate(over="ignore"):  # overflow to inf is reported just below
                arr = np.ascontiguousarray(arr, dtype=dtype)
    if check_finite and not np.isfinite(arr).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(
            f"{name} must contain only finite values; found {arr[where]} at index {where} "
            "(pass check_finite=False to skip this check)"
        )
    return arr


def is_sequence_list(value: object) -> bool:
    """Return True when value is a list or tuple of sequences: arrays of rank 2, (T_i, features).

    The form of a batch of sequences of different lengths (a pandas Series
    is a sequence too: see ``from_pandas``). Nested Python lists are not (a
    rectangular nested list is an array, as always).
    """
    if type(value) not in (list, tuple) or not value:
        return False
    pd = sys.modules.get("pandas")
    return all(
        not isinstance(x, (list, tuple))
        and (np.ndim(x) == 2 or (pd is not None and isinstance(x, pd.Series)))
        for x in value  # type: ignore[attr-defined]
    )


def as_sequence_list(
    value: Any,
    name: str,
    dtype: DTypeLike,
    width: int,
    what: str,
    check_finite: bool = True,
) -> list[NDArray[Any]]:
    """Return a list of sequences as C-contiguous (T_i, width) arrays of dtype.

    ``what`` names the width in messages (e.g. "the model's input_size").
    An array (N, T, width) is taken as the list of its N sequences.
    """
    if type(value) not in (list, tuple):
        # a batch (N, T, width) of sequences of one length is a list of N (T, width)
        if value is None or np.ndim(value) != 3:
            raise TypeError(
                f"{name} must be a list of arrays of shape (T_i, {width}), as X is, "
                f"or one array (N, T, {width}), got {_describe(value)}"
            )
        value = list(as_float_array(value, name, dtype, 3, check_finite))
    assert isinstance(value, (list, tuple))
    out = []
    for i, x in enumerate(value):
        arr = as_float_array(
            from_pandas(x, f"{name}[{i}]", 2), f"{name}[{i}]", dtype, 2, check_finite
        )
        if arr.shape[1] != width:
            raise ValueError(
                f"{name}[{i}] must have {width} columns ({what}), got shape {arr.shape}"
            )
        out.append(arr)
    return out


def as_sequence_pairs(
    X: Any,
    target: Any,
    dtype: DTypeLike,
    n: int,
    m: int,
    check_finite: bool = True,
    names: tuple[str, str] = ("X", "target"),
) -> tuple[list[NDArray[Any]], list[NDArray[Any]]]:
    """Return lists of inputs (T_i, n) and targets (T_i, m), one target per sequence of X."""
    nx, nt = names
    Xs = as_sequence_list(X, nx, dtype, n, "the model's input_size", check_finite)
    ts = as_sequence_list(target, nt, dtype, m, "the model's output_size", check_finite)
    if len(ts) != len(Xs):
        raise ValueError(f"{nt} must hold one sequence for each of {nx}'s {len(Xs)}, got {len(ts)}")
    for i, (x, t) in enumerate(zip(Xs, ts, strict=True)):
        if t.shape[0] != x.shape[0]:
            raise ValueError(
                f"{nt}[{i}] must have shape {(x.shape[0], m)} ({nx}[{i}]'s steps and the "
                f"model's output_size), got {t.shape}"
            )
    return Xs, ts


def sequence_weights(
    sample_weight: Any, targets: list[NDArray[Any]], dtype: DTypeLike, name: str = "sample_weight"
) -> list[NDArray[Any]]:
    """Return the weights of a list of sequences: one (T_i, m) array per target (T_i, m).

    Each item is (T_i,) or (T_i, m), checked as :func:`check_sample_weight` checks it.
    """
    if type(sample_weight) not in (list, tuple) or len(sample_weight) != len(targets):
        raise ValueError(
            f"{name} must be a list of {len(targets)} arrays of shape (T_i,) or (T_i, m), "
            "one for each sequence of X"
        )
    weights = []
    for i, (w, t) in enumerate(zip(sample_weight, targets, strict=True)):
        wi = check_sample_weight(w, dtype, (1, *t.shape), False, f"{name}[{i}]")
        assert wi is not None
        weights.append(wi[0])
    return weights


def check_shape(arr: NDArray[Any], name: str, expected: Iterable[int]) -> None:
    """Raise ValueError unless arr.shape equals expected."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {arr.shape}")


def check_alloc(shape: Iterable[int], dtype: DTypeLike, what: str) -> None:
    """Refuse, before allocating, an array that cannot fit in this machine's memory."""
    count = 1
    for s in shape:
        count *= int(s)
    if count <= _SMALL:  # fits anywhere
        return
    nbytes = count * np.dtype(dtype).itemsize
    if count > _MAX_COUNT:
        raise MemoryError(f"{what} of shape {tuple(shape)} has too many elements to index")
    limit = _physical_memory()
    if limit is not None and nbytes > limit:
        raise MemoryError(
            f"{what} of shape {tuple(shape)} needs {nbytes / 2**30:.1f} GiB, more than this "
            f"machine's {limit / 2**30:.1f} GiB of memory"
        )


_MAX_COUNT = np.iinfo(np.intp).max // 8
_SMALL = 1 << 16  # elements: at most 512 KiB
_MEMORY: list[int | None] = []  # the machine's memory in bytes (or None), once known


def _physical_memory() -> int | None:
    if not _MEMORY:
        try:
            _MEMORY.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
            _MEMORY.append(None)
    return _MEMORY[0]
