"""What is particular to the optional biases b and c (``bias=True``).

Z^t = U X^t + W S^{t-1} + b and Y^t = V S^t + c. The properties that hold
with and without the biases (oracle, finite differences, PyTorch, threads,
batches, online RTRL, training updates, save/load and copies, step and
generate) are checked once, with a ``bias`` parameter (False, True), in the
file of their subject. Here: the oracle comparison sees the biases, models
without biases have none, zero biases are the model without, only biases can
learn an offset, how biases are drawn, and from_weights with one bias. The
bad values of b and c (in from_weights and in assignment) and of the bias
flag are cases of the bad-input table, tests/bad_input_cases.py.
"""

import numpy as np
import pytest
from helpers import ATOL, RTOL, make_case, make_problem

import crnn
from crnn import reference

DTYPES = [np.float64, np.float32]
METHODS = ["bptt", "rtrl"]
KEYS = ("U", "W", "V", "b", "c")


def make_biased(rng, N, T, n, d, m, dtype=np.float64, s0_kind="batch", w_scale=1.3):
    """A biased model with random nonzero b and c, data, and an initial state."""
    return make_case(rng, N, T, n, d, m, dtype, s0_kind, w_scale, bias=True)


def oracle_weights(rnn):
    """The model's own numbers (rounded to its dtype) in float64, for the oracle."""
    U, W, V, b, c = (np.asarray(getattr(rnn, k), dtype=np.float64) for k in KEYS)
    return (U, W, V), {"b": b, "c": c}


def cast(a, dtype):
    """Round data to the model's dtype, so both sides see the same numbers."""
    return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)


def sequences(X, target, s0):
    """Yield (X, target, s0) of each sequence of a batch or of one sequence."""
    if X.ndim == 2:
        yield X, target, s0
        return
    for i in range(X.shape[0]):
        if s0 is None or s0.ndim == 1:
            yield X[i], target[i], s0
        else:
            yield X[i], target[i], s0[i]


# ---------------------------------------------------------------------------- oracle


def test_oracle_comparison_is_sensitive_to_the_biases(rng):
    """A perturbed b or c in the oracle no longer matches crnn's gradient."""
    rnn, X, target, s0 = make_biased(rng, 2, 6, 2, 4, 3)
    G = rnn.gradient(X, target, s0)
    weights, biases = oracle_weights(rnn)
    for key in ("b", "c"):
        moved = dict(biases)
        moved[key] = moved[key] + np.eye(len(moved[key]))[0] * 1e-6
        r = [
            reference.gradient_bptt(*weights, x, t, s, **moved)
            for x, t, s in sequences(X, target, s0)
        ]
        want = sum(np.asarray(ri[key]) for ri in r)
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(getattr(G, key), want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------- no biases


@pytest.mark.parametrize("method", METHODS)
def test_models_without_biases_have_none(rng, method):
    base, X, target, s0 = make_problem(rng, 3, 5, 2, 4, 3)
    for rnn in (base, crnn.RNN(2, 4, 3, seed=0), crnn.RNN(2, 4, 3, seed=0, bias=False)):
        assert rnn.bias is False
        assert rnn.b is None
        assert rnn.c is None
        G = rnn.gradient(X, target, s0, method=method)
        assert G.b is None
        assert G.c is None
    assert crnn.RNN(2, 4, 3, seed=0, bias=True).bias is True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_zero_biases_are_the_model_without_biases(rng, dtype, method):
    plain, X, target, s0 = make_problem(rng, 4, 9, 3, 6, 2, dtype, w_scale=1.4)
    d, m = 6, 2
    zero = crnn.RNN.from_weights(
        plain.U, plain.W, plain.V, b=np.zeros(d), c=np.zeros(m), dtype=dtype
    )
    assert zero.bias
    rtol, atol = RTOL[dtype], ATOL[dtype]
    for a, b in zip(zero.forward(X, s0), plain.forward(X, s0), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert zero.loss(X, target, s0) == pytest.approx(plain.loss(X, target, s0), rel=rtol)
    Gz = zero.gradient(X, target, s0, g=0.5, method=method)
    Gp = plain.gradient(X, target, s0, g=0.5, method=method)
    for key in ("U", "W", "V", "s0"):
        scale = max(1.0, Gp.loss)
        np.testing.assert_allclose(
            getattr(Gz, key), getattr(Gp, key), rtol=rtol, atol=atol * scale, err_msg=key
        )
    # and the bias gradients of the zero biases are still there, and right
    weights, biases = oracle_weights(zero)
    want_b = sum(
        np.asarray(reference.gradient_bptt(*weights, x, t, s, 0.5, **biases)["b"])
        for x, t, s in sequences(cast(X, dtype), cast(target, dtype), cast(s0, dtype))
    )
    assert np.max(np.abs(want_b)) > 1e-2
    np.testing.assert_allclose(Gz.b, want_b, rtol=rtol, atol=atol * max(1.0, Gp.loss))


# -------------------------------------------------------------------- fit and init


def offset_series(n_series=6, length=60):
    """Inputs sin(...), targets 3 + the next value: the targets' mean is 3.

    The phases come in pairs half a period apart, so the inputs come as X
    and -X. Without biases (and s0 = 0) the network is odd, Y(-X) = -Y(X), so
    its outputs average 0 over the data and its loss per value is at least
    (3 - 0)^2 = 9, whatever its weights; with c it can reach the offset.
    """
    t = np.arange(length + 1)
    phase = np.linspace(0, 2 * np.pi, n_series, endpoint=False)[:, None]
    s = np.sin(2 * np.pi * t / 20 + phase)[..., np.newaxis]
    return s[:, :-1], 3 + s[:, 1:]


def test_fit_learns_an_offset_that_a_model_without_biases_cannot():
    X, target = offset_series()
    losses = {}
    for bias in (False, True):
        rnn = crnn.RNN(1, 8, seed=0, bias=bias)
        start = {k: getattr(rnn, k).copy() for k in ("b", "c")} if bias else None
        before = rnn.loss(X, target) / target.size
        rnn.fit(X, target, epochs=300, seed=0)
        losses[bias] = rnn.loss(X, target) / target.size
        assert losses[bias] < before, (bias, before, losses[bias])
    for key in ("b", "c"):
        assert not np.allclose(getattr(rnn, key), start[key]), key
    assert losses[False] > 9 - 1e-9, losses  # the bound for an odd network
    assert losses[True] < 0.1, losses


def test_seeds_reproduce_biased_models_and_their_training():
    a = crnn.RNN(3, 7, 2, seed=11, bias=True)
    b = crnn.RNN(3, 7, 2, seed=11, bias=True)
    plain = crnn.RNN(3, 7, 2, seed=11)
    other = crnn.RNN(3, 7, 2, seed=12, bias=True)
    for key in KEYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    for key in ("U", "W", "V"):  # the biases are drawn after the weights
        np.testing.assert_array_equal(getattr(a, key), getattr(plain, key))
    assert not np.array_equal(a.b, other.b)
    bound = 1 / np.sqrt(7)
    for v in (a.b, a.c):
        assert np.all(np.abs(v) <= bound)
        assert np.all(v != 0)
    assert a.b.shape == (7,)
    assert a.c.shape == (2,)
    X, target = offset_series(8, 20)
    runs = []
    for seed in (3, 3, 4):
        rnn = crnn.RNN(1, 5, seed=0, bias=True)
        rnn.fit(X, target, epochs=4, batch_size=3, seed=seed)
        runs.append((rnn.loss_curve_, rnn.b.copy(), rnn.c.copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert not np.array_equal(runs[0][1], runs[2][1])


@pytest.mark.parametrize("init", ["glorot", "normal", "orthogonal", "callable"])
def test_other_initialisers_start_the_biases_at_zero(init):
    if init == "callable":
        init = lambda shape, fan_in, fan_out, rng: rng.normal(size=shape)
    rnn = crnn.RNN(2, 4, 3, seed=0, init=init, bias=True)
    np.testing.assert_array_equal(rnn.b, np.zeros(4))
    np.testing.assert_array_equal(rnn.c, np.zeros(3))
    assert rnn.b.dtype == rnn.c.dtype == np.float64
    assert np.any(rnn.U != 0)


# ------------------------------------------------------------- from_weights, checks


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_weights_with_one_bias_gives_zeros_for_the_other(rng, dtype):
    U, W, V = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)), rng.normal(size=(3, 4))
    b, c = rng.normal(size=4), rng.normal(size=3)
    only_b = crnn.RNN.from_weights(U, W, V, b=b, dtype=dtype)
    assert only_b.bias
    np.testing.assert_array_equal(only_b.b, b.astype(dtype))
    np.testing.assert_array_equal(only_b.c, np.zeros(3))
    assert only_b.c.shape == (3,)
    assert only_b.b.dtype == only_b.c.dtype == dtype
    only_c = crnn.RNN.from_weights(U, W, V, c=c, dtype=dtype)
    assert only_c.bias
    np.testing.assert_array_equal(only_c.b, np.zeros(4))
    np.testing.assert_array_equal(only_c.c, c.astype(dtype))
    assert only_c.b.dtype == dtype
    # copied, not shared
    b[0] += 1
    assert only_b.b[0] != b[0]
