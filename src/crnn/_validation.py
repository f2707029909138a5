# SPDX-License-Identifier: BSD-3-Clause
"""Checks and conversions run before any compiled kernel is entered.

The kernels in ``crnn._core`` run with bounds checks off and trust their
arguments completely. Everything a user passes goes through a function here
first; each refusal is a ``TypeError`` or ``ValueError`` (``MemoryError`` for
sizes that cannot be allocated) that names the argument, what was expected and
what came.
"""

import math
import numbers
import operator
import os

import numpy as np

#: The floating dtypes the kernels are compiled for.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Gradient methods, as the kernels number them.
METHODS = {"bptt": 0, "rtrl": 1}


def _describe(value):
    """Name the type of a value for an error message."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}" if np.isscalar(value) else type(value).__name__


def check_size(value, name):
    """Return value as a positive int; refuse bools, floats and values below 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {_describe(value)}")
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def check_dtype(dtype, name="dtype"):
    """Return dtype as np.float32 or np.float64, refusing any other."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be numpy.float32 or numpy.float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def check_g(g, dtype=None):
    """Return the loss scale g as a finite float > 0 (also once converted to dtype)."""
    if isinstance(g, (bool, np.bool_)) or not isinstance(g, numbers.Real):
        raise TypeError(f"g must be a real number > 0, got {_describe(g)}")
    try:
        g = float(g)
    except OverflowError:  # an int beyond the float range (too long to print, maybe)
        raise ValueError("g must be a finite real number > 0, got an int beyond it") from None
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"g must be a finite real number > 0, got {g}")
    if dtype is not None:
        with np.errstate(over="ignore", under="ignore"):
            cast = np.dtype(dtype).type(g)
        if not (np.isfinite(cast) and cast > 0):
            raise ValueError(
                f"g must be a finite number > 0 in the model's dtype {np.dtype(dtype)}, got {g}"
            )
    return g


def check_bool(value, name):
    """Return value if it is True or False (numpy's too); refuse 0, 1, "yes" and the rest."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_method(method):
    """Return the kernel code of a gradient method name."""
    if not isinstance(method, str):
        raise TypeError(f"method must be 'bptt' or 'rtrl', got {_describe(method)}")
    try:
        return METHODS[method.lower()]
    except KeyError:
        raise ValueError(f"method must be 'bptt' or 'rtrl', got {method!r}") from None


def available_cpus():
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


def max_threads():
    """Return the most threads a call uses: MAX_THREADS, or the CPU count if larger."""
    return max(MAX_THREADS, available_cpus())


def check_n_threads(n_threads):
    """Validate a thread count with scikit-learn's conventions.

    None means "choose" (returned as None); a positive integer is used as
    given, up to :func:`max_threads`; -1 means all available CPUs, -2 all but
    one, and so on (never fewer than one); 0 is refused.
    """
    if n_threads is None:
        return None
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be None or a non-zero integer, got {_describe(n_threads)}")
    n_threads = operator.index(n_threads)
    if n_threads == 0:
        raise ValueError("n_threads must be None or a non-zero integer, got 0")
    if n_threads < 0:
        return max(1, available_cpus() + 1 + n_threads)
    return min(n_threads, max_threads())


def make_rng(seed, name="seed"):
    """Return numpy.random.default_rng(seed), refusing a bad seed with its name."""
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{name} must be None, an int >= 0 or a numpy Generator, got bool")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"{name} must be None, an int >= 0 or a numpy Generator, got {_describe(seed)} ({exc})"
        ) from None


def as_real_array(value, name, ndim, hints=None):
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


def as_float_array(value, name, dtype, ndim, check_finite=True):
    """Return value as a C-contiguous array of dtype with one of the ranks in ndim.

    Integer, boolean and other floating inputs are converted; complex,
    object, string and other non-numeric inputs are refused. The result may
    share memory with the input, so kernels must only read it.
    """
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


def check_shape(arr, name, expected):
    """Raise ValueError unless arr.shape equals expected."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {arr.shape}")


def check_alloc(shape, dtype, what):
    """Refuse, before allocating, an array that cannot fit in this machine's memory."""
    count = math.prod(int(s) for s in shape)
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
_MEMORY = []  # the machine's memory in bytes (or None), once known


def _physical_memory():
    if not _MEMORY:
        try:
            _MEMORY.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
            _MEMORY.append(None)
    return _MEMORY[0]
