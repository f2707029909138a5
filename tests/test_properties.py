"""Hypothesis property tests of crnn against its pure-Python oracle.

Sizes, dtypes, values and memory layouts are drawn by hypothesis; every
example is compared with :mod:`crnn.reference`, run one sequence at a time on
the float64 values of exactly the numbers the model computes with (the
float32 weights and data cast back to float64 for a float32 model).
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import crnn
from crnn import reference

# derandomize: the same examples on every run, so CI is reproducible.
FAST = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

DTYPES = (np.float32, np.float64)
# Tolerances against the float64 oracle, by the model's dtype.
TOL = {
    np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-10},
    np.dtype(np.float32): {"rtol": 2e-3, "atol": 2e-4},
}
LAYOUTS = ("C", "F", "strided", "readonly")
METHODS = ("bptt", "rtrl")

# ---------------------------------------------------------------------------- strategies


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _array(draw, shape, lo, hi):
    return draw(hnp.arrays(np.float64, shape, elements=_floats(lo, hi)))


def with_layout(a, layout):
    """The values of a in another memory layout (a may be returned as a view)."""
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    # A reversed, every-other-element view into a NaN-filled buffer: reading
    # the wrong memory gives NaN, which no comparison lets through.
    buf = np.full(tuple(2 * s for s in a.shape), np.nan, dtype=a.dtype)
    view = buf[tuple(slice(None, None, -2) for _ in a.shape)]
    view[...] = a
    return view


@st.composite
def problems(draw, max_N=3, max_T=6, batch=None):
    """A model and a problem: weights, X, target, s0 (with its kind), g."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    n = draw(st.integers(1, 3))
    d = draw(st.integers(1, 4))
    m = draw(st.integers(1, 3))
    T = draw(st.integers(1, max_T))
    batched = draw(st.booleans()) if batch is None else batch
    N = draw(st.integers(1, max_N)) if batched else 1
    U = _array(draw, (d, n), -2, 2)
    W = _array(draw, (d, d), -2, 2)
    V = _array(draw, (m, d), -2, 2)
    X = _array(draw, (N, T, n), -3, 3)
    target = _array(draw, (N, T, m), -3, 3)
    s0_kind = draw(st.sampled_from(("none", "shared", "batch") if batched else ("none", "shared")))
    s0 = None
    if s0_kind == "shared":
        s0 = _array(draw, (d,), -1, 1)
    elif s0_kind == "batch":
        s0 = _array(draw, (N, d), -1, 1)
    g = draw(_floats(0.1, 3))
    x_layout = draw(st.sampled_from(LAYOUTS))
    t_layout = draw(st.sampled_from(LAYOUTS))
    if not batched:
        X, target = X[0], target[0]
    return {
        "model": crnn.RNN.from_weights(U, W, V, dtype=dtype),
        "X": with_layout(X, x_layout),
        "target": with_layout(target, t_layout),
        "s0": s0,
        "s0_kind": s0_kind,
        "g": g,
        "batched": batched,
    }


# ---------------------------------------------------------------------------- helpers


def q(a, dtype):
    """a rounded to dtype, back in float64: the numbers a model of dtype sees."""
    return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)


def oracle_inputs(p):
    """Per-sequence float64 inputs for the oracle, as the model sees them."""
    model = p["model"]
    dt = model.dtype
    U, W, V = (w.astype(np.float64) for w in (model.U, model.W, model.V))
    X, target = q(p["X"], dt), q(p["target"], dt)
    if not p["batched"]:
        X, target = X[np.newaxis], target[np.newaxis]
    s0 = q(p["s0"], dt)
    N = X.shape[0]
    if s0 is None:
        s0s = [None] * N
    elif s0.ndim == 1:
        s0s = [s0] * N
    else:
        s0s = list(s0)
    return U, W, V, X, target, s0s


def oracle_gradient(p, method):
    """The oracle's gradient, summed over the batch, shaped as crnn's Gradient."""
    U, W, V, X, target, s0s = oracle_inputs(p)
    fn = reference.gradient_bptt if method == "bptt" else reference.gradient_rtrl
    parts = [fn(U, W, V, x, t, s, p["g"]) for x, t, s in zip(X, target, s0s, strict=True)]
    out = {k: np.sum([np.asarray(r[k], dtype=np.float64) for r in parts], axis=0) for k in "UWV"}
    ds0 = np.array([r["s0"] for r in parts], dtype=np.float64)
    if not p["batched"]:
        ds0 = ds0[0]
    elif p["s0_kind"] == "shared":
        ds0 = ds0.sum(axis=0)
    out["s0"] = ds0
    out["loss"] = float(sum(r["loss"] for r in parts))
    return out


def approx(expected, dtype):
    tol = TOL[np.dtype(dtype)]
    return pytest.approx(expected, rel=tol["rtol"], abs=tol["atol"])


def assert_close(actual, desired, dtype, name):
    actual = np.asarray(actual)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{name}: shape {actual.shape} != {desired.shape}"
    np.testing.assert_allclose(
        actual.astype(np.float64), desired, err_msg=name, **TOL[np.dtype(dtype)]
    )


def call(p, what, **kw):
    model = p["model"]
    if what == "forward":
        return model.forward(p["X"], p["s0"])
    if what == "loss":
        return model.loss(p["X"], p["target"], p["s0"], p["g"])
    return model.gradient(p["X"], p["target"], p["s0"], p["g"], **kw)


# ---------------------------------------------------------------------------- properties


@FAST
@given(p=problems())
def test_forward_matches_reference(p):
    model = p["model"]
    S, Y = call(p, "forward")
    lead = p["X"].shape[:-1]
    assert S.shape == (*lead, model.hidden_size)
    assert Y.shape == (*lead, model.output_size)
    assert S.dtype == Y.dtype == model.dtype
    U, W, V, X, _, s0s = oracle_inputs(p)
    S3 = S if p["batched"] else S[np.newaxis]
    Y3 = Y if p["batched"] else Y[np.newaxis]
    for i, (x, s0) in enumerate(zip(X, s0s, strict=True)):
        S_ref, Y_ref = reference.forward(U, W, V, x, s0)
        assert_close(S3[i], S_ref, model.dtype, f"S[{i}]")
        assert_close(Y3[i], Y_ref, model.dtype, f"Y[{i}]")


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(p=problems())
def test_gradient_matches_reference(p, method):
    model = p["model"]
    G = call(p, "gradient", method=method)
    ref = oracle_gradient(p, method)
    assert G.method == method
    for name in ("U", "W", "V", "s0"):
        got = getattr(G, name)
        assert got.dtype == model.dtype, name
        assert_close(got, ref[name], model.dtype, f"d{name}")
    assert G.loss == approx(ref["loss"], model.dtype)


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(p=problems())
def test_loss_equals_gradient_loss(p, method):
    E = call(p, "loss")
    G = call(p, "gradient", method=method)
    assert isinstance(E, float)
    assert isinstance(G.loss, float)
    assert G.loss == approx(E, p["model"].dtype)


@FAST
@given(p=problems())
def test_rtrl_equals_bptt(p):
    dt = p["model"].dtype
    Gb = call(p, "gradient", method="bptt")
    Gr = call(p, "gradient", method="rtrl")
    for name in ("U", "W", "V", "s0"):
        assert_close(getattr(Gr, name), getattr(Gb, name), dt, f"d{name}")
    assert Gr.loss == approx(Gb.loss, dt)


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(p=problems(), scale=_floats(0.1, 3))
def test_gradient_is_linear_in_g(p, scale, method):
    dt = p["model"].dtype
    G1 = call(p, "gradient", method=method)
    G2 = call({**p, "g": p["g"] * scale}, "gradient", method=method)
    for name in ("U", "W", "V", "s0"):
        a = getattr(G1, name).astype(np.float64)
        assert_close(getattr(G2, name), scale * a, dt, f"d{name}")
    assert G2.loss == approx(scale * G1.loss, dt)


# N up to 12: more sequences than the gradient slots of two threads (8), so
# slots are reused and the order of their sums matters. Fewer examples: with
# two OpenMP threads on a busy two-core machine, each call can take ~50 ms.
@settings(FAST, max_examples=200)
@given(p=problems(max_N=12, max_T=4, batch=True))
def test_threads_are_bit_for_bit(p):
    model = p["model"]
    results = {}
    for nt in (1, 2):
        model.n_threads = nt
        S, Y = call(p, "forward")
        E = call(p, "loss")
        Gs = [call(p, "gradient", method=mth) for mth in METHODS]
        results[nt] = (S, Y, E, Gs)
    (S1, Y1, E1, G1), (S2, Y2, E2, G2) = results[1], results[2]
    assert np.array_equal(S1, S2)
    assert np.array_equal(Y1, Y2)
    assert E1 == E2
    for a, b in zip(G1, G2, strict=True):
        assert a.loss == b.loss
        for name in ("U", "W", "V", "s0"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


# ---------------------------------------------------------------------------- refusals

FLOAT_SIZES = (16, 32, 64, 128) if hasattr(np, "float128") else (16, 32, 64)
NUMERIC_DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(sizes=FLOAT_SIZES),
)
OTHER_DTYPES = st.one_of(
    hnp.complex_number_dtypes(),
    hnp.datetime64_dtypes(),
    hnp.timedelta64_dtypes(),
    hnp.byte_string_dtypes(max_len=3),
    hnp.unicode_string_dtypes(max_len=3),
)
# Floating dtypes are drawn most often: their values (NaN, infinity, numbers
# too large for the model's dtype) give the most ways to be refused.
ANY_DTYPE = st.one_of(hnp.floating_dtypes(sizes=FLOAT_SIZES), NUMERIC_DTYPES, OTHER_DTYPES)


@st.composite
def any_arrays(draw, last=None):
    """Arrays of any numpy dtype, rank 0..4 and values; often with last axis `last`."""
    dtype = draw(ANY_DTYPE)
    if last is not None and draw(st.booleans()):
        # rank 2 or 3 with the right last axis: only dtype and values decide
        lead = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=4))
        shape = (*lead, last)
    else:
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    return draw(hnp.arrays(dtype, shape))


def expected_error(arr, model, ranks, last):
    """The exception type crnn's documented checks must raise for arr, or None."""
    if arr.dtype.kind not in "fiub":
        return TypeError
    if arr.ndim not in ranks or arr.shape[-1] != last:
        return ValueError
    with np.errstate(all="ignore"):
        finite = np.isfinite(arr.astype(model.dtype)).all()
    return None if finite else ValueError


def finite_positive(g):
    """Whether g is an acceptable loss scale: a real number, not a bool, finite as a float."""
    if isinstance(g, bool) or not isinstance(g, (int, float)):
        return False
    try:
        return math.isfinite(float(g)) and g > 0
    except OverflowError:  # an int too large for a float
        return False


def valid_array(arr, shapes, model):
    """Whether arr is an acceptable array of one of the shapes for model."""
    return (
        arr.dtype.kind in "fiub"
        and arr.shape in shapes
        and expected_error(arr, model, (arr.ndim,), arr.shape[-1]) is None
    )


@settings(FAST, max_examples=1000)
@given(
    X=any_arrays(last=2),
    dtype=st.sampled_from(DTYPES),
    as_object=st.sampled_from([False, False, False, True]),
)
# float64 data too large for a float32 model: the cast overflows to infinity
@example(X=np.full((3, 2), 1e300), dtype=np.float32, as_object=False)
@example(X=np.zeros((2, 0, 2), dtype=np.int8), dtype=np.float64, as_object=False)
@example(X=np.zeros((2, 2), dtype=np.complex64), dtype=np.float64, as_object=False)
def test_forward_refuses_only_with_type_or_value_error(X, dtype, as_object):
    model = crnn.RNN(2, 3, 4, dtype=dtype, seed=0)
    expected = expected_error(X, model, (2, 3), 2)
    if as_object:
        X = X.astype(object)
        expected = TypeError
    if expected is not None:
        # any other exception (or a warning, an error here) propagates and fails
        with pytest.raises(expected):
            model.forward(X)
        return
    S, Y = model.forward(X)
    assert S.shape == (*X.shape[:-1], 3)
    assert Y.shape == (*X.shape[:-1], 4)
    assert S.dtype == Y.dtype == model.dtype
    assert np.isfinite(S).all()
    assert np.isfinite(Y).all()


def valid_arrays(shape):
    """Acceptable arrays of shape: bool, integer or float dtypes, finite values."""
    dtypes = st.one_of(
        hnp.boolean_dtypes(),
        hnp.integer_dtypes(),
        hnp.unsigned_integer_dtypes(),
        hnp.floating_dtypes(sizes=(32, 64)),
    )
    elements = {"allow_nan": False, "allow_infinity": False}
    return dtypes.flatmap(lambda dt: hnp.arrays(dt, shape, elements=elements))


# Each argument is valid about half the time, so that some examples are valid
# through and through (and must succeed) and many are wrong in one way only.
@settings(FAST, max_examples=1000)
@given(
    target=st.one_of(valid_arrays((2, 5, 4)), any_arrays(last=4)),
    s0=st.one_of(
        st.none(),
        valid_arrays((3,)),
        valid_arrays((2, 3)),
        any_arrays(last=3),
    ),
    g=st.one_of(
        _floats(0.1, 3),
        st.floats(),
        st.integers(-(10**400), 10**400),
        st.booleans(),
        st.none(),
        st.text(max_size=2),
    ),
    method=st.one_of(
        st.sampled_from(["bptt", "rtrl", "RTRL", "BpTt"]),
        st.sampled_from(["", "bp", "bptt "]),
        st.none(),
        st.integers(),
    ),
)
# an int too large for a float
@example(target=np.zeros((2, 5, 4)), s0=None, g=10**400, method="bptt")
@example(target=np.zeros((2, 5, 4)), s0=np.zeros(3), g=0.5, method="RTRL")
def test_gradient_refuses_only_with_type_or_value_error(target, s0, g, method):
    model = crnn.RNN(2, 3, 4, seed=0)
    X = np.random.default_rng(0).normal(size=(2, 5, 2))
    valid = (
        valid_array(target, [(2, 5, 4)], model)
        and (s0 is None or valid_array(s0, [(3,), (2, 3)], model))
        and finite_positive(g)
        and isinstance(method, str)
        and method.lower() in METHODS
    )
    if not valid:
        # any other exception (or a warning, an error here) propagates and fails
        with pytest.raises((TypeError, ValueError)):
            model.gradient(X, target, s0, g, method)
        return
    G = model.gradient(X, target, s0, g, method)
    assert G.method == method.lower()
    assert G.U.shape == (3, 2)
    assert G.W.shape == (3, 3)
    assert G.V.shape == (4, 3)
    assert G.s0.shape == (s0.shape if s0 is not None else (2, 3))
    assert isinstance(G.loss, float)
