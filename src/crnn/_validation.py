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
    text added to its message.
    """
    if value is None:
        raise TypeError(f"{name} must be an array of numbers, got None")
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
