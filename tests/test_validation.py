"""Every bad input to the public API, and the odd-but-valid inputs that are accepted.

Each refusal is checked for its exact exception type and for a message that
names the argument at fault. Each accepted oddity (layout, strides, read-only,
another dtype, nested lists) must give bit for bit the result of the same data
as a clean C-contiguous float64 array, and no call may modify its inputs.
"""

import copy
import math
import warnings

import numpy as np
import pytest

import crnn
from crnn import _validation

# Sizes used throughout: N sequences of T steps, input n, state d, output m (m != n).
N, T, n, d, m = 2, 5, 3, 4, 2

CALLS = ("forward", "predict", "loss", "bptt", "rtrl")
TARGET_CALLS = ("loss", "bptt", "rtrl")
GRADIENT_METHODS = ("bptt", "rtrl")


def make_rnn(dtype=np.float64, **kw):
    return crnn.RNN(n, d, m, dtype=dtype, seed=0, **kw)


def clean_data(kind):
    """Return valid (X, target, s0) for one sequence ("single") or a batch ("batch")."""
    rng = np.random.default_rng(1234)
    if kind == "single":
        return rng.normal(size=(T, n)), rng.normal(size=(T, m)), rng.uniform(-0.9, 0.9, d)
    return (
        rng.normal(size=(N, T, n)),
        rng.normal(size=(N, T, m)),
        rng.uniform(-0.9, 0.9, (N, d)),
    )


def run(call, rnn, X, target=None, s0=None, **kw):
    """Call one public method by a short name; gradients by method name."""
    if call == "forward":
        return rnn.forward(X, s0, **kw)
    if call == "predict":
        return rnn.predict(X, s0, **kw)
    if call == "loss":
        return rnn.loss(X, target, s0, **kw)
    return rnn.gradient(X, target, s0, method=call, **kw)


def results(call, out):
    """The arrays and floats a call returned, as a flat list."""
    if call == "forward":
        return list(out)
    if call in ("predict", "loss"):
        return [out]
    return [out.U, out.W, out.V, out.s0, out.loss]


def assert_same_results(call, got, want):
    got, want = results(call, got), results(call, want)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        if isinstance(b, float):
            assert isinstance(a, float)
            assert a == b
        else:
            assert a.dtype == b.dtype
            assert a.shape == b.shape
            assert np.array_equal(a, b)


def named(name):
    """A regex for a message that begins with the argument's name."""
    return rf"^{name}\b"


def with_value(a, index, value):
    a = np.array(a, dtype=np.float64)
    a[index] = value
    return a


X3, TARGET3, S03 = clean_data("batch")
X2, TARGET2, S02 = clean_data("single")


# --------------------------------------------------------------------------- data: X

# (id, X, exception); the target and s0 are valid, X is checked first.
BAD_X = [
    ("0d-python-float", 1.0, ValueError),
    ("0d-numpy-scalar", np.float64(1.0), ValueError),
    ("1d", np.zeros(n), ValueError),
    ("1d-empty-list", [], ValueError),
    ("4d", np.zeros((1, N, T, n)), ValueError),
    ("too-few-features-2d", np.zeros((T, n - 1)), ValueError),
    ("too-many-features-2d", np.zeros((T, n + 1)), ValueError),
    ("wrong-features-3d", np.zeros((N, T, n + 2)), ValueError),
    ("nan-3d", with_value(X3, (1, 2, 0), np.nan), ValueError),
    ("+inf-3d", with_value(X3, (0, 0, 0), np.inf), ValueError),
    ("-inf-3d", with_value(X3, (1, T - 1, n - 1), -np.inf), ValueError),
    ("nan-2d", with_value(X2, (3, 1), np.nan), ValueError),
    ("inf-2d-int-list", [[0, 1, 2]] * (T - 1) + [[0, float("inf"), 2]], ValueError),
    ("complex", X3.astype(np.complex128), TypeError),
    ("complex-list", [[1 + 0j, 2, 3]], TypeError),
    ("object", X3.astype(object), TypeError),
    ("str-array", np.full((N, T, n), "1.0"), TypeError),
    ("str-scalar", "abc", TypeError),
    ("str-nested-list", [["1", "2", "3"]], TypeError),
    ("bytes-array", np.full((T, n), b"1"), TypeError),
    ("bytes-scalar", b"abc", TypeError),
    ("datetime", np.zeros((N, T, n), dtype="datetime64[s]"), TypeError),
    ("timedelta", np.zeros((T, n), dtype="timedelta64[s]"), TypeError),
    ("ragged-2d", [[0.0] * n, [0.0] * (n - 1)], ValueError),
    ("ragged-3d", [[[0.0] * n] * T, [[0.0] * n] * (T - 1)], ValueError),
    ("none-in-list", [[0.0, None, 0.0]], TypeError),
    ("None", None, TypeError),
    ("dict", {"a": 1}, TypeError),
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("X", "exc"), [pytest.param(x, e, id=i) for i, x, e in BAD_X])
def test_bad_X_is_refused(call, X, exc):
    rnn = make_rnn()
    with pytest.raises(exc, match=named("X")):
        run(call, rnn, X, TARGET3)


# --------------------------------------------------------------------------- data: target

# (id, X, target, exception)
BAD_TARGET = [
    ("None", X3, None, TypeError),
    ("None-single", X2, None, TypeError),
    ("N-too-large", X3, np.zeros((N + 1, T, m)), ValueError),
    ("N-too-small", X3, np.zeros((N - 1, T, m)), ValueError),
    ("T-too-short", X3, np.zeros((N, T - 1, m)), ValueError),
    ("T-too-long", X3, np.zeros((N, T + 1, m)), ValueError),
    ("m-wrong", X3, np.zeros((N, T, m + 1)), ValueError),
    ("m-is-n", X3, np.zeros((N, T, n)), ValueError),
    ("2d-for-3d-X", X3, np.zeros((T, m)), ValueError),
    ("3d-for-2d-X", X2, np.zeros((1, T, m)), ValueError),
    ("T-wrong-single", X2, np.zeros((T + 1, m)), ValueError),
    ("m-wrong-single", X2, np.zeros((T, m + 1)), ValueError),
    ("1d", X2, np.zeros(T), ValueError),
    ("0d", X2, 0.0, ValueError),
    ("4d", X3, np.zeros((1, N, T, m)), ValueError),
    ("nan", X3, with_value(TARGET3, (1, 1, 1), np.nan), ValueError),
    ("+inf", X3, with_value(TARGET3, (0, 2, 0), np.inf), ValueError),
    ("-inf", X3, with_value(TARGET3, (1, 0, 1), -np.inf), ValueError),
    ("nan-single", X2, with_value(TARGET2, (T - 1, 0), np.nan), ValueError),
    ("complex", X3, TARGET3.astype(np.complex64), TypeError),
    ("object", X3, TARGET3.astype(object), TypeError),
    ("str", X2, np.full((T, m), "0"), TypeError),
    ("bytes", X2, np.full((T, m), b"0"), TypeError),
    ("datetime", X2, np.zeros((T, m), dtype="datetime64[D]"), TypeError),
    ("ragged", X2, [[0.0] * m] * (T - 1) + [[0.0]], ValueError),
    ("none-in-list", X2, [[0.0, None]] * T, TypeError),
]


@pytest.mark.parametrize("call", TARGET_CALLS)
@pytest.mark.parametrize(
    ("X", "target", "exc"), [pytest.param(x, t, e, id=i) for i, x, t, e in BAD_TARGET]
)
def test_bad_target_is_refused(call, X, target, exc):
    rnn = make_rnn()
    with pytest.raises(exc, match=named("target")):
        run(call, rnn, X, target)


# --------------------------------------------------------------------------- data: s0

# (id, X, s0, exception); the target is valid for X.
BAD_S0 = [
    ("batch-shape-for-single-sequence", X2, np.zeros((1, d)), ValueError),
    ("N-by-d-for-single-sequence", X2, np.zeros((N, d)), ValueError),
    ("too-long-single", X2, np.zeros(d + 1), ValueError),
    ("too-short-single", X2, np.zeros(d - 1), ValueError),
    ("empty-list-single", X2, [], ValueError),
    ("too-long-shared", X3, np.zeros(d + 1), ValueError),
    ("N-wrong", X3, np.zeros((N + 1, d)), ValueError),
    ("N-one-for-batch-of-two", X3, np.zeros((1, d)), ValueError),
    ("d-wrong", X3, np.zeros((N, d - 1)), ValueError),
    ("transposed", X3, np.zeros((d, N)), ValueError),
    ("0d", X3, 0.0, ValueError),
    ("3d", X3, np.zeros((N, 1, d)), ValueError),
    ("nan-single", X2, with_value(S02, 0, np.nan), ValueError),
    ("+inf-shared", X3, with_value(S02, d - 1, np.inf), ValueError),
    ("-inf-batch", X3, with_value(S03, (1, 2), -np.inf), ValueError),
    ("complex", X2, S02.astype(np.complex128), TypeError),
    ("object", X3, S03.astype(object), TypeError),
    ("str", X2, np.full(d, "0"), TypeError),
    ("bytes", X2, np.full(d, b"0"), TypeError),
    ("datetime", X2, np.zeros(d, dtype="datetime64[s]"), TypeError),
    ("ragged", X3, [[0.0] * d, [0.0] * (d - 1)], ValueError),
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("X", "s0", "exc"), [pytest.param(x, s, e, id=i) for i, x, s, e in BAD_S0])
def test_bad_s0_is_refused(call, X, s0, exc):
    rnn = make_rnn()
    target = TARGET2 if X.ndim == 2 else TARGET3
    with pytest.raises(exc, match=named("s0")):
        run(call, rnn, X, target, s0)


# --------------------------------------------------------------------------- check_finite


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (call, where)
        for call in CALLS
        for where in ("X", "target", "s0", "U", "W", "V")
        if where != "target" or call in TARGET_CALLS  # forward and predict take no target
    ],
)
def test_check_finite_false_lets_nan_through(call, where):
    rnn = make_rnn()
    X, target, s0 = X2.copy(), TARGET2.copy(), S02.copy()
    if where == "X":
        X[0, 0] = np.nan
    elif where == "target":
        target[0, 0] = np.nan
    elif where == "s0":
        s0[0] = np.nan
    else:
        getattr(rnn, where)[0, 0] = np.nan
    # refused by default, naming the argument ...
    with pytest.raises(ValueError, match=named(where)):
        run(call, rnn, X, target, s0)
    # ... and passed through to a NaN result with check_finite=False
    out = run(call, rnn, X, target, s0, check_finite=False)
    if call == "forward":
        assert np.isnan(out[1]).any()
        if where != "V":  # a NaN in V only reaches the outputs
            assert np.isnan(out[0]).any()
    elif call == "predict":
        assert np.isnan(out).any()
    elif call == "loss":
        assert isinstance(out, float)
        assert math.isnan(out)
    else:
        assert math.isnan(out.loss)
        assert np.isnan(out.V).any()


@pytest.mark.parametrize("call", CALLS)
def test_check_finite_false_still_checks_shapes_and_types(call):
    rnn = make_rnn()
    with pytest.raises(ValueError, match=named("X")):
        run(call, rnn, np.zeros((T, n + 1)), TARGET2, check_finite=False)
    with pytest.raises(TypeError, match=named("X")):
        run(call, rnn, X2.astype(complex), TARGET2, check_finite=False)
    with pytest.raises(ValueError, match=named("s0")):
        run(call, rnn, X2, TARGET2, np.full(d + 1, np.nan), check_finite=False)


@pytest.mark.parametrize("call", CALLS)
def test_overflow_into_float32_model_is_reported_as_not_finite(call):
    rnn = make_rnn(np.float32)
    X = with_value(X2, (1, 1), 1e39)  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=named("X")):
        run(call, rnn, X, TARGET2)


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("name", ["U", "W", "V"])
def test_weight_changed_in_place_to_non_finite_is_refused(call, value, name):
    rnn = make_rnn()
    run(call, rnn, X3, TARGET3)  # fine before the change
    getattr(rnn, name)[-1, 0] = value
    with pytest.raises(ValueError, match=named(name)):
        run(call, rnn, X3, TARGET3)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    ("name", "shape"),
    [("U", (n, d)), ("U", (d * n,)), ("W", (d * d,)), ("V", (d, m)), ("V", (1, m * d))],
    ids=["U-transposed", "U-flattened", "W-flattened", "V-transposed", "V-one-row"],
)
def test_weight_reshaped_in_place_is_refused(call, name, shape):
    rnn = make_rnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # setting .shape, in future numpy
        getattr(rnn, name).shape = shape
    with pytest.raises(ValueError, match=named(name)):
        run(call, rnn, X3, TARGET3)


def _bad_weight(kind, shape):
    """A bad value for a weight whose right shape is `shape`."""
    good = np.full(shape, 0.5)
    return {
        "None": None,
        "extra-column": np.zeros((shape[0], shape[1] + 1)),
        "extra-row": np.zeros((shape[0] + 1, shape[1])),
        "1d": good.ravel(),
        "0d": 0.5,
        "3d": good[np.newaxis],
        "nan": with_value(good, (0, 0), np.nan),
        "+inf": with_value(good, (shape[0] - 1, 0), np.inf),
        "-inf": with_value(good, (0, shape[1] - 1), -np.inf),
        "complex": good.astype(np.complex128),
        "object": good.astype(object),
        "str": np.full(shape, "0.5"),
        "bytes": np.full(shape, b"0"),
        "datetime": np.zeros(shape, dtype="datetime64[s]"),
        "ragged": [[0.5] * shape[1]] * (shape[0] - 1) + [[0.5] * (shape[1] + 1)],
    }[kind]


BAD_WEIGHTS = [
    ("None", TypeError),
    ("extra-column", ValueError),
    ("extra-row", ValueError),
    ("1d", ValueError),
    ("0d", ValueError),
    ("3d", ValueError),
    ("nan", ValueError),
    ("+inf", ValueError),
    ("-inf", ValueError),
    ("complex", TypeError),
    ("object", TypeError),
    ("str", TypeError),
    ("bytes", TypeError),
    ("datetime", TypeError),
    ("ragged", ValueError),
]
WEIGHT_SHAPES = {"U": (d, n), "W": (d, d), "V": (m, d)}


@pytest.mark.parametrize(("kind", "exc"), [pytest.param(k, e, id=k) for k, e in BAD_WEIGHTS])
@pytest.mark.parametrize("name", ["U", "W", "V"])
def test_bad_weight_assignment_is_refused_and_keeps_the_old_weights(name, kind, exc):
    rnn = make_rnn()
    before = {w: getattr(rnn, w).copy() for w in "UWV"}
    with pytest.raises(exc, match=named(name)):
        setattr(rnn, name, _bad_weight(kind, WEIGHT_SHAPES[name]))
    for w in "UWV":
        assert np.array_equal(getattr(rnn, w), before[w])
    rnn.forward(X2)  # the model still works


@pytest.mark.parametrize(("kind", "exc"), [pytest.param(k, e, id=k) for k, e in BAD_WEIGHTS])
@pytest.mark.parametrize("dtype", [None, np.float64], ids=["dtype-None", "dtype-float64"])
@pytest.mark.parametrize("name", ["U", "W", "V"])
def test_from_weights_refuses_bad_weights(name, dtype, kind, exc):
    weights = {w: np.full(s, 0.5) for w, s in WEIGHT_SHAPES.items()}
    weights[name] = _bad_weight(kind, WEIGHT_SHAPES[name])
    if name == "U" and kind in ("extra-column", "extra-row"):
        # U defines n and d: a U with an extra row makes W the mismatch, and an
        # extra column is simply a model with more inputs
        weights["U"] = np.zeros((0, n)) if kind == "extra-row" else np.zeros((d, 0))
    if name == "V" and kind == "extra-row":
        weights["V"] = np.zeros((0, d))  # V defines m: only an empty V is wrong
    with pytest.raises(exc, match=named(name)):
        crnn.RNN.from_weights(weights["U"], weights["W"], weights["V"], dtype=dtype)


@pytest.mark.parametrize("n_threads", [0, 1.5, "2"], ids=["zero", "float", "str"])
def test_from_weights_refuses_bad_n_threads(n_threads):
    exc = ValueError if n_threads == 0 else TypeError
    with pytest.raises(exc, match=named("n_threads")):
        crnn.RNN.from_weights(np.eye(d, n), np.eye(d), np.eye(m, d), n_threads=n_threads)


# --------------------------------------------------------------------------- RNN(...)

BAD_SIZES = [
    ("zero", 0, ValueError),
    ("negative", -1, ValueError),
    ("very-negative", -(10**30), ValueError),
    ("float", 2.0, TypeError),
    ("numpy-float", np.float64(2.0), TypeError),
    ("bool", True, TypeError),
    ("numpy-bool", np.bool_(True), TypeError),
    ("str", "3", TypeError),
    ("None", None, TypeError),
    ("complex", 2 + 0j, TypeError),
    ("array", np.array([3]), TypeError),
]


@pytest.mark.parametrize(("value", "exc"), [pytest.param(v, e, id=i) for i, v, e in BAD_SIZES])
@pytest.mark.parametrize("arg", ["input_size", "hidden_size", "output_size"])
def test_bad_sizes_are_refused(arg, value, exc):
    if arg == "output_size" and value is None:
        assert crnn.RNN(n, d, None).output_size == n  # None means "as input_size"
        return
    sizes = {"input_size": n, "hidden_size": d, "output_size": m}
    sizes[arg] = value
    with pytest.raises(exc, match=named(arg)):
        crnn.RNN(**sizes)


def test_numpy_integer_sizes_are_accepted():
    rnn = crnn.RNN(np.int64(n), np.uint8(d), np.int32(m), seed=0)
    assert (rnn.input_size, rnn.hidden_size, rnn.output_size) == (n, d, m)
    assert all(type(s) is int for s in (rnn.input_size, rnn.hidden_size, rnn.output_size))


BAD_DTYPES = [
    ("int", int, ValueError),
    ("int32", np.int32, ValueError),
    ("bool", bool, ValueError),
    ("float16", np.float16, ValueError),
    ("float16-str", "float16", ValueError),
    ("complex", complex, ValueError),
    ("complex64", np.complex64, ValueError),
    ("object", object, ValueError),
    ("str-type", str, ValueError),
    ("foo", "foo", TypeError),
    ("number", 3, TypeError),
]


@pytest.mark.parametrize(("dtype", "exc"), [pytest.param(t, e, id=i) for i, t, e in BAD_DTYPES])
def test_bad_dtype_is_refused(dtype, exc):
    with pytest.raises(exc, match=named("dtype")):
        crnn.RNN(n, d, m, dtype=dtype)
    with pytest.raises(exc, match=named("dtype")):
        crnn.RNN.from_weights(np.eye(d, n), np.eye(d), np.eye(m, d), dtype=dtype)


@pytest.mark.parametrize(
    "dtype",
    [np.float32, np.float64, "float32", "f8", float, np.dtype("<f4")],
    ids=["float32", "float64", "str-float32", "f8", "python-float", "dtype-object"],
)
def test_float_dtypes_are_accepted(dtype):
    want = np.dtype(dtype)
    assert crnn.RNN(n, d, m, dtype=dtype).dtype == want
    rnn = crnn.RNN.from_weights(np.eye(d, n), np.eye(d), np.eye(m, d), dtype=dtype)
    assert rnn.dtype == want
    assert all(w.dtype == want for w in (rnn.U, rnn.W, rnn.V))
    S, Y = rnn.forward(X3)
    assert S.dtype == want
    assert Y.dtype == want


# --------------------------------------------------------------------------- g and method

BAD_G = [
    ("zero", 0, ValueError),
    ("zero-float", 0.0, ValueError),
    ("negative", -1.0, ValueError),
    ("negative-zero", -0.0, ValueError),
    ("nan", np.nan, ValueError),
    ("+inf", np.inf, ValueError),
    ("-inf", -np.inf, ValueError),
    ("numpy-nan", np.float32(np.nan), ValueError),
    ("int-beyond-float", 10**400, ValueError),
    ("int-too-long-to-print", 10**5000, ValueError),
    ("str", "1.0", TypeError),
    ("bool", True, TypeError),
    ("numpy-bool", np.bool_(True), TypeError),
    ("None", None, TypeError),
    ("complex", 1 + 0j, TypeError),
    ("list", [1.0], TypeError),
]


@pytest.mark.parametrize("call", TARGET_CALLS)
@pytest.mark.parametrize(("g", "exc"), [pytest.param(v, e, id=i) for i, v, e in BAD_G])
def test_bad_g_is_refused(call, g, exc):
    rnn = make_rnn()
    with pytest.raises(exc, match=named("g")):
        run(call, rnn, X3, TARGET3, g=g)


@pytest.mark.parametrize("call", TARGET_CALLS)
@pytest.mark.parametrize(
    "g", [2, np.float32(2.0), np.int64(2), 2.0], ids=["int", "float32", "int64", "float"]
)
def test_real_g_is_accepted(call, g):
    rnn = make_rnn()
    assert_same_results(call, run(call, rnn, X3, TARGET3, g=g), run(call, rnn, X3, TARGET3, g=2.0))


@pytest.mark.parametrize("call", TARGET_CALLS)
@pytest.mark.parametrize("g", [1e39, 1e-50], ids=["overflows-float32", "underflows-float32"])
def test_g_must_be_finite_and_positive_in_the_model_dtype(call, g):
    with pytest.raises(ValueError, match=named("g")):
        run(call, make_rnn(np.float32), X3, TARGET3, g=g)
    # the same g is fine in float64
    assert math.isfinite(results(call, run(call, make_rnn(), X3, TARGET3, g=g))[-1])


BAD_METHODS = [
    ("foo", "foo", ValueError),
    ("empty", "", ValueError),
    ("padded", " bptt", ValueError),
    ("None", None, TypeError),
    ("int", 3, TypeError),
    ("zero", 0, TypeError),
    ("bytes", b"bptt", TypeError),
]


@pytest.mark.parametrize(("method", "exc"), [pytest.param(v, e, id=i) for i, v, e in BAD_METHODS])
def test_bad_method_is_refused(method, exc):
    rnn = make_rnn()
    with pytest.raises(exc, match=named("method")):
        rnn.gradient(X3, TARGET3, method=method)


# the flags check_finite and return_state (bad values, numpy bools): in the
# table of bad_input_cases.py (FLAG_BAD, FLAG_OK)


@pytest.mark.parametrize("method", ["BPTT", "Bptt", "RTRL", "rTrL"])
def test_method_is_case_insensitive(method):
    rnn = make_rnn()
    got = rnn.gradient(X3, TARGET3, method=method)
    want = rnn.gradient(X3, TARGET3, method=method.lower())
    assert got.method == method.lower()
    assert_same_results(method.lower(), got, want)


# --------------------------------------------------------------------------- n_threads

BAD_N_THREADS = [
    ("zero", 0, ValueError),
    ("float", 1.5, TypeError),
    ("whole-float", 2.0, TypeError),
    ("str", "2", TypeError),
    ("bool", True, TypeError),
    ("list", [2], TypeError),
]


@pytest.mark.parametrize(("value", "exc"), [pytest.param(v, e, id=i) for i, v, e in BAD_N_THREADS])
@pytest.mark.parametrize("where", ["constructor", "setter"])
def test_bad_n_threads_is_refused(where, value, exc):
    if where == "constructor":
        with pytest.raises(exc, match=named("n_threads")):
            make_rnn(n_threads=value)
    else:
        rnn = make_rnn(n_threads=2)
        with pytest.raises(exc, match=named("n_threads")):
            rnn.n_threads = value
        assert rnn.n_threads == 2


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("value", [-1, -2, -1000, None, 1, 2, np.int64(3), 10**6])
def test_accepted_n_threads_give_the_same_results(call, value):
    rnn = make_rnn(n_threads=value)
    assert rnn.n_threads == value
    one = make_rnn(n_threads=1)
    X = np.random.default_rng(5).normal(size=(7, T, n))
    target = np.random.default_rng(6).normal(size=(7, T, m))
    assert_same_results(call, run(call, rnn, X, target), run(call, one, X, target))


# --------------------------------------------------------------------------- accepted inputs


def _strided_view(a):
    """A view of a (with a's values) that skips every other row: non-contiguous."""
    big = np.full((2 * a.shape[0], *a.shape[1:]), 99.0)
    big[::2] = a
    return big[::2]


def _last_axis_strided_view(a):
    big = np.full((*a.shape[:-1], 2 * a.shape[-1]), 99.0)
    big[..., ::2] = a
    return big[..., ::2]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _reversed(a):
    r = a[::-1]
    return r, r.copy()


def _as(dtype):
    def convert(a):
        c = (np.rint(4 * a) if np.dtype(dtype).kind in "iu" else a).astype(dtype)
        return c, c.astype(np.float64)

    return convert


# Each maps a clean float64 array to (accepted input, the same data as clean float64).
TRANSFORMS = {
    "c-contiguous": lambda a: (a.copy(), a),
    "fortran": lambda a: (np.asfortranarray(a), a),
    "strided-rows": lambda a: (_strided_view(a), a),
    "strided-last-axis": lambda a: (_last_axis_strided_view(a), a),
    "negative-stride": _reversed,
    "read-only": lambda a: (_read_only(a), a),
    "int64": _as(np.int64),
    "int8": _as(np.int8),
    "bool": lambda a: (a > 0, (a > 0).astype(np.float64)),
    "float32": _as(np.float32),
    "float16": _as(np.float16),
    "nested-list": lambda a: (a.tolist(), a),
    "list-of-arrays": lambda a: (list(a), a),
}

ACCEPTED_CASES = [
    pytest.param(kind, call, which, t, id=f"{kind}-{call}-{which}-{t}")
    for kind in ("single", "batch")
    for call in CALLS
    for which in ("X", "target", "s0")
    if not (which == "target" and call not in TARGET_CALLS)
    for t in TRANSFORMS
]


def _snapshot(value):
    return copy.deepcopy(value) if isinstance(value, list) else np.array(value, copy=True)


def _unchanged(value, snapshot):
    if isinstance(value, list):
        return (
            value == snapshot
            if not isinstance(value[0], np.ndarray)
            else all(np.array_equal(a, b) for a, b in zip(value, snapshot, strict=True))
        )
    return value.dtype == snapshot.dtype and np.array_equal(value, snapshot)


@pytest.mark.parametrize(("kind", "call", "which", "transform"), ACCEPTED_CASES)
def test_accepted_input_gives_the_result_of_clean_float64(kind, call, which, transform):
    rnn = make_rnn()
    weights = [w.copy() for w in (rnn.U, rnn.W, rnn.V)]
    args = dict(zip(("X", "target", "s0"), clean_data(kind), strict=True))
    clean = dict(args)
    args[which], clean[which] = TRANSFORMS[transform](args[which])
    for a in clean.values():
        assert a.dtype == np.float64
    snapshot = _snapshot(args[which])

    got = run(call, rnn, **args)
    want = run(call, rnn, **clean)

    assert_same_results(call, got, want)
    assert _unchanged(args[which], snapshot), "the input was modified"
    for w, before in zip((rnn.U, rnn.W, rnn.V), weights, strict=True):
        assert np.array_equal(w, before), "the weights were modified"
    if isinstance(args[which], np.ndarray):
        for r in results(call, got):
            if isinstance(r, np.ndarray):
                assert not np.shares_memory(r, args[which])


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kind", ["single", "batch"])
@pytest.mark.parametrize("s0_kind", ["none", "given", "shared"])
def test_no_call_modifies_its_inputs(call, kind, s0_kind):
    rnn = make_rnn()
    X, target, s0 = clean_data(kind)
    if s0_kind == "none":
        s0 = None
    elif s0_kind == "shared":
        s0 = S02.copy()
    saved = [None if a is None else a.copy() for a in (X, target, s0)]
    weights = [w.copy() for w in (rnn.U, rnn.W, rnn.V)]
    out = run(call, rnn, X, target, s0)
    run(call, rnn, X, target, s0)  # a second call sees the same inputs
    for a, b in zip((X, target, s0), saved, strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)
    for w, before in zip((rnn.U, rnn.W, rnn.V), weights, strict=True):
        assert np.array_equal(w, before)
    # the results are new arrays, not views of the inputs or the weights
    for r in results(call, out):
        if isinstance(r, np.ndarray):
            for a in (X, target, s0, rnn.U, rnn.W, rnn.V):
                assert a is None or not np.shares_memory(r, a)


@pytest.mark.parametrize("call", CALLS)
def test_float64_data_into_float32_model_is_converted(call):
    rnn = make_rnn(np.float32)
    got = run(call, rnn, X3, TARGET3, S03)
    want = run(call, rnn, X3.astype(np.float32), TARGET3.astype(np.float32), S03.astype(np.float32))
    assert_same_results(call, got, want)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("name", ["U", "W", "V"])
def test_accepted_weights_are_converted_and_copied(name, transform):
    rnn = make_rnn()
    base = np.random.default_rng(3).normal(size=WEIGHT_SHAPES[name])
    value, clean = TRANSFORMS[transform](base)
    snapshot = _snapshot(value)

    setattr(rnn, name, value)
    built = crnn.RNN.from_weights(
        *(value if w == name else getattr(rnn, w) for w in "UWV"), dtype=np.float64
    )
    for model in (rnn, built):
        w = getattr(model, name)
        assert w.dtype == np.float64
        assert w.flags.c_contiguous
        assert w.flags.writeable
        assert np.array_equal(w, clean)
        if isinstance(value, np.ndarray):
            assert not np.shares_memory(w, value)
    assert _unchanged(value, snapshot)
    assert_same_results("bptt", rnn.gradient(X3, TARGET3), built.gradient(X3, TARGET3))


# --------------------------------------------------------------------------- empty inputs

# (id, X shape, s0: None, "shared" (d,) or "batch" (N', d), expected G.s0 shape)
EMPTY_CASES = [
    ("single-T0", (0, n), None, (d,)),
    ("single-T0-s0", (0, n), "shared", (d,)),
    ("batch-N0", (0, T, n), None, (0, d)),
    ("batch-N0-shared-s0", (0, T, n), "shared", (d,)),
    ("batch-N0-batch-s0", (0, T, n), "batch", (0, d)),
    ("batch-T0", (N, 0, n), None, (N, d)),
    ("batch-T0-shared-s0", (N, 0, n), "shared", (d,)),
    ("batch-T0-batch-s0", (N, 0, n), "batch", (N, d)),
    ("batch-N0-T0", (0, 0, n), None, (0, d)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("xshape", "s0_kind", "ds0_shape"), [pytest.param(*c[1:], id=c[0]) for c in EMPTY_CASES]
)
def test_empty_inputs_give_empty_outputs_zero_loss_and_zero_gradients(
    xshape, s0_kind, ds0_shape, dtype
):
    rnn = make_rnn(dtype)
    X = np.zeros(xshape)
    target = np.zeros((*xshape[:-1], m))
    s0 = {None: None, "shared": S02, "batch": np.full((xshape[0], d), 0.5)}[s0_kind]

    S, Y = rnn.forward(X, s0)
    assert S.shape == (*xshape[:-1], d)
    assert Y.shape == (*xshape[:-1], m)
    assert S.dtype == Y.dtype == np.dtype(dtype)
    assert rnn.predict(X, s0).shape == (*xshape[:-1], m)

    E = rnn.loss(X, target, s0)
    assert isinstance(E, float)
    assert E == 0.0

    for method in GRADIENT_METHODS:
        G = rnn.gradient(X, target, s0, method=method)
        assert G.loss == 0.0
        assert G.method == method
        for got, shape in ((G.U, (d, n)), (G.W, (d, d)), (G.V, (m, d)), (G.s0, ds0_shape)):
            assert got.shape == shape
            assert got.dtype == np.dtype(dtype)
            assert not got.any()


@pytest.mark.parametrize("call", CALLS)
def test_empty_inputs_are_still_validated(call):
    rnn = make_rnn()
    with pytest.raises(ValueError, match=named("X")):
        run(call, rnn, np.zeros((0, n + 1)), np.zeros((0, m)))
    with pytest.raises(ValueError, match=named("s0")):
        run(call, rnn, np.zeros((0, T, n)), np.zeros((0, T, m)), np.zeros((1, d)))
    if call in TARGET_CALLS:
        with pytest.raises(ValueError, match=named("target")):
            run(call, rnn, np.zeros((N, 0, n)), np.zeros((N, 1, m)))


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize(
    ("sizes", "dtype", "match"),
    [
        pytest.param((10**6, 10**6), np.float64, r"\bweight U\b", id="U-1e6-by-1e6"),
        pytest.param((10**6, 10**6), np.float32, r"\bweight U\b", id="U-float32"),
        pytest.param((1, 10**6), np.float64, r"\bweight W\b", id="W-1e6-by-1e6"),
        pytest.param((1, 1, 2**62), np.float64, r"\bweight V\b.*too many", id="V-2-62-rows"),
        pytest.param((2**62, 2**62), np.float64, r"\bweight U\b.*too many", id="U-2-124"),
    ],
)
def test_model_too_large_for_memory_is_refused(sizes, dtype, match):
    with pytest.raises(MemoryError, match=match):
        crnn.RNN(*sizes, dtype=dtype)


def _huge(shape, dtype=np.float64):
    """A read-only view of zeros of the given shape that takes no memory."""
    return np.broadcast_to(np.zeros((1,) * len(shape), dtype=dtype), shape)


@pytest.mark.parametrize("dtype", [np.float64, np.int8], ids=["float64", "int8"])
@pytest.mark.parametrize("call", CALLS)
def test_X_too_large_to_convert_is_refused(call, dtype):
    rnn = crnn.RNN(1, 2, 1, seed=0)
    big = _huge((1, 10**12, 1), dtype)
    with pytest.raises(MemoryError, match=named("X")):
        run(call, rnn, big, big)


@pytest.mark.parametrize("call", CALLS)
def test_s0_too_large_to_convert_is_refused(call):
    rnn = crnn.RNN(1, 2, 1, seed=0)
    X = _huge((10**12, 0, 1))  # no elements, so no memory
    with pytest.raises(MemoryError, match=named("s0")):
        run(call, rnn, X, X, _huge((10**12, 2)))


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("s0", [None, np.zeros(2)], ids=["s0-None", "s0-shared"])
def test_batch_of_too_many_initial_states_is_refused(call, s0):
    rnn = crnn.RNN(1, 2, 1, seed=0)
    X = _huge((10**12, 0, 1))
    with pytest.raises(MemoryError, match=r"\bs0\b"):
        run(call, rnn, X, X, s0)


@pytest.mark.parametrize("which", ["U", "W", "V"])
def test_weight_too_large_to_convert_is_refused(which):
    big = _huge((10**6, 10**6))
    weights = [big if w == which else np.eye(2) for w in "UWV"]
    with pytest.raises(MemoryError, match=named(which)):
        crnn.RNN.from_weights(*weights)


@pytest.fixture
def one_mib_of_memory(monkeypatch):
    """Pretend this machine has 1 MiB of memory, so the checks can be reached cheaply."""
    monkeypatch.setattr(_validation, "_physical_memory", lambda: 2**20)


@pytest.mark.usefixtures("one_mib_of_memory")
def test_results_and_workspaces_larger_than_memory_are_refused():
    # 40000 steps: X is 320 kB, but the states and outputs (40000 x 5) are 1.6 MB
    rnn = crnn.RNN(1, 4, 1, seed=0, n_threads=1)
    X = np.zeros((1, 40_000, 1))
    for call in ("forward", "predict"):
        with pytest.raises(MemoryError, match="states and outputs"):
            run(call, rnn, X)
    with pytest.raises(MemoryError, match="bptt workspace"):
        rnn.gradient(X, X)
    # the loss keeps no states: it needs no more memory
    assert rnn.loss(X, X) >= 0.0
    # RTRL's workspace does not grow with T, but with d^3
    big_d = crnn.RNN(1, 60, 1, seed=0, n_threads=1)
    with pytest.raises(MemoryError, match="rtrl workspace"):
        big_d.gradient(np.zeros((1, 1, 1)), np.zeros((1, 1, 1)), method="rtrl")
    # RTRL's gradient slots (one per sequence): 50000 sequences x 3 parameters is 1.2 MB
    tiny = crnn.RNN(1, 1, 1, seed=0, n_threads=1)
    with pytest.raises(MemoryError, match="gradient slots"):
        tiny.gradient(np.zeros((50_000, 1, 1)), np.zeros((50_000, 1, 1)), method="rtrl")
    # BPTT needs no slots: its batch gradient is one product over all the steps
    wide = crnn.RNN(1, 200, 1, seed=0, n_threads=1)
    assert wide.gradient(np.zeros((4, 1, 1)), np.zeros((4, 1, 1))).W.shape == (200, 200)
    # a conversion (int64 to float64) that does not fit is refused before it is made
    with pytest.raises(MemoryError, match=named("X")):
        rnn.forward(np.zeros((1, 200_000, 1), dtype=np.int64))
