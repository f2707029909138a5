"""The public surface: construction, attributes, shapes, copies, repr, the command."""

import copy
import os
import pickle

import numpy as np
import pytest

import crnn
from crnn import _core


def test_sizes_default_output_and_repr():
    rnn = crnn.RNN(3, 7)
    assert (rnn.input_size, rnn.hidden_size, rnn.output_size) == (3, 7, 3)
    assert rnn.U.shape == (7, 3)
    assert rnn.W.shape == (7, 7)
    assert rnn.V.shape == (3, 7)
    assert repr(rnn) == "RNN(input_size=3, hidden_size=7, output_size=3, dtype=float64)"
    rnn32 = crnn.RNN(2, 5, 4, dtype=np.float32)
    assert rnn32.V.shape == (4, 5)
    assert all(w.dtype == np.float32 for w in (rnn32.U, rnn32.W, rnn32.V))
    assert "dtype=float32" in repr(rnn32)


def test_seed_gives_reproducible_bounded_weights():
    a, b, c = crnn.RNN(4, 16, seed=1), crnn.RNN(4, 16, seed=1), crnn.RNN(4, 16, seed=2)
    for name in ("U", "W", "V"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))
    assert np.abs(a.U).max() <= 1 / np.sqrt(4)
    assert np.abs(a.W).max() <= 1 / np.sqrt(16)
    assert np.abs(a.V).max() <= 1 / np.sqrt(16)
    assert np.abs(a.W).max() > 0.5 / np.sqrt(16)  # not all squeezed to zero
    gen = np.random.default_rng(5)
    d = crnn.RNN(4, 16, seed=gen)
    np.testing.assert_array_equal(d.U, crnn.RNN(4, 16, seed=np.random.default_rng(5)).U)


def test_from_weights_copies_and_infers_dtype(rng):
    U, W, V = rng.normal(size=(3, 2)), rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
    rnn = crnn.RNN.from_weights(U, W, V)
    assert (rnn.input_size, rnn.hidden_size, rnn.output_size) == (2, 3, 4)
    assert rnn.dtype == np.float64
    U[0, 0] = 99.0
    assert rnn.U[0, 0] != 99.0
    r32 = crnn.RNN.from_weights(*(w.astype(np.float32) for w in (U, W, V)))
    assert r32.dtype == np.float32
    mixed = crnn.RNN.from_weights(U.astype(np.float32), W, V)
    assert mixed.dtype == np.float64
    forced = crnn.RNN.from_weights(U, W, V, dtype=np.float32)
    assert forced.U.dtype == np.float32


def test_weight_assignment_is_checked_and_copied(rng):
    rnn = crnn.RNN(2, 3, seed=0)
    new = rng.normal(size=(3, 3))
    rnn.W = new
    np.testing.assert_array_equal(rnn.W, new)
    new[0, 0] = 42.0
    assert rnn.W[0, 0] != 42.0
    rnn.U = [[1, 2], [3, 4], [5, 6]]  # lists of ints are converted
    assert rnn.U.dtype == np.float64
    assert rnn.U[2, 1] == 6.0
    with pytest.raises(ValueError, match=r"W must have shape \(3, 3\)"):
        rnn.W = np.zeros((2, 2))


def test_in_place_changes_of_weights_take_effect(rng):
    rnn = crnn.RNN(2, 3, seed=0)
    X = rng.normal(size=(5, 2))
    Y0 = rnn.predict(X)
    rnn.V[...] *= 2
    np.testing.assert_allclose(rnn.predict(X), 2 * Y0, rtol=1e-15)


def test_single_sequence_and_batch_shapes(rng):
    rnn = crnn.RNN(3, 4, 2, seed=0)
    X = rng.normal(size=(6, 3))
    S, Y = rnn.forward(X)
    assert S.shape == (6, 4)
    assert Y.shape == (6, 2)
    np.testing.assert_array_equal(rnn.predict(X), Y)
    Xb = rng.normal(size=(5, 6, 3))
    S, Y = rnn.forward(Xb, s0=np.zeros(4))
    assert S.shape == (5, 6, 4)
    assert Y.shape == (5, 6, 2)
    G = rnn.gradient(X, rng.normal(size=(6, 2)))
    assert isinstance(G, crnn.Gradient)
    assert isinstance(G.loss, float)
    assert "method='bptt'" in repr(G)
    assert G.U.shape == (4, 3)
    assert G.s0.shape == (4,)


def test_states_are_tanh_of_the_recurrence(rng):
    # a numpy restatement of the seed's equations, vectorised over the batch
    rnn = crnn.RNN(2, 5, 3, seed=3)
    X = rng.normal(size=(4, 7, 2))
    s0 = rng.normal(size=(4, 5))
    S, Y = rnn.forward(X, s0)
    s = s0
    for t in range(7):
        s = np.tanh(X[:, t] @ rnn.U.T + s @ rnn.W.T)
        np.testing.assert_allclose(S[:, t], s, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(Y[:, t], s @ rnn.V.T, rtol=1e-13, atol=1e-15)


def test_models_pickle_and_deepcopy(rng):
    rnn = crnn.RNN(2, 4, seed=0, n_threads=1)
    X = rng.normal(size=(3, 5, 2))
    for clone in (pickle.loads(pickle.dumps(rnn)), copy.deepcopy(rnn)):
        assert repr(clone) == repr(rnn)
        assert clone.n_threads == 1
        np.testing.assert_array_equal(clone.predict(X), rnn.predict(X))
        clone.W[0, 0] += 1
        assert clone.W[0, 0] != rnn.W[0, 0]


@pytest.mark.parametrize("bias", [False, True])
def test_copies_have_parameters_of_their_own_that_the_kernels_read(rng, bias):
    # the attributes are views of one parameter vector: after a copy (of any
    # kind) a change made in place through the copy's attribute reaches the
    # copy's kernels, and not the original's
    rnn = crnn.RNN(2, 4, seed=0, n_threads=1, bias=bias)
    X = rng.normal(size=(3, 5, 2))
    Y = rnn.predict(X)
    for clone in (pickle.loads(pickle.dumps(rnn)), copy.deepcopy(rnn), copy.copy(rnn)):
        np.testing.assert_array_equal(clone.predict(X), Y)
        for name, arr in clone.parameters().items():
            arr[...] = 0 if name != "V" else arr
        np.testing.assert_array_equal(clone.predict(X), 0 * Y)  # U = 0: the states stay 0
        np.testing.assert_array_equal(rnn.predict(X), Y)


def test_assigning_a_parameter_reaches_the_kernels_and_in_place_changes_after_it(rng):
    rnn = crnn.RNN(2, 4, seed=0)
    X = rng.normal(size=(5, 2))
    rnn.U = np.zeros((4, 2))
    np.testing.assert_array_equal(rnn.predict(X), 0)
    rnn.U[0, 0] = 1.0  # the assigned array is the model's own: in place counts
    assert np.any(rnn.predict(X) != 0)
    rnn.set_parameters({"U": np.zeros((4, 2))})
    np.testing.assert_array_equal(rnn.predict(X), 0)
    rnn.U[1, 1] = 1.0
    assert np.any(rnn.predict(X) != 0)


def test_a_model_pickled_before_the_parameters_were_one_vector_loads(rng):
    # pickles of earlier versions hold U, W, V (and b, c) as separate arrays
    for bias in (False, True):
        rnn = crnn.RNN(2, 4, 3, seed=0, bias=bias)
        state = rnn.__getstate__()
        theta = state.pop("_theta")
        state.update({"_" + k: v.copy() for k, v in rnn.parameters().items()})
        old = crnn.RNN.__new__(crnn.RNN)
        old.__setstate__(state)
        X = rng.normal(size=(6, 2))
        np.testing.assert_array_equal(old.predict(X), rnn.predict(X))
        np.testing.assert_array_equal(old._theta, theta)
        old.W[0, 0] += 1
        assert not np.array_equal(old.predict(X), rnn.predict(X))


def test_debug_build_is_what_ci_asked_for():
    # CI sets CRNN_EXPECT_DEBUG=1 for its bounds-checked run, so that run
    # cannot silently test a release build.
    expected = os.environ.get("CRNN_EXPECT_DEBUG")
    if expected is None:
        pytest.skip("CRNN_EXPECT_DEBUG not set: the build type is not checked")
    assert _core._debug_build() == (expected == "1")


def test_version_and_public_names():
    from importlib.metadata import version

    assert crnn.__version__ == version("crnn")
    assert set(crnn.__all__) >= {"RNN", "Gradient", "reference"}


@pytest.mark.parametrize("init", ["uniform", "glorot", "normal", "orthogonal"])
def test_initialisers(init):
    rnn = crnn.RNN(3, 40, 2, init=init, seed=0)
    assert rnn.U.shape == (40, 3)
    assert np.isfinite(rnn.W).all()
    if init == "orthogonal":
        np.testing.assert_allclose(rnn.W @ rnn.W.T, np.eye(40), atol=1e-12)
    if init == "glorot":
        assert np.abs(rnn.W).max() <= np.sqrt(6 / 80)
        assert np.abs(rnn.W).max() > 0.9 * np.sqrt(6 / 80)
    if init == "normal":
        assert rnn.W.std() == pytest.approx(1 / np.sqrt(40), rel=0.1)
    other = crnn.RNN(3, 40, 2, init=init, seed=1)
    assert not np.array_equal(rnn.W, other.W)


def test_spectral_radius_and_callable_init():
    rnn = crnn.RNN(2, 30, init="normal", spectral_radius=0.9, seed=0)
    assert np.max(np.abs(np.linalg.eigvals(rnn.W))) == pytest.approx(0.9, rel=1e-10)
    const = crnn.RNN(2, 3, init=lambda shape, fan_in, fan_out, rng: np.full(shape, 0.5))
    np.testing.assert_array_equal(const.V, np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="init"):
        crnn.RNN(2, 3, init="zeros")
    with pytest.raises(ValueError, match="init"):
        crnn.RNN(2, 3, init=lambda shape, *a: np.zeros(2))
    with pytest.raises(ValueError, match="spectral_radius"):
        crnn.RNN(2, 3, spectral_radius=-1.0)
    with pytest.raises(TypeError, match="spectral_radius"):
        crnn.RNN(2, 3, spectral_radius="big")
    with pytest.raises(ValueError, match="spectral_radius"):
        crnn.RNN(2, 3, init=lambda shape, *a: np.zeros(shape), spectral_radius=1.0)
