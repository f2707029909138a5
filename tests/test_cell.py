"""The cell's options (activation, leak) and the weights of the loss (sample_weight).

Every activation with several leak rates, float64 and float32, against the
oracle (crnn.reference), BPTT against RTRL, both against finite differences
and, when PyTorch is installed, against autograd on the leaky cell written
out in torch. Then the API: save, load, pickle, repr, from_weights, online
RTRL, and the refusals.
"""

import pickle

import numpy as np
import pytest

import crnn
from crnn import reference

ACTIVATIONS = ["tanh", "relu", "identity", "logistic"]
LEAKS = [1.0, 0.5, 0.1]
CELLS = [(f, a) for f in ACTIVATIONS for a in LEAKS]
CELL_IDS = [f"{f}-a{a}" for f, a in CELLS]


def problem(rng, N, T, n, d, m, activation, leak, dtype=np.float64, bias=True):
    """A model of this cell with its data, initial states and weights of the loss."""
    rnn = crnn.RNN(n, d, m, dtype=dtype, bias=bias, activation=activation, leak=leak, seed=rng)
    X = rng.normal(size=(N, T, n)).astype(dtype)
    target = rng.normal(size=(N, T, m)).astype(dtype)
    s0 = rng.uniform(-0.8, 0.8, size=(N, d)).astype(dtype)
    w = rng.uniform(0, 2, size=(N, T, m)).astype(dtype)
    return rnn, X, target, s0, w


def oracle(rnn, X, target, s0, w, method):
    """The oracle's gradient of every sequence, summed over the batch (float64)."""
    fn = reference.gradient_bptt if method == "bptt" else reference.gradient_rtrl
    total = None
    ds0 = []
    for b in range(X.shape[0]):
        G = fn(
            rnn.U,
            rnn.W,
            rnn.V,
            X[b],
            target[b],
            s0[b],
            b=rnn.b,
            c=rnn.c,
            activation=rnn.activation,
            leak=rnn.leak,
            weight=w[b],
        )
        ds0.append(G["s0"])
        arrays = {k: np.asarray(G[k]) for k in ("U", "W", "V", "b", "c")}
        arrays["loss"] = G["loss"]
        total = arrays if total is None else {k: total[k] + arrays[k] for k in total}
    total["s0"] = np.array(ds0)
    return total


@pytest.mark.parametrize(("activation", "leak"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("method", ["bptt", "rtrl"])
def test_gradients_match_the_oracle(rng, activation, leak, method):
    rnn, X, target, s0, w = problem(rng, 3, 6, 2, 4, 3, activation, leak)
    G = rnn.gradient(X, target, s0, 0.7, method, sample_weight=w)
    ref = oracle(rnn, X, target, s0, w * 0.7, method)  # g w: the same loss
    for key in ("U", "W", "V", "b", "c", "s0"):
        np.testing.assert_allclose(getattr(G, key), ref[key], rtol=1e-11, atol=1e-12)
    assert G.loss == pytest.approx(ref["loss"], rel=1e-12)
    assert rnn.loss(X, target, s0, 0.7, sample_weight=w) == pytest.approx(ref["loss"], rel=1e-12)


@pytest.mark.parametrize(("activation", "leak"), CELLS, ids=CELL_IDS)
def test_forward_matches_the_oracle(rng, activation, leak):
    rnn, X, _, s0, _ = problem(rng, 2, 9, 3, 5, 2, activation, leak)
    S, Y = rnn.forward(X, s0)
    for b in range(2):
        Sr, Yr = reference.forward(
            rnn.U, rnn.W, rnn.V, X[b], s0[b], b=rnn.b, c=rnn.c, activation=activation, leak=leak
        )
        np.testing.assert_allclose(S[b], Sr, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(Y[b], Yr, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(("activation", "leak"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T", [1, 2, 40])
def test_bptt_and_rtrl_agree(rng, activation, leak, dtype, T):
    # sizes that fill several sensitivity panels and BPTT blocks; RTRL's
    # first step has a path of its own, and T = 1 is a first and last step
    rnn, X, target, s0, w = problem(rng, 5, T, 3, 17, 2, activation, leak, dtype)
    rnn.W *= 0.5  # keep relu and the identity from growing without bound
    G = rnn.gradient(X, target, s0, sample_weight=w)
    H = rnn.gradient(X, target, s0, method="rtrl", sample_weight=w)
    rtol, atol = (1e-10, 1e-10) if dtype == np.float64 else (2e-3, 2e-3)
    for key in ("U", "W", "V", "b", "c", "s0"):
        scale = max(1.0, float(np.abs(getattr(G, key)).max()))
        np.testing.assert_allclose(getattr(G, key), getattr(H, key), rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize(("activation", "leak"), CELLS, ids=CELL_IDS)
def test_gradients_match_finite_differences(rng, activation, leak):
    rnn, X, target, s0, w = problem(rng, 2, 5, 2, 3, 2, activation, leak)
    if activation == "relu":  # away from the kink, where the derivative is defined
        rnn.b += 0.3
    G = rnn.gradient(X, target, s0, sample_weight=w)
    eps = 1e-6
    for name, arr in rnn.parameters().items():
        grad = getattr(G, name)
        for idx in np.ndindex(arr.shape):
            keep = arr[idx]
            arr[idx] = keep + eps
            up = rnn.loss(X, target, s0, sample_weight=w)
            arr[idx] = keep - eps
            down = rnn.loss(X, target, s0, sample_weight=w)
            arr[idx] = keep
            assert grad[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-6), (
                name,
                idx,
            )


@pytest.mark.parametrize(("activation", "leak"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradients_match_torch_autograd(rng, activation, leak, dtype):
    # the leaky cell written out in torch, step by step, in float64
    torch = pytest.importorskip("torch")
    rnn, X, target, s0, w = problem(rng, 3, 8, 2, 5, 2, activation, leak, dtype)
    f = {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "identity": lambda z: z,
        "logistic": torch.sigmoid,
    }[activation]
    p = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
        for k, v in rnn.parameters().items()
    }
    s = torch.tensor(s0, dtype=torch.float64, requires_grad=True)
    s_init = s
    E = 0
    for t in range(X.shape[1]):
        x = torch.tensor(X[:, t], dtype=torch.float64)
        z = x @ p["U"].T + s @ p["W"].T + p["b"]
        s = (1 - leak) * s + leak * f(z)
        y = s @ p["V"].T + p["c"]
        r = torch.tensor(target[:, t], dtype=torch.float64) - y
        E = E + (torch.tensor(w[:, t], dtype=torch.float64) * r**2).sum()
    E.backward()
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-3, 1e-3)
    for method in ("bptt", "rtrl"):
        G = rnn.gradient(X, target, s0, method=method, sample_weight=w)
        for key in ("U", "W", "V", "b", "c"):
            np.testing.assert_allclose(getattr(G, key), p[key].grad.numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(G.s0, s_init.grad.numpy(), rtol=rtol, atol=atol)
        assert G.loss == pytest.approx(E.item(), rel=rtol)


def test_relu_has_derivative_zero_at_zero():
    # Z = 0 at every step (no input weights, no recurrence, no bias): relu(0) = 0
    # and, by PyTorch's convention, relu'(0) = 0, so nothing reaches U, W or b
    rnn = crnn.RNN.from_weights(
        np.zeros((3, 2)), np.zeros((3, 3)), np.ones((2, 3)), b=np.zeros(3), activation="relu"
    )
    X = np.ones((4, 2))
    for method in ("bptt", "rtrl"):
        G = rnn.gradient(X, X, method=method)
        assert not G.U.any()
        assert not G.W.any()
        assert not G.b.any()
        assert G.c.any()  # the outputs' own bias still learns
    # just above 0 the slope is 1
    rnn.b[...] = 1e-3
    assert rnn.gradient(X, X).b.all()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_activations_values_and_slopes(activation):
    from crnn import _core

    z = np.linspace(-30, 30, 2001)
    z = np.concatenate([z, [0.0, -0.0, 1e-300, -1e-300]])
    h = z.copy()
    _core._activate_array(h, crnn._kernels.ACTIVATIONS[activation])
    expected = np.array([reference._f(activation, v) for v in z])
    np.testing.assert_allclose(h, expected, rtol=1e-15, atol=2e-16)
    slope = h.copy()
    _core._slope_array(slope, crnn._kernels.ACTIVATIONS[activation])
    expected = np.array([reference._f_prime(activation, v) for v in z])
    np.testing.assert_allclose(slope, expected, rtol=1e-12, atol=1e-15)


def test_elmans_cell_is_the_default_bit_for_bit(rng):
    X = rng.normal(size=(3, 20, 2))
    a = crnn.RNN(2, 6, seed=1)
    b = crnn.RNN(2, 6, seed=1, activation="tanh", leak=1.0)
    np.testing.assert_array_equal(a.forward(X)[0], b.forward(X)[0])
    for method in ("bptt", "rtrl"):
        Ga, Gb = a.gradient(X, X, method=method), b.gradient(X, X, method=method)
        for key in ("U", "W", "V", "s0"):
            np.testing.assert_array_equal(getattr(Ga, key), getattr(Gb, key))


def test_a_leak_near_one_approaches_elmans_cell(rng):
    # the leaky code path, continuous in a at a = 1
    X = rng.normal(size=(2, 15, 2))
    a = crnn.RNN(2, 5, seed=3)
    b = crnn.RNN(2, 5, seed=3, leak=1 - 1e-9)
    for method in ("bptt", "rtrl"):
        Ga, Gb = a.gradient(X, X, method=method), b.gradient(X, X, method=method)
        np.testing.assert_allclose(Ga.W, Gb.W, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("activation", "leak"), [("tanh", 0.3), ("relu", 0.6), ("logistic", 1.0)])
def test_online_rtrl_learns_with_the_cell(rng, activation, leak):
    # with lr = 0 the per-step gradients sum to the batch gradient of the stream
    rnn, X, target, _, _ = problem(rng, 1, 30, 2, 5, 2, activation, leak)
    online = crnn.OnlineRTRL(rnn, lr=0.0)
    online.learn(X[0], target[0])
    G = rnn.gradient(X[0], target[0])
    for key in ("U", "W", "V", "b", "c"):
        np.testing.assert_allclose(getattr(online.gradient_sum_, key), getattr(G, key), rtol=1e-9)
    # and it learns: the loss of a slow sine falls
    t = np.arange(400)
    x = np.sin(0.1 * t)[:, None]
    model = crnn.RNN(1, 8, activation=activation, leak=leak, seed=0)
    before = model.loss(x[:-1], x[1:])
    crnn.OnlineRTRL(model, lr=0.02, clip=1.0).learn(x[:-1], x[1:])
    assert model.loss(x[:-1], x[1:]) < before


@pytest.mark.parametrize(("activation", "leak"), [("relu", 0.25), ("identity", 1.0)])
def test_step_generate_and_chunks_follow_the_cell(rng, activation, leak):
    rnn = crnn.RNN(2, 4, activation=activation, leak=leak, seed=0, bias=True)
    rnn.W *= 0.5
    X = rng.normal(size=(12, 2))
    _, Y = rnn.forward(X)
    steps = np.array([rnn.step(x) for x in X])
    np.testing.assert_array_equal(steps, Y)
    _, Y1, state = rnn.forward(X[:5], return_state=True)
    _, Y2 = rnn.forward(X[5:], state)
    np.testing.assert_array_equal(np.concatenate([Y1, Y2]), Y)
    out = rnn.generate(5, x0=X[0])
    x, s, expected = X[0], np.zeros(4), []
    for _ in range(5):
        _, Y1, s = rnn.forward(x[None], s, return_state=True)
        expected.append(Y1[0])
        x = Y1[0]
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-14)


def test_save_load_pickle_and_repr_keep_the_cell(tmp_path, rng):
    rnn = crnn.RNN(2, 3, activation="logistic", leak=0.3, seed=0)
    X = rng.normal(size=(7, 2))
    path = rnn.save(tmp_path / "m.npz")
    for other in (crnn.load(path), pickle.loads(pickle.dumps(rnn))):
        assert (other.activation, other.leak) == ("logistic", 0.3)
        np.testing.assert_array_equal(other.predict(X), rnn.predict(X))
    assert "activation='logistic', leak=0.3" in repr(rnn)
    assert "activation" not in repr(crnn.RNN(2, 3))
    same = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V, activation="logistic", leak=0.3)
    np.testing.assert_array_equal(same.predict(X), rnn.predict(X))


def test_an_elman_models_file_holds_no_cell_option(tmp_path):
    # so that crnn versions without cells read it, and mean the same
    import json

    from crnn import _io

    path = crnn.RNN(2, 3, seed=0).save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z[_io.METADATA_KEY]))
    assert set(meta["options"]) == {"n_threads"}
    path = crnn.RNN(2, 3, seed=0, leak=0.5).save(tmp_path / "leaky.npz")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z[_io.METADATA_KEY]))
    assert meta["options"] == {"n_threads": None, "leak": 0.5}


def test_a_model_pickled_before_cells_is_elmans(rng):
    rnn = crnn.RNN(2, 3, seed=0)
    state = rnn.__getstate__()
    for key in ("_activation", "_leak", "_cell"):
        state.pop(key)
    old = crnn.RNN.__new__(crnn.RNN)
    old.__setstate__(state)
    assert (old.activation, old.leak) == ("tanh", 1.0)
    X = rng.normal(size=(5, 2))
    np.testing.assert_array_equal(old.predict(X), rnn.predict(X))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"activation": "sigmoid"}, ValueError, "activation must be one of"),
        ({"activation": "TANH"}, ValueError, "activation must be one of"),
        ({"activation": 1}, TypeError, "activation must be one of"),
        ({"activation": None}, TypeError, "activation must be one of"),
        ({"leak": 0}, ValueError, r"leak must be a finite real number in \(0, 1\]"),
        ({"leak": 1.5}, ValueError, "leak must be"),
        ({"leak": -0.1}, ValueError, "leak must be"),
        ({"leak": float("nan")}, ValueError, "leak must be"),
        ({"leak": True}, TypeError, "leak must be"),
        ({"leak": "0.5"}, TypeError, "leak must be"),
    ],
)
def test_bad_cells_are_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        crnn.RNN(2, 3, **kwargs)
    with pytest.raises(error, match=match):
        crnn.RNN.from_weights(np.ones((3, 2)), np.ones((3, 3)), np.ones((2, 3)), **kwargs)


# ---------------------------------------------------------------------- sample_weight


def test_a_zero_weight_removes_its_outputs_exactly(rng):
    rnn, X, target, s0, _ = problem(rng, 2, 12, 2, 4, 3, "tanh", 0.7)
    w = np.ones(12)
    w[8:] = 0  # the last four steps are not scored
    target2 = target.copy()
    target2[:, 8:] = 1e6  # so their targets do not matter
    for method in ("bptt", "rtrl"):
        G = rnn.gradient(X, target2, s0, method=method, sample_weight=w)
        H = rnn.gradient(X[:, :8], target[:, :8], s0, method=method)
        for key in ("U", "W", "V", "b", "c", "s0"):
            np.testing.assert_allclose(getattr(G, key), getattr(H, key), rtol=1e-13, atol=1e-15)
        assert G.loss == pytest.approx(H.loss, rel=1e-14)


def test_the_weights_shapes_broadcast(rng):
    rnn, X, target, s0, _ = problem(rng, 3, 5, 2, 4, 2, "tanh", 1.0)
    per_step = rng.uniform(0, 2, size=5)
    per_seq_step = rng.uniform(0, 2, size=(3, 5))
    full_a = np.broadcast_to(per_step[None, :, None], (3, 5, 2))
    full_b = np.broadcast_to(per_seq_step[:, :, None], (3, 5, 2))
    for w, full in ((per_step, full_a), (per_seq_step, full_b)):
        assert rnn.loss(X, target, s0, sample_weight=w) == rnn.loss(
            X, target, s0, sample_weight=full
        )
        np.testing.assert_array_equal(
            rnn.gradient(X, target, s0, sample_weight=w).W,
            rnn.gradient(X, target, s0, sample_weight=full).W,
        )
    # one sequence: (T,) or (T, m); a weight of 2 is the loss counted twice
    E = rnn.loss(X[0], target[0], s0[0])
    assert rnn.loss(X[0], target[0], s0[0], sample_weight=np.full(5, 2.0)) == pytest.approx(2 * E)
    assert rnn.loss(X[0], target[0], s0[0], sample_weight=np.ones((5, 2))) == E
    assert rnn.loss(X[0], target[0], s0[0], sample_weight=[1, 1, 1, 1, 1]) == E


@pytest.mark.parametrize(
    ("weight", "error", "match"),
    [
        (-np.ones(5), ValueError, "sample_weight must be >= 0"),
        (np.full(5, np.nan), ValueError, "sample_weight must contain only finite values"),
        (np.full(5, np.inf), ValueError, "sample_weight must contain only finite values"),
        (np.ones(4), ValueError, r"sample_weight must have shape \(T,\) = \(5,\)"),
        (np.ones((3, 4)), ValueError, r"sample_weight must have shape"),
        (np.ones((3, 5, 3)), ValueError, r"sample_weight must have shape"),
        (np.ones((1, 3, 5, 2)), ValueError, "sample_weight must be 1-D or 2-D or 3-D"),
        ("heavy", TypeError, "sample_weight must be"),
        (np.ones(5, dtype=complex), TypeError, "sample_weight must be"),
    ],
)
def test_bad_weights_are_refused_by_name(rng, weight, error, match):
    rnn, X, target, s0, _ = problem(rng, 3, 5, 2, 4, 2, "tanh", 1.0)
    with pytest.raises(error, match=match):
        rnn.loss(X, target, s0, sample_weight=weight)
    with pytest.raises(error, match=match):
        rnn.gradient(X, target, s0, sample_weight=weight)
