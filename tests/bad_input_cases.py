"""Bad inputs to every public entry point of crnn, as one table (issue 4, section 1).

Each case is a call and what must come of it: an exception of the given type
whose message matches a pattern (it names the argument at fault), or a
documented result, checked. ``tests/test_bad_input.py`` runs the table in
child processes, so that a crash (segfault, abort, out-of-memory kill, hang)
fails the case that was running instead of ending the test run. This module
is also the child's program::

    python tests/bad_input_cases.py < ids.json

reads a JSON list of case ids and prints, for each, one JSON line when it
starts and one with its outcome, with faulthandler on (a crash prints the
Python stack of the case) and every warning turned into an error.

The documented rules the accepted cases check:

- array arguments of any real dtype (bool, integers, float16/32/64), layout
  (Fortran, strided, negative strides), read-only or given as nested lists
  are converted to the model's dtype: the result is bit for bit that of the
  same values as a C-contiguous array of the model's dtype. float64 data
  given to a float32 model is rounded to float32 first (values beyond its
  range are refused as not finite), float32 data given to a float64 model is
  converted exactly;
- T = 0 or N = 0 give empty outputs, a zero loss and zero gradients (fit and
  partial_fit refuse them: there is nothing to learn from);
- n_threads beyond the machine is capped and changes no bit;
- sizes, counts and flags refuse bools, and floats where an integer is meant.

How the table is organised: every case id begins with its entry point
(``RNN-``, ``from_weights-``, ``assign-``, ``forward-``, ``predict-``,
``loss-``, ``bptt-``/``rtrl-``/``gradient-``, ``fit-``, ``partial_fit-``,
``OnlineRTRL...``, ``step-``, ``state-``, ``generate-``, ``save-``,
``load-``, ``cli-``), then the argument, then the kind of value. The module
has two parts. The first says how cases are made, by kind of argument: the
bad and accepted forms of an array argument (``BAD_ARRAYS``,
``ACCEPTED_ARRAYS``, crossed with one ``Slot`` by ``array_cases``), the bad
and accepted values of numbers, names and flags (``scalar_cases`` and the
value lists ``SIZE_BAD``, ``G_BAD``, ...), weights changed in place
(``weight_in_place_cases``), empty inputs (``empty_cases``) and sizes beyond
memory (``small_machine_case``). The second part makes the cases, one
section per entry point: ``RNN(...)``; ``RNN.from_weights``; assignment of
weights, biases and ``n_threads``; the calls on data (``forward``,
``predict``, ``loss``, ``gradient`` by BPTT and RTRL); ``fit`` and
``partial_fit``; ``OnlineRTRL``; ``step``, ``state`` and ``generate``;
``save`` and ``load``; the command line. An entry point's section holds all
its cases: its array arguments (a list of ``Slot``), its numbers and flags,
its one-off cases, weights changed in place, empty inputs and memory.

How to add a case: in the section of its entry point, add a ``Slot`` to the
section's list for a new array argument, call ``scalar_cases`` for a new
number, name or flag, or call ``add(id, call, raises, match)`` for a
one-off, with an id that begins with the entry point. ``call`` receives a
fresh empty directory; ``match`` is a regex the message must contain
(``named(arg)``: the message begins with the argument's name). A case whose
refusal must come before any allocation passes ``lean=True``; a call that
succeeds gives a ``check`` of its result (a failed assert, or a false
result, fails the case).
"""

import contextlib
import io
import json
import os
import pathlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

if __name__ == "__main__" and os.environ.get("CRNN_TEST_COVERAGE"):
    # the parent runs under coverage (pytest --cov): measure this child too, into
    # a data file beside the parent's, which pytest-cov combines at the end
    import atexit

    import coverage

    _cov_options = json.loads(os.environ["CRNN_TEST_COVERAGE"])
    _coverage = coverage.Coverage(
        data_file=_cov_options["data_file"], data_suffix=True, source=_cov_options["source"]
    )
    _coverage.start()
    atexit.register(lambda: (_coverage.stop(), _coverage.save()))

import crnn  # imported after the coverage of a child has started
from crnn import _io, _validation
from crnn._cli import main as cli_main

# Sizes: N sequences of T steps, input n, state d, output m (m != n).
N, T, n, d, m = 2, 5, 3, 4, 2

_rng = np.random.default_rng(1234)
X3 = _rng.normal(size=(N, T, n))
TG3 = _rng.normal(size=(N, T, m))
S03 = _rng.uniform(-0.9, 0.9, size=(N, d))
X2 = _rng.normal(size=(T, n))
TG2 = _rng.normal(size=(T, m))
S01 = _rng.uniform(-0.9, 0.9, size=d)
B1 = _rng.normal(size=d)  # biases b and c
C1 = _rng.normal(size=m)
for _a in (X3, TG3, S03, X2, TG2, S01, B1, C1):
    _a.flags.writeable = False  # no case may change the shared data


@dataclass(frozen=True)
class Case:
    """One call and what must come of it."""

    id: str
    call: Callable[[pathlib.Path], Any]  # call(a fresh empty directory) -> result
    raises: tuple = ()  # the exception types allowed; () means the call must succeed
    match: str = ""  # a regex the exception's message must contain
    check: Callable[[Any], Any] | None = None  # asserts on the result of a success
    lean: bool = False  # refused before allocating: traced memory must stay small


CASES: list[Case] = []


def add(id, call, raises=(), match="", check=None, lean=False):
    if isinstance(raises, type):
        raises = (raises,)
    CASES.append(Case(id, call, tuple(raises), match, check, lean))


def named(name):
    """A message that begins with the argument's name."""
    return rf"^{re.escape(name)}(?![\w\[])"


def mentions(name):
    """A message that names the argument anywhere."""
    return rf"(?<![\w\[]){re.escape(name)}(?![\w\[])"


# --------------------------------------------------------------------------- helpers

# the models model() and square() made in the running case, with their weights then
CREATED: list = []


def model(dtype=np.float64, **kw):
    rnn = crnn.RNN(n, d, m, dtype=dtype, seed=0, **kw)
    CREATED.append((rnn, weights(rnn)))
    return rnn


def square(dtype=np.float64, **kw):
    """A model whose output can be fed back as its input (for generate)."""
    rnn = crnn.RNN(n, d, n, dtype=dtype, seed=0, **kw)
    CREATED.append((rnn, weights(rnn)))
    return rnn


def weights(rnn):
    """Copies of the model's parameters: U, W, V, and b, c when it has biases."""
    names = ("U", "W", "V", "b", "c") if rnn.bias else ("U", "W", "V")
    return [getattr(rnn, k).copy() for k in names]


# the calls on data, by entry point: call(rnn, X, target, s0=None, **kw)
DATA_CALLS = {
    "forward": lambda r, X, tg, s0=None, **kw: r.forward(X, s0, **kw),
    "predict": lambda r, X, tg, s0=None, **kw: r.predict(X, s0, **kw),
    "loss": lambda r, X, tg, s0=None, **kw: r.loss(X, tg, s0, **kw),
    "bptt": lambda r, X, tg, s0=None, **kw: r.gradient(X, tg, s0, **kw),
    "rtrl": lambda r, X, tg, s0=None, **kw: r.gradient(X, tg, s0, method="rtrl", **kw),
}


def keeps(rnn, fn):
    """Run fn(); if it raises, first check that the model's weights were not touched."""
    before = weights(rnn)
    try:
        return fn()
    except Exception:
        for a, b in zip(weights(rnn), before, strict=True):
            if not np.array_equal(a, b, equal_nan=True):
                raise AssertionError("a refused call changed the weights") from None
        raise


def flat(result):
    """The arrays and numbers of a result, as a flat list.

    A list of arrays of one shape (what a list of sequences of one length
    gives, one array per sequence) counts as their stack: X given as a list
    of arrays must give, sequence by sequence, the batch's results.
    """
    if (
        isinstance(result, list)
        and result
        and all(isinstance(r, np.ndarray) and r.shape == result[0].shape for r in result)
    ):
        return [np.stack(result)]
    if isinstance(result, (tuple, list)):
        return [x for r in result for x in flat(r)]
    if isinstance(result, crnn.Gradient):
        return [result.U, result.W, result.V, result.s0, result.loss]
    if isinstance(result, crnn.RNN):
        return weights(result)
    if isinstance(result, crnn.OnlineRTRL):
        return [*weights(result.model), result.state]
    return [result]


def assert_same(got, want):
    got, want = flat(got), flat(want)
    assert len(got) == len(want), (len(got), len(want))
    for a, b in zip(got, want, strict=True):
        if isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray), type(a)
            assert a.dtype == b.dtype, (a.dtype, b.dtype)
            assert a.shape == b.shape, (a.shape, b.shape)
            assert np.array_equal(a, b, equal_nan=True), "values differ"
        else:
            assert type(a) is type(b), (a, b)
            assert a == b or (np.isnan(a) and np.isnan(b)), (a, b)


def snapshot(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    return value


def unchanged(value, snap):
    if isinstance(value, np.ndarray):
        return value.dtype == snap.dtype and np.array_equal(value, snap)
    if isinstance(value, list):
        return len(value) == len(snap) and all(
            unchanged(a, b) for a, b in zip(value, snap, strict=False)
        )
    return value == snap


def huge(shape, dtype=np.float64):
    """A read-only view of zeros of any shape, taking no memory."""
    return np.broadcast_to(np.zeros((1,) * len(shape), dtype=dtype), shape)


@contextlib.contextmanager
def small_machine(nbytes=2**20):
    """Pretend the machine has `nbytes` of memory, so the size checks are reached cheaply."""
    saved = _validation._physical_memory
    _validation._physical_memory = lambda: nbytes
    try:
        yield
    finally:
        _validation._physical_memory = saved


# ===========================================================================
# how the cases are made
# ===========================================================================

# --------------------------------------------------------------------------- array arguments

# Bad values for an array argument: kind -> (make(clean), exception). Each must be
# refused with a message that begins with the argument's name.
BAD_ARRAYS = {
    "python-float": (lambda a: 1.0, ValueError),
    "numpy-scalar": (lambda a: np.float64(1.0), ValueError),
    "empty-list": (lambda a: [], ValueError),
    "str": (lambda a: "1.0", TypeError),
    "bytes": (lambda a: b"1", TypeError),
    "dict": (lambda a: {"a": 1}, TypeError),
    "object-array": (lambda a: a.astype(object), TypeError),
    "str-array": (lambda a: a.astype(str), TypeError),
    "bytes-array": (lambda a: a.astype(bytes), TypeError),
    "complex-array": (lambda a: a.astype(np.complex128), TypeError),
    "complex64-array": (lambda a: a.astype(np.complex64), TypeError),
    "complex-list": (lambda a: a.astype(complex).tolist(), TypeError),
    "datetime-array": (lambda a: np.zeros(a.shape, dtype="datetime64[s]"), TypeError),
    "timedelta-array": (lambda a: np.zeros(a.shape, dtype="timedelta64[s]"), TypeError),
    "void-array": (lambda a: np.zeros(a.shape, dtype="V8"), TypeError),
    "structured-array": (lambda a: np.zeros(a.shape, dtype=[("x", "f8")]), TypeError),
    "list-with-None": (lambda a: _with(a.tolist(), None), TypeError),
    "list-with-str": (lambda a: _with(a.tolist(), "x"), TypeError),
    "list-of-numeric-str": (lambda a: a.astype(str).tolist(), TypeError),
    "nan": (lambda a: _set(a, np.nan), ValueError),
    "+inf": (lambda a: _set(a, np.inf), ValueError),
    "-inf": (lambda a: _set(a, -np.inf), ValueError),
    "nan-in-int-list": (lambda a: _with(np.rint(a).astype(int).tolist(), float("nan")), ValueError),
    "inf-in-int-list": (lambda a: _with(np.rint(a).astype(int).tolist(), float("inf")), ValueError),
    "inf-float32": (lambda a: _set(a.astype(np.float32), np.inf), ValueError),
}
# ... and ragged nested lists, for arguments of two or more axes
BAD_ARRAYS_2D = {
    "ragged-list": (lambda a: _ragged(a.tolist()), ValueError),
}


def _set(a, value, where=-1):
    a = np.array(a)
    a.reshape(-1)[where] = value
    return a


def _with(nested, value):
    """Replace the last number of a nested list by value."""
    inner = nested
    while isinstance(inner[-1], list):
        inner = inner[-1]
    inner[-1] = value
    return nested


def _ragged(nested):
    """Drop the last number of the last innermost list."""
    inner = nested
    while isinstance(inner[-1], list) and isinstance(inner[-1][-1], list):
        inner = inner[-1]
    inner[-1] = inner[-1][:-1]
    return nested


def _strided(a):
    big = np.full((2 * a.shape[0], *a.shape[1:]), 99.0)
    big[::2] = a
    return big[::2]


def _strided_last(a):
    big = np.full((*a.shape[:-1], 2 * a.shape[-1]), 99.0)
    big[..., ::2] = a
    return big[..., ::2]


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _reversed(a):
    r = np.array(a[::-1])[::-1]  # a's values, seen through a negative stride
    assert r.strides[0] < 0
    return r


def _rounded(dtype):
    def make(a):
        v = (np.rint(4 * a) if np.dtype(dtype).kind in "iub" else a).astype(dtype)
        return v, v

    return make


# Accepted forms of an array argument: kind -> make(clean) -> (value, the same values as an
# array the call converts exactly). The call must give bit for bit the result of the second.
ACCEPTED_ARRAYS = {
    "c-contiguous": lambda a: (np.array(a), a),  # clean float64: still neither kept nor changed
    "fortran": lambda a: (np.asfortranarray(a), a),
    "strided": lambda a: (_strided(a), a),
    "strided-last-axis": lambda a: (_strided_last(a), a),
    "negative-stride": lambda a: (_reversed(a), a),
    "read-only": lambda a: (_read_only(a), a),
    "int64": _rounded(np.int64),
    "int8": _rounded(np.int8),
    "uint8": lambda a: ((np.abs(np.rint(4 * a))).astype(np.uint8),) * 2,
    "bool": lambda a: (a > 0, a > 0),
    "float32": _rounded(np.float32),
    "float16": _rounded(np.float16),
    "nested-list": lambda a: (a.tolist(), a),
    "list-of-arrays": lambda a: (list(a), a),
}


@dataclass(frozen=True)
class Slot:
    """One array argument of one entry point, and how to call it with any value."""

    id: str  # entry-argument
    name: str  # the name its messages begin with
    clean: np.ndarray  # a valid value (float64)
    call: Callable[[Any], Any]  # call(value) -> result
    wrong_shapes: tuple = ()  # shapes refused with ValueError
    dtype: Any = np.float64  # the model's dtype
    finite: bool = True  # NaN and infinity are refused
    none: Any = None  # what None means: None (refused, TypeError), a default, or a regex
    accepted: bool = True  # the accepted forms give the result of the clean value

    @property
    def keeps_weights(self):
        """The call leaves the weights of the models it makes as they were."""
        return not self.id.startswith(("fit", "partial_fit", "OnlineRTRL", "assign"))


def array_cases(slot):
    clean = slot.clean
    bad = dict(BAD_ARRAYS)
    if clean.ndim >= 2:
        bad.update(BAD_ARRAYS_2D)
    if not slot.finite:
        for k in ("nan", "+inf", "-inf", "nan-in-int-list", "inf-in-int-list", "inf-float32"):
            bad.pop(k)
    for kind, (make, exc) in bad.items():
        add(
            f"{slot.id}-{kind}",
            lambda tmp, make=make: slot.call(make(np.array(clean))),
            exc,
            named(slot.name),
        )
    if slot.none is None:  # a required argument
        add(f"{slot.id}-None", lambda tmp: slot.call(None), TypeError, named(slot.name))
    elif isinstance(slot.none, str):  # None conflicts with another argument
        add(f"{slot.id}-None", lambda tmp: slot.call(None), ValueError, slot.none)
    else:  # None means a default value
        add(
            f"{slot.id}-None-is-the-default",
            lambda tmp: (slot.call(None), slot.call(slot.none)),
            check=lambda r: assert_same(*r),
        )
    for shape in slot.wrong_shapes:
        add(
            f"{slot.id}-shape{shape}",
            lambda tmp, shape=shape: slot.call(np.zeros(shape)),
            ValueError,
            named(slot.name),
        )
    # a value whose conversion would not fit in memory: refused before it is made
    big = (10**12, *clean.shape[1:]) if clean.ndim > 1 else (10**12,)
    add(
        f"{slot.id}-too-large-to-convert",
        lambda tmp: slot.call(huge(big)),
        MemoryError,
        mentions(slot.name) + ".*GiB",
        lean=True,
    )
    # ... or that has more elements than a C index reaches (2**61 > 2**63 / 8)
    many = {1: (2**61,), 2: (2**31, 2**30), 3: (2**21, 2**20, 2**20)}[clean.ndim]
    add(
        f"{slot.id}-too-many-elements",
        lambda tmp: slot.call(huge(many, np.int8)),  # a float64 view that big cannot exist
        MemoryError,
        mentions(slot.name) + ".*too many elements",
        lean=True,
    )
    if np.dtype(slot.dtype) == np.float32:
        add(
            f"{slot.id}-beyond-float32",
            lambda tmp: slot.call(_set(clean, 1e39)),
            ValueError,
            named(slot.name) + ".*finite",
        )
    for kind, make in ACCEPTED_ARRAYS.items() if slot.accepted else ():

        def call(tmp, make=make, kind=kind):
            value, same = make(np.array(clean))
            exact = np.ascontiguousarray(same, dtype=slot.dtype)
            snap = snapshot(value)
            CREATED.clear()
            got = slot.call(value)
            assert unchanged(value, snap), "the input was modified"
            if slot.keeps_weights:
                for rnn, before in CREATED:
                    assert_same(weights(rnn), before)  # the weights were not modified
            if isinstance(value, np.ndarray):
                for r in flat(got):
                    assert not (isinstance(r, np.ndarray) and np.shares_memory(r, value)), (
                        "a result shares memory with the input"
                    )
            if kind == "list-of-arrays" and exact.ndim == 3:
                # a list of sequences: the same list of exactly converted arrays
                # (a list's gradient is its sequences', added one by one)
                return got, slot.call(list(exact))
            return got, slot.call(exact)

        add(f"{slot.id}-accepts-{kind}", call, check=lambda r: assert_same(*r))
    if np.dtype(slot.dtype) == np.float32:

        def call64(tmp):
            return slot.call(np.array(clean, dtype=np.float64)), slot.call(clean.astype(np.float32))

        add(
            f"{slot.id}-float64-data-is-rounded-to-float32", call64, check=lambda r: assert_same(*r)
        )


def _fit(rnn, X, target, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("seed", 0)
    return keeps(rnn, lambda: rnn.fit(X, target, **kw))


def _partial(X, target, dtype=np.float64, **kw):
    rnn = model(dtype)
    return keeps(rnn, lambda: rnn.partial_fit(X, target, **kw))


def _learn(X, target, dtype=np.float64):
    trainer = crnn.OnlineRTRL(model(dtype), lr=0.05)
    rnn = trainer.model
    Y = keeps(rnn, lambda: trainer.learn(X, target))
    return Y, trainer


def _stored(rnn, name, value):
    """The parameter the model keeps for an accepted value: its own C-contiguous copy."""
    kept = getattr(rnn, name)
    assert kept.flags.c_contiguous, "the parameter kept is not C-contiguous"
    assert kept.flags.writeable, "the parameter kept is read-only"
    if isinstance(value, np.ndarray):
        assert not np.shares_memory(kept, value), "the parameter kept is the caller's array"
    return kept


def _assign(name, dtype=np.float64, bias=False):
    def call(value):
        rnn = model(dtype, bias=bias)
        try:
            keeps(rnn, lambda: setattr(rnn, name, value))
        except Exception:
            rnn.forward(X2)  # a refused assignment leaves a working model
            raise
        return rnn.forward(X3), _stored(rnn, name, value)

    return call


def _from_weights(name, dtype=np.float64):
    def call(value):
        w = dict(zip("UWV", weights(model()), strict=True))
        if name in ("b", "c"):
            w.update(b=B1, c=C1)
        w[name] = value
        rnn = crnn.RNN.from_weights(w["U"], w["W"], w["V"], dtype=dtype, b=w.get("b"), c=w.get("c"))
        return rnn.forward(X3), _stored(rnn, name, value)

    return call


def _state(value):
    rnn = model()
    rnn.state = value
    return rnn.step(X3[:, 0]), rnn.state


def _online_state(value):
    trainer = crnn.OnlineRTRL(model())
    trainer.state = value
    return trainer.step(X2[0], TG2[0]), trainer


def _generate_s0(value):
    return square().generate(4, x0=X3[:, 0], s0=value)


# wrong shapes shared by the calls on data: X; a batch's target and s0; one sequence's
X_SHAPES = ((n,), (T, n - 1), (T, n + 1), (N, T, n + 2), (1, N, T, n))
TARGET_SHAPES = (
    (N + 1, T, m),
    (N - 1, T, m),
    (N, T - 1, m),
    (N, T + 1, m),
    (N, T, m + 1),
    (T, m),
    (1, N, T, m),
)
TARGET_SHAPES_SINGLE = ((T + 1, m), (T, m + 1), (1, T, m), (T,))
S0_SHAPES = ((N + 1, d), (1, d), (N, d - 1), (N, d + 1), (d, N), (N, 1, d), (d + 1,))
S0_SHAPES_SINGLE = ((1, d), (d - 1,), (d + 1,), (N, d))


def weight_shapes(rows, cols):
    """Wrong shapes for a weight of shape (rows, cols): a column or a row more, 1-D, 3-D."""
    return ((rows, cols + 1), (rows + 1, cols), (rows * cols,), (1, rows, cols))


# ------------------------------------------------------------------------ numbers, names and flags


def scalar_cases(entry, name, call, bad, accepted=(), match=None, lean=False):
    """Cases for one non-array argument: call(value) makes the call.

    bad: (kind, value, exception) triples; accepted: (kind, value, equivalent)
    triples whose call must give bit for bit the result of the equivalent.
    """
    for kind, value, exc in bad:
        add(
            f"{entry}-{name}-{kind}",
            lambda tmp, v=value: call(v),
            exc,
            match or named(name),
            lean=lean,
        )
    for kind, value, same in accepted:
        add(
            f"{entry}-{name}-accepts-{kind}",
            lambda tmp, v=value, s=same: (call(v), call(s)),
            check=lambda r: assert_same(*r),
        )


# the flags check_finite and return_state: True or False, numpy bools included
FLAG_BAD = [
    ("int", 1, TypeError),
    ("zero", 0, TypeError),
    ("string", "yes", TypeError),
    ("None", None, TypeError),
    ("array", np.ones(1), TypeError),
]
FLAG_OK = [("numpy-False", np.bool_(False), False), ("numpy-True", np.bool_(True), True)]

SIZE_BAD = [
    ("zero", 0, ValueError),
    ("negative", -1, ValueError),
    ("very-negative", -(10**30), ValueError),
    ("float", 3.0, TypeError),
    ("numpy-float", np.float64(3.0), TypeError),
    ("bool", True, TypeError),
    ("numpy-bool", np.bool_(True), TypeError),
    ("str", "3", TypeError),
    ("complex", 3 + 0j, TypeError),
    ("array", np.array([3]), TypeError),
    ("0d-array", np.array(3), TypeError),
    ("list", [3], TypeError),
    ("fraction", __import__("fractions").Fraction(3, 1), TypeError),
]
SIZE_OK = [("int64", np.int64(3), 3), ("uint8", np.uint8(3), 3), ("int32", np.int32(3), 3)]

DTYPE_BAD = [
    ("int", int, ValueError),
    ("int32", np.int32, ValueError),
    ("bool", bool, ValueError),
    ("float16", np.float16, ValueError),
    ("float16-str", "float16", ValueError),
    ("longdouble", np.longdouble, ValueError),
    ("complex", complex, ValueError),
    ("complex64", np.complex64, ValueError),
    ("object", object, ValueError),
    ("str-type", str, ValueError),
    ("unknown-name", "foo", TypeError),
    ("number", 3, TypeError),
]
DTYPE_OK = [
    ("float32", np.float32, np.float32),
    ("float64", np.float64, np.float64),
    ("str-float32", "float32", np.float32),
    ("f8", "f8", np.float64),
    ("float", float, np.float64),
    ("dtype-object", np.dtype("<f4"), np.float32),
]


def _with_dtype(make, want):
    """The model's dtype, its parameters' and its results' are all `want`."""

    def call(tmp):
        rnn = make()
        S, Y = rnn.forward(X3)
        return rnn, [rnn.dtype, *(a.dtype for a in (*weights(rnn), S, Y))], np.dtype(want)

    def check(r):
        _rnn, got, want = r
        assert all(t == want for t in got), (got, want)

    return call, check


def dtype_cases(entry, make):
    """The dtype argument of one constructor: make(dtype) builds a model."""
    scalar_cases(entry, "dtype", make, DTYPE_BAD)
    for kind, value, want in DTYPE_OK:
        call, check = _with_dtype(lambda v=value: make(v), want)
        add(f"{entry}-dtype-accepts-{kind}", call, check=check)
        if value is not want:  # ... and the same weights as the dtype itself
            add(
                f"{entry}-dtype-accepts-{kind}-as-{np.dtype(want).name}",
                lambda tmp, v=value, w=want: (make(v), make(w)),
                check=lambda r: assert_same(*r),
            )


N_THREADS_BAD = [
    ("zero", 0, ValueError),
    ("float", 1.5, TypeError),
    ("whole-float", 2.0, TypeError),
    ("str", "2", TypeError),
    ("bool", True, TypeError),
    ("list", [2], TypeError),
    ("complex", 2j, TypeError),
]
# any accepted count gives the bits of one thread; counts beyond the machine are capped
N_THREADS_OK = [
    (f"{k}", k, 1)
    for k in (2, 3, -1, -2, -1000, -(10**30), 10**4, 10**6, 10**30, np.int64(7), np.uint16(5), None)
]

SEED_BAD = [
    ("str", "abc", TypeError),
    ("float", 1.5, TypeError),
    ("negative", -1, ValueError),
    ("bool", True, TypeError),
    ("complex", 1j, TypeError),
    ("dict", {}, TypeError),
]
SEED_OK = [
    ("numpy-int", np.int64(3), 3),
    ("generator", "generator-7", 7),
]


def _seeded(make):
    def call(v):
        if isinstance(v, str) and v.startswith("generator-"):
            v = np.random.default_rng(int(v.split("-")[1]))
        return make(v)

    return call


G_BAD = [
    ("zero", 0, ValueError),
    ("zero-float", 0.0, ValueError),
    ("negative", -1.0, ValueError),
    ("negative-zero", -0.0, ValueError),
    ("nan", np.nan, ValueError),
    ("numpy-nan", np.float32(np.nan), ValueError),
    ("+inf", np.inf, ValueError),
    ("-inf", -np.inf, ValueError),
    ("int-beyond-float", 10**400, ValueError),
    ("int-too-long-to-print", 10**5000, ValueError),
    ("str", "1.0", TypeError),
    ("bool", True, TypeError),
    ("numpy-bool", np.bool_(True), TypeError),
    ("None", None, TypeError),
    ("complex", 1 + 0j, TypeError),
    ("list", [1.0], TypeError),
    ("array", np.array([1.0]), TypeError),
]
G_OK = [("int", 2, 2.0), ("float32", np.float32(2.0), 2.0), ("int64", np.int64(2), 2.0)]


def g_cases(entry, call, call_f32, float64_too=False):
    """The loss scale g of one entry point: call(g) with a float64 model, call_f32(g) float32."""
    scalar_cases(entry, "g", call, G_BAD, G_OK)
    # finite and positive in the model's dtype
    scalar_cases(
        entry + "-float32",
        "g",
        call_f32,
        [("overflows-float32", 1e39, ValueError), ("underflows-float32", 1e-50, ValueError)],
    )
    if float64_too:  # ... where the same values are fine in float64
        for kind, g in (("1e39", 1e39), ("1e-50", 1e-50)):
            add(
                f"{entry}-g-accepts-{kind}-in-float64",
                lambda tmp, g=g: flat(call(g))[-1],
                check=lambda r: type(r) is float and np.isfinite(r),
            )


METHOD_BAD = [
    ("unknown", "adjoint", ValueError),
    ("empty", "", ValueError),
    ("padded", " bptt", ValueError),
    ("None", None, TypeError),
    ("int", 1, TypeError),
    ("zero", 0, TypeError),
    ("bytes", b"bptt", TypeError),
]
# any case: the gradient's method is the lower-case name, and its values those of that name
METHOD_OK = [
    ("upper-case", "BPTT", "bptt"),
    ("mixed-case-bptt", "Bptt", "bptt"),
    ("upper-case-rtrl", "RTRL", "rtrl"),
    ("mixed-case", "Rtrl", "rtrl"),
    ("mixed-case-rtrl", "rTrL", "rtrl"),
]


def _gradient_and_method(v):
    G = model().gradient(X3, TG3, method=v)
    return G, G.method


COUNT_BAD = [
    ("zero", 0, ValueError),
    ("negative", -1, ValueError),
    ("float", 2.0, TypeError),
    ("bool", True, TypeError),
    ("str", "2", TypeError),
    ("complex", 2j, TypeError),
]

REAL_BAD = [
    ("nan", np.nan, ValueError),
    ("-inf", -np.inf, ValueError),
    ("bool", True, TypeError),
    ("str", "0.1", TypeError),
    ("complex", 0.1j, TypeError),
    ("list", [0.1], TypeError),
]

OPTIMIZER_BAD = [
    ("unknown", "rmsprop", ValueError),
    ("empty", "", ValueError),
    ("None", None, TypeError),
    ("int", 1, TypeError),
    ("class", object, TypeError),
]


# ------------------------------------------------------------------------ weights changed in place


def _poisoned(make, name, value):
    rnn = make()
    getattr(rnn, name)[-1, 0] = value
    return rnn


def _poisoned_after_a_call(call, make, name, value):
    """A model that has served one call, then has a weight set to value in place."""
    rnn = make()
    call(rnn)  # fine before the change: nothing checked earlier may be trusted now
    getattr(rnn, name)[-1, 0] = value
    return call(rnn)


def _reshaped(make, name, shape=None):
    """A model whose weight is given another shape in place (flattened by default)."""
    import warnings

    rnn = make()
    w = getattr(rnn, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # setting .shape, in newer numpy
        w.shape = shape or (w.size,)
    return rnn


def _read_only_weight(make, name):
    rnn = make()
    getattr(rnn, name).flags.writeable = False
    return rnn


def weight_in_place_cases(entry, make, call, training=False):
    """Weights changed in place between calls: call(make()) must see it.

    A training call (it updates the weights in place) refuses read-only weights;
    the others read them.
    """
    for name in "UWV":
        for kind, value in (("nan", np.nan), ("+inf", np.inf), ("-inf", -np.inf)):
            add(
                f"{entry}-weight-{name}-set-to-{kind}-in-place",
                lambda tmp, w=name, v=value: call(_poisoned(make, w, v)),
                ValueError,
                named(name) + ".*finite",
            )
            add(
                f"{entry}-weight-{name}-set-to-{kind}-in-place-after-a-call",
                lambda tmp, w=name, v=value: _poisoned_after_a_call(call, make, w, v),
                ValueError,
                named(name) + ".*finite",
            )
        add(
            f"{entry}-weight-{name}-reshaped-in-place",
            lambda tmp, w=name: call(_reshaped(make, w)),
            ValueError,
            named(name) + ".*shape",
        )
        # other 2-D shapes of the same size: the transpose, one row
        shape = getattr(make(), name).shape
        for kind, other in (("transposed", shape[::-1]), ("one-row", (1, shape[0] * shape[1]))):
            if other != shape:
                add(
                    f"{entry}-weight-{name}-{kind}-in-place",
                    lambda tmp, w=name, sh=other: call(_reshaped(make, w, sh)),
                    ValueError,
                    named(name) + ".*shape",
                )
        if training:
            add(
                f"{entry}-weight-{name}-read-only",
                lambda tmp, w=name: call(_read_only_weight(make, w)),
                ValueError,
                named(name) + ".*read-only",
            )
        else:  # reading read-only weights is fine
            add(
                f"{entry}-weight-{name}-read-only",
                lambda tmp, w=name: (call(_read_only_weight(make, w)), call(make())),
                check=lambda r: assert_same(*r),
            )


# --------------------------------------------------------------------------- empty inputs


def _empty_check(shape_S, shape_Y, dtype):
    def check(r):
        S, Y = r
        assert (S.shape, Y.shape) == (shape_S, shape_Y)
        assert S.dtype == Y.dtype == dtype, (S.dtype, Y.dtype)

    return check


def _zero_gradient(shape_s0, dtype, method):
    def check(G):
        assert G.loss == 0.0
        assert G.method == method, G.method
        shapes = ((d, n), (d, d), (m, d), shape_s0)
        for a, shape in zip((G.U, G.W, G.V, G.s0), shapes, strict=True):
            assert (a.shape, a.dtype) == (shape, dtype), (a.shape, a.dtype)
            assert not a.any()

    return check


# (label, X's shape, s0, the shape of the gradient's s0)
EMPTY_INPUTS = [
    ("T0-single", (0, n), None, (d,)),
    ("T0-single-s0", (0, n), S01, (d,)),
    ("T0-batch", (N, 0, n), None, (N, d)),
    ("T0-batch-shared-s0", (N, 0, n), S01, (d,)),
    ("T0-batch-s0", (N, 0, n), np.full((N, d), 0.5), (N, d)),
    ("N0", (0, T, n), None, (0, d)),
    ("N0-shared-s0", (0, T, n), S01, (d,)),
    ("N0-s0", (0, T, n), np.zeros((0, d)), (0, d)),
    ("N0-T0", (0, 0, n), None, (0, d)),
]


def empty_cases(entry):
    """Empty inputs (T = 0, N = 0) to one call on data or training call, in both dtypes."""
    for dtype in (np.float64, np.float32):
        t = np.dtype(dtype).name
        for label, xs, s0, ds0 in EMPTY_INPUTS:
            ts = (*xs[:-1], m)
            X, target = np.zeros(xs), np.zeros(ts)
            if entry == "forward":
                add(
                    f"forward-{t}-{label}",
                    lambda tmp, X=X, s0=s0, dt=dtype: model(dt).forward(X, s0),
                    check=_empty_check((*xs[:-1], d), ts, dtype),
                )
            elif entry == "predict":
                add(
                    f"predict-{t}-{label}",
                    lambda tmp, X=X, s0=s0, dt=dtype: model(dt).predict(X, s0),
                    check=lambda r, ts=ts, dt=dtype: (r.shape, r.dtype) == (ts, dt),
                )
            elif entry == "loss":
                add(
                    f"loss-{t}-{label}",
                    lambda tmp, X=X, tg=target, s0=s0, dt=dtype: model(dt).loss(X, tg, s0),
                    check=lambda r: r == 0.0 and type(r) is float,
                )
            elif entry in ("bptt", "rtrl"):
                add(
                    f"{entry}-{t}-{label}",
                    lambda tmp, X=X, tg=target, s0=s0, dt=dtype: model(dt).gradient(
                        X, tg, s0, method=entry
                    ),
                    check=_zero_gradient(ds0, dtype, entry),
                )
            elif s0 is None:  # fit and partial_fit take no s0, and refuse nothing to learn
                add(
                    f"{entry}-{t}-{label}",
                    lambda tmp, X=X, tg=target, dt=dtype: (
                        _fit(model(dt), X, tg) if entry == "fit" else model(dt).partial_fit(X, tg)
                    ),
                    ValueError,
                    named("X"),
                )


# ------------------------------------------------------------------ more than the machine's memory


def _on_small_machine(fn):
    def call(tmp):
        with small_machine():
            return fn()

    return call


def small_machine_case(id, fn, what, match=None):
    """fn() on a machine of 1 MiB: refused before allocating, naming what does not fit."""
    add(id, _on_small_machine(fn), MemoryError, match or rf"\b{what}\b.*GiB", lean=True)


LONG = np.zeros((1, 40_000, 1))  # 320 kB of input; its states and outputs need 1.6 MB


# ===========================================================================
# the cases, by entry point
# ===========================================================================

# --------------------------------------------------------------------------- RNN(...)

for _i, _arg in enumerate(("input_size", "hidden_size", "output_size")):

    def _make(v, i=_i):
        sizes = [n, d, m]
        sizes[i] = v
        return crnn.RNN(*sizes, seed=0)

    _none = [("None", None, TypeError)] if _arg != "output_size" else []  # None: as input_size
    scalar_cases("RNN", _arg, _make, SIZE_BAD + _none, SIZE_OK)
    # sizes whose weights cannot fit in memory or overflow an index: refused before allocating
    scalar_cases(
        "RNN",
        _arg,
        _make,
        [
            ("too-large-for-memory", 10**12, MemoryError),
            ("too-many-elements", 2**62, MemoryError),
            ("beyond-int64", 2**64 + 1, MemoryError),
            ("googol", 10**100, MemoryError),
        ],
        match=r"\bweight [UWV]\b.*(GiB|too many elements)",
        lean=True,
    )
add(
    "RNN-sizes-accept-numpy-integers-as-ints",
    lambda tmp: crnn.RNN(np.int64(n), np.uint8(d), np.int32(m), seed=0),
    check=lambda r: (
        [(type(s), s) for s in (r.input_size, r.hidden_size, r.output_size)]
        == [(int, n), (int, d), (int, m)]
    ),
)
add(
    "RNN-output_size-accepts-None",
    lambda tmp: crnn.RNN(n, d, None).output_size,
    check=lambda r: r == n,
)
# sizes whose weights would not fit: the weight is named
for _id, _sizes, _dtype, _match in (
    ("input_size-and-hidden_size-1e6", (10**6, 10**6), np.float64, "weight U .*GiB"),
    ("float32-input_size-and-hidden_size-1e6", (10**6, 10**6), np.float32, "weight U .*GiB"),
    ("hidden_size-1e6", (1, 10**6), np.float64, "weight W .*GiB"),
    ("output_size-2**62", (1, 1, 2**62), np.float64, "weight V .*too many"),
    ("input_size-and-hidden_size-2**62", (2**62, 2**62), np.float64, "weight U .*too many"),
):
    add(
        f"RNN-{_id}-too-large",
        lambda tmp, s=_sizes, dt=_dtype: crnn.RNN(*s, dtype=dt),
        MemoryError,
        "^" + _match,
        lean=True,
    )

dtype_cases("RNN", lambda v: crnn.RNN(n, d, m, dtype=v, seed=0))
scalar_cases("RNN", "n_threads", lambda v: model(n_threads=v), N_THREADS_BAD)


def _model_and_bias(v):
    rnn = crnn.RNN(n, d, m, bias=v, seed=0)
    return rnn, rnn.bias


# the bias flag: True or False, numpy bools included; a model without biases has no b, c to set
BIAS_BAD = [
    ("int", 1, TypeError),
    ("zero", 0, TypeError),
    ("str", "True", TypeError),
    ("None", None, TypeError),
    ("float", 1.0, TypeError),
    ("array", np.array([True]), TypeError),
]
scalar_cases(
    "RNN",
    "bias",
    _model_and_bias,
    BIAS_BAD,
    [("numpy-True", np.True_, True), ("numpy-False", np.False_, False)],  # .bias is a bool
    match="^bias must be True or False",
)

scalar_cases("RNN", "seed", _seeded(lambda v: crnn.RNN(n, d, m, seed=v)), SEED_BAD, SEED_OK)

INIT_BAD = [
    ("unknown", "xavier", ValueError),
    ("empty", "", ValueError),
    ("None", None, ValueError),
    ("number", 3, ValueError),
    ("wrong-shape", lambda shape, *a: np.zeros(2), ValueError),
    ("nan", lambda shape, *a: np.full(shape, np.nan), ValueError),
    ("complex", lambda shape, *a: np.ones(shape) * 1j, TypeError),
    ("str", lambda shape, *a: "x", TypeError),
    ("None-result", lambda shape, *a: None, TypeError),
    ("ragged", lambda shape, *a: [[0.0], [0.0, 1.0]], ValueError),
]
scalar_cases(
    "RNN",
    "init",
    lambda v: crnn.RNN(n, d, m, init=v, seed=0),
    INIT_BAD,
    [("upper-case", "UNIFORM", "uniform"), ("Glorot", "Glorot", "glorot")],
)
scalar_cases(
    "RNN-float32",
    "init",
    lambda v: crnn.RNN(n, d, m, init=v, dtype=np.float32, seed=0),
    [("beyond-float32", lambda shape, *a: np.full(shape, 1e300), ValueError)],
)
SPECTRAL_BAD = [
    ("zero", 0, ValueError),
    ("negative", -1.0, ValueError),
    ("nan", np.nan, ValueError),
    ("inf", np.inf, ValueError),
    ("bool", True, TypeError),
    ("str", "1", TypeError),
    ("complex", 1j, TypeError),
]
scalar_cases(
    "RNN", "spectral_radius", lambda v: crnn.RNN(n, d, m, spectral_radius=v, seed=0), SPECTRAL_BAD
)
scalar_cases(
    "RNN-float32",
    "spectral_radius",
    lambda v: crnn.RNN(n, d, m, spectral_radius=v, dtype=np.float32, seed=0),
    [("beyond-float32", 1e300, ValueError)],
)
small_machine_case("RNN-small-machine-weights", lambda: crnn.RNN(1, 400, 1), "weight W")


# --------------------------------------------------------------------------- RNN.from_weights

FROM_WEIGHTS_SLOTS = [
    # with dtype=None, the dtype follows the weights: no accepted forms
    Slot("from_weights-U", "U", weights(model())[0], _from_weights("U"),
         ((0, n), (d, 0), (d,), (d * n,), (1, d, n))),
    Slot("from_weights-W", "W", weights(model())[1], _from_weights("W"), weight_shapes(d, d)),
    Slot("from_weights-V", "V", weights(model())[2], _from_weights("V"),
         ((0, d), (m, d + 1), (m * d,), (1, m, d))),
    Slot("from_weights-dtype-None-U", "U", weights(model())[0], _from_weights("U", None),
         ((0, n), (d, 0), (d * n,), (1, d, n)), accepted=False),
    Slot("from_weights-dtype-None-W", "W", weights(model())[1], _from_weights("W", None),
         weight_shapes(d, d), accepted=False),
    Slot("from_weights-dtype-None-V", "V", weights(model())[2], _from_weights("V", None),
         ((0, d), (m, d + 1), (m * d,), (1, m, d)), accepted=False),
    Slot("from_weights-b", "b", B1, _from_weights("b"), ((d + 1,), (d - 1,), (d, 1), (m,)),
         none=np.zeros(d)),
    Slot("from_weights-c", "c", C1, _from_weights("c"), ((m + 1,), (m - 1,), (1, m), (d,)),
         none=np.zeros(m)),
]  # fmt: skip
for _slot in FROM_WEIGHTS_SLOTS:
    array_cases(_slot)
dtype_cases("from_weights", lambda v: crnn.RNN.from_weights(*weights(model()), dtype=v))
scalar_cases(
    "from_weights",
    "n_threads",
    lambda v: crnn.RNN.from_weights(*weights(model()), n_threads=v),
    N_THREADS_BAD,
)
# a weight too large to convert, given to from_weights (dtype=None)
for _name in "UWV":
    add(
        f"from_weights-dtype-None-{_name}-of-1e12-elements-too-large-to-convert",
        lambda tmp, w=_name: crnn.RNN.from_weights(
            *(huge((10**6, 10**6)) if k == w else np.eye(2) for k in "UWV")
        ),
        MemoryError,
        named(_name) + ".*GiB",
        lean=True,
    )


# --------------------------------------- assignment: rnn.U = ..., rnn.b = ..., rnn.n_threads = ...

ASSIGN_SLOTS = [
    Slot("assign-U", "U", weights(model())[0], _assign("U"), (*weight_shapes(d, n), (n, d))),
    Slot("assign-W", "W", weights(model())[1], _assign("W"), weight_shapes(d, d)),
    Slot("assign-V", "V", weights(model())[2], _assign("V"),
         (*weight_shapes(m, d), (d, m), (m, d - 1))),
    Slot("assign-float32-U", "U", weights(model())[0], _assign("U", np.float32), (), np.float32),
    Slot("assign-b", "b", B1, _assign("b", bias=True), ((d + 1,), (d - 1,), (d, 1), (m,))),
    Slot("assign-c", "c", C1, _assign("c", bias=True), ((m + 1,), (1, m), (d,))),
    Slot("assign-float32-b", "b", B1, _assign("b", np.float32, bias=True), ((d - 1,), (d, 1)),
         np.float32),
    Slot("assign-float32-c", "c", C1, _assign("c", np.float32, bias=True), ((d,),), np.float32),
]  # fmt: skip
for _slot in ASSIGN_SLOTS:
    array_cases(_slot)


def _set_n_threads(v):
    rnn = model(n_threads=2)
    try:
        rnn.n_threads = v
    except Exception:
        assert rnn.n_threads == 2, "a refused n_threads was kept"
        raise
    return rnn


scalar_cases("assign", "n_threads", _set_n_threads, N_THREADS_BAD)


def _set_bias_without_biases(name):
    def call(tmp):
        rnn = model()
        try:
            setattr(rnn, name, np.zeros(d if name == "b" else m))
        finally:
            assert getattr(rnn, name) is None, "the model without biases now has one"

    return call


for _name in ("b", "c"):
    add(f"assign-{_name}-without-biases", _set_bias_without_biases(_name), ValueError, "no biases")


# --------------------------------------------------- forward, predict, loss, gradient (bptt, rtrl)

DATA_SLOTS = [
    # on one sequence, on a batch, with an s0 per sequence or one shared
    Slot("forward-X", "X", X3, lambda v: model().forward(v), X_SHAPES),
    Slot("forward-X-single", "X", X2, lambda v: model().forward(v, S01)),
    Slot("forward-s0", "s0", S03, lambda v: model().forward(X3, v), S0_SHAPES,
         none=np.zeros((N, d))),
    Slot("forward-s0-single", "s0", S01, lambda v: model().forward(X2, v), S0_SHAPES_SINGLE,
         none=np.zeros(d)),
    Slot("forward-s0-shared", "s0", S01, lambda v: model().forward(X3, v, return_state=True),
         none=np.zeros(d)),
    Slot("forward-float32-X", "X", X3, lambda v: model(np.float32).forward(v), (), np.float32),
    Slot("forward-float32-s0", "s0", S03, lambda v: model(np.float32).forward(X3, v), (),
         np.float32, none=np.zeros((N, d))),
    Slot("forward-unchecked-X", "X", X3, lambda v: model().forward(v, check_finite=False),
         ((T, n + 1),), finite=False),
    Slot("predict-X", "X", X3, lambda v: model().predict(v), (*X_SHAPES, (N, T, 1))),
    Slot("predict-X-single", "X", X2, lambda v: model().predict(v, S01)),
    Slot("predict-s0", "s0", S03, lambda v: model().predict(X3, v), S0_SHAPES,
         none=np.zeros((N, d))),
    Slot("predict-s0-single", "s0", S01, lambda v: model().predict(X2, v), S0_SHAPES_SINGLE,
         none=np.zeros(d)),
    Slot("predict-s0-shared", "s0", S01, lambda v: model().predict(X3, v), none=np.zeros(d)),
    Slot("loss-X", "X", X3, lambda v: model().loss(v, TG3, S03), (*X_SHAPES, (N, T, n + 1))),
    Slot("loss-X-single", "X", X2, lambda v: model().loss(v, TG2, S01)),
    Slot("loss-target", "target", TG3, lambda v: model().loss(X3, v, S03), TARGET_SHAPES),
    Slot("loss-target-single", "target", TG2, lambda v: model().loss(X2, v),
         TARGET_SHAPES_SINGLE),
    Slot("loss-s0", "s0", S03, lambda v: model().loss(X3, TG3, v), S0_SHAPES,
         none=np.zeros((N, d))),
    Slot("loss-s0-single", "s0", S01, lambda v: model().loss(X2, TG2, v), S0_SHAPES_SINGLE,
         none=np.zeros(d)),
    Slot("loss-s0-shared", "s0", S01, lambda v: model().loss(X3, TG3, v), none=np.zeros(d)),
    Slot("loss-float32-target", "target", TG3, lambda v: model(np.float32).loss(X3, v), (),
         np.float32),
    Slot("bptt-X", "X", X3, lambda v: model().gradient(v, TG3, S03), (*X_SHAPES, (N, T, n - 1))),
    Slot("bptt-X-single", "X", X2, lambda v: model().gradient(v, TG2, S01)),
    Slot("bptt-target", "target", TG3, lambda v: model().gradient(X3, v, S03), TARGET_SHAPES),
    Slot("bptt-target-single", "target", TG2, lambda v: model().gradient(X2, v, S01),
         TARGET_SHAPES_SINGLE),
    Slot("bptt-s0", "s0", S03, lambda v: model().gradient(X3, TG3, v), S0_SHAPES,
         none=np.zeros((N, d))),
    Slot("bptt-s0-single", "s0", S01, lambda v: model().gradient(X2, TG2, v), S0_SHAPES_SINGLE,
         none=np.zeros(d)),
    Slot("bptt-s0-shared", "s0", S01, lambda v: model().gradient(X3, TG3, v),
         none=np.zeros((N, d))),
    Slot("bptt-float32-s0", "s0", S03, lambda v: model(np.float32).gradient(X3, TG3, v), (),
         np.float32, none=np.zeros((N, d))),
    Slot("rtrl-X", "X", X3, lambda v: model().gradient(v, TG3, S03, method="rtrl"),
         (*X_SHAPES, (N, T, n + 1))),
    Slot("rtrl-X-single", "X", X2, lambda v: model().gradient(v, TG2, S01, method="rtrl")),
    Slot("rtrl-target", "target", TG3, lambda v: model().gradient(X3, v, S03, method="rtrl"),
         TARGET_SHAPES),
    Slot("rtrl-target-single", "target", TG2,
         lambda v: model().gradient(X2, v, S01, method="rtrl"), TARGET_SHAPES_SINGLE),
    Slot("rtrl-s0", "s0", S03, lambda v: model().gradient(X3, TG3, v, method="rtrl"), S0_SHAPES,
         none=np.zeros((N, d))),
    Slot("rtrl-s0-single", "s0", S01, lambda v: model().gradient(X2, TG2, v, method="rtrl"),
         S0_SHAPES_SINGLE, none=np.zeros(d)),
    Slot("rtrl-s0-shared", "s0", S01, lambda v: model().gradient(X3, TG3, v, method="rtrl"),
         none=np.zeros((N, d))),
    Slot("rtrl-float32-X", "X", X3, lambda v: model(np.float32).gradient(v, TG3, method="rtrl"),
         (), np.float32),
]  # fmt: skip
for _slot in DATA_SLOTS:
    array_cases(_slot)

FLAG_CALLS = {
    "forward": lambda **kw: model().forward(X3, S03, **kw),
    "predict": lambda **kw: model().predict(X3, S03, **kw),
    "loss": lambda **kw: model().loss(X3, TG3, S03, **kw),
    "bptt": lambda **kw: model().gradient(X3, TG3, S03, **kw),
    "rtrl": lambda **kw: model().gradient(X3, TG3, S03, method="rtrl", **kw),
}
for _entry, _call in FLAG_CALLS.items():
    scalar_cases(
        _entry,
        "check_finite",
        lambda v, c=_call: c(check_finite=v),
        FLAG_BAD,
        FLAG_OK,
        match="check_finite must be True or False",
    )
for _entry in ("forward", "predict"):
    scalar_cases(
        _entry,
        "return_state",
        lambda v, c=FLAG_CALLS[_entry]: c(return_state=v),
        FLAG_BAD,
        FLAG_OK,
        match="return_state must be True or False",
    )


def _threads_call(v):
    rnn = model(n_threads=v)
    Xb = np.random.default_rng(5).normal(size=(300, 3, n))
    Tb = np.random.default_rng(6).normal(size=(300, 3, m))
    return (
        bool(rnn.n_threads == v),  # kept as given
        rnn.forward(Xb),
        rnn.predict(Xb),
        rnn.loss(Xb, Tb),
        rnn.gradient(Xb, Tb),
        rnn.gradient(Xb, Tb, method="rtrl"),
    )


scalar_cases("forward-gradient", "n_threads", _threads_call, [], N_THREADS_OK)

for _entry, _call in (
    ("loss", lambda g, dt=np.float64: model(dt).loss(X3, TG3, g=g)),
    ("bptt", lambda g, dt=np.float64: model(dt).gradient(X3, TG3, g=g)),
    ("rtrl", lambda g, dt=np.float64: model(dt).gradient(X3, TG3, g=g, method="rtrl")),
):
    g_cases(_entry, _call, lambda g, c=_call: c(g, np.float32), float64_too=True)
scalar_cases("gradient", "method", _gradient_and_method, METHOD_BAD, METHOD_OK)
for _kind, _value, _same in METHOD_OK:
    add(
        f"gradient-method-{_kind}-is-named-{_same}",
        lambda tmp, v=_value: _gradient_and_method(v)[1],
        check=lambda r, s=_same: r == s,
    )


def _nan_passes_unchecked(entry, where):
    """A NaN in one argument: refused by default, naming it; a NaN result when unchecked."""

    def call(tmp):
        rnn = model()
        args = {"X": X2.copy(), "target": TG2.copy(), "s0": S01.copy()}
        if where in args:
            args[where].reshape(-1)[0] = np.nan
        else:
            getattr(rnn, where)[0, 0] = np.nan
        try:
            DATA_CALLS[entry](rnn, *args.values())
            refusal = None
        except ValueError as exc:
            refusal = str(exc)
        assert refusal is not None, "the NaN was not refused by default"
        assert re.search(named(where), refusal), f"the refusal does not name {where}: {refusal}"
        return DATA_CALLS[entry](rnn, *args.values(), check_finite=False)

    def check(out):
        if entry == "forward":
            assert np.isnan(out[1]).any()
            assert where == "V" or np.isnan(out[0]).any()  # a NaN in V reaches only Y
        elif entry == "predict":
            assert np.isnan(out).any()
        elif entry == "loss":
            assert type(out) is float, out
            assert np.isnan(out)
        else:
            assert np.isnan(out.loss)
            assert np.isnan(out.V).any()

    return call, check


for _entry, _call in DATA_CALLS.items():
    for _where in ("X", "target", "s0", "U", "W", "V"):
        if _where == "target" and _entry in ("forward", "predict"):
            continue
        _c, _k = _nan_passes_unchecked(_entry, _where)
        add(f"{_entry}-check_finite-False-{_where}-nan-gives-nan", _c, check=_k)
    # check_finite=False still checks shapes and types
    add(
        f"{_entry}-check_finite-False-X-shape",
        lambda tmp, c=_call: c(model(), np.zeros((T, n + 1)), TG2, check_finite=False),
        ValueError,
        named("X"),
    )
    add(
        f"{_entry}-check_finite-False-X-complex",
        lambda tmp, c=_call: c(model(), X2.astype(complex), TG2, check_finite=False),
        TypeError,
        named("X"),
    )
    add(
        f"{_entry}-check_finite-False-s0-nan-of-wrong-shape",
        lambda tmp, c=_call: c(model(), X2, TG2, np.full(d + 1, np.nan), check_finite=False),
        ValueError,
        named("s0"),
    )
    # one sequence's X beyond float32's range, for a float32 model
    add(
        f"{_entry}-float32-X-single-beyond-float32",
        lambda tmp, c=_call: c(model(np.float32), _set(X2, 1e39, 6), TG2),
        ValueError,
        named("X") + ".*finite",
    )
    # float64 data for a float32 model: all of it rounded first
    add(
        f"{_entry}-float32-float64-data-is-rounded-to-float32",
        lambda tmp, c=_call: (
            c(model(np.float32), X3, TG3, S03),
            c(model(np.float32), *(a.astype(np.float32) for a in (X3, TG3, S03))),
        ),
        check=lambda r: assert_same(*r),
    )


def _clean_inputs_kept(entry, kind, s0_kind):
    """Two calls on clean data: the inputs and weights unchanged, the results new arrays."""

    def call(tmp):
        rnn = model()
        X, target, s0 = (X2, TG2, S01) if kind == "single" else (X3, TG3, S03)
        s0 = {"none": None, "given": s0, "shared": S01}[s0_kind]
        args = [None if a is None else np.array(a) for a in (X, target, s0)]
        saved = [None if a is None else a.copy() for a in args]
        before = weights(rnn)
        out = DATA_CALLS[entry](rnn, *args)
        DATA_CALLS[entry](rnn, *args)  # a second call sees the same inputs
        for a, b in zip(args, saved, strict=True):
            assert (a is None and b is None) or unchanged(a, b), "an input was modified"
        assert_same(weights(rnn), before)
        for r in flat(out):
            for a in (*args, rnn.U, rnn.W, rnn.V):
                assert not (
                    isinstance(r, np.ndarray) and a is not None and np.shares_memory(r, a)
                ), "a result is a view of an input or a weight"

    return call


for _entry in DATA_CALLS:
    for _kind in ("single", "batch"):
        for _s0 in ("none", "given", "shared") if _kind == "batch" else ("none", "given"):
            add(
                f"{_entry}-{_kind}-s0-{_s0}-clean-inputs-are-kept",
                _clean_inputs_kept(_entry, _kind, _s0),
            )

for _entry, _call in (
    ("forward", lambda r: r.forward(X3)),
    ("predict", lambda r: r.predict(X2)),
    ("loss", lambda r: r.loss(X3, TG3)),
    ("bptt", lambda r: r.gradient(X3, TG3)),
    ("rtrl", lambda r: r.gradient(X3, TG3, method="rtrl")),
):
    weight_in_place_cases(_entry, model, _call)
    empty_cases(_entry)
for _name in "UWV":
    add(
        f"forward-unchecked-weight-{_name}-nan-gives-nan",
        lambda tmp, w=_name: _poisoned(model, w, np.nan).forward(X3, check_finite=False),
        # a NaN in V reaches only the outputs
        check=lambda r, w=_name: np.isnan(r[1]).any() and (w == "V" or np.isnan(r[0]).any()),
    )

# empty inputs are still checked
for _entry, _call in DATA_CALLS.items():
    add(
        f"{_entry}-X-empty-of-wrong-width",
        lambda tmp, c=_call: c(model(), np.zeros((0, n + 1)), np.zeros((0, m))),
        ValueError,
        named("X"),
    )
    add(
        f"{_entry}-s0-for-another-number-of-empty-sequences",
        lambda tmp, c=_call: c(model(), np.zeros((0, T, n)), np.zeros((0, T, m)), np.zeros((1, d))),
        ValueError,
        named("s0"),
    )
    if _entry in ("loss", "bptt", "rtrl"):
        add(
            f"{_entry}-target-of-steps-for-an-empty-X",
            lambda tmp, c=_call: c(model(), np.zeros((N, 0, n)), np.zeros((N, 1, m))),
            ValueError,
            named("target"),
        )

small_machine_case(
    "forward-small-machine-states-and-outputs",
    lambda: crnn.RNN(1, 4, 1).forward(LONG),
    "states and outputs",
)
small_machine_case(
    "predict-small-machine-states-and-outputs",
    lambda: crnn.RNN(1, 4, 1).predict(LONG),
    "states and outputs",
)
small_machine_case(
    "bptt-small-machine-workspace",
    lambda: crnn.RNN(1, 4, 1).gradient(LONG, LONG),
    "bptt workspace",
)
small_machine_case(
    "rtrl-small-machine-workspace",
    lambda: crnn.RNN(1, 60, 1).gradient(LONG[:, :1], LONG[:, :1], method="rtrl"),
    "rtrl workspace",
)
small_machine_case(
    "rtrl-small-machine-gradient-slots",  # RTRL's per-sequence slots: 50000 x 3 parameters, 1.2 MB
    lambda: crnn.RNN(1, 1, 1, n_threads=1).gradient(
        np.zeros((50_000, 1, 1)), np.zeros((50_000, 1, 1)), method="rtrl"
    ),
    "gradient slots",
)
small_machine_case(
    "forward-small-machine-X-conversion",
    lambda: crnn.RNN(1, 4, 1).forward(np.zeros((1, 200_000, 1), dtype=np.int64)),
    "X",
    named("X") + ".*GiB",
)
# ... and what needs no more memory than there is
add(
    "loss-small-machine-keeps-no-states",
    _on_small_machine(lambda: crnn.RNN(1, 4, 1, n_threads=1).loss(LONG, LONG)),
    check=lambda r: type(r) is float and r >= 0.0,
)
add(
    "bptt-small-machine-needs-no-gradient-slots",  # one product over all the steps
    _on_small_machine(
        lambda: crnn.RNN(1, 200, 1, n_threads=1).gradient(np.zeros((4, 1, 1)), np.zeros((4, 1, 1)))
    ),
    check=lambda G: G.W.shape == (200, 200),
)
for _entry, _call in DATA_CALLS.items():
    # 1e12 empty sequences: their initial states, given, made or shared, would not fit
    for _kind, _s0 in (("", None), ("-shared-s0", np.zeros(d))):
        add(
            f"{_entry}-batch-of-1e12-empty-sequences{_kind}",
            lambda tmp, c=_call, s0=_s0: c(model(), huge((10**12, 0, n)), huge((10**12, 0, m)), s0),
            MemoryError,
            r"\bs0\b",
            lean=True,
        )
    add(
        f"{_entry}-s0-of-1e12-sequences",
        lambda tmp, c=_call: c(
            model(), huge((10**12, 0, n)), huge((10**12, 0, m)), huge((10**12, d))
        ),
        MemoryError,
        named("s0"),
        lean=True,
    )
    # 1e12 steps of one input, as float64 or as int8 (converted to float64)
    for _dtype in (np.float64, np.int8):
        add(
            f"{_entry}-X-{np.dtype(_dtype).name}-of-1e12-steps-too-large-to-convert",
            lambda tmp, c=_call, dt=_dtype: c(
                crnn.RNN(1, 2, 1, seed=0), huge((1, 10**12, 1), dt), huge((1, 10**12, 1), dt)
            ),
            MemoryError,
            named("X") + ".*GiB",
            lean=True,
        )


# --------------------------------------------------------------------------- fit, partial_fit

TRAINING_SLOTS = [
    Slot("fit-X", "X", X3, lambda v: _fit(model(), v, TG3), ((N, T, n + 1), (n,))),
    Slot("fit-target", "target", TG3, lambda v: _fit(model(), X3, v),
         ((N, T, m + 1), (N, T - 1, m), (N + 1, T, m))),
    Slot("fit-X-single", "X", X2, lambda v: _fit(model(), v, TG2), ((T, n - 1),)),
    Slot("fit-validation-X", "validation_data[0]", X3,
         lambda v: _fit(model(), X3, TG3, validation_data=(v, TG3)), ((N, T, n + 1),)),
    Slot("fit-validation-target", "validation_data[1]", TG3,
         lambda v: _fit(model(), X3, TG3, validation_data=(X3, v)), ((N, T + 1, m),)),
    Slot("fit-float32-X", "X", X3, lambda v: _fit(model(np.float32), v, TG3), (), np.float32),
    Slot("partial_fit-X", "X", X3, lambda v: _partial(v, TG3), ((N, T, n + 1),)),
    Slot("partial_fit-target", "target", TG3, lambda v: _partial(X3, v), ((N, T, 1),)),
]  # fmt: skip
for _slot in TRAINING_SLOTS:
    array_cases(_slot)
scalar_cases("fit", "seed", _seeded(lambda v: _fit(model(), X3, TG3, seed=v)), SEED_BAD, SEED_OK)

g_cases(
    "fit",
    lambda g: _fit(model(), X3, TG3, g=g),
    lambda g: _fit(model(np.float32), X3, TG3, g=g),
)
g_cases(
    "partial_fit",
    lambda g: _partial(X3, TG3, g=g),
    lambda g: _partial(X3, TG3, np.float32, g=g),
)
scalar_cases("fit", "method", lambda v: _fit(model(), X3, TG3, method=v), METHOD_BAD)
scalar_cases("partial_fit", "method", lambda v: _partial(X3, TG3, method=v), METHOD_BAD)
for _arg, _ok in (("epochs", 3), ("batch_size", 1), ("truncate", 2), ("n_iter_no_change", 2)):
    _none = [("None", None, TypeError)] if _arg in ("epochs", "n_iter_no_change") else []
    scalar_cases(
        "fit",
        _arg,
        lambda v, a=_arg: _fit(model(), X3, TG3, **{a: v}),
        COUNT_BAD + _none,
        [("numpy-int", np.int64(_ok), _ok)],
    )
scalar_cases(
    "fit",
    "batch_size",
    lambda v: _fit(model(), X3, TG3, batch_size=v, shuffle=False),
    [],
    [("beyond-N", 10**30, N), ("None-is-full-batch", None, N)],
)
scalar_cases(
    "fit",
    "lr",
    lambda v: _fit(model(), X3, TG3, lr=v),
    [*REAL_BAD, ("negative", -0.1, ValueError), ("+inf", np.inf, ValueError)],
)
scalar_cases(
    "fit",
    "clip",
    lambda v: _fit(model(), X3, TG3, clip=v),
    [
        *REAL_BAD,
        ("zero", 0.0, ValueError),
        ("negative", -1.0, ValueError),
        ("+inf", np.inf, ValueError),
    ],
)
scalar_cases(
    "fit",
    "tol",
    lambda v: _fit(model(), X3, TG3, tol=v),
    [*REAL_BAD, ("negative", -1.0, ValueError), ("+inf", np.inf, ValueError)],
)
scalar_cases(
    "fit",
    "momentum",
    lambda v: _fit(model(), X3, TG3, optimizer="sgd", momentum=v),
    [*REAL_BAD, ("one", 1.0, ValueError), ("negative", -0.1, ValueError)],
)
scalar_cases(
    "fit",
    "validation_fraction",
    lambda v: _fit(model(), X3, TG3, validation_fraction=v),
    [
        *REAL_BAD,
        ("zero", 0.0, ValueError),
        ("one", 1.0, ValueError),
        ("above-one", 1.5, ValueError),
        ("negative", -0.5, ValueError),
        ("leaves-nothing", 0.99, ValueError),
    ],
)
for _arg in ("shuffle", "warm_start", "nesterov"):
    scalar_cases(
        "fit",
        _arg,
        lambda v, a=_arg: _fit(model(), X3, TG3, optimizer="sgd", **{a: v}),
        [("int", 1, TypeError), ("str", "yes", TypeError), ("None", None, TypeError)],
        [("numpy-bool", np.bool_(True), True)],
    )
scalar_cases(
    "fit",
    "optimizer",
    lambda v: _fit(model(), X3, TG3, optimizer=v),
    OPTIMIZER_BAD,
    [("upper-case", "SGD", "sgd")],
)
scalar_cases("partial_fit", "optimizer", lambda v: _partial(X3, TG3, optimizer=v), OPTIMIZER_BAD)
scalar_cases(
    "partial_fit",
    "lr",
    lambda v: _partial(X3, TG3, lr=v),
    [*REAL_BAD, ("negative", -0.1, ValueError)],
)
scalar_cases(
    "partial_fit",
    "clip",
    lambda v: _partial(X3, TG3, clip=v),
    [*REAL_BAD, ("zero", 0.0, ValueError), ("negative", -1.0, ValueError)],
)
VALIDATION_DATA_BAD = [
    ("str", "xy", TypeError),
    ("one-array", (X3,), TypeError),
    ("four-arrays", (X3, TG3, X3, X3), TypeError),
    ("bad-weights", (X3, TG3, -np.ones(T)), ValueError),
    ("dict", {"X": X3}, TypeError),
    ("None-pair", (None, None), TypeError),
    ("no-time-step", (np.zeros((N, 0, n)), np.zeros((N, 0, m))), ValueError),
    ("no-sequence", (np.zeros((0, T, n)), np.zeros((0, T, m))), ValueError),
]
scalar_cases(
    "fit",
    "validation_data",
    lambda v: _fit(model(), X3, TG3, validation_data=v),
    VALIDATION_DATA_BAD,
    match=r"^validation_data",
)
add(
    "fit-validation_data-and-fraction",
    lambda tmp: _fit(model(), X3, TG3, validation_fraction=0.5, validation_data=(X3, TG3)),
    ValueError,
    "validation_data or validation_fraction",
)
# a learning rate of zero is valid: the weights do not move
for _opt in ("sgd", "adam", "adagrad"):
    add(
        f"fit-{_opt}-lr-zero-keeps-the-weights",
        lambda tmp, o=_opt: (_fit(model(), X3, TG3, optimizer=o, lr=0.0), model()),
        check=lambda r: assert_same(*r),
    )
weight_in_place_cases("fit", model, lambda r: _fit(r, X3, TG3), training=True)
weight_in_place_cases(
    "partial_fit", model, lambda r: keeps(r, lambda: r.partial_fit(X3, TG3)), training=True
)
empty_cases("fit")
empty_cases("partial_fit")
small_machine_case(
    "fit-small-machine-bptt-workspace",
    lambda: crnn.RNN(1, 4, 1).fit(LONG, LONG, epochs=1),
    "bptt workspace",
)


# --------------------------------------------------------------------------- OnlineRTRL

ONLINE_SLOTS = [
    Slot("OnlineRTRL-s0", "s0", S01, lambda v: crnn.OnlineRTRL(model(), s0=v).step(X2[0], TG2[0]),
         ((d + 1,), (1, d)), none=np.zeros(d)),
    Slot("OnlineRTRL.learn-X", "X", X2, lambda v: _learn(v, TG2), ((T, n + 1), (n,), (1, T, n))),
    Slot("OnlineRTRL.learn-target", "target", TG2, lambda v: _learn(X2, v),
         ((T, m + 1), (T - 1, m), (m,))),
    Slot("OnlineRTRL.learn-float32-X", "X", X2, lambda v: _learn(v, TG2, np.float32), (),
         np.float32),
    Slot("OnlineRTRL.step-x", "x", X2[0], lambda v: crnn.OnlineRTRL(model()).step(v, TG2[0]),
         ((n + 1,), (1, n))),
    Slot("OnlineRTRL.step-target", "target", TG2[0],
         lambda v: crnn.OnlineRTRL(model()).step(X2[0], v), ((m + 1,), (1, m))),
    Slot("OnlineRTRL.state", "state", S01, _online_state, ((d + 1,), (1, d))),
]  # fmt: skip
for _slot in ONLINE_SLOTS:
    array_cases(_slot)
g_cases(
    "OnlineRTRL",
    lambda g: crnn.OnlineRTRL(model(), g=g).learn(X2, TG2),
    lambda g: crnn.OnlineRTRL(model(np.float32), g=g),
)
ONLINE_BAD = {
    "lr": [
        *REAL_BAD,
        ("negative", -1.0, ValueError),
        ("+inf", np.inf, ValueError),
        ("None", None, TypeError),
    ],
    "clip": [
        *REAL_BAD,
        ("zero", 0.0, ValueError),
        ("negative", -1.0, ValueError),
        ("+inf", np.inf, ValueError),
    ],
}
for _arg, _bad in ONLINE_BAD.items():
    scalar_cases("OnlineRTRL", _arg, lambda v, a=_arg: crnn.OnlineRTRL(model(), **{a: v}), _bad)

    def _setter(v, a=_arg):
        trainer = crnn.OnlineRTRL(model(), lr=0.5, clip=2.0)
        try:
            setattr(trainer, a, v)
        finally:
            assert (trainer.lr, trainer.clip) == (0.5, 2.0), "a refused value was kept"

    scalar_cases("OnlineRTRL." + _arg + "=", _arg, _setter, _bad)
scalar_cases(
    "OnlineRTRL-float32",
    "clip",
    lambda v: crnn.OnlineRTRL(model(np.float32), clip=v),
    [("rounds-to-zero", 1e-50, ValueError)],
)
scalar_cases(
    "OnlineRTRL",
    "model",
    crnn.OnlineRTRL,
    [
        ("None", None, TypeError),
        ("str", "rnn", TypeError),
        ("array", np.zeros(3), TypeError),
        ("trainer", crnn.OnlineRTRL(model()), TypeError),
        ("class", crnn.RNN, TypeError),
    ],
)


def _lr_zero_is_exact_bptt(tmp):
    rnn = model()
    trainer = crnn.OnlineRTRL(rnn, lr=0.0, s0=S01)
    trainer.learn(X2, TG2)
    return trainer.gradient_sum_, rnn.gradient(X2, TG2, S01)


def _check_lr_zero(r):
    online, bptt = r
    for a, b in ((online.U, bptt.U), (online.W, bptt.W), (online.V, bptt.V)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert abs(online.loss - bptt.loss) <= 1e-12 * abs(bptt.loss)


add("OnlineRTRL-lr-zero-sums-to-the-bptt-gradient", _lr_zero_is_exact_bptt, check=_check_lr_zero)
weight_in_place_cases(
    "OnlineRTRL.learn",
    model,
    lambda r: keeps(r, lambda: crnn.OnlineRTRL(r).learn(X2, TG2)),
    training=True,
)


def _learn_nothing(tmp):
    trainer = crnn.OnlineRTRL(model())
    before = weights(trainer.model)
    Y = trainer.learn(np.zeros((0, n)), np.zeros((0, m)))
    return Y, before, trainer


def _check_learn_nothing(r):
    Y, before, trainer = r
    assert Y.shape == (0, m)
    assert trainer.n_steps_ == 0
    assert_same(weights(trainer.model), before)


add("OnlineRTRL.learn-T0", _learn_nothing, check=_check_learn_nothing)
small_machine_case(
    "OnlineRTRL-small-machine-sensitivities",
    lambda: crnn.OnlineRTRL(crnn.RNN(1, 60, 1)),
    "sensitivities",
)


# --------------------------------------------------------------------------- step, state, generate

STATEFUL_SLOTS = [
    Slot("step-x", "x", X2[0], lambda v: model().step(v), ((n + 1,), (n - 1,), (1, 1, n))),
    Slot("step-x-batch", "x", X3[:, 0], lambda v: model().step(v), ((N, n + 1),)),
    Slot("state", "state", S03, _state, ((N, d + 1), (d + 1,), (1, N, d)),
         none=np.zeros((N, d))),
    Slot("generate-warmup", "warmup", X3, lambda v: square().generate(4, v),
         ((N, T, n + 1), (n,), (1, N, T, n)), none="exactly one of warmup"),
    Slot("generate-x0", "x0", X3[:, 0], lambda v: square().generate(4, x0=v),
         ((N, n + 1), (n - 1,), (1, N, n)), none="exactly one of warmup"),
    Slot("generate-s0", "s0", S03, _generate_s0, ((N, d + 1), (N + 1, d)), none=np.zeros((N, d))),
]  # fmt: skip
for _slot in STATEFUL_SLOTS:
    array_cases(_slot)
N_STEPS_BAD = [*SIZE_BAD, ("None", None, TypeError)]
scalar_cases("generate", "n_steps", lambda v: square().generate(v, x0=X2[0]), N_STEPS_BAD)
scalar_cases(
    "generate",
    "n_steps",
    lambda v: square().generate(v, x0=X2[0]),
    [
        ("too-large-for-memory", 10**12, MemoryError),
        ("too-many-elements", 2**62, MemoryError),
        ("googol", 10**100, MemoryError),
    ],
    match=r"\bn_steps\b.*(GiB|too many elements)",
    lean=True,
)
add(
    "generate-warmup-and-x0",
    lambda tmp: square().generate(3, X2, x0=X2[0]),
    ValueError,
    "exactly one of warmup",
)
add(
    "generate-neither-warmup-nor-x0",
    lambda tmp: square().generate(3),
    ValueError,
    "exactly one of warmup",
)
add(
    "generate-output-size-not-input-size",
    lambda tmp: model().generate(3, x0=X2[0]),
    ValueError,
    "output_size must equal",
)
add(
    "generate-warmup-without-time-steps",
    lambda tmp: square().generate(3, np.zeros((0, n))),
    ValueError,
    named("warmup"),
)
add(
    "generate-warmup-batch-without-time-steps",
    lambda tmp: square().generate(3, np.zeros((N, 0, n))),
    ValueError,
    named("warmup"),
)
add(
    "generate-x0-single-with-batch-s0",
    lambda tmp: square().generate(3, x0=X2[0], s0=S03),
    ValueError,
    named("s0"),
)


def _step_switch(tmp):
    rnn = model()
    rnn.step(X2[0])
    return rnn.step(X3[:, 0])


def _step_other_batch(tmp):
    rnn = model()
    rnn.step(X3[:, 0])
    return rnn.step(np.zeros((N + 1, n)))


add("step-single-then-batch", _step_switch, ValueError, named("x"))
add("step-batch-of-another-size", _step_other_batch, ValueError, named("x"))
weight_in_place_cases("step", model, lambda r: r.step(X2[0]))
weight_in_place_cases("generate", square, lambda r: r.generate(3, x0=X2[0]))
add("step-N0", lambda tmp: model().step(np.zeros((0, n))), check=lambda r: r.shape == (0, m))
add(
    "generate-N0",
    lambda tmp: square().generate(3, x0=np.zeros((0, n))),
    check=lambda r: r.shape == (0, 3, n),
)
add(
    "generate-warmup-N0",
    lambda tmp: square().generate(3, np.zeros((0, T, n))),
    check=lambda r: r.shape == (0, 3, n),
)
small_machine_case(
    "generate-small-machine-outputs",
    lambda: crnn.RNN(1, 4, 1).generate(200_000, x0=[0.0]),
    "n_steps",
)


# --------------------------------------------------------------------------- save and load


def _saved(tmp, rnn=None):
    path = tmp / "model.npz"
    crnn.save(model() if rnn is None else rnn, path)
    return path


PATH_BAD = [
    ("None", None, TypeError, named("path")),
    ("int", 3, TypeError, named("path")),
    ("bytes", b"model.npz", TypeError, named("path")),
    ("list", ["model.npz"], TypeError, named("path")),
    ("empty", "", ValueError, named("path")),
    ("nul-byte", "a\0b.npz", ValueError, "null byte"),
]
for _kind, _value, _exc, _match in PATH_BAD:
    add(f"save-path-{_kind}", lambda tmp, v=_value: crnn.save(model(), v), _exc, _match)
    add(f"load-path-{_kind}", lambda tmp, v=_value: crnn.load(v), _exc, _match)
    add(f"RNN.save-path-{_kind}", lambda tmp, v=_value: model().save(v), _exc, _match)
    add(f"RNN.load-path-{_kind}", lambda tmp, v=_value: crnn.RNN.load(v), _exc, _match)
for _kind, _value in (
    ("None", None),
    ("str", "model"),
    ("array", np.zeros(3)),
    ("trainer", "trainer"),
    ("dict", {"U": 1}),
):
    add(
        f"save-model-{_kind}",
        lambda tmp, v=_value: crnn.save(
            crnn.OnlineRTRL(model()) if isinstance(v, str) and v == "trainer" else v, tmp / "m.npz"
        ),
        TypeError,
        named("model"),
    )
add("save-into-a-directory", lambda tmp: crnn.save(model(), tmp), OSError)
add("save-into-a-missing-directory", lambda tmp: crnn.save(model(), tmp / "no" / "m.npz"), OSError)
add(
    "save-weight-reshaped-in-place",
    lambda tmp: crnn.save(_reshaped(model, "W"), tmp / "m.npz"),
    ValueError,
    r"\bW\b.*shape",
)
for _name in "UWV":
    add(
        f"save-weight-{_name}-nan",
        lambda tmp, w=_name: crnn.save(_poisoned(model, w, np.nan), tmp / "m.npz"),
        ValueError,
        rf"\b{_name}\b.*NaN",
    )
add("load-missing-file", lambda tmp: crnn.load(tmp / "none.npz"), FileNotFoundError)
add("load-a-directory", lambda tmp: crnn.load(tmp), ValueError, "directory")


def _fifo(tmp):
    path = tmp / "fifo.npz"
    os.mkfifo(path)
    return crnn.load(path)  # open() would block for ever


if hasattr(os, "mkfifo"):
    add("load-a-fifo", _fifo, ValueError, "not a regular file")
add("load-dev-null", lambda tmp: crnn.load(os.devnull), ValueError, "not a regular file|empty")


def _file(content):
    def call(tmp):
        path = tmp / "model.npz"
        path.write_bytes(content(tmp) if callable(content) else content)
        return crnn.load(path)

    return call


def _truncated(keep):
    return lambda tmp: _saved(tmp).read_bytes()[:keep]


def _flipped(offset):
    def make(tmp):
        data = bytearray(_saved(tmp).read_bytes())
        data[offset % len(data)] ^= 0xFF
        return bytes(data)

    return make


def _with_metadata(change):
    def make(tmp):
        path = _saved(tmp)
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays[_io.METADATA_KEY][()]))
        change(meta, arrays)
        arrays[_io.METADATA_KEY] = np.array(json.dumps(meta))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    return make


def _npy(tmp):
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


def _foreign_npz(tmp):
    buf = io.BytesIO()
    np.savez(buf, U=np.zeros((d, n)))
    return buf.getvalue()


def _pickled(tmp):
    buf = io.BytesIO()
    np.savez(buf, crnn_metadata=np.array([{"format": "crnn.RNN"}], dtype=object))
    return buf.getvalue()


LOAD_BAD = {
    "empty-file": (b"", "empty"),
    "text-file": (b"U,W,V\n1,2,3\n", "not an .npz"),
    "npy-file": (_npy, r"\.npy array"),
    "foreign-npz": (_foreign_npz, "crnn_metadata"),
    "pickled-entry": (_pickled, "pickle"),
    "zip-magic-only": (b"PK\x03\x04", "truncated or damaged"),
    "newer-format-version": (
        _with_metadata(lambda meta, a: meta.update(format_version=_io.FORMAT_VERSION + 1)),
        "newer than this crnn reads",
    ),
    "format-version-0": (
        _with_metadata(lambda meta, a: meta.update(format_version=0)),
        "unknown format version",
    ),
    "format-version-str": (
        _with_metadata(lambda meta, a: meta.update(format_version="1")),
        "unknown format version",
    ),
    "other-format": (_with_metadata(lambda meta, a: meta.update(format="torch")), "format"),
    "hidden-size-negative": (
        _with_metadata(lambda meta, a: meta.update(hidden_size=-4)),
        "hidden_size",
    ),
    "hidden-size-bool": (
        _with_metadata(lambda meta, a: meta.update(hidden_size=True)),
        "hidden_size",
    ),
    "hidden-size-wrong": (_with_metadata(lambda meta, a: meta.update(hidden_size=d + 1)), "shape"),
    "dtype-float16": (_with_metadata(lambda meta, a: meta.update(dtype="float16")), "dtype"),
    "dtype-mismatch": (_with_metadata(lambda meta, a: meta.update(dtype="float32")), "dtype"),
    "weight-nan": (
        _with_metadata(
            lambda meta, a: (
                a["W"].__setitem__((0, 0), np.nan),
                meta["arrays"]["W"].update(sha256=_io._digest(a["W"])),
            )
        ),
        "NaN",
    ),
    "checksum": (_with_metadata(lambda meta, a: a["V"].__setitem__((0, 0), 7.0)), "checksum"),
    "missing-array": (_with_metadata(lambda meta, a: a.pop("W")), r"\bW\b"),
    "unlisted-array": (_with_metadata(lambda meta, a: a.update(extra=np.zeros(2))), "extra"),
    "unknown-option": (
        _with_metadata(lambda meta, a: meta["options"].update(colour="red")),
        "colour",
    ),
    "n_threads-zero": (
        _with_metadata(lambda meta, a: meta["options"].update(n_threads=0)),
        "n_threads",
    ),
    "metadata-not-json": (
        _with_metadata(lambda meta, a: meta.clear()),
        "format",
    ),
}
for _kind, (_content, _match) in LOAD_BAD.items():
    add(f"load-{_kind}", _file(_content), ValueError, _match)


def _damaged(make):
    """Load a damaged file: refused naming it, or (damage zip readers skip) the same model."""

    def call(tmp):
        path = tmp / "model.npz"
        content = make(tmp)  # saves model() to path first
        path.write_bytes(content)
        return crnn.load(path).forward(X3), model().forward(X3)

    return call


for _keep in (0, 1, 3, 30, 100, 300, 600, 1000, -200, -22, -1):
    add(
        f"load-truncated-to-{_keep}",
        _damaged(_truncated(_keep)),
        ValueError,
        r"model\.npz",
        check=lambda r: assert_same(*r),
    )
for _offset in (0, 10, 40, 90, 200, 400, 700, 1000, -300, -100, -30, -5):
    add(
        f"load-byte-flipped-at-{_offset}",
        _damaged(_flipped(_offset)),
        ValueError,
        r"model\.npz",
        check=lambda r: assert_same(*r),
    )


def _zip_field(offset, value):
    """Set a 2-byte field of every central-directory entry of a saved model."""

    def make(tmp):
        data = bytearray(_saved(tmp).read_bytes())
        at = data.find(b"PK\x01\x02")
        while at >= 0:
            data[at + offset : at + offset + 2] = value(data[at + offset : at + offset + 2])
            at = data.find(b"PK\x01\x02", at + 4)
        return bytes(data)

    return make


# damage that zipfile reports with exceptions other than BadZipFile (found by fuzz_load.py)
ZIP_DAMAGE = {
    "zip-version-needed-too-new": (6, lambda b: b"\xff\x00"),  # NotImplementedError
    "zip-entry-marked-encrypted": (8, lambda b: bytes([b[0] | 1, b[1]])),  # RuntimeError
    "zip-unknown-compression": (10, lambda b: b"\x63\x00"),  # NotImplementedError
}
for _kind, (_offset, _value) in ZIP_DAMAGE.items():
    add(f"load-{_kind}", _file(_zip_field(_offset, _value)), ValueError, r"model\.npz")


def _unbalanced_header(tmp):
    """An .npy header whose length runs into an open bracket: numpy raises TokenError."""
    import zipfile

    with zipfile.ZipFile(_saved(tmp)) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    raw = bytearray(entries["crnn_metadata.npy"])  # a version 1.0 .npy: length at 8:10
    start = 10 + int.from_bytes(raw[8:10], "little")
    bracket = raw.find("[".encode("utf-32-le"), start)  # in the JSON text that follows
    raw[8:10] = (bracket + 4 - 10).to_bytes(2, "little")  # the header now ends inside it
    entries["crnn_metadata.npy"] = bytes(raw)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # valid checksums: the header is parsed
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


add("load-npy-header-unbalanced", _file(_unbalanced_header), ValueError, r"model\.npz")


def _rewritten(change):
    """A saved model whose zip members are changed by change(entries), with valid checksums."""

    def make(tmp):
        import zipfile

        with zipfile.ZipFile(_saved(tmp)) as zf:
            entries = {name: zf.read(name) for name in zf.namelist()}
        change(entries)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
        return buf.getvalue()

    return make


# numpy returns the raw bytes of a member without the .npy magic (found by fuzz_load.py)
add(
    "load-entry-not-npy",
    _file(_rewritten(lambda e: e.update({"W.npy": b"not an array"}))),
    ValueError,
    r"model\.npz.*'W' is not an \.npy array",
)
add(
    "load-metadata-not-npy",
    _file(_rewritten(lambda e: e.update({"crnn_metadata.npy": b"{}"}))),
    ValueError,
    r"model\.npz.*not an \.npy array",
)


def _beyond_unicode(code):
    """The metadata's text with one character replaced by a 4-byte value (found by fuzzing)."""

    def make(tmp):
        import zipfile

        with zipfile.ZipFile(_saved(tmp)) as zf:
            entries = {name: zf.read(name) for name in zf.namelist()}
        text = str(np.load(io.BytesIO(entries["crnn_metadata.npy"]))[()])
        # json decodes a string with an escape in it into a new str: there, a code point
        # beyond Unicode made CPython raise SystemError
        text = text[:-1] + ', "?": "\\u0041"}'
        raw = np.array(text)
        data = bytearray(raw.tobytes())
        at = text.index('"?"') + 1
        data[4 * at : 4 * at + 4] = code.to_bytes(4, "little")
        out = io.BytesIO()
        np.save(out, np.frombuffer(bytes(data), dtype=raw.dtype).reshape(()))
        entries["crnn_metadata.npy"] = out.getvalue()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:  # valid checksums: the text is decoded
            for name, data in entries.items():
                zf.writestr(name, data)
        return buf.getvalue()

    return make


for _code in (0x110000, 0xFFFFFFFF, 0xD800):
    add(
        f"load-metadata-code-point-{_code:#x}",
        _file(_beyond_unicode(_code)),
        ValueError,
        r"model\.npz.*Unicode",
    )


def _round_trip(dtype, **kw):
    def call(tmp):
        rnn = crnn.RNN(n, d, m, dtype=dtype, seed=3, **kw)
        path = _saved(tmp, rnn)
        back = crnn.load(path)
        return back.forward(X3), rnn.forward(X3), back.n_threads == rnn.n_threads

    return call


for _dtype in (np.float32, np.float64):
    add(
        f"save-load-{np.dtype(_dtype).name}-round-trip",
        _round_trip(_dtype, n_threads=3),
        check=lambda r: r[2] and assert_same(r[0], r[1]) is None,
    )


def _save_over_keeps_old_on_failure(tmp):
    path = _saved(tmp)
    before = path.read_bytes()
    bad = model()
    bad.V[0, 0] = np.nan
    with contextlib.suppress(ValueError):
        crnn.save(bad, path)
    return path.read_bytes() == before and sorted(os.listdir(tmp)) == ["model.npz"]


add("save-refused-leaves-the-old-file", _save_over_keeps_old_on_failure, check=lambda r: r)


# --------------------------------------------------------------------------- the command

SERIES = np.sin(np.arange(120) / 5.0)[:, None]


def _files(tmp):
    """The data and model files the command cases use."""
    np.savetxt(tmp / "series.csv", SERIES, delimiter=",")
    rnn = crnn.RNN(1, 4, seed=0)
    rnn.data_mean_, rnn.data_scale_ = np.zeros(1), np.ones(1)
    crnn.save(rnn, tmp / "model.npz")
    (tmp / "exists.csv").write_text("keep me\n")
    (tmp / "exists.npz").write_text("keep me too\n")


def _tree(tmp):
    return {p.name: p.read_bytes() for p in sorted(tmp.iterdir()) if p.is_file()}


def cli(argv, setup=None):
    """Run the command in tmp; return (exit status, stdout, stderr, files before, after)."""

    def call(tmp):
        _files(tmp)
        if setup is not None:
            setup(tmp)
        before = _tree(tmp)
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli_main(list(argv))
                except SystemExit as exc:  # argparse
                    code = exc.code
        finally:
            os.chdir(cwd)
        return code, out.getvalue(), err.getvalue(), before, _tree(tmp)

    return call


def refused(code, fragment, may_create=()):
    """The command fails with an error line (no traceback) and changes no file."""

    def check(r):
        got, out, err, before, after = r
        assert got == code, (got, err)
        assert "Traceback" not in err + out, err
        assert re.search(fragment, err), err
        assert "error" in err, err
        for name, data in before.items():
            assert after.get(name) == data, f"{name} was changed or removed"
        new = set(after) - set(before)
        assert new <= set(may_create), f"files written: {sorted(new)}"

    return check


def _write(name, content):
    def setup(tmp):
        path = tmp / name
        if isinstance(content, np.ndarray):
            np.save(path, content)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def _mkfifo(tmp):
    os.mkfifo(tmp / "fifo.npz")


def _scaled_data(tmp):
    rnn = crnn.RNN(1, 4, seed=0)
    rnn.data_mean_, rnn.data_scale_ = np.zeros(1), np.full(1, 1e-300)
    crnn.save(rnn, tmp / "scaled.npz")
    (tmp / "bad.csv").write_text("1e10\n2e10\n")


def _newer_model(tmp):
    (tmp / "newer.npz").write_bytes(
        _with_metadata(lambda meta, a: meta.update(format_version=_io.FORMAT_VERSION + 1))(tmp)
    )


Q = ["-q", "--epochs", "1"]
CLI_REFUSED = [
    ("no-command", [], 2, "required"),
    ("unknown-command", ["fly"], 2, "invalid choice"),
    ("train-missing-data", ["train", "none.csv", *Q], 2, "does not exist"),
    ("train-directory", ["train", ".", *Q], 2, "directory"),
    ("train-empty-csv", ["train", "bad.csv", *Q], 2, "empty", _write("bad.csv", "")),
    ("train-header-only", ["train", "bad.csv", *Q], 2, "at least 2 rows", _write("bad.csv", "a\n")),
    ("train-one-row", ["train", "bad.csv", *Q], 2, "at least 2 rows", _write("bad.csv", "1\n")),
    ("train-nan", ["train", "bad.csv", *Q], 2, "not a finite", _write("bad.csv", "1\nnan\n2\n")),
    ("train-inf", ["train", "bad.csv", *Q], 2, "not a finite", _write("bad.csv", "1\ninf\n2\n")),
    ("train-word", ["train", "bad.csv", *Q], 2, "not a number", _write("bad.csv", "1\n2\nx\n")),
    ("train-ragged", ["train", "bad.csv", *Q], 2, "columns", _write("bad.csv", "1,2\n3\n4,5\n")),
    ("train-binary", ["train", "bad.csv", *Q], 2, "not a text", _write("bad.csv", b"\xff\xfe\x00")),
    ("train-nul", ["train", "bad.csv", *Q], 2, "not a number", _write("bad.csv", "1\n2\x00\n3\n")),
    (
        "train-too-large-to-standardise",
        ["train", "bad.csv", *Q],
        2,
        "too large",
        _write("bad.csv", "1.7e308\n1.7e308\n-1.7e308\n"),
    ),
    (
        "train-spread-overflows",
        ["train", "bad.csv", *Q],
        2,
        "too large",
        _write("bad.csv", "1e300\n-1e300\n1e300\n"),
    ),
    (
        "train-npy-complex",
        ["train", "bad.npy", *Q],
        2,
        "complex",
        _write("bad.npy", np.zeros(4, complex)),
    ),
    (
        "train-npy-object",
        ["train", "bad.npy", *Q],
        2,
        "not a readable",
        _write("bad.npy", np.array([1, None], dtype=object)),
    ),
    (
        "train-npy-3d",
        ["train", "bad.npy", *Q],
        2,
        "1-D or 2-D",
        _write("bad.npy", np.zeros((4, 2, 2))),
    ),
    (
        "train-npy-no-column",
        ["train", "bad.npy", *Q],
        2,
        "at least 2 rows",
        _write("bad.npy", np.zeros((4, 0))),
    ),
    (
        "train-npy-damaged",
        ["train", "bad.npy", *Q],
        2,
        "not a readable",
        _write("bad.npy", b"\x93NUMPY garbage"),
    ),
    ("train-hidden-size-0", ["train", "series.csv", "--hidden-size", "0", *Q], 2, "at least 1"),
    (
        "train-hidden-size-negative",
        ["train", "series.csv", "--hidden-size", "-3", *Q],
        2,
        "hidden-size",
    ),
    (
        "train-hidden-size-float",
        ["train", "series.csv", "--hidden-size", "1.5", *Q],
        2,
        "not an integer",
    ),
    (
        "train-hidden-size-huge",
        ["train", "series.csv", "--hidden-size", "1000000000", *Q],
        1,
        "GiB",
    ),
    ("train-epochs-0", ["train", "series.csv", "-q", "--epochs", "0"], 2, "at least 1"),
    ("train-lr-nan", ["train", "series.csv", "--lr", "nan", *Q], 2, "lr"),
    ("train-lr-negative", ["train", "series.csv", "--lr", "-1", *Q], 2, "lr"),
    ("train-lr-zero", ["train", "series.csv", "--lr", "0", *Q], 2, "lr"),
    ("train-lr-inf", ["train", "series.csv", "--lr", "inf", *Q], 2, "lr"),
    ("train-optimizer", ["train", "series.csv", "--optimizer", "rmsprop", *Q], 2, "invalid choice"),
    ("train-method", ["train", "series.csv", "--method", "adjoint", *Q], 2, "invalid choice"),
    ("train-window-0", ["train", "series.csv", "--window", "0", *Q], 2, "at least 1"),
    ("train-batch-size-0", ["train", "series.csv", "--batch-size", "0", *Q], 2, "at least 1"),
    ("train-columns-no-header", ["train", "series.csv", "--columns", "a", *Q], 2, "no header"),
    (
        "train-columns-out-of-range",
        ["train", "series.csv", "--columns", "1", *Q],
        2,
        "out of range",
    ),
    ("train-columns-twice", ["train", "series.csv", "--columns", "0,-1", *Q], 2, "chosen twice"),
    (
        "train-columns-unknown-name",
        ["train", "bad.csv", "--columns", "b", *Q],
        2,
        "no column named 'b'",
        _write("bad.csv", "a\n1\n2\n"),
    ),
    ("train-delimiter-long", ["train", "series.csv", "--delimiter", ";;", *Q], 2, "one character"),
    ("train-delimiter-dot", ["train", "series.csv", "--delimiter", ".", *Q], 2, "cannot separate"),
    ("train-test-fraction-1", ["train", "series.csv", "--test-fraction", "1", *Q], 2, r"\[0, 1\)"),
    ("train-test-fraction-nan", ["train", "series.csv", "--test-fraction", "nan", *Q], 2, "0, 1"),
    ("train-output-exists", ["train", "series.csv", *Q, "-o", "exists.npz"], 2, "--force"),
    ("train-output-is-the-data", ["train", "series.csv", *Q, "-o", "series.csv"], 2, "--force"),
    ("train-output-directory", ["train", "series.csv", *Q, "-o", "."], 2, "exists|directory"),
    (
        "train-output-directory-force",
        ["train", "series.csv", *Q, "-o", ".", "--force"],
        2,
        "directory",
    ),
    (
        "train-output-in-missing-directory",
        ["train", "series.csv", *Q, "-o", "no/m.npz"],
        2,
        "does not exist",
    ),
    ("predict-missing-model", ["predict", "none.npz", "series.csv"], 2, "does not exist"),
    ("predict-csv-as-model", ["predict", "series.csv", "series.csv"], 2, "series.csv"),
    ("predict-directory-as-model", ["predict", ".", "series.csv"], 2, "directory"),
    ("predict-fifo-as-model", ["predict", "fifo.npz", "series.csv"], 2, "regular file", _mkfifo),
    ("predict-newer-model", ["predict", "newer.npz", "series.csv"], 2, "newer", _newer_model),
    (
        "predict-wrong-columns",
        ["predict", "model.npz", "bad.csv"],
        2,
        "3 columns",
        _write("bad.csv", "1,2,3\n4,5,6\n"),
    ),
    (
        "predict-too-large-for-scaling",
        ["predict", "scaled.npz", "bad.csv"],
        2,
        "too large",
        _scaled_data,
    ),
    (
        "predict-output-exists",
        ["predict", "model.npz", "series.csv", "-o", "exists.csv"],
        2,
        "--force",
    ),
    (
        "predict-output-is-the-model",
        ["predict", "model.npz", "series.csv", "-o", "model.npz"],
        2,
        "--force",
    ),
    ("predict-missing-data", ["predict", "model.npz", "none.csv"], 2, "does not exist"),
    (
        "predict-columns-out-of-range",
        ["predict", "model.npz", "series.csv", "--columns", "-2"],
        2,
        "out of range",
    ),
    ("forecast-no-steps", ["forecast", "model.npz", "series.csv"], 2, "--steps"),
    ("forecast-steps-0", ["forecast", "model.npz", "series.csv", "--steps", "0"], 2, "at least 1"),
    (
        "forecast-steps-negative",
        ["forecast", "model.npz", "series.csv", "--steps", "-2"],
        2,
        "steps",
    ),
    (
        "forecast-steps-word",
        ["forecast", "model.npz", "series.csv", "--steps", "ten"],
        2,
        "not an integer",
    ),
    (
        "forecast-steps-too-many",
        ["forecast", "model.npz", "series.csv", "--steps", "1000000000000"],
        1,
        "n_steps.*GiB",
    ),
    (
        "forecast-output-exists",
        ["forecast", "model.npz", "series.csv", "--steps", "3", "-o", "exists.csv"],
        2,
        "--force",
    ),
    ("demo-epochs-0", ["demo", "--epochs", "0"], 2, "at least 1"),
    ("demo-length-0", ["demo", "--length", "0"], 2, "at least 1"),
    (
        "demo-output-exists",
        ["demo", "-q", "--epochs", "1", "--length", "300", "--no-plot", "-o", "exists.npz"],
        2,
        "--force",
    ),
    (
        "demo-plot-exists",
        ["demo", "-q", "--epochs", "1", "--length", "300", "--plot", "exists.csv"],
        2,
        "--force",
    ),
    (
        "demo-output-in-missing-directory",
        ["demo", "-q", "--epochs", "1", "--length", "300", "--no-plot", "-o", "no/m.npz"],
        2,
        "does not exist",
    ),
]
for _id, _argv, _code, _fragment, *_setup in CLI_REFUSED:
    add(f"cli-{_id}", cli(_argv, *_setup), check=refused(_code, _fragment))


def accepted(expect_new=(), changed=()):
    def check(r):
        code, _out, err, before, after = r
        assert code == 0, err
        assert "Traceback" not in err, err
        for name, data in before.items():
            if name not in changed:
                assert after.get(name) == data, f"{name} was changed or removed"
        for name in changed:
            assert after[name] != before[name], f"{name} was not overwritten"
        assert set(after) - set(before) == set(expect_new), sorted(set(after) - set(before))

    return check


add("cli-predict-to-stdout", cli(["predict", "model.npz", "series.csv"]), check=accepted())
add(
    "cli-predict-force-overwrites",
    cli(["predict", "model.npz", "series.csv", "-o", "exists.csv", "--force"]),
    check=accepted(changed=["exists.csv"]),
)
add(
    "cli-train-default-name-is-new",
    cli(["train", "series.csv", *Q, "--window", "20"]),
    check=accepted(["crnn-model.npz"]),
)


def _default_taken(tmp):
    (tmp / "crnn-model.npz").write_text("an older model\n")


add(
    "cli-train-default-name-taken-gets-a-suffix",
    cli(["train", "series.csv", *Q, "--window", "20"], _default_taken),
    check=accepted(["crnn-model-1.npz"]),
)
add(
    "cli-forecast-to-stdout",
    cli(["forecast", "model.npz", "series.csv", "--steps", "3"]),
    check=accepted(),
)


# --------------------------------------------------------------------------- the child's program

_ids = [c.id for c in CASES]
_dups = {i for i in _ids if _ids.count(i) > 1}
assert not _dups, f"duplicate case ids: {sorted(_dups)}"
BY_ID = {c.id: c for c in CASES}

#: Seconds a case may run before the child prints its stack and exits.
CASE_TIMEOUT = 120
#: Bytes of traced Python and numpy memory a refusal "before allocating" may use.
LEAN_PEAK = 64 << 20


def run_case(case):
    """Run one case; return (passed, detail)."""
    import tempfile
    import tracemalloc
    import warnings

    with (
        tempfile.TemporaryDirectory(prefix="crnn-bad-input-") as tmp,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error")  # crnn's warnings (and numpy's) are failures
        CREATED.clear()
        if case.lean:
            tracemalloc.start()
        try:
            result = case.call(pathlib.Path(tmp))
            error = None
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            result, error = None, exc
        finally:
            peak = tracemalloc.get_traced_memory()[1] if case.lean else 0
            if case.lean:
                tracemalloc.stop()
    if case.lean and peak > LEAN_PEAK:
        return False, f"refused only after allocating: {peak / 2**20:.0f} MiB traced"
    if error is not None:
        if not case.raises:
            return False, f"expected a result, got {_describe(error)}"
        if not isinstance(error, case.raises):
            return False, f"expected {_names(case.raises)}, got {_describe(error)}"
        if case.match and not re.search(case.match, str(error), re.DOTALL):
            return False, f"the message does not match {case.match!r}: {_describe(error)}"
        return True, _describe(error)
    if case.raises and case.check is None:
        return False, f"no exception; expected {_names(case.raises)}; returned {result!r:.300}"
    if case.check is not None:  # a result (documented, or the other allowed outcome)
        try:
            ok = case.check(result)
        except Exception as exc:  # noqa: BLE001 - an AssertionError, or a broken check
            return False, f"wrong result: {type(exc).__name__}: {exc}"
        if ok is not None and not ok:
            return False, f"wrong result: {result!r:.300}"
    return True, "accepted"


def _names(types):
    return " or ".join(t.__name__ for t in types)


def _describe(exc):
    import traceback

    text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, (TypeError, ValueError, MemoryError, OSError)):
        text += "\n" + "".join(traceback.format_exception(exc))
    return text[:4000]


def _sanitized():
    """Return whether AddressSanitizer's runtime is loaded in this process."""
    try:
        with open("/proc/self/maps") as fh:
            return "libasan" in fh.read()
    except OSError:
        return "asan" in os.environ.get("LD_PRELOAD", "")


def main():
    import faulthandler
    import resource

    faulthandler.enable()
    # a mistaken allocation becomes a MemoryError, not an out-of-memory kill of the
    # machine (not under AddressSanitizer, whose shadow memory needs terabytes of
    # address space)
    limit = 16 << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if (soft == resource.RLIM_INFINITY or soft > limit) and not _sanitized():
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    ids = json.load(sys.stdin)
    out = sys.stdout
    for case_id in ids:
        print(json.dumps({"start": case_id}), file=out, flush=True)
        faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
        ok, detail = run_case(BY_ID[case_id])
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps({"id": case_id, "ok": ok, "detail": detail}), file=out, flush=True)


if __name__ == "__main__":
    main()
