"""The compiled kernels against the pure-Python oracle, sequence by sequence.

Every comparison runs with and without the biases b and c (``bias``), on one
sequence and on batches, with no, one shared or one initial state per sequence.
"""

import numpy as np
import pytest
from helpers import ATOL, BIASES, RTOL, make_case, make_problem, params

from crnn import reference

DTYPES = [np.float64, np.float32]

# (N or None for one sequence (T, n), T, n, d, m, s0 kind): edge sizes (T=1,
# d=1, n=1, N=1, m != n), ordinary ones, and states wider than a kernel tile
# (d in 17, 33, 64)
CASES = [
    pytest.param(1, 1, 1, 1, 1, "batch", id="N1-T1-n1-d1-m1"),
    pytest.param(1, 1, 3, 2, 1, "batch", id="N1-T1-n3-d2-m1"),
    pytest.param(2, 1, 1, 4, 2, "batch", id="N2-T1-n1-d4-m2"),
    pytest.param(1, 6, 1, 1, 1, "batch", id="N1-T6-n1-d1-m1"),
    pytest.param(3, 5, 2, 3, 4, "batch", id="N3-T5-n2-d3-m4"),
    pytest.param(4, 7, 3, 5, 2, "batch", id="N4-T7-n3-d5-m2"),
    pytest.param(2, 9, 4, 6, 4, "batch", id="N2-T9-n4-d6-m4"),
    pytest.param(5, 3, 2, 8, 1, "batch", id="N5-T3-n2-d8-m1"),
    pytest.param(9, 4, 2, 3, 3, "batch", id="N9-T4-n2-d3-m3"),
    pytest.param(None, 1, 1, 1, 1, "none", id="single-T1-n1-d1-m1"),
    pytest.param(1, 1, 3, 1, 2, "batch", id="N1-T1-d1-m<n"),
    pytest.param(None, 6, 2, 3, 5, "shared", id="single-T6-d3-m>n-s0"),
    pytest.param(2, 1, 1, 3, 2, "none", id="N2-T1-d3"),
    pytest.param(3, 5, 2, 3, 4, "batch", id="N3-T5-d3-s0batch"),
    pytest.param(4, 4, 2, 17, 3, "shared", id="N4-T4-d17-s0shared"),
    pytest.param(2, 3, 3, 33, 1, "batch", id="N2-T3-d33"),
    pytest.param(2, 3, 2, 64, 5, "none", id="N2-T3-d64"),
    pytest.param(1, 2, 1, 64, 1, "batch", id="N1-T2-d64-n1-m1"),
]
ARGS = ("N", "T", "n", "d", "m", "s0_kind")


def _oracle_args(rnn):
    """The model's weights, and its biases as keywords, in float64 for the oracle."""
    weights = [w.astype(np.float64) for w in (rnn.U, rnn.W, rnn.V)]
    biases = {k: getattr(rnn, k).astype(np.float64) for k in ("b", "c")} if rnn.bias else {}
    return weights, biases


def _cast(a, dtype):
    """Round data to the model's dtype, so both sides see the same numbers."""
    return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)


def _sequences(X, target, s0):
    """(x, target, s0) of each sequence of a batch, or of one sequence."""
    if X.ndim == 2:
        return [(X, target, s0)]
    if s0 is None or s0.ndim == 1:
        return [(X[i], target[i], s0) for i in range(len(X))]
    return [(X[i], target[i], s0[i]) for i in range(len(X))]


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(ARGS, CASES)
def test_forward_matches_oracle(rng, dtype, N, T, n, d, m, s0_kind, bias):
    rnn, X, _, s0 = make_case(rng, N, T, n, d, m, dtype, s0_kind, w_scale=1.5, bias=bias)
    S, Y = rnn.forward(X, s0)
    assert S.shape == (*X.shape[:-1], d)
    assert Y.shape == (*X.shape[:-1], m)
    assert S.dtype == dtype
    assert Y.dtype == dtype
    weights, biases = _oracle_args(rnn)
    S_all, Y_all = (S, Y) if S.ndim == 3 else (S[np.newaxis], Y[np.newaxis])
    for i, (x, _, s) in enumerate(_sequences(X, X, s0)):
        S_ref, Y_ref = reference.forward(*weights, _cast(x, dtype), _cast(s, dtype), **biases)
        np.testing.assert_allclose(S_all[i], S_ref, rtol=RTOL[dtype], atol=ATOL[dtype])
        np.testing.assert_allclose(Y_all[i], Y_ref, rtol=RTOL[dtype], atol=ATOL[dtype])
        if bias:  # the biases matter here: without them the oracle says something else
            _, Y_nob = reference.forward(*weights, _cast(x, dtype), _cast(s, dtype))
            assert not np.allclose(Y_all[i], Y_nob, rtol=RTOL[dtype], atol=ATOL[dtype])


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("method", ["bptt", "rtrl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(ARGS, CASES)
def test_gradient_matches_oracle(rng, method, dtype, N, T, n, d, m, s0_kind, bias):
    rnn, X, target, s0 = make_case(rng, N, T, n, d, m, dtype, s0_kind, w_scale=1.5, bias=bias)
    g = 0.75
    G = rnn.gradient(X, target, s0, g=g, method=method)
    # the oracle's RTRL costs O(d^5) Python operations per step: its BPTT
    # (checked against its RTRL in test_reference.py) stands in above d = 8
    oracle = reference.gradient_rtrl if method == "rtrl" and d <= 8 else reference.gradient_bptt
    weights, biases = _oracle_args(rnn)
    keys = params(rnn)
    total = dict.fromkeys(keys, 0.0)
    ds0, loss = [], 0.0
    for x, t, s in _sequences(X, target, s0):
        r = oracle(*weights, _cast(x, dtype), _cast(t, dtype), _cast(s, dtype), g, **biases)
        total = {key: value + np.asarray(r[key]) for key, value in total.items()}
        ds0.append(np.asarray(r["s0"]))
        loss += r["loss"]
    # G.s0: one row per sequence of a batch with a state each, else the sum
    want_s0 = np.array(ds0) if X.ndim == 3 and s0_kind == "batch" else np.sum(ds0, axis=0)
    if X.ndim == 3 and s0_kind == "none":
        want_s0 = np.array(ds0)  # zeros for each sequence: a gradient each
    assert G.s0.shape == want_s0.shape
    np.testing.assert_allclose(G.s0, want_s0, rtol=RTOL[dtype], atol=ATOL[dtype], err_msg="s0")
    scale = max(1.0, loss)  # float32 errors grow with the size of the loss
    for key, value in total.items():
        got = getattr(G, key)
        assert got.dtype == dtype
        assert got.shape == value.shape, key
        np.testing.assert_allclose(
            got, value, rtol=RTOL[dtype], atol=ATOL[dtype] * scale, err_msg=key
        )
    assert G.loss == pytest.approx(loss, rel=RTOL[dtype], abs=ATOL[dtype])
    assert G.method == method
    if bias:
        assert np.any(G.b != 0)
        assert np.any(G.c != 0)
    else:
        assert G.b is None
        assert G.c is None


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(ARGS, CASES)
def test_loss_matches_oracle(rng, dtype, N, T, n, d, m, s0_kind, bias):
    rnn, X, target, s0 = make_case(rng, N, T, n, d, m, dtype, s0_kind, bias=bias)
    weights, biases = _oracle_args(rnn)
    expected = sum(
        reference.loss(*weights, _cast(x, dtype), _cast(t, dtype), _cast(s, dtype), 1.3, **biases)
        for x, t, s in _sequences(X, target, s0)
    )
    assert rnn.loss(X, target, s0, g=1.3) == pytest.approx(expected, rel=RTOL[dtype] * 10)


def test_single_sequence_and_default_state_match_oracle(rng):
    rnn, X, target, _ = make_problem(rng, 1, 8, 3, 4, 2)
    S, Y = rnn.forward(X[0])
    S_ref, Y_ref = reference.forward(rnn.U, rnn.W, rnn.V, X[0])
    np.testing.assert_allclose(S, S_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(Y, Y_ref, rtol=1e-13, atol=1e-14)
    G = rnn.gradient(X[0], target[0], method="rtrl")
    r = reference.gradient_rtrl(rnn.U, rnn.W, rnn.V, X[0], target[0])
    assert G.s0.shape == (4,)
    for key in ("U", "W", "V", "s0"):
        np.testing.assert_allclose(getattr(G, key), r[key], rtol=1e-10, atol=1e-12)


def test_long_sequence_matches_oracle(rng):
    # 200 steps with a large recurrent weight: saturation and long memory
    rnn, X, target, s0 = make_problem(rng, 1, 200, 2, 3, 2, w_scale=2.5)
    for method, oracle in (("bptt", reference.gradient_bptt), ("rtrl", reference.gradient_rtrl)):
        G = rnn.gradient(X[0], target[0], s0[0], method=method)
        r = oracle(rnn.U, rnn.W, rnn.V, X[0], target[0], s0[0])
        for key in ("U", "W", "V", "s0"):
            np.testing.assert_allclose(getattr(G, key), r[key], rtol=1e-9, atol=1e-10)
