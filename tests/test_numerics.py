"""Numerical behaviour on long sequences and at the edges (issue 4, section 5).

- float32 against float64 on long sequences: the difference is bounded and does
  not grow with T (the bounds below, about 20 times what is measured);
- forward, loss and gradient stay finite for T = 100 000 and for weights of
  1e30 or more (tanh saturates; its derivative is then exactly 0);
- exploding gradients are computed exactly (BPTT = RTRL) and clipping bounds
  every update; a fit that diverges stops with FloatingPointError and keeps
  the weights of before the failing update;
- the same seed and data give the same bits whatever the thread count.
"""

import itertools
import math

import numpy as np
import pytest

import crnn

# float32 against float64 (same float32 weights and data), for a contracting network
F32_OUTPUT_ATOL = 1e-5  # |Y32 - Y64| (outputs of size about 2; measured about 7e-7)
F32_LOSS_RTOL = 1e-4  # relative error of the loss summed over 2 x 20 000 steps (measured 4e-6)
F32_GRADIENT_RTOL = 1e-4  # relative error (Frobenius) of dE/dU, dE/dW, dE/dV (measured 9e-7)


def _pair(rho, d=32, n=3, m=2, seed=1):
    """A float32 model and the float64 model with the very same weights."""
    r32 = crnn.RNN(n, d, m, seed=seed, dtype=np.float32, init="normal", spectral_radius=rho)
    r64 = crnn.RNN.from_weights(r32.U, r32.W, r32.V, dtype=np.float64)
    return r32, r64


@pytest.mark.parametrize("rho", [0.5, 0.9, 0.99])
def test_float32_error_is_bounded_on_long_sequences(rho):
    r32, r64 = _pair(rho)
    rng = np.random.default_rng(0)
    T = 20_000
    X = rng.normal(size=(2, T, 3)).astype(np.float32)
    target = rng.normal(size=(2, T, 2)).astype(np.float32)
    S32, Y32 = r32.forward(X)
    S64, Y64 = r64.forward(X)
    err = np.abs(Y32.astype(np.float64) - Y64).max(axis=(0, 2))
    assert err.max() <= F32_OUTPUT_ATOL
    assert np.abs(S32 - S64).max() <= F32_OUTPUT_ATOL
    # the error does not grow along the sequence
    assert err[-1000:].max() <= 2 * err[:1000].max() + 1e-7
    L32, L64 = r32.loss(X, target), r64.loss(X, target)
    assert abs(L32 - L64) <= F32_LOSS_RTOL * L64
    G32 = r32.gradient(X[:, :5000], target[:, :5000])
    G64 = r64.gradient(X[:, :5000], target[:, :5000])
    for k in "UWV":
        a, b = getattr(G32, k).astype(np.float64), getattr(G64, k)
        assert np.linalg.norm(a - b) <= F32_GRADIENT_RTOL * np.linalg.norm(b), k


def test_float32_rtrl_error_is_bounded():
    r32, r64 = _pair(0.9, d=6)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2, 2000, 3))
    target = rng.normal(size=(2, 2000, 2))
    G32 = r32.gradient(X, target, method="rtrl")
    G64 = r64.gradient(X.astype(np.float32), target.astype(np.float32), method="rtrl")
    for k in "UWV":
        a, b = getattr(G32, k).astype(np.float64), getattr(G64, k)
        assert np.linalg.norm(a - b) <= F32_GRADIENT_RTOL * np.linalg.norm(b), k


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(np.float64, 1.0), (np.float64, 1e30), (np.float64, 1e150), (np.float32, 1e30)],
)
def test_forward_stays_finite_for_100000_steps_and_huge_weights(dtype, scale):
    rng = np.random.default_rng(2)
    d = 8
    U = rng.normal(size=(d, 2)) * scale
    W = rng.normal(size=(d, d)) * scale
    V = rng.normal(size=(1, d))
    rnn = crnn.RNN.from_weights(U, W, V, dtype=dtype)
    X = rng.normal(size=(100_000, 2))
    S, Y = rnn.forward(X)
    assert np.isfinite(S).all()
    assert np.isfinite(Y).all()
    assert np.abs(S).max() <= 1.0
    if scale > 1:  # saturated: every state is +-1, as tanh of a huge number is
        assert np.array_equal(np.abs(S[1:]), np.ones_like(S[1:]))
    target = rng.normal(size=(100_000, 1))
    assert math.isfinite(rnn.loss(X, target))
    G = rnn.gradient(X, target)
    for k in ("U", "W", "V", "s0"):
        assert np.isfinite(getattr(G, k)).all(), k


def test_huge_output_weights_give_a_huge_but_exact_loss():
    rnn = crnn.RNN(1, 2, 1, seed=0)
    rnn.V = np.full((1, 2), 1e150)
    X = np.ones((3, 1))
    E = rnn.loss(X, np.zeros((3, 1)))
    _S, Y = rnn.forward(X)
    assert math.isclose(E, float(np.sum(Y.astype(np.float64) ** 2)), rel_tol=1e-12)
    rnn.V = np.full((1, 2), 1e200)  # the loss overflows: inf, honestly, not NaN
    assert rnn.loss(X, np.zeros((3, 1))) == math.inf


def _exploding(alpha=3.0, d=6, T=40, seed=0):
    """A network whose gradient with respect to S^0 grows like alpha^T."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    rnn = crnn.RNN.from_weights(0.01 * rng.normal(size=(d, 1)), alpha * q, rng.normal(size=(1, d)))
    X = np.zeros((1, T, 1))
    target = np.ones((1, T, 1))
    s0 = np.full((1, d), 1e-7)
    return rnn, X, target, s0


def test_exploding_gradients_are_exact_and_finite():
    rnn, X, target, s0 = _exploding()
    G = rnn.gradient(X, target, s0)
    H = rnn.gradient(X, target, s0, method="rtrl")
    assert np.abs(G.s0).max() > 1e8  # exploded
    for k in ("U", "W", "V", "s0"):
        a, b = getattr(G, k), getattr(H, k)
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())


@pytest.mark.parametrize("method", ["bptt", "rtrl"])
def test_clipping_bounds_every_update_of_an_exploding_problem(method):
    rnn, X, target, _ = _exploding()
    X = X + 1e-3  # some input, so that U gets a gradient too
    lr, clip = 0.5, 1e-2
    raw = rnn.gradient(X, target, method=method)
    raw_norm = math.sqrt(sum(np.sum(getattr(raw, k) ** 2) for k in "UWV")) / target.size
    assert raw_norm > 100 * clip
    seen = []
    gradient = rnn.gradient

    def recording(*args, **kwargs):
        seen.append([rnn.U.copy(), rnn.W.copy(), rnn.V.copy()])
        return gradient(*args, **kwargs)

    rnn.gradient = recording
    rnn.fit(X, target, epochs=8, optimizer="sgd", momentum=0.0, lr=lr, clip=clip, method=method,
            n_iter_no_change=100)  # fmt: skip
    seen.append([rnn.U, rnn.W, rnn.V])
    assert len(seen) == 9
    for before, after in itertools.pairwise(seen):
        step = math.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before, strict=True)))
        assert step <= lr * clip * (1 + 1e-9)
        assert step > 0.5 * lr * clip  # the clipped norm, not a vanishing one


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_diverging_fit_keeps_the_weights_of_before_the_failing_update(dtype):
    rng = np.random.default_rng(0)
    X = np.sin(np.arange(200) / 5.0).reshape(4, 50, 1)
    rnn = crnn.RNN(1, 8, seed=0, dtype=dtype)
    seen = []
    gradient = rnn.gradient

    def recording(*args, **kwargs):
        seen.append([rnn.U.copy(), rnn.W.copy(), rnn.V.copy()])
        return gradient(*args, **kwargs)

    rnn.gradient = recording
    big = 1e150 if dtype == np.float64 else 1e18
    with pytest.raises(FloatingPointError, match=r"diverged.*last finite weights"):
        rnn.fit(X, X * rng.uniform(0.5, 1) * big, epochs=50, optimizer="sgd", lr=big)
    assert seen
    for w, last in zip((rnn.U, rnn.W, rnn.V), seen[-1], strict=True):
        assert np.isfinite(w).all()
        assert np.array_equal(w, last)  # the failing update was undone, not half applied
    del rnn.gradient
    rnn.predict(X)  # still usable


def test_a_diverging_partial_fit_keeps_the_weights():
    X = np.sin(np.arange(100) / 5.0).reshape(2, 50, 1)
    rnn = crnn.RNN(1, 8, seed=0)
    kept = []

    def train():
        for _ in range(50):
            kept[:] = [w.copy() for w in (rnn.U, rnn.W, rnn.V)]
            rnn.partial_fit(X, X * 1e150, optimizer="sgd", lr=1e150)

    with pytest.raises(FloatingPointError, match="last finite weights"):
        train()
    for w, k in zip((rnn.U, rnn.W, rnn.V), kept, strict=True):
        assert np.array_equal(w, k)


def _fit_everything(n_threads, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(13, 30, 2))
    target = np.tanh(np.cumsum(X, axis=1))[..., :1] * 0.5
    out = []
    for method in ("bptt", "rtrl"):
        rnn = crnn.RNN(2, 7, 1, seed=0, n_threads=n_threads)
        rnn.fit(X, target, epochs=4, batch_size=5, method=method, seed=seed, clip=5.0)
        out += [rnn.U, rnn.W, rnn.V, np.array(rnn.loss_curve_)]
    rnn = crnn.RNN(2, 7, 1, seed=0, n_threads=n_threads)
    rnn.fit(X, target, epochs=3, truncate=7, validation_fraction=0.3, seed=seed)
    out += [rnn.U, rnn.W, rnn.V, np.array(rnn.validation_scores_)]
    out += list(rnn.forward(X))
    G = rnn.gradient(X, target, method="rtrl")
    out += [G.U, G.W, G.V, G.s0]
    return out


def test_training_is_bit_for_bit_the_same_for_every_thread_count():
    want = _fit_everything(1)
    for n_threads in (2, 3, 5, 13, -1, None, 10**6):
        got = _fit_everything(n_threads)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype
            assert np.array_equal(a, b), n_threads
