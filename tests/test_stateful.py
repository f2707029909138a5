"""Stateful use: chunked forward, step/reset, closed-loop generate.

The tests on the ``model`` fixture run on a model without biases and on one
with (nonzero) biases b and c.
"""

import numpy as np
import pytest
from helpers import make_problem

import crnn


@pytest.fixture(params=[False, True], ids=["bias=False", "bias=True"])
def model(request):
    rnn = crnn.RNN(2, 6, seed=0, bias=request.param)
    assert rnn.bias is request.param
    if rnn.bias:
        assert np.all(rnn.b != 0)
        assert np.all(rnn.c != 0)
    return rnn


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
    # the first output from a zero state: V tanh(U x + b) + c
    b, c = (model.b, model.c) if model.bias else (0.0, 0.0)
    np.testing.assert_allclose(
        Y[0], model.V @ np.tanh(model.U @ X[0] + b) + c, rtol=1e-14, atol=1e-15
    )


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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 4, 7, 33])
@pytest.mark.parametrize("bias", [False, True])
def test_step_gives_the_bits_of_forward(rng, dtype, d, bias):
    # step has an unpacked kernel of its own: its chains must be forward's
    rnn = crnn.RNN(3, d, 2, seed=1, dtype=dtype, bias=bias, n_threads=1)
    X = rng.normal(size=(5, 9, 3)).astype(dtype)
    S, Y = rnn.forward(X)
    out = np.stack([rnn.step(X[:, t]) for t in range(9)], axis=1)
    assert out.tobytes() == Y.tobytes()
    assert rnn.state.tobytes() == S[:, -1].tobytes()
    rnn.reset()
    one = np.stack([rnn.step(x) for x in X[2]])
    assert one.tobytes() == Y[2].tobytes()


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


def _closed_loop(rnn, n_steps, warmup, s0):
    """Generation written with numpy: warm up, then feed each output back."""
    U, W, V = rnn.U, rnn.W, rnn.V
    b, c = (rnn.b, rnn.c) if rnn.bias else (0.0, 0.0)
    s = np.zeros(rnn.hidden_size) if s0 is None else s0.copy()
    for x in warmup:
        s = np.tanh(U @ x + W @ s + b)
    y = V @ s + c
    out = [y]
    for _ in range(n_steps - 1):
        s = np.tanh(U @ y + W @ s + b)
        y = V @ s + c
        out.append(y)
    return np.array(out)


@pytest.mark.parametrize("bias", [False, True])
def test_generate_is_the_closed_loop_written_out(rng, bias):
    rnn, X, _, s0 = make_problem(rng, 2, 10, 3, 6, 3, w_scale=0.8, bias=bias)
    out = rnn.generate(15, X[0], s0=s0[0])
    assert out.shape == (15, 3)
    np.testing.assert_allclose(out, _closed_loop(rnn, 15, X[0], s0[0]), rtol=1e-12, atol=1e-13)
    # the outputs are forward's, with each generated value as the next input
    inputs = np.concatenate([X[0], out[:-1]])
    _, Y = rnn.forward(inputs, s0[0])
    np.testing.assert_allclose(out, Y[-15:], rtol=1e-12, atol=1e-13)
    # batch warm-up, and a start from x0
    outs = rnn.generate(7, X, s0=s0)
    for i in range(2):
        np.testing.assert_allclose(
            outs[i], _closed_loop(rnn, 7, X[i], s0[i]), rtol=1e-12, atol=1e-13
        )
    from_x0 = rnn.generate(5, x0=X[1, 0])
    np.testing.assert_allclose(
        from_x0, _closed_loop(rnn, 5, X[1, :1], None), rtol=1e-12, atol=1e-13
    )
    if bias:  # the biases count
        plain = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V)
        assert not np.allclose(plain.generate(15, X[0], s0=s0[0]), out)


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
