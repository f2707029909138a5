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
    assert isinstance(G, crnn.Gradient)
    assert type(G).__name__ == "SequenceGradients"
    assert G.U.shape == (4, 4, 2)
    assert G.c.shape == (4, 3)
    assert G.loss.shape == (4,)
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
    assert G.b is None
    assert G.W.shape == (3, 4, 4)
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


# ---------------------------------------------------------------------- Levenberg-Marquardt


def generated_problem(noise, seed=0):
    rng = np.random.default_rng(seed)
    teacher = crnn.RNN(1, 3, 1, bias=True, seed=5)
    X = rng.normal(size=(8, 30, 1))
    target = teacher.predict(X) + noise * rng.normal(size=(8, 30, 1))
    return teacher, X, target


def test_lm_reaches_the_generating_networks_loss():
    teacher, X, target = generated_problem(0.01)
    best = teacher.loss(X, target)  # the generating weights' loss (the noise's)
    rnn = crnn.RNN(1, 3, 1, bias=True, seed=1)
    rnn.fit(X, target, optimizer="lm", epochs=200, tol=0)
    # a least-squares minimum: at or below the generating weights' loss
    assert rnn.loss(X, target) <= best * (1 + 1e-10)
    assert rnn.n_iter_ < 200  # stopped because mu passed mu_max: no step lowers the loss
    assert rnn._fit_state["optimizer"].mu > 1e10
    G = rnn.gradient(X, target)
    assert np.abs(np.concatenate([G.U.ravel(), G.W.ravel(), G.V.ravel()])).max() < 1e-8
    assert len(rnn.loss_curve_) == rnn.n_iter_
    np.testing.assert_allclose(rnn.loss_curve_[-1], rnn.loss(X, target) / target.size, rtol=1e-12)


def test_lm_without_noise_reaches_zero():
    _teacher, X, target = generated_problem(0.0)
    rnn = crnn.RNN(1, 3, 1, bias=True, seed=1)
    rnn.fit(X, target, optimizer="lm", epochs=300, tol=0)
    assert rnn.loss(X, target) < 1e-20


def test_lm_beats_adam_on_mackey_glass():
    from crnn import datasets

    series = datasets.mackey_glass(1000, subsample=3.0)
    train, val = datasets.windows(series[:700], 51, step=25), datasets.windows(series[700:], 51)
    X, target, Xv, tv = train[:, :-1], train[:, 1:], val[:, :-1], val[:, 1:]
    scores = {}
    for optimizer, epochs in (("adam", 300), ("lm", 30)):
        # one thread: the same bits, and far faster on a busy machine than two
        # threads that wait on each other at each of Adam's 300 small epochs
        rnn = crnn.RNN(1, 16, bias=True, seed=0, n_threads=1)
        rnn.fit(
            X,
            target,
            optimizer=optimizer,
            epochs=epochs,
            validation_data=(Xv, tv),
            n_iter_no_change=epochs,
            seed=0,
        )
        assert rnn.n_iter_ <= epochs
        scores[optimizer] = rnn.best_validation_score_
    assert scores["lm"] < scores["adam"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_lm_with_weights_decay_lists_and_float32(dtype):
    rng = np.random.default_rng(6)
    Xs = [rng.normal(size=(T, 2)) for T in (5, 9, 7)]
    ts = [np.cumsum(x, axis=0)[:, :1] * 0.2 for x in Xs]
    ws = [rng.uniform(0.5, 1, size=(x.shape[0], 1)) for x in Xs]
    rnn = crnn.RNN(2, 4, 1, bias=True, activation="logistic", leak=0.8, dtype=dtype, seed=0)
    before = rnn.loss(Xs, ts, sample_weight=ws)
    rnn.fit(Xs, ts, optimizer="lm", epochs=15, weight_decay=1e-4, sample_weight=ws)
    assert rnn.U.dtype == dtype
    assert rnn.loss(Xs, ts, sample_weight=ws) < 0.1 * before
    curve = np.array(rnn.loss_curve_) + np.array(rnn.penalty_curve_)
    assert (np.diff(curve) <= 1e-6 * curve[0]).all()  # the objective never rises


def test_lm_refuses_what_it_does_not_do():
    rng = np.random.default_rng(7)
    X, target = rng.normal(size=(4, 5, 1)), rng.normal(size=(4, 5, 1))
    rnn = crnn.RNN(1, 3, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        rnn.fit(X, target, optimizer="lm", batch_size=2)
    with pytest.raises(ValueError, match="truncate"):
        rnn.fit(X, target, optimizer="lm", truncate=2)
    with pytest.raises(ValueError, match="clip"):
        rnn.fit(X, target, optimizer="lm", clip=1.0)
    with pytest.raises(ValueError, match="optimizer='lm'"):
        rnn.partial_fit(X, target, optimizer="lm")
    rnn.fit(X, target, optimizer="lm", batch_size=4, epochs=2)  # the full batch is fine


def test_lm_early_stopping_and_warm_start():
    rng = np.random.default_rng(8)
    X, target = rng.normal(size=(12, 10, 1)), rng.normal(size=(12, 10, 1))
    rnn = crnn.RNN(1, 6, bias=True, seed=0)
    rnn.fit(
        X, target, optimizer="lm", epochs=40, validation_fraction=0.25, seed=0, n_iter_no_change=5
    )
    scores = rnn.validation_scores_
    assert len(scores) == rnn.n_iter_ < 40  # overfits noise: stopped early
    assert rnn.best_validation_score_ == min(scores)
    opt = rnn._fit_state["optimizer"]
    mu, steps = opt.mu, opt.t
    rnn.fit(X, target, optimizer="lm", epochs=1, warm_start=True)
    assert rnn.n_iter_ == len(scores) + 1
    assert rnn._fit_state["optimizer"] is opt  # mu goes on from where it was
    assert opt.mu == mu * 0.1
    assert opt.t == steps + 1
    rnn.fit(X, target, optimizer="lm", epochs=1)
    assert rnn._fit_state["optimizer"].mu == 0.001
    assert rnn.n_iter_ == 1


def test_crnn_train_optimizer_lm(tmp_path):
    from crnn import datasets
    from crnn._cli import main

    data = tmp_path / "mg.csv"
    np.savetxt(data, datasets.mackey_glass(600, subsample=3.0), delimiter=",")
    out = tmp_path / "m.npz"
    assert (
        main(["train", str(data), "--optimizer", "lm", "--hidden-size", "6", "-q", "-o", str(out)])
        == 0
    )
    assert crnn.load(out).hidden_size == 6


# ---------------------------------------------------------------------- the Laplace approximation


def noisy_series(T, sigma, seed=0):
    """A series x from a generating network in closed loop: x^{t+1} = Y^t + noise."""
    rng = np.random.default_rng(seed)
    teacher = crnn.RNN(1, 4, 1, bias=True, seed=3, init="normal")
    x = np.zeros((T, 1))
    x[0] = 0.3
    s = np.zeros(4)
    for t in range(T - 1):
        _, y, s = teacher.forward(x[t : t + 1], s, return_state=True)
        x[t + 1] = y[-1] + sigma * rng.normal()
    return x


def test_laplace_intervals_cover_95_percent():
    from crnn import datasets

    x = noisy_series(2600, 0.05)
    train, test = x[:1600], x[1600:]
    w = datasets.windows(train, 101, step=50)
    X, target = w[:, :-1], w[:, 1:]
    rnn = crnn.RNN(1, 4, 1, bias=True, seed=0)
    rnn.fit(X, target, optimizer="lm", epochs=60, tol=0)
    post = rnn.laplace(X, target)
    assert post.full
    assert post.covariance.shape == (29, 29)
    assert 0.05**2 < post.noise_variance < 4 * 0.05**2
    # one step ahead on held-out steps, the state run over the training part first
    _, _, state = rnn.forward(train, return_state=True)
    Y, std = rnn.predict(test[:-1], state, return_std=True)
    one = np.mean(np.abs(test[1:] - Y) <= 1.96 * std)
    # 10 steps of generate from 100 held-out starts, after 200 observed steps
    hits = []
    for k in range(1600, 2500, 9):
        out, sd = rnn.generate(10, x[k - 200 : k + 1], return_std=True)
        hits.append(np.abs(x[k + 1 : k + 11] - out) <= 1.96 * sd)
    ten = np.mean(hits)
    print(f"coverage of the 95% intervals: one step {one:.3f}, 10 steps of generate {ten:.3f}")
    assert 0.90 <= one <= 0.99
    assert 0.90 <= ten <= 0.99


def test_generate_std_is_the_linearised_closed_loop():
    from crnn._laplace import Laplace

    rng = np.random.default_rng(9)
    rnn = crnn.RNN(1, 5, 1, bias=True, activation="logistic", leak=0.7, seed=2)
    warm = rng.normal(size=(6, 1))
    P = rnn.flat_weights().size
    # one step: the one-step predictive deviation
    rnn.laplace_ = Laplace(np.diag(rng.uniform(0.1, 1, P)), 0.3, 1.0)
    _, sd = rnn.predict(warm, return_std=True)
    both = rnn.generate(1, warm, return_std=True)
    assert isinstance(both, tuple)  # as predict returns them
    _, sg = both
    np.testing.assert_array_equal(both[0], rnn.generate(1, warm))
    np.testing.assert_allclose(sg[0], sd[-1], rtol=1e-10)
    # many steps, no noise and Sigma = u u^T: the deviation is |u . dY^t/dtheta|
    u = rng.normal(size=P)
    rnn.laplace_ = Laplace(np.outer(u, u), 1e-300, 1.0)
    _out, sg = rnn.generate(8, warm, return_std=True)
    theta, eps = rnn.flat_weights(), 1e-6
    rnn.set_flat_weights(theta + eps * u)
    up = rnn.generate(8, warm)
    rnn.set_flat_weights(theta - eps * u)
    down = rnn.generate(8, warm)
    rnn.set_flat_weights(theta)
    np.testing.assert_allclose(sg, np.abs(up - down) / (2 * eps), rtol=1e-6, atol=1e-9)
    # a batch: each sequence's own
    _outb, sgb = rnn.generate(8, np.stack([warm, 2 * warm]), return_std=True)
    np.testing.assert_allclose(sgb[0], sg, rtol=1e-12)


def test_laplace_options_diagonal_and_saving(tmp_path):
    rng = np.random.default_rng(10)
    X, target = rng.normal(size=(5, 20, 2)), rng.normal(size=(5, 20, 1))
    rnn = crnn.RNN(2, 3, 1, bias=True, seed=0)
    rnn.fit(X, target, optimizer="lm", epochs=20)
    full = rnn.laplace(X, target)
    diag = rnn.laplace(X, target, full=False)
    assert diag.covariance.shape == (rnn.flat_weights().size,)
    fixed = rnn.laplace(X, target, prior_precision=2.5)
    assert fixed.prior_precision == 2.5
    with pytest.raises(ValueError, match="prior_precision"):
        rnn.laplace(X, target, prior_precision=-1.0)
    with pytest.raises(TypeError, match="full"):
        rnn.laplace(X, target, full="yes")
    rnn.laplace_ = full
    rnn.save(tmp_path / "m.npz")
    back = crnn.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.laplace_.covariance, full.covariance)
    assert back.laplace_.noise_variance == full.noise_variance
    np.testing.assert_array_equal(
        back.predict(X, return_std=True)[1], rnn.predict(X, return_std=True)[1]
    )
    plain = crnn.RNN(2, 3, 1, seed=0)
    with pytest.raises(ValueError, match="laplace"):
        plain.predict(X, return_std=True)
    with pytest.raises(ValueError, match="laplace"):
        crnn.RNN(1, 3, seed=0).generate(3, x0=[0.5], return_std=True)
    with pytest.raises(ValueError, match="return_state"):
        rnn.predict(X, return_std=True, return_state=True)


def test_gauss_newton_memory_does_not_grow_with_the_data(monkeypatch):
    import tracemalloc

    from crnn import _kernels

    monkeypatch.setattr(_kernels, "_GN_BYTES", 64 << 10)  # windows of 64 KB of J
    rng = np.random.default_rng(11)
    rnn = crnn.RNN(1, 8, 1, bias=True, seed=0, n_threads=1)  # P = 89
    peaks = []
    for N in (8, 256):  # J: 0.1 MB, then 3.6 MB
        X, target = rng.normal(size=(N, 20, 1)), rng.normal(size=(N, 20, 1))
        rnn.gauss_newton(X, target)  # the workspaces, kept per thread
        tracemalloc.start()
        rnn.gauss_newton(X, target)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + 20 * 256 * 8 * 4  # O(P^2) and a window, not O(N T m P)
    assert peaks[1] < 0.5 * 256 * 20 * 89 * 8


def test_crnn_forecast_interval(tmp_path, capsys):
    from crnn import datasets
    from crnn._cli import main

    data = tmp_path / "mg.csv"
    np.savetxt(data, datasets.mackey_glass(400, subsample=3.0), delimiter=",")
    model = tmp_path / "m.npz"
    assert (
        main(
            ["train", str(data), "--optimizer", "lm", "--hidden-size", "4", "-q", "-o", str(model)]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["forecast", str(model), str(data), "--steps", "6", "--interval", "0.9"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "forecast_0,forecast_0_lower,forecast_0_upper"
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert table.shape == (6, 3)
    assert (table[:, 1] < table[:, 0]).all()
    assert (table[:, 0] < table[:, 2]).all()
    np.testing.assert_allclose(table[:, 0] - table[:, 1], table[:, 2] - table[:, 0])
    # the same forecast as without --interval
    assert main(["forecast", str(model), str(data), "--steps", "6"]) == 0
    plain = np.loadtxt(capsys.readouterr().out.splitlines()[1:], delimiter=",")
    np.testing.assert_array_equal(plain, table[:, 0])


def test_lm_divergence_keeps_the_weights(monkeypatch):
    from crnn import _kernels

    rng = np.random.default_rng(12)
    X, target = rng.normal(size=(3, 6, 1)), rng.normal(size=(3, 6, 1))
    rnn = crnn.RNN(1, 3, seed=0)
    before = rnn.flat_weights()
    real = _kernels.gauss_newton

    def poisoned(*args, **kwargs):
        H, v, E, bad = real(*args, **kwargs)
        return H * np.nan, v, E, bad

    monkeypatch.setattr(_kernels, "gauss_newton", poisoned)
    with pytest.raises(FloatingPointError, match="diverged"):
        rnn.fit(X, target, optimizer="lm", epochs=3)
    np.testing.assert_array_equal(rnn.flat_weights(), before)
