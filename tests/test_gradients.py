"""Gradients: finite differences, RTRL against BPTT, linearity, batches, threads."""

import numpy as np
import pytest
from helpers import BIASES, fresh_thread_peak, make_case, make_problem, params

import crnn
from crnn import _core

METHODS = ["bptt", "rtrl"]


def _finite_differences(rnn, X, target, s0, g, h=1e-6):
    """Central differences of the compiled loss for U, W, V, b and c (if any) and s0."""
    out = {}
    for name in params(rnn):
        value = getattr(rnn, name)  # changed in place, then restored
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + h
            Ep = rnn.loss(X, target, s0, g)
            value[idx] = old - h
            Em = rnn.loss(X, target, s0, g)
            value[idx] = old
            fd[idx] = (Ep - Em) / (2 * h)
        out[name] = fd
    if s0 is not None:
        fd = np.zeros_like(s0)
        for idx in np.ndindex(s0.shape):
            plus, minus = s0.copy(), s0.copy()
            plus[idx] += h
            minus[idx] -= h
            fd[idx] = (rnn.loss(X, target, plus, g) - rnn.loss(X, target, minus, g)) / (2 * h)
        out["s0"] = fd
    return out


# (N or None for one sequence, T, n, d, m, s0 kind)
FD_CASES = [
    pytest.param(1, 1, 1, 1, 1, "batch", id="N1-T1-n1-d1-m1"),
    pytest.param(2, 6, 3, 4, 2, "batch", id="N2-T6-n3-d4-m2"),
    pytest.param(3, 12, 2, 5, 3, "batch", id="N3-T12-n2-d5-m3"),
    pytest.param(None, 4, 1, 1, 1, "none", id="single-d1"),
    pytest.param(2, 5, 2, 3, 2, "batch", id="N2-T5-d3"),
    pytest.param(3, 4, 3, 5, 4, "shared", id="N3-T4-d5-m>n"),
]


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("N", "T", "n", "d", "m", "s0_kind"), FD_CASES)
def test_gradient_matches_finite_differences(rng, method, N, T, n, d, m, s0_kind, bias):
    rnn, X, target, s0 = make_case(rng, N, T, n, d, m, s0_kind=s0_kind, w_scale=1.2, bias=bias)
    G = rnn.gradient(X, target, s0, g=0.9, method=method)
    fd = _finite_differences(rnn, X, target, s0, 0.9)
    assert set(fd) == {*params(rnn), *(() if s0 is None else ("s0",))}
    for key, value in fd.items():
        if key in ("b", "c"):
            assert np.max(np.abs(value)) > 1e-3, key  # a real slope, not a flat spot
        np.testing.assert_allclose(getattr(G, key), value, rtol=1e-6, atol=1e-7, err_msg=key)


@pytest.mark.parametrize(
    ("N", "T", "n", "d", "m"), [(4, 30, 3, 8, 2), (1, 100, 1, 6, 1), (7, 3, 5, 3, 5)]
)
def test_rtrl_equals_bptt(rng, N, T, n, d, m):
    rnn, X, target, s0 = make_problem(rng, N, T, n, d, m, w_scale=1.5)
    A = rnn.gradient(X, target, s0, method="bptt")
    B = rnn.gradient(X, target, s0, method="rtrl")
    for key in ("U", "W", "V", "s0"):
        np.testing.assert_allclose(getattr(A, key), getattr(B, key), rtol=1e-9, atol=1e-11)
    assert A.loss == B.loss  # the same forward pass, summed the same way


@pytest.mark.parametrize("method", METHODS)
def test_gradient_and_loss_are_linear_in_g(rng, method):
    rnn, X, target, s0 = make_problem(rng, 3, 10, 2, 4, 3)
    G1 = rnn.gradient(X, target, s0, g=1.0, method=method)
    G3 = rnn.gradient(X, target, s0, g=3.0, method=method)
    for key in ("U", "W", "V", "s0"):
        ref = 3 * getattr(G1, key)
        atol = 1e-14 * np.abs(ref).max()  # cancellation in sums of terms of mixed sign
        np.testing.assert_allclose(getattr(G3, key), ref, rtol=1e-13, atol=atol)
    assert G3.loss == pytest.approx(3 * G1.loss, rel=1e-14)
    assert rnn.loss(X, target, s0, g=3.0) == pytest.approx(3 * rnn.loss(X, target, s0), rel=1e-14)


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_sum_of_sequences(rng, method, bias):
    rnn, X, target, s0 = make_problem(rng, 5, 8, 2, 3, 2, bias=bias)
    G = rnn.gradient(X, target, s0, method=method)
    parts = [rnn.gradient(X[b], target[b], s0[b], method=method) for b in range(5)]
    for key in params(rnn):
        np.testing.assert_allclose(
            getattr(G, key), sum(getattr(p, key) for p in parts), rtol=1e-13, atol=1e-15
        )
    np.testing.assert_array_equal(G.s0, np.stack([p.s0 for p in parts]))
    assert G.loss == pytest.approx(sum(p.loss for p in parts), rel=1e-14)
    S, Y = rnn.forward(X, s0)
    for b in range(5):
        Sb, Yb = rnn.forward(X[b], s0[b])
        np.testing.assert_array_equal(S[b], Sb)
        np.testing.assert_array_equal(Y[b], Yb)


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("method", METHODS)
def test_shared_initial_state_gradient_is_summed(rng, method, bias):
    rnn, X, target, s0 = make_problem(rng, 4, 5, 2, 3, 2, bias=bias)
    shared = s0[0]
    G_shared = rnn.gradient(X, target, shared, method=method)
    G_rows = rnn.gradient(X, target, np.tile(shared, (4, 1)), method=method)
    assert G_shared.s0.shape == (3,)
    assert G_rows.s0.shape == (4, 3)
    np.testing.assert_allclose(G_shared.s0, G_rows.s0.sum(axis=0), rtol=1e-14, atol=1e-15)
    for key in params(rnn):
        np.testing.assert_array_equal(getattr(G_shared, key), getattr(G_rows, key))
    G_none = rnn.gradient(X, target, method=method)
    G_zero = rnn.gradient(X, target, np.zeros((4, 3)), method=method)
    assert G_none.s0.shape == (4, 3)
    np.testing.assert_array_equal(G_none.s0, G_zero.s0)


@pytest.mark.skipif(not _core._openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("N", "T", "n", "d", "m"),
    [
        # 37 sequences: with 4 slots per thread the chunks differ between thread counts
        pytest.param(37, None, 3, 6, 2, id="N37-T20|4-d6"),
        pytest.param(7, 25, 3, 9, 2, id="N7-T25-d9"),
        pytest.param(5, 12, 4, 40, 3, id="N5-T12-d40"),
    ],
)
def test_thread_count_does_not_change_a_bit(rng, method, dtype, N, T, n, d, m, bias):
    if T is None:
        T = 20 if method == "bptt" else 4
    rnn, X, target, s0 = make_problem(rng, N, T, n, d, m, dtype, bias=bias)
    results = []
    for n_threads in (1, 2, 3, -1):
        rnn.n_threads = n_threads
        G = rnn.gradient(X, target, s0, method=method)
        S, Y = rnn.forward(X, s0)
        results.append((G, S, Y, rnn.loss(X, target, s0)))
    G1, S1, Y1, E1 = results[0]
    for G, S, Y, E in results[1:]:
        for key in (*params(rnn), "s0"):
            np.testing.assert_array_equal(getattr(G, key), getattr(G1, key))
        assert G.loss == G1.loss
        assert E == E1
        np.testing.assert_array_equal(S, S1)
        np.testing.assert_array_equal(Y, Y1)


def test_float32_is_close_to_float64(rng):
    rnn64, X, target, s0 = make_problem(rng, 4, 50, 3, 8, 3)
    rnn32 = crnn.RNN.from_weights(rnn64.U, rnn64.W, rnn64.V, dtype=np.float32)
    for method in METHODS:
        G64 = rnn64.gradient(X, target, s0, method=method)
        G32 = rnn32.gradient(X, target, s0, method=method)
        for key in ("U", "W", "V"):
            ref = getattr(G64, key)
            err = np.abs(getattr(G32, key) - ref).max() / np.abs(ref).max()
            assert err < 1e-4, (method, key, err)


def test_gradient_descent_step_lowers_the_loss(rng):
    # the sign convention: stepping against the gradient must reduce E
    rnn, X, target, s0 = make_problem(rng, 3, 15, 2, 5, 2)
    E0 = rnn.loss(X, target, s0)
    G = rnn.gradient(X, target, s0)
    for key in ("U", "W", "V"):
        setattr(rnn, key, getattr(rnn, key) - 1e-3 * getattr(G, key))
    assert rnn.loss(X, target, s0) < E0


@pytest.mark.parametrize("bias", [False, True])
def test_a_large_batch_runs_in_chunks_of_sequences(rng, monkeypatch, bias):
    # BPTT keeps every state of its batch; above _kernels._BPTT_BYTES of buffers the
    # batch runs in chunks of sequences: the same loss and per-sequence
    # numbers bit for bit, the summed gradient to rounding, and no bit that
    # depends on the thread count
    from crnn import _kernels

    rnn = crnn.RNN(3, 16, 2, seed=0, bias=bias)
    X = rng.normal(size=(23, 40, 3))
    target = rng.normal(size=(23, 40, 2))
    s0 = rng.normal(size=(23, 16))
    whole = rnn.gradient(X, target, s0)
    per_seq = sum(crnn._core._bptt_buffer_sizes(1, 40, 3, 16, 2, 1)) * 8
    monkeypatch.setattr(_kernels, "_BPTT_BYTES", 5 * per_seq)  # chunks of 5 sequences
    names = ["U", "W", "V"] + (["b", "c"] if bias else [])
    first = None
    for nt in (1, 2, 3):
        rnn.n_threads = nt
        G = rnn.gradient(X, target, s0)
        np.testing.assert_array_equal(G.s0, whole.s0)
        assert G.loss == whole.loss
        for k in names:
            np.testing.assert_allclose(getattr(G, k), getattr(whole, k), rtol=1e-12, atol=1e-12)
        if first is None:
            first = G
        for k in names:
            np.testing.assert_array_equal(getattr(G, k), getattr(first, k))


def test_chunks_bound_the_bptt_buffers(monkeypatch):
    # with a 1 MiB budget, a batch whose buffers would take 5.5 MB allocates
    # about one chunk's worth
    from crnn import _kernels

    monkeypatch.setattr(_kernels, "_BPTT_BYTES", 1 << 20)
    rnn = crnn.RNN(2, 30, 2, seed=0)
    X = np.zeros((100, 200, 2))
    assert sum(crnn._core._bptt_buffer_sizes(100, 200, 2, 30, 2, 1)) * 8 > 5 << 20
    peak = fresh_thread_peak(lambda: rnn.gradient(X, X))
    assert peak < 3 << 20, peak
