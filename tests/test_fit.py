"""Training: fit, its options, partial_fit; the optimizers' arithmetic."""

import math

import numpy as np
import pytest
from helpers import make_problem, params

import crnn
from crnn._optim import SGD, Adagrad, Adam, clip_by_norm


def _sines(n_series=8, length=120, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length + 1)
    freq = rng.uniform(0.03, 0.1, size=(n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_series, 1))
    s = np.sin(2 * np.pi * freq * t + phase)[..., np.newaxis]
    return s[:, :-1], s[:, 1:]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_defaults_train_well_on_sines(optimizer):
    X, target = _sines()
    rnn = crnn.RNN(1, 16, seed=0)
    before = rnn.loss(X, target) / target.size
    out = rnn.fit(X, target, epochs=200, optimizer=optimizer)
    assert out is rnn
    after = rnn.loss(X, target) / target.size
    assert after < before / 10, (before, after)
    assert len(rnn.loss_curve_) == rnn.n_iter_
    assert all(isinstance(v, float) for v in rnn.loss_curve_)
    assert rnn.best_loss_ == min(rnn.loss_curve_)
    assert rnn.validation_scores_ is None


def test_loss_curve_is_the_mean_loss_seen_in_each_epoch():
    X, target = _sines(4, 30)
    rnn = crnn.RNN(1, 4, seed=1)
    first = rnn.loss(X, target) / target.size
    rnn.fit(X, target, epochs=3, shuffle=False)
    # full batch: the first entry is the loss before the first update
    assert rnn.loss_curve_[0] == pytest.approx(first, rel=1e-12)


def test_same_seed_same_numbers_and_seed_matters():
    X, target = _sines(12, 40)
    runs = []
    for seed in (3, 3, 4):
        rnn = crnn.RNN(1, 6, seed=0)
        rnn.fit(X, target, epochs=5, batch_size=4, seed=seed)
        runs.append((rnn.loss_curve_, rnn.W.copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][1], runs[2][1])


@pytest.mark.parametrize("bias", [False, True])
def test_one_sgd_epoch_is_the_update_written_out(bias):
    X, target = _sines(6, 20)
    rnn = crnn.RNN(1, 5, seed=2, bias=bias)
    keys = ("U", "W", "V", "b", "c") if bias else ("U", "W", "V")
    ref = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V, b=rnn.b, c=rnn.c)
    assert ref.bias is bias
    rnn.fit(X, target, epochs=1, optimizer="sgd", momentum=0.0, lr=0.3, batch_size=4, shuffle=False)
    for idx in (slice(0, 4), slice(4, 6)):
        G = ref.gradient(X[idx], target[idx])
        count = target[idx].size
        for k in keys:
            getattr(ref, k)[...] -= 0.3 * getattr(G, k) / count
    for k in keys:
        np.testing.assert_allclose(getattr(rnn, k), getattr(ref, k), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("bias", [False, True])
def test_one_sgd_step_of_partial_fit_is_the_update_written_out(rng, bias):
    rnn, X, target, _ = make_problem(rng, 4, 10, 2, 5, 3, w_scale=1.3, bias=bias)
    keys = params(rnn)
    ref = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V, b=rnn.b, c=rnn.c)
    G = ref.gradient(X, target)
    rnn.partial_fit(X, target, optimizer="sgd", lr=0.3)
    for key in keys:
        want = getattr(ref, key) - 0.3 * getattr(G, key) / target.size
        assert not np.allclose(want, getattr(ref, key)), key
        np.testing.assert_allclose(getattr(rnn, key), want, rtol=1e-14, atol=1e-16, err_msg=key)
    before = {key: getattr(rnn, key).copy() for key in keys}
    rnn.partial_fit(X, target)
    for key in keys:
        assert not np.array_equal(getattr(rnn, key), before[key]), key


def test_truncated_bptt_carries_the_state_across_windows():
    X, target = _sines(3, 25)
    rnn = crnn.RNN(1, 4, seed=5)
    ref = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V)
    rnn.fit(X, target, epochs=1, optimizer="sgd", momentum=0.0, lr=0.2, truncate=10, shuffle=False)
    state = np.zeros((3, 4))
    for t0 in (0, 10, 20):
        Xw, tw = X[:, t0 : t0 + 10], target[:, t0 : t0 + 10]
        S, _ = ref.forward(Xw, state)
        G = ref.gradient(Xw, tw, state)
        for k in ("U", "W", "V"):
            getattr(ref, k)[...] -= 0.2 * getattr(G, k) / tw.size
        state = S[:, -1]
    for k in ("U", "W", "V"):
        np.testing.assert_allclose(getattr(rnn, k), getattr(ref, k), rtol=1e-14, atol=1e-16)
    # a window at least as long as the sequences is plain BPTT
    a, b = crnn.RNN(1, 4, seed=5), crnn.RNN(1, 4, seed=5)
    a.fit(X, target, epochs=3, truncate=25, shuffle=False)
    b.fit(X, target, epochs=3, shuffle=False)
    np.testing.assert_array_equal(a.W, b.W)


def test_clip_bounds_every_update():
    X, target = _sines(4, 30)
    rnn = crnn.RNN(1, 8, seed=0)
    before = {k: getattr(rnn, k).copy() for k in "UWV"}
    rnn.fit(X, target, epochs=1, optimizer="sgd", momentum=0.0, lr=1.0, clip=1e-3)
    step = math.sqrt(sum(np.sum((getattr(rnn, k) - before[k]) ** 2) for k in "UWV"))
    assert step == pytest.approx(1e-3, rel=1e-9)  # the raw gradient is far larger


def test_rtrl_fit_equals_bptt_fit():
    X, target = _sines(3, 15)
    a, b = crnn.RNN(1, 4, seed=0), crnn.RNN(1, 4, seed=0)
    a.fit(X, target, epochs=5, method="bptt", seed=1)
    b.fit(X, target, epochs=5, method="rtrl", seed=1)
    np.testing.assert_allclose(a.W, b.W, rtol=1e-9, atol=1e-12)


def test_early_stopping_keeps_the_best_validation_weights():
    rng = np.random.default_rng(0)
    X, target = rng.normal(size=(6, 20, 2)), rng.normal(size=(6, 20, 2))
    Xv, tv = rng.normal(size=(3, 20, 2)), rng.normal(size=(3, 20, 2))  # noise: overfitting
    rnn = crnn.RNN(2, 16, seed=0)
    rnn.fit(X, target, epochs=300, lr=0.05, validation_data=(Xv, tv), n_iter_no_change=10)
    assert rnn.n_iter_ < 300
    assert len(rnn.validation_scores_) == rnn.n_iter_
    best = min(rnn.validation_scores_)
    assert rnn.best_validation_score_ == best
    assert rnn.validation_scores_[-1] > best  # it got worse before stopping
    assert rnn.loss(Xv, tv) / tv.size == pytest.approx(best, rel=1e-12)


def test_validation_fraction_splits_sequences_or_the_tail_of_one():
    X, target = _sines(10, 30)
    rnn = crnn.RNN(1, 4, seed=0)
    rnn.fit(X, target, epochs=4, validation_fraction=0.2)
    assert len(rnn.validation_scores_) == 4
    one = crnn.RNN(1, 4, seed=0)
    one.fit(X[0], target[0], epochs=4, validation_fraction=0.25)
    assert len(one.validation_scores_) == 4
    assert all(np.isfinite(one.validation_scores_))


def test_stops_after_n_iter_no_change():
    X, target = _sines(3, 10)
    rnn = crnn.RNN(1, 3, seed=0)
    rnn.fit(X, target, epochs=100, optimizer="sgd", lr=0.0, n_iter_no_change=7)
    assert rnn.n_iter_ == 8  # the first epoch improves on nothing; then 7 without change
    assert len(set(rnn.loss_curve_)) == 1


def test_warm_start_continues_and_cold_start_resets():
    X, target = _sines(4, 20)
    a, b = crnn.RNN(1, 5, seed=0), crnn.RNN(1, 5, seed=0)
    a.fit(X, target, epochs=6, shuffle=False)
    b.fit(X, target, epochs=3, shuffle=False)
    b.fit(X, target, epochs=3, shuffle=False, warm_start=True)
    assert b.loss_curve_ == a.loss_curve_
    np.testing.assert_array_equal(a.W, b.W)
    b.fit(X, target, epochs=2, shuffle=False)
    assert len(b.loss_curve_) == 2
    assert b.n_iter_ == 2


def test_partial_fit_continues_and_lowers_the_loss():
    X, target = _sines(4, 40)
    rnn = crnn.RNN(1, 8, seed=0)
    before = rnn.loss(X, target)
    for _ in range(30):
        rnn.partial_fit(X, target)
    assert rnn.n_iter_ == 30
    assert rnn.loss(X, target) < before / 3
    full = crnn.RNN(1, 8, seed=0)
    full.fit(X, target, epochs=30, shuffle=False, n_iter_no_change=100)
    np.testing.assert_allclose(rnn.W, full.W, rtol=1e-12, atol=1e-14)


def test_divergence_stops_with_finite_weights():
    X, target = _sines(4, 50)
    rnn = crnn.RNN(1, 8, seed=0)
    with pytest.raises(FloatingPointError, match="last finite weights"):
        rnn.fit(X, target * 1e150, epochs=50, optimizer="sgd", lr=1e150)
    assert all(np.isfinite(getattr(rnn, k)).all() for k in "UWV")
    rnn.predict(X)  # still usable


def _huge_gradient_model(dtype=np.float64):
    """A model and data whose loss is small but whose dE/dU is about 0.6 times X's 1e200."""
    big = 1e200 if dtype == np.float64 else 1e30
    rnn = crnn.RNN(1, 1, 1, seed=0, dtype=dtype)
    rnn.U = [[1 / big]]
    rnn.W = [[0.0]]
    rnn.V = [[1.0]]
    return rnn, np.full((1, 1, 1), big), np.zeros((1, 1, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_a_gradient_whose_square_overflows_is_refused_before_the_step(dtype, optimizer):
    # found by fuzz/fuzz_api.py: Adam's grad * grad overflowed, a RuntimeWarning
    # (an error where warnings are errors) in the middle of the step
    rnn, X, target = _huge_gradient_model(dtype)
    G = rnn.gradient(X, target)
    assert np.isfinite(G.loss)
    assert np.isfinite(G.U).all()
    assert np.abs(G.U).max() > np.sqrt(np.finfo(dtype).max)  # the case: its square overflows
    before = {k: v.copy() for k, v in rnn.parameters().items()}
    with pytest.raises(FloatingPointError, match=rf"overflow the {optimizer} optimizer's squares"):
        rnn.fit(X, target, epochs=1, optimizer=optimizer)
    for k, v in rnn.parameters().items():
        np.testing.assert_array_equal(v, before[k])
    # clipped, the same gradient is a step of norm clip
    rnn.fit(X, target, epochs=1, optimizer=optimizer, clip=1.0, lr=0.1)
    assert all(np.isfinite(v).all() for v in rnn.parameters().values())
    assert rnn.U[0, 0] != before["U"][0, 0]


def test_clip_by_norm_clips_a_gradient_whose_squares_overflow():
    from crnn._optim import clip_by_norm

    grads = {"U": np.array([[3e200]]), "W": np.array([[4e200]])}
    norm = clip_by_norm(grads, 1.0)
    assert norm == pytest.approx(5e200, rel=1e-15)
    np.testing.assert_allclose(grads["U"], [[0.6]], rtol=1e-15)
    np.testing.assert_allclose(grads["W"], [[0.8]], rtol=1e-15)


def test_verbose_reports_progress(capsys):
    X, target = _sines(2, 10)
    crnn.RNN(1, 3, seed=0).fit(X, target, epochs=3, verbose=True)
    err = capsys.readouterr().err
    assert "loss" in err
    crnn.RNN(1, 3, seed=0).fit(X, target, epochs=3)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.5}, TypeError, "epochs"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"truncate": 0}, ValueError, "truncate"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
        ({"optimizer": None}, TypeError, "optimizer"),
        ({"lr": -0.1}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"momentum": 1.0, "optimizer": "sgd"}, ValueError, "momentum"),
        ({"clip": 0.0}, ValueError, "clip"),
        ({"clip": -1.0}, ValueError, "clip"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change"),
        ({"validation_fraction": 1.5}, ValueError, "validation_fraction"),
        ({"validation_fraction": 0.0}, ValueError, "validation_fraction"),
        ({"validation_fraction": 0.2, "validation_data": ([], [])}, ValueError, "validation_"),
        ({"validation_data": "xy"}, TypeError, "validation_data"),
        ({"method": "adjoint"}, ValueError, "method"),
        ({"g": -1.0}, ValueError, "g"),
        ({"shuffle": "yes"}, TypeError, "shuffle"),
        ({"warm_start": 1}, TypeError, "warm_start"),
    ],
)
def test_bad_fit_arguments(kwargs, exc, name):
    X, target = _sines(3, 10)
    rnn = crnn.RNN(1, 3, seed=0)
    W = rnn.W.copy()
    with pytest.raises(exc, match=name):
        rnn.fit(X, target, epochs=kwargs.pop("epochs", 2), **kwargs)
    np.testing.assert_array_equal(rnn.W, W)


def test_bad_fit_data():
    rnn = crnn.RNN(2, 3, seed=0)
    with pytest.raises(ValueError, match="target"):
        rnn.fit(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="X"):
        rnn.fit(np.zeros((5, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="X"):
        rnn.fit(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="X"):
        rnn.fit(np.full((5, 2), np.nan), np.zeros((5, 2)))


def test_optimizer_arithmetic():
    g = np.array([0.5, -2.0])
    p = {"a": np.array([1.0, 1.0])}
    SGD(0.1, momentum=0.0).step(p, {"a": g})
    np.testing.assert_allclose(p["a"], [0.95, 1.2])
    opt, p = SGD(0.1, momentum=0.5), {"a": np.zeros(2)}
    opt.step(p, {"a": g})
    opt.step(p, {"a": g})  # v1 = -0.1 g, v2 = 0.5 v1 - 0.1 g = -0.15 g
    np.testing.assert_allclose(p["a"], -0.25 * g)
    opt, p = SGD(0.1, momentum=0.5, nesterov=True), {"a": np.zeros(2)}
    opt.step(p, {"a": g})  # step = 0.5 v1 - 0.1 g = -0.15 g
    np.testing.assert_allclose(p["a"], -0.15 * g)
    opt, p = Adam(0.01), {"a": np.zeros(2)}
    opt.step(p, {"a": g})  # the first Adam step is lr * sign(g)
    np.testing.assert_allclose(p["a"], -0.01 * np.sign(g), rtol=1e-6)
    opt, p = Adagrad(0.1), {"a": np.zeros(2)}
    opt.step(p, {"a": g})
    np.testing.assert_allclose(p["a"], -0.1 * np.sign(g), rtol=1e-9)
    grads = {"a": np.array([3.0, 4.0])}
    assert clip_by_norm(grads, 1.0) == 5.0
    np.testing.assert_allclose(grads["a"], [0.6, 0.8])
