"""Second-order training and uncertainty (issue 17).

flat weights, per-sequence gradients, the outputs' Jacobian (against
finite differences and PyTorch's autograd), the Gauss-Newton products,
Levenberg-Marquardt and the Laplace approximation.
"""

import numpy as np
import pytest

import crnn

CELLS = [("tanh", 1.0), ("relu", 0.7), ("identity", 1.0), ("logistic", 0.4)]
DTYPES = [np.float64, np.float32]


def model(n=2, d=4, m=3, bias=True, activation="tanh", leak=1.0, dtype=np.float64, seed=1):
    return crnn.RNN(n, d, m, bias=bias, activation=activation, leak=leak, dtype=dtype, seed=seed)


# ---------------------------------------------------------------------- flat weights


@pytest.mark.parametrize("bias", [False, True])
def test_flat_weights_order_and_round_trip(bias):
    rnn = model(bias=bias)
    theta = rnn.flat_weights()
    parts = [rnn.U, rnn.W, rnn.V] + ([rnn.b, rnn.c] if bias else [])
    np.testing.assert_array_equal(theta, np.concatenate([p.ravel() for p in parts]))
    theta[0] = 123.0  # a new array: the model does not change
    assert rnn.U[0, 0] != 123.0
    new = np.arange(theta.size, dtype=float) / 100
    rnn.set_flat_weights(new)
    np.testing.assert_array_equal(rnn.flat_weights(), new)
    np.testing.assert_array_equal(rnn.W.ravel(), new[8 : 8 + 16])  # U is 4 x 2


def test_set_flat_weights_is_checked():
    rnn = model()
    before = rnn.flat_weights()
    with pytest.raises(ValueError, match="theta"):
        rnn.set_flat_weights(np.zeros(before.size + 1))
    with pytest.raises(ValueError, match="theta"):
        rnn.set_flat_weights(np.full(before.size, np.nan))
    with pytest.raises(ValueError, match="theta"):
        rnn.set_flat_weights(np.zeros((1, before.size)))
    with pytest.raises(TypeError, match="theta"):
        rnn.set_flat_weights(["a"] * before.size)
    np.testing.assert_array_equal(rnn.flat_weights(), before)


# ---------------------------------------------------------------------- per-sequence gradients


@pytest.mark.parametrize("method", ["bptt", "rtrl"])
@pytest.mark.parametrize(("activation", "leak"), CELLS)
def test_per_sequence_gradients_are_separate_calls(method, activation, leak):
    rng = np.random.default_rng(0)
    rnn = model(activation=activation, leak=leak)
    X, target = rng.normal(size=(4, 6, 2)), rng.normal(size=(4, 6, 3))
    s0 = rng.normal(size=4) * 0.3  # shared
    w = rng.uniform(0, 2, size=(4, 6))
    G = rnn.gradient(X, target, s0, 0.5, method, sample_weight=w, per_sequence=True)
    assert isinstance(G, crnn.SequenceGradients)
    assert G.U.shape == (4, 4, 2) and G.c.shape == (4, 3) and G.loss.shape == (4,)
    for i in range(4):
        one = rnn.gradient(X[i], target[i], s0, 0.5, method, sample_weight=w[i])
        for k in ("U", "W", "V", "b", "c", "s0"):
            np.testing.assert_array_equal(getattr(G, k)[i], getattr(one, k))
        assert G.loss[i] == one.loss
    total = rnn.gradient(X, target, s0, 0.5, method, sample_weight=w)
    for k in ("U", "W", "V", "b", "c"):
        np.testing.assert_allclose(getattr(G, k).sum(axis=0), getattr(total, k), rtol=1e-12)
    np.testing.assert_allclose(G.s0.sum(axis=0), total.s0, rtol=1e-12)
    np.testing.assert_allclose(G.loss.sum(), total.loss, rtol=1e-13)


def test_per_sequence_gradients_of_a_list_and_of_one_sequence():
    rng = np.random.default_rng(1)
    rnn = model(bias=False)
    Xs = [rng.normal(size=(T, 2)) for T in (3, 0, 7)]
    ts = [rng.normal(size=(T, 3)) for T in (3, 0, 7)]
    G = rnn.gradient(Xs, ts, per_sequence=True)
    assert G.b is None and G.W.shape == (3, 4, 4)
    np.testing.assert_array_equal(G.W[1], 0)
    np.testing.assert_array_equal(G.W[2], rnn.gradient(Xs[2], ts[2]).W)
    one = rnn.gradient(Xs[0], ts[0], per_sequence=True)
    assert one.V.shape == (1, 3, 4)
    with pytest.raises(TypeError, match="per_sequence"):
        rnn.gradient(Xs[0], ts[0], per_sequence="yes")


# ---------------------------------------------------------------------- the outputs' Jacobian


def finite_difference_jacobian(rnn, X, s0, eps=1e-6):
    theta = rnn.flat_weights()
    J = np.empty((*rnn.predict(X, s0).shape, theta.size))
    for q in range(theta.size):
        t = theta.copy()
        t[q] += eps
        rnn.set_flat_weights(t)
        yp = rnn.predict(X, s0)
        t[q] -= 2 * eps
        rnn.set_flat_weights(t)
        J[..., q] = (yp - rnn.predict(X, s0)) / (2 * eps)
    rnn.set_flat_weights(theta)
    return J


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("activation", "leak"), CELLS)
def test_jacobian_against_finite_differences(bias, activation, leak):
    rng = np.random.default_rng(2)
    rnn = model(bias=bias, activation=activation, leak=leak)
    X, s0 = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 4)) * 0.3
    J = rnn.output_jacobian(X, s0)
    assert J.shape == (3, 5, 3, rnn.flat_weights().size)
    np.testing.assert_allclose(J, finite_difference_jacobian(rnn, X, s0), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(rnn.output_jacobian(X[1], s0[1]), J[1])


def torch_outputs(theta, X, s0, n, d, m, bias, activation, leak):
    """Y (N, T, m) of the cell in torch, from the flat theta (U, W, V, then b, c)."""
    torch = pytest.importorskip("torch")
    f = {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "identity": lambda z: z,
        "logistic": torch.sigmoid,
    }[activation]
    U = theta[: d * n].reshape(d, n)
    W = theta[d * n : d * n + d * d].reshape(d, d)
    V = theta[d * n + d * d : d * n + d * d + m * d].reshape(m, d)
    b = theta[d * n + d * d + m * d : d * n + d * d + m * d + d] if bias else 0
    c = theta[d * n + d * d + m * d + d :] if bias else 0
    s, ys = s0, []
    for t in range(X.shape[1]):
        s = (1 - leak) * s + leak * f(X[:, t] @ U.T + s @ W.T + b)
        ys.append(s @ V.T + c)
    return torch.stack(ys, dim=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("activation", "leak"), CELLS)
def test_jacobian_against_torch_autograd(dtype, bias, activation, leak):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    n, d, m = 3, 5, 2
    rnn = model(n, d, m, bias=bias, activation=activation, leak=leak, dtype=dtype)
    X, s0 = rng.normal(size=(2, 7, n)), rng.normal(size=(2, d)) * 0.3
    J = rnn.output_jacobian(X, s0)
    assert J.dtype == dtype
    Xt, st = torch.tensor(X.astype(dtype)), torch.tensor(s0.astype(dtype))
    Jt = torch.autograd.functional.jacobian(
        lambda th: torch_outputs(th, Xt, st, n, d, m, bias, activation, leak),
        torch.tensor(rnn.flat_weights()),
    ).numpy()
    tol = {np.float64: (1e-10, 1e-12), np.float32: (2e-4, 2e-5)}[dtype]
    np.testing.assert_allclose(J, Jt, rtol=tol[0], atol=tol[1])


def test_jacobian_of_a_list_and_empty_data():
    rng = np.random.default_rng(4)
    rnn = model()
    Xs = [rng.normal(size=(T, 2)) for T in (4, 0, 2)]
    Js = rnn.output_jacobian(Xs)
    assert [J.shape for J in Js] == [(4, 3, 43), (0, 3, 43), (2, 3, 43)]
    np.testing.assert_array_equal(Js[2], rnn.output_jacobian(Xs[2]))
    assert rnn.output_jacobian(np.zeros((0, 2))).shape == (0, 3, 43)


def test_jacobian_refuses_bad_input():
    rnn = model()
    with pytest.raises(ValueError, match="X"):
        rnn.output_jacobian(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="X"):
        rnn.output_jacobian(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="s0"):
        rnn.output_jacobian(np.zeros((3, 2)), np.zeros(5))
    rnn.W[0, 0] = np.inf
    with pytest.raises(ValueError, match="W"):
        rnn.output_jacobian(np.zeros((3, 2)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gauss_newton_is_jt_j_without_holding_j(dtype, monkeypatch):
    from crnn import _kernels

    rng = np.random.default_rng(5)
    rnn = model(activation="logistic", leak=0.6, dtype=dtype)
    X, target = rng.normal(size=(3, 9, 2)), rng.normal(size=(3, 9, 3))
    w = rng.uniform(0, 1, size=(3, 9, 3))
    J = rnn.output_jacobian(X).astype(np.float64).reshape(-1, 43)
    r = (rnn.predict(X) - target).astype(np.float64).ravel()
    H0, v0 = J.T @ (w.reshape(-1, 1) * J), J.T @ (w.ravel() * r)
    # windows of 4 rows of J: sequences cut in windows of steps, the state carried
    monkeypatch.setattr(_kernels, "_GN_BYTES", 4 * 3 * 43 * np.dtype(dtype).itemsize)
    H, v, rho = rnn.gauss_newton(X, target, sample_weight=w)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(H, H0, rtol=tol, atol=tol)
    np.testing.assert_allclose(v, v0, rtol=tol, atol=tol)
    np.testing.assert_allclose(rho, rnn.loss(X, target, sample_weight=w), rtol=10 * tol)
    G = rnn.gradient(X, target, sample_weight=w)
    np.testing.assert_allclose(2 * v[:8], G.U.ravel(), rtol=1e3 * tol, atol=tol)
