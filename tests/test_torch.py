"""crnn against PyTorch autograd: outputs, loss and every gradient.

The same network is built as ``torch.nn.RNN`` (tanh, batch first) followed
by ``torch.nn.Linear`` in float64, with crnn's weights copied in:
``weight_ih_l0 = U``, ``weight_hh_l0 = W``, ``Linear.weight = V``; with the
biases (``bias=True``) ``bias_ih_l0 = b``, ``bias_hh_l0 = 0`` and
``Linear.bias = c``, otherwise none. The initial state is a leaf tensor, so
autograd gives dE/dS^0 as well. Every test runs with and without the biases.
"""

import numpy as np
import pytest

import crnn

torch = pytest.importorskip("torch")

RTOL64, ATOL64 = 1e-10, 1e-12
RTOL32 = 1e-4

# (N or None for a single sequence, T, n, d, m, s0 kind, g)
# s0 kind: "none" (zeros), "shared" (one (d,) state for the batch), "batch" ((N, d)).
CASES = [
    pytest.param(None, 1, 1, 1, 1, "none", 1.0, id="single-T1-n1-d1-m1"),
    pytest.param(None, 7, 2, 3, 5, "shared", 0.5, id="single-T7-m>n-s0"),
    pytest.param(1, 5, 3, 4, 2, "batch", 1.0, id="N1-T5-m<n-s0batch"),
    pytest.param(3, 4, 2, 1, 3, "none", 2.0, id="N3-T4-d1"),
    pytest.param(2, 1, 4, 3, 1, "shared", 1.0, id="N2-T1-s0shared"),
    pytest.param(4, 6, 3, 5, 2, "batch", 1.0, id="N4-T6-s0batch"),
    pytest.param(2, 25, 3, 6, 4, "batch", 0.37, id="N2-T25-long"),
    pytest.param(4, 6, 3, 17, 2, "shared", 0.37, id="N4-T6-d17-s0shared"),
    pytest.param(2, 9, 2, 33, 3, "batch", 1.3, id="N2-T9-d33"),
]
ARGS = ("N", "T", "n", "d", "m", "s0_kind", "g")
BIASES = [False, True]


def make_problem(N, T, n, d, m, s0_kind, seed, bias=False):
    """Random weights, inputs, targets, initial state and biases (float64).

    The biases b and c are None without bias, and drawn after the rest with it.
    """
    rng = np.random.default_rng(seed)
    U = rng.normal(scale=0.8, size=(d, n))
    W = rng.normal(scale=0.8 / np.sqrt(d), size=(d, d))
    V = rng.normal(size=(m, d))
    lead = (T,) if N is None else (N, T)
    X = rng.normal(size=(*lead, n))
    target = rng.normal(size=(*lead, m))
    if s0_kind == "none":
        s0 = None
    elif s0_kind == "shared":
        s0 = rng.uniform(-0.9, 0.9, size=d)
    else:
        s0 = rng.uniform(-0.9, 0.9, size=(N, d))
    b = rng.normal(scale=0.7, size=d) if bias else None
    c = rng.normal(scale=1.5, size=m) if bias else None
    return U, W, V, X, target, s0, b, c


def torch_reference(U, W, V, X, target, s0, g, b=None, c=None):
    """Outputs, loss and gradients from PyTorch autograd, all in float64.

    Returns numpy arrays shaped as crnn returns them: S and Y with X's leading
    axes, dE/dS^0 with the shape crnn gives G.s0; with biases b and c (both
    given or both None) their gradients as well.
    """
    bias = b is not None
    U, W, V, X, target = (np.asarray(a, dtype=np.float64) for a in (U, W, V, X, target))
    d, n = U.shape
    m = V.shape[0]
    batched = X.ndim == 3
    X3 = X if batched else X[np.newaxis]
    t3 = target if batched else target[np.newaxis]
    N = X3.shape[0]

    rnn = torch.nn.RNN(n, d, nonlinearity="tanh", bias=bias, batch_first=True).double()
    lin = torch.nn.Linear(d, m, bias=bias).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(U))
        rnn.weight_hh_l0.copy_(torch.from_numpy(W))
        lin.weight.copy_(torch.from_numpy(V))
        if bias:
            rnn.bias_ih_l0.copy_(torch.from_numpy(np.asarray(b, dtype=np.float64)))
            rnn.bias_hh_l0.zero_()
            lin.bias.copy_(torch.from_numpy(np.asarray(c, dtype=np.float64)))

    # The leaf whose gradient is compared with G.s0, in the shape crnn reports.
    if s0 is None:
        h0_leaf = torch.zeros((N, d), dtype=torch.float64, requires_grad=True)
        h0 = h0_leaf
    else:
        h0_leaf = torch.tensor(np.asarray(s0, dtype=np.float64), requires_grad=True)
        h0 = h0_leaf.expand(N, d) if h0_leaf.ndim == 1 else h0_leaf
    out, _ = rnn(torch.from_numpy(np.ascontiguousarray(X3)), h0.unsqueeze(0))
    Y = lin(out)
    loss = g * ((torch.from_numpy(np.ascontiguousarray(t3)) - Y) ** 2).sum()
    loss.backward()

    ds0 = h0_leaf.grad.numpy()
    if not batched:
        ds0 = ds0.reshape(d)
    S_out = out.detach().numpy()
    Y_out = Y.detach().numpy()
    if not batched:
        S_out, Y_out = S_out[0], Y_out[0]
    out = {
        "S": S_out,
        "Y": Y_out,
        "loss": loss.item(),
        "U": rnn.weight_ih_l0.grad.numpy(),
        "W": rnn.weight_hh_l0.grad.numpy(),
        "V": lin.weight.grad.numpy(),
        "s0": ds0,
    }
    if bias:
        out["b"] = rnn.bias_ih_l0.grad.numpy()
        out["c"] = lin.bias.grad.numpy()
    return out


def assert_close(actual, desired, rtol, atol, name):
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, f"{name}: shape {actual.shape} != {desired.shape}"
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize(ARGS, CASES)
def test_forward_matches_torch(N, T, n, d, m, s0_kind, g, bias):
    U, W, V, X, target, s0, b, c = make_problem(N, T, n, d, m, s0_kind, seed=1, bias=bias)
    model = crnn.RNN.from_weights(U, W, V, b=b, c=c)
    assert model.bias is bias
    S, Y = model.forward(X, s0)
    ref = torch_reference(U, W, V, X, target, s0, g, b, c)
    assert_close(S, ref["S"], RTOL64, ATOL64, "S")
    assert_close(Y, ref["Y"], RTOL64, ATOL64, "Y")
    assert model.loss(X, target, s0, g) == pytest.approx(ref["loss"], rel=RTOL64)


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("method", ["bptt", "rtrl"])
@pytest.mark.parametrize(ARGS, CASES)
def test_gradient_matches_torch(N, T, n, d, m, s0_kind, g, method, bias):
    U, W, V, X, target, s0, b, c = make_problem(N, T, n, d, m, s0_kind, seed=2, bias=bias)
    model = crnn.RNN.from_weights(U, W, V, b=b, c=c)
    G = model.gradient(X, target, s0, g=g, method=method)
    ref = torch_reference(U, W, V, X, target, s0, g, b, c)
    assert G.method == method
    assert G.loss == pytest.approx(ref["loss"], rel=RTOL64)
    names = ("U", "W", "V", "b", "c", "s0") if bias else ("U", "W", "V", "s0")
    assert set(names) == set(ref) - {"S", "Y", "loss"}
    if not bias:
        assert G.b is None
        assert G.c is None
    for name in names:
        got = getattr(G, name)
        assert got.dtype == np.float64, name
        assert_close(got, ref[name], RTOL64, ATOL64, f"d{name}")


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("method", ["bptt", "rtrl"])
@pytest.mark.parametrize(ARGS, CASES)
def test_float32_matches_torch_float64(N, T, n, d, m, s0_kind, g, method, bias):
    U, W, V, X, target, s0, b, c = make_problem(N, T, n, d, m, s0_kind, seed=3, bias=bias)
    model = crnn.RNN.from_weights(U, W, V, b=b, c=c, dtype=np.float32)
    assert model.dtype == np.float32

    # torch sees exactly the float32 numbers the float32 model computes with.
    def f32(a):
        return None if a is None else np.asarray(a, dtype=np.float32).astype(np.float64)

    ref = torch_reference(
        model.U, model.W, model.V, f32(X), f32(target), f32(s0), g, model.b, model.c
    )

    def check(got, name):
        got = np.asarray(got)
        assert got.dtype == np.float32, name
        # atol relative to the array's scale: float32 rounding is relative to
        # the size of the terms summed, not to each (possibly cancelling) entry.
        atol = RTOL32 * max(1.0, float(np.max(np.abs(ref[name]), initial=0.0)))
        assert_close(got.astype(np.float64), ref[name], RTOL32, atol, name)

    S, Y = model.forward(X, s0)
    check(S, "S")
    check(Y, "Y")
    G = model.gradient(X, target, s0, g=g, method=method)
    assert G.loss == pytest.approx(ref["loss"], rel=RTOL32)
    for name in ("U", "W", "V", "b", "c", "s0") if bias else ("U", "W", "V", "s0"):
        check(getattr(G, name), name)


def test_torch_reference_is_sensitive():
    """The comparison can fail: a perturbed weight changes the torch gradient."""
    U, W, V, X, target, s0, _, _ = make_problem(2, 5, 3, 4, 2, "batch", seed=4)
    G = crnn.RNN.from_weights(U, W, V).gradient(X, target, s0)
    W2 = W.copy()
    W2[0, 1] += 1e-6
    ref = torch_reference(U, W2, V, X, target, s0, 1.0)
    with pytest.raises(AssertionError):
        assert_close(G.W, ref["W"], RTOL64, ATOL64, "dW")
