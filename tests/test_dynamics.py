"""crnn.dynamics: the state map's Jacobians, the Lyapunov spectrum, fixed points, gradient by lag.

Each result is checked against an independent computation: the Jacobians
against central finite differences, the plain-loop oracle
(``crnn.reference.jacobians``) and PyTorch's autograd; the Lyapunov
exponents against the eigenvalues of a linear map and a per-step
``numpy.linalg.qr`` loop; fixed points against the roots of s = tanh(2 s);
the gradient by lag against BPTT on truncated sequences.
"""

import numpy as np
import pytest

import crnn
from crnn import datasets, dynamics, reference

ACTIVATIONS = ["tanh", "relu", "identity", "logistic"]


def _model(n, d, m, activation="tanh", leak=1.0, bias=True, seed=0, gain=1.0):
    rng = np.random.default_rng(seed)
    rnn = crnn.RNN(n, d, m, activation=activation, leak=leak, bias=bias, seed=seed)
    rnn.W = gain * rng.normal(size=(d, d)) / np.sqrt(d)
    if bias:
        rnn.b = 0.3 * rng.normal(size=d)
    return rnn


def _step(rnn, x, s):
    """F(s, x) by the model's own forward pass (one step)."""
    S, _ = rnn.forward(x[np.newaxis], s)
    return S[0]


# ---------------------------------------------------------------------- Jacobians


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("leak", [1.0, 0.4])
def test_jacobians_match_finite_differences_and_the_oracle(activation, leak):
    rng = np.random.default_rng(1)
    n, d, T = 3, 5, 6
    rnn = _model(n, d, 2, activation, leak)
    X = rng.normal(size=(T, n))
    s0 = rng.normal(size=d) * 0.5
    J = dynamics.jacobians(rnn, X, s0)
    Jx = dynamics.input_jacobians(rnn, X, s0)
    assert J.shape == (T, d, d)
    assert Jx.shape == (T, d, n)
    S, _ = rnn.forward(X, s0)
    prev = np.vstack([s0, S[:-1]])
    h = 1e-6
    for t in range(T):
        fd = np.empty((d, d))
        for j in range(d):
            e = np.zeros(d)
            e[j] = h
            fd[:, j] = (_step(rnn, X[t], prev[t] + e) - _step(rnn, X[t], prev[t] - e)) / (2 * h)
        np.testing.assert_allclose(J[t], fd, atol=1e-8)
        fdx = np.empty((d, n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = h
            fdx[:, j] = (_step(rnn, X[t] + e, prev[t]) - _step(rnn, X[t] - e, prev[t])) / (2 * h)
        np.testing.assert_allclose(Jx[t], fdx, atol=1e-8)
    RJ, RJx = reference.jacobians(rnn.U, rnn.W, X, s0, b=rnn.b, activation=activation, leak=leak)
    np.testing.assert_allclose(J, RJ, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Jx, RJx, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_jacobians_match_torch_autograd(activation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    n, d, T, leak = 2, 4, 5, 0.7
    rnn = _model(n, d, 1, activation, leak)
    X = rng.normal(size=(T, n))
    s0 = rng.normal(size=d) * 0.5
    f = {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "identity": lambda z: z,
        "logistic": torch.sigmoid,
    }[activation]
    U, W, b = (torch.from_numpy(np.array(a)) for a in (rnn.U, rnn.W, rnn.b))
    S, _ = rnn.forward(X, s0)
    prev = np.vstack([s0, S[:-1]])
    J = dynamics.jacobians(rnn, X, s0)
    for t in range(T):
        x = torch.from_numpy(X[t])

        def cell(s, x=x):
            return (1 - leak) * s + leak * f(U @ x + W @ s + b)

        ref = torch.autograd.functional.jacobian(cell, torch.from_numpy(prev[t]))
        np.testing.assert_allclose(J[t], ref.numpy(), rtol=1e-12, atol=1e-14)


def test_jacobians_of_a_batch_are_each_sequences_and_float32_models_run_in_float64():
    rng = np.random.default_rng(3)
    rnn = _model(2, 6, 2)
    X = rng.normal(size=(3, 7, 2))
    s0 = rng.normal(size=(3, 6))
    J = dynamics.jacobians(rnn, X, s0)
    assert J.shape == (3, 7, 6, 6)
    assert J.dtype == np.float64
    for i in range(3):
        np.testing.assert_array_equal(J[i], dynamics.jacobians(rnn, X[i], s0[i]))
    r32 = crnn.RNN(2, 6, 2, dtype=np.float32, seed=0)
    r64 = crnn.RNN.from_weights(r32.U, r32.W, r32.V)  # the same values in float64
    J32 = dynamics.jacobians(r32, X.astype(np.float32))
    assert J32.dtype == np.float64
    np.testing.assert_array_equal(J32, dynamics.jacobians(r64, X.astype(np.float32)))


# ---------------------------------------------------------------------- Lyapunov spectrum


@pytest.mark.parametrize("leak", [1.0, 0.5])
def test_lyapunov_of_a_linear_map_is_log_of_its_eigenvalue_moduli(leak):
    # identity activation, zero input, no bias: the tangent map is J = (1 - a) I + a W
    rng = np.random.default_rng(4)
    d = 6
    A = rng.normal(size=(d, d))
    W = A / np.max(np.abs(np.linalg.eigvals(A))) * 0.95
    rnn = crnn.RNN(1, d, activation="identity", leak=leak, seed=0)
    rnn.W = W
    res = dynamics.lyapunov_spectrum(rnn, n_steps=10_000, s0=rng.normal(size=d), seed=0)
    J = (1 - leak) * np.eye(d) + leak * W
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(J))))[::-1]
    np.testing.assert_allclose(res.exponents, expected, atol=1e-3)
    assert res.running.shape == (res.steps.shape[0], d)
    np.testing.assert_array_equal(res.running[-1], res.exponents)
    assert res.steps[-1] == 10_000
    assert np.all(np.diff(res.steps) >= 1)
    assert np.all(np.diff(res.steps) <= 64)


def test_lyapunov_of_a_contracting_tanh_network_is_all_negative():
    rng = np.random.default_rng(5)
    d = 16
    A = rng.normal(size=(d, d))
    rnn = crnn.RNN(2, d, seed=0)
    rnn.W = A / np.max(np.abs(np.linalg.eigvals(A))) * 0.5
    X = rng.normal(size=(2000, 2))
    res = dynamics.lyapunov_spectrum(rnn, X, seed=0, warmup=100)
    assert res.exponents.shape == (d,)
    assert np.all(res.exponents < 0)
    assert np.all(np.diff(res.exponents) <= 0)
    assert res.kaplan_yorke == 0.0


def test_lyapunov_of_a_chaotic_network_matches_a_per_step_numpy_qr_loop():
    rng = np.random.default_rng(6)
    d, T, k = 24, 3000, 10
    rnn = crnn.RNN(1, d, seed=0)
    rnn.W = 3.0 * rng.normal(size=(d, d)) / np.sqrt(d)
    s0 = rng.normal(size=d)
    res = dynamics.lyapunov_spectrum(rnn, n_steps=T, s0=s0, k=k, seed=7)
    assert res.exponents[0] > 0.05  # chaotic
    # the same trajectory's Jacobians, QR by numpy at every step, the same first basis
    J = dynamics.jacobians(rnn, np.zeros((T, 1)), s0)
    Q = np.linalg.qr(np.random.default_rng(7).standard_normal((d, k)))[0]
    total = np.zeros(k)
    for t in range(T):
        Q, R = np.linalg.qr(J[t] @ Q)
        total += np.log(np.abs(np.diag(R)))
    np.testing.assert_allclose(res.exponents, np.sort(total / T)[::-1], rtol=0, atol=1e-10)
    # the trajectory is the forward pass's, bit for bit
    S, _ = rnn.forward(np.zeros((T, 1)), s0)
    np.testing.assert_array_equal(res.state, S[-1])
    # a QR at every step, or every few (the R factors multiply): the same exponents
    for every in (1, 3):
        fixed = dynamics.lyapunov_spectrum(rnn, n_steps=T, s0=s0, k=k, seed=7, qr_every=every)
        np.testing.assert_allclose(fixed.exponents, res.exponents, rtol=0, atol=1e-10)
        assert fixed.running.shape == (T // every, k)
        np.testing.assert_array_equal(fixed.steps, np.arange(every, T + 1, every))
    assert 0 < res.kaplan_yorke <= k


def test_kaplan_yorke_dimension():
    assert dynamics.kaplan_yorke([0.5, -0.2, -1.0]) == pytest.approx(2.3)
    assert dynamics.kaplan_yorke([-0.1, -0.2]) == 0.0
    assert dynamics.kaplan_yorke([0.3, 0.1]) == 2.0
    assert dynamics.kaplan_yorke([0.0, -1.0]) == 1.0


# ---------------------------------------------------------------------- fixed points


def test_fixed_points_of_tanh_2s_are_zero_and_plus_minus_0_9575():
    rnn = crnn.RNN(1, 1, seed=0)
    rnn.W = [[2.0]]
    res = dynamics.fixed_points(rnn, inits=np.linspace(-1.5, 1.5, 31)[:, None])
    order = np.argsort(res.states[:, 0])
    s = res.states[order, 0]
    assert len(s) == 3
    # the roots of s = tanh(2 s)
    root = 0.9575040240772687
    np.testing.assert_allclose(s, [-root, 0.0, root], atol=1e-12)
    np.testing.assert_array_equal(res.stable[order], [True, False, True])
    assert np.all(res.q < 1e-20)
    assert res.fixed.all()
    np.testing.assert_allclose(res.eigenvalues[order, 0].real, 2 * (1 - np.tanh(2 * s) ** 2))
    # from the model's own trajectories (a seed) the same three appear
    sampled = dynamics.fixed_points(rnn, n_inits=64, noise=0.3, seed=0)
    np.testing.assert_allclose(np.sort(sampled.states[:, 0]), [-root, 0.0, root], atol=1e-12)


def test_fixed_points_of_two_uncoupled_units_are_nine_four_stable():
    rnn = crnn.RNN(1, 2, seed=0)
    rnn.W = np.diag([2.0, 2.0])
    grid = np.linspace(-1.5, 1.5, 7)
    inits = np.array([[a, b] for a in grid for b in grid])
    res = dynamics.fixed_points(rnn, inits=inits)
    assert len(res.states) == 9
    assert res.stable.sum() == 4
    np.testing.assert_allclose(np.abs(res.states[res.stable]), 0.9575040240772687, atol=1e-12)
    assert res.jacobians.shape == (9, 2, 2)
    assert res.eigenvalues.shape == (9, 2)


def test_fixed_points_of_a_flip_flop_network_are_its_eight_memories():
    # Sussillo and Barak's 3-bit flip-flop, trained by crnn (about 3 s)
    X, target = datasets.flip_flop(64, 60, seed=0)
    rnn = crnn.RNN(3, 16, 3, seed=0)
    rnn.fit(X, target, epochs=300, lr=0.02, batch_size=16, seed=0)
    S, _ = rnn.forward(X[:16])
    res = dynamics.fixed_points(rnn, inits=S.reshape(-1, 16)[::5], seed=0)
    stable = res.states[res.stable]
    assert len(stable) == 8
    memories = {tuple(v) for v in np.sign(stable @ rnn.V.T).astype(int)}
    assert len(memories) == 8  # one per memory: every sign pattern of the 3 outputs
    assert np.all(np.abs(stable @ rnn.V.T) > 0.8)


def test_slow_points_are_returned_on_request():
    # s = tanh(2 s + 0.6): one root (s > 0), and past the saddle-node bifurcation
    # (b = 0.533) a slow region near s = -0.71, a local minimum of q that is not 0
    rnn = crnn.RNN(1, 1, bias=True, seed=0)
    rnn.W = [[2.0]]
    rnn.b = [0.6]
    inits = np.linspace(-1.5, 1.5, 31)[:, None]
    fixed = dynamics.fixed_points(rnn, inits=inits)
    assert len(fixed.states) == 1
    assert fixed.fixed.all()
    assert fixed.states[0, 0] > 0
    slow = dynamics.fixed_points(rnn, inits=inits, slow=1e-2)
    ghost = slow.states[~slow.fixed]
    assert len(ghost) >= 1
    np.testing.assert_allclose(ghost[:, 0], -0.7, atol=0.05)
    assert np.all(slow.q[~slow.fixed] < 1e-2)
    assert np.all(slow.q[~slow.fixed] >= 1e-10)


# ---------------------------------------------------------------------- gradient by lag


@pytest.mark.parametrize("leak", [1.0, 0.6])
def test_gradient_by_lag_matches_bptt_on_truncated_sequences(leak):
    rng = np.random.default_rng(8)
    n, d, m, T = 2, 4, 3, 6
    rnn = _model(n, d, m, "tanh", leak)
    X = rng.normal(size=(2, T, n))
    target = rng.normal(size=(2, T, m))
    s0 = rng.normal(size=(2, d)) * 0.3
    got = dynamics.gradient_by_lag(rnn, X, target, s0, g=0.5)
    S, _ = rnn.forward(X, s0)
    states = np.concatenate([s0[:, None], S], axis=1)  # S^0 .. S^T
    norms = [[] for _ in range(T + 1)]
    for i in range(2):
        for t in range(1, T + 1):
            for k in range(t + 1):
                # dE^t/dS^{t-k}: steps t-k+1 .. t from S^{t-k}, only step t's error weighted
                w = np.zeros(k)
                if k == 0:
                    e = (
                        -2
                        * 0.5
                        * (target[i, t - 1] - rnn.forward(X[i, t - 1 : t], states[i, t - 1])[1][0])
                    )
                    norms[0].append(np.linalg.norm(rnn.V.T @ e))
                    continue
                w[-1] = 1.0
                G = rnn.gradient(
                    X[i, t - k : t], target[i, t - k : t], states[i, t - k], g=0.5, sample_weight=w
                )
                norms[k].append(np.linalg.norm(G.s0))
    expected = [np.mean(v) for v in norms]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    short = dynamics.gradient_by_lag(rnn, X, target, s0, g=0.5, max_lag=2)
    np.testing.assert_allclose(short, got[:3], rtol=1e-13)


# ---------------------------------------------------------------------- datasets.flip_flop


def test_flip_flop_targets_hold_the_last_pulse():
    X, target = datasets.flip_flop(5, 200, 4, p=0.1, seed=1)
    assert X.shape == target.shape == (5, 200, 4)
    assert set(np.unique(X)) <= {-1.0, 0.0, 1.0}
    assert set(np.unique(target)) == {-1.0, 1.0}
    np.testing.assert_array_equal(X[:, 0], target[:, 0])
    for t in range(1, 200):
        held = np.where(X[:, t] != 0, X[:, t], target[:, t - 1])
        np.testing.assert_array_equal(target[:, t], held)
    X2, _t2 = datasets.flip_flop(5, 200, 4, p=0.1, seed=1)
    np.testing.assert_array_equal(X, X2)
    assert datasets.flip_flop(2, 3, dtype=np.float32)[0].dtype == np.float32


# ---------------------------------------------------------------------- bad input


def test_bad_input_is_refused_by_name():
    rnn = _model(2, 4, 1)
    X = np.zeros((5, 2))
    with pytest.raises(TypeError, match=r"model must be a crnn\.RNN"):
        dynamics.jacobians("rnn", X)
    with pytest.raises(ValueError, match="X must have 2 features"):
        dynamics.jacobians(rnn, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="X must contain only finite"):
        dynamics.jacobians(rnn, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="k must be in \\[1, 4\\]"):
        dynamics.lyapunov_spectrum(rnn, X, k=5)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        dynamics.lyapunov_spectrum(rnn, X, k=0)
    with pytest.raises(ValueError, match="give X or n_steps, not both"):
        dynamics.lyapunov_spectrum(rnn, X, n_steps=10)
    with pytest.raises(ValueError, match=r"give X .* or n_steps"):
        dynamics.lyapunov_spectrum(rnn)
    with pytest.raises(ValueError, match="warmup must be less than X's 5 steps"):
        dynamics.lyapunov_spectrum(rnn, X, warmup=5)
    with pytest.raises(ValueError, match="qr_every must be None or an integer >= 1"):
        dynamics.lyapunov_spectrum(rnn, X, qr_every=0)
    with pytest.raises(ValueError, match="s0 must have shape"):
        dynamics.lyapunov_spectrum(rnn, X, s0=np.zeros(3))
    with pytest.raises(ValueError, match="inits must contain only finite"):
        dynamics.fixed_points(rnn, inits=np.array([[0.0, np.inf, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="inits must have shape \\(M, 4\\)"):
        dynamics.fixed_points(rnn, inits=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="x must have shape"):
        dynamics.fixed_points(rnn, x=np.zeros(3))
    with pytest.raises(ValueError, match="tol must be"):
        dynamics.fixed_points(rnn, tol=0.0)
    with pytest.raises(ValueError, match="max_lag must be in \\[0, 5\\]"):
        dynamics.gradient_by_lag(rnn, X, np.zeros((5, 1)), max_lag=6)
    with pytest.raises(ValueError, match="target must have shape"):
        dynamics.gradient_by_lag(rnn, X, np.zeros((5, 2)))
    rnn.W[0, 0] = np.nan
    with pytest.raises(ValueError, match="W must contain only finite"):
        dynamics.jacobians(rnn, X)


def test_plots_draw_the_points_and_the_spectrum():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rnn = crnn.RNN(1, 2, seed=0)
    rnn.W = np.diag([2.0, 2.0])
    grid = np.linspace(-1.5, 1.5, 7)
    points = dynamics.fixed_points(rnn, inits=np.array([[a, b] for a in grid for b in grid]))
    S, _ = rnn.forward(np.zeros((3, 20, 1)), np.array([[0.1, 0.2], [-0.3, 0.1], [0.2, -0.2]]))
    ax = dynamics.plot_fixed_points(points, S)
    assert len(ax.lines) == 3  # one per trajectory
    assert sum(len(c.get_offsets()) for c in ax.collections) == 9
    axes = dynamics.plot_lyapunov(dynamics.lyapunov_spectrum(rnn, n_steps=50, s0=[0.1, 0.2]))
    assert len(axes[1].lines) == 2
    plt.close("all")
    with pytest.raises(TypeError, match="points must be a FixedPoints"):
        dynamics.plot_fixed_points(S)
