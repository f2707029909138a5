"""Online learning by RTRL: exact per-step gradients, updates, streams in pieces."""

import numpy as np
import pytest
from helpers import BIASES, make_problem, params

import crnn


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("T", "n", "d", "m"), [(1, 1, 1, 1), (25, 2, 4, 3), (30, 3, 6, 1), (40, 3, 6, 1)]
)
def test_per_step_gradients_sum_to_the_bptt_gradient(rng, dtype, T, n, d, m, bias):
    rnn, X, target, s0 = make_problem(rng, 1, T, n, d, m, dtype, w_scale=1.3, bias=bias)
    before = {k: getattr(rnn, k).copy() for k in params(rnn)}
    trainer = crnn.OnlineRTRL(rnn, lr=0.0, g=0.7, s0=s0[0])
    # ds/dU, ds/dW and, with the biases, ds/db side by side
    assert trainer.sensitivities.shape == (d, d * n + d * d + (d if bias else 0))
    Y = trainer.learn(X[0], target[0])
    G = rnn.gradient(X[0], target[0], s0[0], g=0.7)
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 1e-5)
    S = trainer.gradient_sum_
    for key in params(rnn):
        ref = getattr(G, key)
        assert getattr(S, key).shape == ref.shape, key
        np.testing.assert_allclose(
            getattr(S, key), ref, rtol=rtol, atol=atol * max(1, abs(G.loss)), err_msg=key
        )
    if not bias:
        assert S.b is None
        assert S.c is None
    assert S.loss == pytest.approx(G.loss, rel=rtol)
    np.testing.assert_allclose(Y, rnn.predict(X[0], s0[0]), rtol=rtol, atol=atol)
    assert trainer.n_steps_ == T
    np.testing.assert_allclose(trainer.state, rnn.forward(X[0], s0[0])[0][-1], rtol=rtol, atol=atol)
    for key, value in before.items():  # lr = 0 learns nothing
        np.testing.assert_array_equal(getattr(rnn, key), value, err_msg=key)


def _online_reference(U, W, V, b, c, X, target, lr, g, s0, clip=None):
    """Online RTRL with per-step updates, written independently with numpy.

    b and c are the biases, or None for a model without (no ds/db, no update).
    Returns the final parameters, the outputs, the state, the sensitivities
    (ds/dU (d, d, n), ds/dW (d, d, d), ds/db (d, d)), the sum of the per-step
    gradients and how many steps were clipped.
    """
    bias = b is not None
    keys = ("U", "W", "V", "b", "c") if bias else ("U", "W", "V")
    d, n = U.shape
    theta = {"U": U.copy(), "W": W.copy(), "V": V.copy()}
    theta["b"] = b.copy() if bias else np.zeros(d)
    theta["c"] = c.copy() if bias else np.zeros(V.shape[0])
    s = s0.copy()
    PU, PW, Pb = np.zeros((d, d, n)), np.zeros((d, d, d)), np.zeros((d, d))
    eye = np.eye(d)
    Y, clipped = [], 0
    total = dict.fromkeys(keys, 0.0)
    for x, y_hat in zip(X, target, strict=True):
        U, W, V = theta["U"], theta["W"], theta["V"]
        s_new = np.tanh(U @ x + W @ s + theta["b"])
        y = V @ s_new + theta["c"]
        Y.append(y)
        e = -2 * g * (y_hat - y)
        fp = 1 - s_new**2
        # dS_l/dtheta from step t-1 to t, with the weights before this step's update
        PU = fp[:, None, None] * (eye[:, :, None] * x + np.einsum("lm,mij->lij", W, PU))
        PW = fp[:, None, None] * (eye[:, :, None] * s + np.einsum("lm,mij->lij", W, PW))
        Pb = fp[:, None] * (eye + W @ Pb)
        v = V.T @ e
        step = {
            "U": np.einsum("l,lij->ij", v, PU),
            "W": np.einsum("l,lij->ij", v, PW),
            "V": np.outer(e, s_new),
            "b": v @ Pb,
            "c": e,
        }
        step = {k: step[k] for k in keys}
        if clip is not None:
            norm = np.sqrt(sum(np.sum(a**2) for a in step.values()))
            if norm > clip:
                clipped += 1
                step = {k: a * (clip / norm) for k, a in step.items()}
        total = {k: total[k] + step[k] for k in keys}
        theta.update({k: theta[k] - lr * step[k] for k in keys})
        s = s_new
    params_ = {k: theta[k] for k in keys}
    return params_, np.array(Y), s, (PU, PW, Pb), total, clipped


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize(("T", "n", "d", "m"), [(30, 2, 5, 2), (20, 2, 5, 3)])
def test_updates_match_an_independent_implementation(rng, T, n, d, m, clip, bias):
    rnn, X, target, s0 = make_problem(rng, 1, T, n, d, m, w_scale=1.3, bias=bias)
    X, target, s0 = X[0], target[0], s0[0]
    keys = params(rnn)
    before = {k: getattr(rnn, k).copy() for k in keys}
    want, Y_ref, s_ref, (PU, PW, Pb), total, clipped = _online_reference(
        rnn.U, rnn.W, rnn.V, rnn.b, rnn.c, X, target, 0.05, 1.5, s0, clip
    )
    if clip is not None:
        assert clipped > 0  # the clipping was exercised
    trainer = crnn.OnlineRTRL(rnn, lr=0.05, g=1.5, clip=clip, s0=s0)
    # half by learn, half step by step: the same stream
    half = T // 2
    Y = np.concatenate(
        [
            trainer.learn(X[:half], target[:half]),
            [trainer.step(x, t) for x, t in zip(X[half:], target[half:], strict=True)],
        ]
    )
    tol = {"rtol": 1e-11, "atol": 1e-13}
    np.testing.assert_allclose(Y, Y_ref, **tol)
    np.testing.assert_allclose(trainer.state, s_ref, **tol)
    for key in keys:
        np.testing.assert_allclose(getattr(rnn, key), want[key], **tol, err_msg=key)
        np.testing.assert_allclose(
            getattr(trainer.gradient_sum_, key), total[key], **tol, err_msg=f"sum {key}"
        )
        assert not np.allclose(getattr(rnn, key), before[key]), key  # it did learn
    P = trainer.sensitivities
    assert P.shape == (d, d * n + d * d + (d if bias else 0))
    np.testing.assert_allclose(P[:, : d * n], PU.reshape(d, d * n), **tol, err_msg="dS/dU")
    np.testing.assert_allclose(
        P[:, d * n : d * n + d * d], PW.reshape(d, d * d), **tol, err_msg="dS/dW"
    )
    if bias:
        np.testing.assert_allclose(P[:, d * n + d * d :], Pb, **tol, err_msg="dS/db")
    assert trainer.n_steps_ == T


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


def _snapshot(rnn, trainer):
    G = trainer.gradient_sum_
    return [
        rnn.U.copy(),
        rnn.W.copy(),
        rnn.V.copy(),
        trainer.state.copy(),
        trainer.sensitivities,
        G.U,
        G.W,
        G.V,
        np.array([trainer.n_steps_, trainer.loss_]),
    ]


def test_a_single_step_that_would_diverge_changes_nothing(rng):
    # one step keeps no backup: the kernel checks the step's loss and the
    # weights it would make before it changes anything
    rnn, X, target, _ = make_problem(rng, 1, 20, 2, 3, 2)
    trainer = crnn.OnlineRTRL(rnn, lr=0.01)
    trainer.learn(X[0, :2], target[0, :2])
    trainer.lr = 1e300
    before = _snapshot(rnn, trainer)
    with pytest.raises(FloatingPointError, match="as before this call"):
        trainer.step(X[0, 2], target[0, 2] * 1e300)
    for a, b in zip(_snapshot(rnn, trainer), before, strict=True):
        np.testing.assert_array_equal(a, b)
    trainer.lr = 0.01  # and the stream goes on from where it was
    after = trainer.learn(X[0, 2:4], target[0, 2:4])
    assert np.isfinite(after).all()


def test_a_loss_beyond_the_float_range_is_refused_without_a_warning(rng):
    # every step's E^t is finite (about 1e308) but their sum is not: the
    # chunk is undone and refused, and no overflow warning escapes (warnings
    # are errors in the tests)
    rnn, X, target, _ = make_problem(rng, 1, 20, 2, 3, 2)
    trainer = crnn.OnlineRTRL(rnn, lr=0.0)
    trainer.learn(X[0, :2], target[0, :2])
    before = _snapshot(rnn, trainer)
    with pytest.raises(FloatingPointError, match="as before this call"):
        trainer.learn(X[0], np.full_like(target[0], 7e153))
    for a, b in zip(_snapshot(rnn, trainer), before, strict=True):
        np.testing.assert_array_equal(a, b)


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
