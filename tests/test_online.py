"""Online learning by RTRL: exact per-step gradients, updates, streams in pieces."""

import numpy as np
import pytest
from helpers import make_problem

import crnn


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("T", "n", "d", "m"), [(1, 1, 1, 1), (25, 2, 4, 3), (40, 3, 6, 1)])
def test_per_step_gradients_sum_to_the_bptt_gradient(rng, dtype, T, n, d, m):
    rnn, X, target, s0 = make_problem(rng, 1, T, n, d, m, dtype, w_scale=1.3)
    trainer = crnn.OnlineRTRL(rnn, lr=0.0, g=0.7, s0=s0[0])
    Y = trainer.learn(X[0], target[0])
    G = rnn.gradient(X[0], target[0], s0[0], g=0.7)
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 1e-5)
    S = trainer.gradient_sum_
    for key in ("U", "W", "V"):
        ref = getattr(G, key)
        np.testing.assert_allclose(getattr(S, key), ref, rtol=rtol, atol=atol * max(1, abs(G.loss)))
    assert S.loss == pytest.approx(G.loss, rel=rtol)
    np.testing.assert_allclose(Y, rnn.predict(X[0], s0[0]), rtol=rtol, atol=atol)
    assert trainer.n_steps_ == T
    np.testing.assert_allclose(trainer.state, rnn.forward(X[0], s0[0])[0][-1], rtol=rtol, atol=atol)


def _online_reference(U, W, V, X, target, lr, g, s0):
    """Online RTRL with per-step updates, written independently with numpy."""
    U, W, V = U.copy(), W.copy(), V.copy()
    d, n = U.shape
    s = s0.copy()
    PU, PW = np.zeros((d, d, n)), np.zeros((d, d, d))
    eye = np.eye(d)
    Y = []
    for x, y_hat in zip(X, target, strict=True):
        s_new = np.tanh(U @ x + W @ s)
        y = V @ s_new
        Y.append(y)
        e = -2 * g * (y_hat - y)
        fp = 1 - s_new**2
        PU = fp[:, None, None] * (
            eye[:, :, None] * x[None, None, :] + np.einsum("lm,mij->lij", W, PU)
        )
        PW = fp[:, None, None] * (
            eye[:, :, None] * s[None, None, :] + np.einsum("lm,mij->lij", W, PW)
        )
        c = V.T @ e
        gU, gW, gV = (
            np.einsum("l,lij->ij", c, PU),
            np.einsum("l,lij->ij", c, PW),
            np.outer(e, s_new),
        )
        U, W, V = U - lr * gU, W - lr * gW, V - lr * gV
        s = s_new
    return U, W, V, np.array(Y), s


def test_updates_match_an_independent_implementation(rng):
    rnn, X, target, s0 = make_problem(rng, 1, 30, 2, 5, 2)
    U, W, V = rnn.U.copy(), rnn.W.copy(), rnn.V.copy()
    trainer = crnn.OnlineRTRL(rnn, lr=0.05, g=1.5, s0=s0[0])
    Y = trainer.learn(X[0], target[0])
    U2, W2, V2, Y2, s2 = _online_reference(U, W, V, X[0], target[0], 0.05, 1.5, s0[0])
    for got, want in ((rnn.U, U2), (rnn.W, W2), (rnn.V, V2), (Y, Y2), (trainer.state, s2)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    assert not np.allclose(rnn.W, W)  # it did learn


def test_a_stream_in_pieces_is_the_stream_at_once(rng):
    rnn, X, target, _ = make_problem(rng, 1, 50, 3, 4, 2)
    twin = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V)
    whole = crnn.OnlineRTRL(rnn, lr=0.02)
    pieces = crnn.OnlineRTRL(twin, lr=0.02)
    Y = whole.learn(X[0], target[0])
    parts = [pieces.step(X[0, 0], target[0, 0])]
    parts += list(pieces.learn(X[0, 1:20], target[0, 1:20]))
    parts += [pieces.step(x, t) for x, t in zip(X[0, 20:], target[0, 20:], strict=True)]
    np.testing.assert_array_equal(np.array(parts), Y)
    np.testing.assert_array_equal(twin.W, rnn.W)
    np.testing.assert_array_equal(pieces.sensitivities, whole.sensitivities)
    assert pieces.n_steps_ == whole.n_steps_ == 50


def test_reset_starts_a_new_stream(rng):
    rnn, X, target, _ = make_problem(rng, 1, 10, 2, 3, 2)
    trainer = crnn.OnlineRTRL(rnn, lr=0.0)
    first = trainer.learn(X[0], target[0])
    trainer.reset()
    assert trainer.n_steps_ == 0
    assert trainer.loss_ == 0.0
    assert not trainer.sensitivities.any()
    np.testing.assert_array_equal(trainer.learn(X[0], target[0]), first)


def test_clip_bounds_each_steps_gradient(rng):
    rnn, X, target, _ = make_problem(rng, 1, 12, 2, 3, 2)
    trainer = crnn.OnlineRTRL(rnn, lr=0.0, clip=1e-3)
    trainer.learn(X[0], 100 * target[0])
    G = trainer.gradient_sum_
    norm = np.sqrt(sum(np.sum(getattr(G, k) ** 2) for k in "UWV"))
    assert norm <= 12 * 1e-3 * (1 + 1e-12)
    assert norm > 1e-3  # the steps were clipped, not zeroed


def test_online_learning_tracks_a_drifting_signal():
    # a sine whose period drifts from 20 to 30 steps: a frozen model falls
    # behind, the online learner follows
    t = np.arange(3001)
    period = 20 + 10 * t / t[-1]
    signal = np.sin(2 * np.pi * np.cumsum(1 / period))[:, np.newaxis]
    X, target = signal[:-1], signal[1:]
    rnn = crnn.RNN(1, 12, seed=0)
    rnn.fit(X[:500], target[:500], epochs=150)
    frozen = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V)
    online = crnn.OnlineRTRL(rnn, lr=0.005, clip=1.0)
    Y_online = online.learn(X, target)
    Y_frozen = frozen.predict(X)
    late = slice(2500, 3000)
    err_online = np.sqrt(np.mean((Y_online[late] - target[late]) ** 2))
    err_frozen = np.sqrt(np.mean((Y_frozen[late] - target[late]) ** 2))
    assert err_online < err_frozen / 2, (err_online, err_frozen)


def test_divergence_restores_everything(rng):
    rnn, X, target, _ = make_problem(rng, 1, 20, 2, 3, 2)
    trainer = crnn.OnlineRTRL(rnn, lr=0.01)
    trainer.learn(X[0, :2], target[0, :2])
    trainer.lr = 1e300
    W, state, P = rnn.W.copy(), trainer.state.copy(), trainer.sensitivities
    with pytest.raises(FloatingPointError, match="as before this call"):
        trainer.learn(X[0], target[0] * 1e300)
    np.testing.assert_array_equal(rnn.W, W)
    np.testing.assert_array_equal(trainer.state, state)
    np.testing.assert_array_equal(trainer.sensitivities, P)
    assert trainer.n_steps_ == 2


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": "fast"}, TypeError, "lr"),
        ({"g": 0.0}, ValueError, "g"),
        ({"clip": 0.0}, ValueError, "clip"),
        ({"clip": float("inf")}, ValueError, "clip"),
        ({"s0": np.zeros(5)}, ValueError, "s0"),
    ],
)
def test_bad_options(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        crnn.OnlineRTRL(crnn.RNN(2, 3), **kwargs)


def test_bad_data_and_model():
    with pytest.raises(TypeError, match="model"):
        crnn.OnlineRTRL("rnn")
    trainer = crnn.OnlineRTRL(crnn.RNN(2, 3, 1))
    with pytest.raises(ValueError, match="X"):
        trainer.learn(np.zeros((4, 3)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="target"):
        trainer.learn(np.zeros((4, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="x"):
        trainer.step(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="X"):
        trainer.learn(np.full((4, 2), np.nan), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="state"):
        trainer.state = np.zeros(4)
    with pytest.raises(AttributeError):
        trainer.model = crnn.RNN(5, 5)
    assert trainer.learn(np.zeros((0, 2)), np.zeros((0, 1))).shape == (0, 1)
