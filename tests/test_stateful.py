"""Stateful use: chunked forward, step/reset, closed-loop generate."""

import numpy as np
import pytest

import crnn


@pytest.fixture
def model():
    return crnn.RNN(2, 6, seed=0)


def test_chunks_give_the_same_result_as_one_call(rng, model):
    X = rng.normal(size=(3, 50, 2))
    S, Y, final = model.forward(X, return_state=True)
    np.testing.assert_array_equal(final, S[:, -1])
    state, parts = None, []
    for t0 in range(0, 50, 7):
        Yc, state = model.predict(X[:, t0 : t0 + 7], state, return_state=True)
        parts.append(Yc)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), Y)
    np.testing.assert_array_equal(state, final)


def test_return_state_of_empty_sequence_is_s0(model):
    s0 = np.linspace(-0.5, 0.5, 6)
    _, _, final = model.forward(np.zeros((0, 2)), s0, return_state=True)
    np.testing.assert_array_equal(final, s0)


def test_step_follows_forward_and_reset_forgets(rng, model):
    X = rng.normal(size=(20, 2))
    Y = model.predict(X)
    assert model.state is None
    steps = np.array([model.step(x) for x in X])
    np.testing.assert_array_equal(steps, Y)
    np.testing.assert_array_equal(model.state, model.forward(X)[0][-1])
    model.reset()
    assert model.state is None
    np.testing.assert_array_equal(model.step(X[0]), Y[0])


def test_step_on_a_batch_and_a_given_state(rng, model):
    X = rng.normal(size=(4, 10, 2))
    s0 = rng.normal(size=(4, 6))
    Y = model.predict(X, s0)
    model.state = s0
    out = np.stack([model.step(X[:, t]) for t in range(10)], axis=1)
    np.testing.assert_array_equal(out, Y)
    with pytest.raises(ValueError, match="reset"):
        model.step(X[0, 0])
    with pytest.raises(ValueError, match="state"):
        model.state = np.zeros(5)


def test_generate_feeds_outputs_back(rng, model):
    warm = rng.normal(size=(15, 2))
    out = model.generate(5, warm)
    assert out.shape == (5, 2)
    _, Y, state = model.forward(warm, return_state=True)
    expected, x = [Y[-1]], Y[-1]
    for _ in range(4):
        _, y, state = model.forward(x[np.newaxis], state, return_state=True)
        x = y[0]
        expected.append(x)
    np.testing.assert_array_equal(out, np.array(expected))
    # from a first input instead of a warm-up, and for a batch
    out = model.generate(3, x0=np.ones((2, 2)))
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[:, 0], model.predict(np.ones((2, 1, 2)))[:, 0])


def test_generate_refusals(model):
    with pytest.raises(ValueError, match="output_size"):
        crnn.RNN(2, 3, 1).generate(3, x0=np.zeros(2))
    with pytest.raises(ValueError, match="warmup"):
        model.generate(3)
    with pytest.raises(ValueError, match="n_steps"):
        model.generate(0, x0=np.zeros(2))
    with pytest.raises(ValueError, match="x0"):
        model.generate(2, x0=np.zeros(3))


def test_generate_learns_to_continue_a_sine():
    t = np.arange(301)
    s = np.sin(2 * np.pi * t / 25)[:, np.newaxis]
    rnn = crnn.RNN(1, 16, seed=0)
    rnn.fit(s[:-1], s[1:], epochs=300)
    future = rnn.generate(25, s[:200])
    truth = s[200:225]
    assert np.sqrt(np.mean((future - truth) ** 2)) < 0.2
