"""The compiled kernels against the pure-Python oracle, sequence by sequence."""

import numpy as np
import pytest
from helpers import ATOL, RTOL, make_problem

from crnn import reference

# (N, T, n, d, m): edge sizes (T=1, d=1, n=1, N=1, m != n) and ordinary ones
SIZES = [
    (1, 1, 1, 1, 1),
    (1, 1, 3, 2, 1),
    (2, 1, 1, 4, 2),
    (1, 6, 1, 1, 1),
    (3, 5, 2, 3, 4),
    (4, 7, 3, 5, 2),
    (2, 9, 4, 6, 4),
    (5, 3, 2, 8, 1),
    (9, 4, 2, 3, 3),
]
DTYPES = [np.float64, np.float32]


def _oracle_args(rnn):
    return [w.astype(np.float64) for w in (rnn.U, rnn.W, rnn.V)]


def _cast(a, dtype):
    """Round data to the model's dtype, so both sides see the same numbers."""
    return np.asarray(a, dtype=dtype).astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("N", "T", "n", "d", "m"), SIZES)
def test_forward_matches_oracle(rng, dtype, N, T, n, d, m):
    rnn, X, _, s0 = make_problem(rng, N, T, n, d, m, dtype, w_scale=1.5)
    S, Y = rnn.forward(X, s0)
    assert S.shape == (N, T, d)
    assert Y.shape == (N, T, m)
    assert S.dtype == dtype
    assert Y.dtype == dtype
    for b in range(N):
        S_ref, Y_ref = reference.forward(
            *_oracle_args(rnn), _cast(X[b], dtype), _cast(s0[b], dtype)
        )
        np.testing.assert_allclose(S[b], S_ref, rtol=RTOL[dtype], atol=ATOL[dtype])
        np.testing.assert_allclose(Y[b], Y_ref, rtol=RTOL[dtype], atol=ATOL[dtype])


@pytest.mark.parametrize("method", ["bptt", "rtrl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("N", "T", "n", "d", "m"), SIZES)
def test_gradient_matches_oracle(rng, method, dtype, N, T, n, d, m):
    rnn, X, target, s0 = make_problem(rng, N, T, n, d, m, dtype, w_scale=1.5)
    g = 0.75
    G = rnn.gradient(X, target, s0, g=g, method=method)
    oracle = reference.gradient_rtrl if method == "rtrl" else reference.gradient_bptt
    total = {"U": 0.0, "W": 0.0, "V": 0.0}
    loss = 0.0
    for b in range(N):
        r = oracle(
            *_oracle_args(rnn),
            _cast(X[b], dtype),
            _cast(target[b], dtype),
            _cast(s0[b], dtype),
            g,
        )
        total = {key: value + np.asarray(r[key]) for key, value in total.items()}
        loss += r["loss"]
        np.testing.assert_allclose(G.s0[b], r["s0"], rtol=RTOL[dtype], atol=ATOL[dtype])
    scale = max(1.0, loss)  # float32 errors grow with the size of the loss
    for key, value in total.items():
        got = getattr(G, key)
        assert got.dtype == dtype
        np.testing.assert_allclose(
            got, value, rtol=RTOL[dtype], atol=ATOL[dtype] * scale, err_msg=key
        )
    assert G.loss == pytest.approx(loss, rel=RTOL[dtype], abs=ATOL[dtype])
    assert G.method == method


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("N", "T", "n", "d", "m"), SIZES)
def test_loss_matches_oracle(rng, dtype, N, T, n, d, m):
    rnn, X, target, s0 = make_problem(rng, N, T, n, d, m, dtype)
    expected = sum(
        reference.loss(
            *_oracle_args(rnn),
            _cast(X[b], dtype),
            _cast(target[b], dtype),
            _cast(s0[b], dtype),
            1.3,
        )
        for b in range(N)
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
