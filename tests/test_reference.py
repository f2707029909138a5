"""The oracle itself: against hand-derived formulas and finite differences."""

import math

import numpy as np
import pytest

from crnn import reference


def test_one_step_scalar_model_by_hand():
    # d = n = m = 1, T = 1: s = tanh(u x + w s0), y = v s, E = g (yhat - y)^2
    u, w, v, x, s0, yhat, g = 0.7, -0.4, 1.3, 0.9, 0.2, 0.5, 0.8
    s = math.tanh(u * x + w * s0)
    y = v * s
    S, Y = reference.forward([[u]], [[w]], [[v]], [[x]], [s0])
    assert [[s]] == S
    assert [[y]] == Y
    E = g * (yhat - y) ** 2
    e = -2 * g * (yhat - y)
    expected = {
        "U": [[e * v * (1 - s * s) * x]],
        "W": [[e * v * (1 - s * s) * s0]],
        "V": [[e * s]],
        "s0": [e * v * (1 - s * s) * w],
    }
    for grad in (reference.gradient_rtrl, reference.gradient_bptt):
        G = grad([[u]], [[w]], [[v]], [[x]], [[yhat]], [s0], g)
        assert G["loss"] == pytest.approx(E, rel=1e-15)
        for key, value in expected.items():
            assert np.allclose(G[key], value, rtol=1e-14, atol=0), key


def test_two_steps_scalar_model_by_hand():
    # T = 2 exercises the recursion ds^2/du = f'(z^2) (x^2 + w ds^1/du)
    u, w, v, g = 0.6, 0.9, -1.1, 1.0
    x1, x2, t1, t2 = 0.3, -0.8, 0.1, 0.4
    s1 = math.tanh(u * x1)
    s2 = math.tanh(u * x2 + w * s1)
    e1, e2 = -2 * g * (t1 - v * s1), -2 * g * (t2 - v * s2)
    ds1_du = (1 - s1**2) * x1
    ds2_du = (1 - s2**2) * (x2 + w * ds1_du)
    ds1_dw = 0.0
    ds2_dw = (1 - s2**2) * (s1 + w * ds1_dw)
    G = reference.gradient_rtrl([[u]], [[w]], [[v]], [[x1], [x2]], [[t1], [t2]])
    assert G["U"][0][0] == pytest.approx(e1 * v * ds1_du + e2 * v * ds2_du, rel=1e-14)
    assert G["W"][0][0] == pytest.approx(e2 * v * ds2_dw, rel=1e-14)
    assert G["V"][0][0] == pytest.approx(e1 * s1 + e2 * s2, rel=1e-14)


def _random(rng, T, n, d, m):
    return (
        rng.normal(size=(d, n)),
        rng.normal(scale=0.8, size=(d, d)),
        rng.normal(size=(m, d)),
        rng.normal(size=(T, n)),
        rng.normal(size=(T, m)),
        rng.uniform(-0.5, 0.5, size=d),
    )


@pytest.mark.parametrize(("T", "n", "d", "m"), [(1, 1, 1, 1), (4, 2, 3, 2), (5, 3, 2, 4)])
def test_oracle_gradients_match_finite_differences(rng, T, n, d, m):
    U, W, V, X, target, s0 = _random(rng, T, n, d, m)
    params = {"U": U, "W": W, "V": V, "s0": s0}
    G_rtrl = reference.gradient_rtrl(U, W, V, X, target, s0, g=0.6)
    G_bptt = reference.gradient_bptt(U, W, V, X, target, s0, g=0.6)
    h = 1e-6
    for name, value in params.items():
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus, minus = dict(params), dict(params)
            plus[name] = value.copy()
            minus[name] = value.copy()
            plus[name][idx] += h
            minus[name][idx] -= h
            Ep = reference.loss(plus["U"], plus["W"], plus["V"], X, target, plus["s0"], 0.6)
            Em = reference.loss(minus["U"], minus["W"], minus["V"], X, target, minus["s0"], 0.6)
            fd[idx] = (Ep - Em) / (2 * h)
        np.testing.assert_allclose(G_rtrl[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)
        np.testing.assert_allclose(G_bptt[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


def test_oracle_loss_matches_forward(rng):
    U, W, V, X, target, s0 = _random(rng, 6, 2, 3, 2)
    _, Y = reference.forward(U, W, V, X, s0)
    expected = 1.7 * float(np.sum((np.asarray(target) - np.asarray(Y)) ** 2))
    assert reference.loss(U, W, V, X, target, s0, g=1.7) == pytest.approx(expected, rel=1e-13)
    G = reference.gradient_rtrl(U, W, V, X, target, s0, g=1.7)
    assert G["loss"] == pytest.approx(expected, rel=1e-13)


def test_oracle_takes_lists_and_arrays_alike(rng):
    U, W, V, X, target, s0 = _random(rng, 3, 2, 2, 1)
    from_arrays = reference.gradient_bptt(U, W, V, X, target, s0)
    from_lists = reference.gradient_bptt(
        U.tolist(), W.tolist(), V.tolist(), X.tolist(), target.tolist(), s0.tolist()
    )
    assert from_arrays == from_lists
    assert isinstance(from_arrays["U"][0][0], float)


def test_oracle_default_initial_state_is_zero(rng):
    U, W, V, X, _, _ = _random(rng, 3, 2, 2, 2)
    assert reference.forward(U, W, V, X) == reference.forward(U, W, V, X, [0.0, 0.0])


@pytest.mark.parametrize(("T", "n", "d", "m"), [(1, 1, 1, 1), (4, 2, 3, 2), (5, 3, 2, 4)])
def test_oracle_bias_gradients_match_finite_differences(rng, T, n, d, m):
    U, W, V, X, target, s0 = _random(rng, T, n, d, m)
    params = {"U": U, "W": W, "V": V, "s0": s0, "b": rng.normal(size=d), "c": rng.normal(size=m)}

    def E(p):
        return reference.loss(p["U"], p["W"], p["V"], X, target, p["s0"], 0.8, b=p["b"], c=p["c"])

    kw = {"b": params["b"], "c": params["c"]}
    G_rtrl = reference.gradient_rtrl(U, W, V, X, target, s0, 0.8, **kw)
    G_bptt = reference.gradient_bptt(U, W, V, X, target, s0, 0.8, **kw)
    assert G_rtrl["loss"] == pytest.approx(E(params), rel=1e-13)
    h = 1e-6
    for name, value in params.items():
        fd = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus = {**params, name: value.copy()}
            minus = {**params, name: value.copy()}
            plus[name][idx] += h
            minus[name][idx] -= h
            fd[idx] = (E(plus) - E(minus)) / (2 * h)
        np.testing.assert_allclose(G_rtrl[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)
        np.testing.assert_allclose(G_bptt[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


def test_oracle_biases_shift_as_written(rng):
    U, W, V, X, _, _ = _random(rng, 3, 2, 2, 2)
    b, c = [0.3, -0.2], [1.0, -1.0]
    S, Y = reference.forward(U, W, V, X, b=b, c=c)
    s = np.zeros(2)
    for t in range(3):
        s = np.tanh(U @ X[t] + W @ s + b)
        np.testing.assert_allclose(S[t], s, rtol=1e-14)
        np.testing.assert_allclose(Y[t], V @ s + c, rtol=1e-14)
