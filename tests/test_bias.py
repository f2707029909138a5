"""The optional biases b and c (``bias=True``) everywhere they reach.

Z^t = U X^t + W S^{t-1} + b and Y^t = V S^t + c: forward, loss and both
gradients against the oracle, finite differences and PyTorch; thread counts
and batches; models without biases; online RTRL against an independent numpy
implementation; training; save/load, pickle and copies; validation; step and
generate.
"""

import copy
import pickle

import numpy as np
import pytest
from helpers import ATOL, RTOL, make_problem

import crnn
from crnn import reference

DTYPES = [np.float64, np.float32]
METHODS = ["bptt", "rtrl"]
KEYS = ("U", "W", "V", "b", "c")


def make_biased(rng, N, T, n, d, m, dtype=np.float64, s0_kind="batch", w_scale=1.3):
    """A biased model with random nonzero b and c, data, and an initial state.

    N None gives one sequence (T, n); s0_kind is "none", "shared" (d,) or
    "batch" (N, d).
    """
    base, X, target, s0 = make_problem(rng, N or 1, T, n, d, m, w_scale=w_scale)
    b = rng.normal(scale=0.7, size=d)
    c = rng.normal(scale=1.5, size=m)
    rnn = crnn.RNN.from_weights(base.U, base.W, base.V, b=b, c=c, dtype=dtype)
    assert rnn.bias
    if N is None:
        X, target = X[0], target[0]
    if s0_kind == "none":
        s0 = None
    elif s0_kind == "shared" or N is None:
        s0 = s0[0]
    return rnn, X, target, s0


def oracle_weights(rnn):
    """The model's own numbers (rounded to its dtype) in float64, for the oracle."""
    U, W, V, b, c = (np.asarray(getattr(rnn, k), dtype=np.float64) for k in KEYS)
    return (U, W, V), {"b": b, "c": c}


def cast(a, dtype):
    """Round data to the model's dtype, so both sides see the same numbers."""
    return None if a is None else np.asarray(a, dtype=dtype).astype(np.float64)


def sequences(X, target, s0):
    """Yield (X, target, s0) of each sequence of a batch or of one sequence."""
    if X.ndim == 2:
        yield X, target, s0
        return
    for i in range(X.shape[0]):
        if s0 is None or s0.ndim == 1:
            yield X[i], target[i], s0
        else:
            yield X[i], target[i], s0[i]


# (N or None for one sequence, T, n, d, m, s0 kind): T=1, d=1, n=1, m != n,
# N=1, N>1, d in {1, 3, 17, 33, 64}
ORACLE_CASES = [
    pytest.param(None, 1, 1, 1, 1, "none", id="single-T1-n1-d1-m1"),
    pytest.param(1, 1, 3, 1, 2, "batch", id="N1-T1-d1-m<n"),
    pytest.param(None, 6, 2, 3, 5, "shared", id="single-T6-d3-m>n-s0"),
    pytest.param(2, 1, 1, 3, 2, "none", id="N2-T1-d3"),
    pytest.param(3, 5, 2, 3, 4, "batch", id="N3-T5-d3-s0batch"),
    pytest.param(4, 4, 2, 17, 3, "shared", id="N4-T4-d17-s0shared"),
    pytest.param(2, 3, 3, 33, 1, "batch", id="N2-T3-d33"),
    pytest.param(2, 3, 2, 64, 5, "none", id="N2-T3-d64"),
    pytest.param(1, 2, 1, 64, 1, "batch", id="N1-T2-d64-n1-m1"),
]
ORACLE_ARGS = ("N", "T", "n", "d", "m", "s0_kind")


def tolerances(dtype, scale):
    """rtol, atol: float32 rounding grows with the size of the terms summed."""
    return RTOL[dtype], ATOL[dtype] * max(1.0, scale)


# ---------------------------------------------------------------------------- 1. oracle


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(ORACLE_ARGS, ORACLE_CASES)
def test_forward_matches_oracle(rng, dtype, N, T, n, d, m, s0_kind):
    rnn, X, _, s0 = make_biased(rng, N, T, n, d, m, dtype, s0_kind)
    S, Y = rnn.forward(X, s0)
    assert S.dtype == Y.dtype == dtype
    assert S.shape == (*X.shape[:-1], d)
    assert Y.shape == (*X.shape[:-1], m)
    weights, biases = oracle_weights(rnn)
    S_all = S if S.ndim == 3 else S[np.newaxis]
    Y_all = Y if Y.ndim == 3 else Y[np.newaxis]
    for i, (x, _, s) in enumerate(sequences(X, X, s0)):
        S_ref, Y_ref = reference.forward(*weights, cast(x, dtype), cast(s, dtype), **biases)
        rtol, atol = tolerances(dtype, float(np.max(np.abs(Y_ref))))
        np.testing.assert_allclose(S_all[i], S_ref, rtol=rtol, atol=atol, err_msg="S")
        np.testing.assert_allclose(Y_all[i], Y_ref, rtol=rtol, atol=atol, err_msg="Y")
        # the biases matter here: without them the oracle says something else
        _, Y_nob = reference.forward(*weights, cast(x, dtype), cast(s, dtype))
        assert not np.allclose(Y_all[i], Y_nob, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(ORACLE_ARGS, ORACLE_CASES)
def test_loss_matches_oracle(rng, dtype, N, T, n, d, m, s0_kind):
    rnn, X, target, s0 = make_biased(rng, N, T, n, d, m, dtype, s0_kind)
    weights, biases = oracle_weights(rnn)
    g = 1.7
    expected = sum(
        reference.loss(*weights, cast(x, dtype), cast(t, dtype), cast(s, dtype), g, **biases)
        for x, t, s in sequences(X, target, s0)
    )
    assert rnn.loss(X, target, s0, g=g) == pytest.approx(expected, rel=RTOL[dtype] * 10)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(ORACLE_ARGS, ORACLE_CASES)
def test_gradient_matches_oracle(rng, method, dtype, N, T, n, d, m, s0_kind):
    rnn, X, target, s0 = make_biased(rng, N, T, n, d, m, dtype, s0_kind)
    weights, biases = oracle_weights(rnn)
    g = 0.6
    # the oracle's RTRL costs O(d^5) Python operations per step: its BPTT
    # (checked against its RTRL in test_reference.py) stands in above d = 3
    oracle = reference.gradient_rtrl if method == "rtrl" and d <= 3 else reference.gradient_bptt
    total = dict.fromkeys(KEYS, 0.0)
    ds0, loss = [], 0.0
    for x, t, s in sequences(X, target, s0):
        r = oracle(*weights, cast(x, dtype), cast(t, dtype), cast(s, dtype), g, **biases)
        total = {k: v + np.asarray(r[k]) for k, v in total.items()}
        ds0.append(np.asarray(r["s0"]))
        loss += r["loss"]
    G = rnn.gradient(X, target, s0, g=g, method=method)
    assert G.method == method
    rtol, atol = tolerances(dtype, loss)
    for key, want in total.items():
        got = getattr(G, key)
        assert got.dtype == dtype, key
        assert got.shape == want.shape, key
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=key)
    want_s0 = np.sum(ds0, axis=0) if X.ndim == 2 or s0_kind == "shared" else np.array(ds0)
    np.testing.assert_allclose(G.s0, want_s0, rtol=rtol, atol=atol, err_msg="s0")
    assert G.loss == pytest.approx(loss, rel=RTOL[dtype], abs=ATOL[dtype])
    assert np.any(G.b != 0)
    assert np.any(G.c != 0)


def test_oracle_comparison_is_sensitive_to_the_biases(rng):
    """A perturbed b or c in the oracle no longer matches crnn's gradient."""
    rnn, X, target, s0 = make_biased(rng, 2, 6, 2, 4, 3)
    G = rnn.gradient(X, target, s0)
    weights, biases = oracle_weights(rnn)
    for key in ("b", "c"):
        moved = dict(biases)
        moved[key] = moved[key] + np.eye(len(moved[key]))[0] * 1e-6
        r = [
            reference.gradient_bptt(*weights, x, t, s, **moved)
            for x, t, s in sequences(X, target, s0)
        ]
        want = sum(np.asarray(ri[key]) for ri in r)
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(getattr(G, key), want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ 2. finite differences

FD_CASES = [
    pytest.param(None, 4, 1, 1, 1, "none", id="single-d1"),
    pytest.param(2, 5, 2, 3, 2, "batch", id="N2-T5-d3"),
    pytest.param(3, 4, 3, 5, 4, "shared", id="N3-T4-d5-m>n"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(ORACLE_ARGS, FD_CASES)
def test_bias_gradients_match_central_differences(rng, method, N, T, n, d, m, s0_kind):
    rnn, X, target, s0 = make_biased(rng, N, T, n, d, m, np.float64, s0_kind)
    g, eps = 0.8, 1e-6
    G = rnn.gradient(X, target, s0, g=g, method=method)
    for key in ("b", "c"):
        theta = getattr(rnn, key)  # changed in place, then restored
        fd = np.empty_like(theta)
        for i in range(theta.size):
            keep = theta[i]
            theta[i] = keep + eps
            up = rnn.loss(X, target, s0, g=g)
            theta[i] = keep - eps
            down = rnn.loss(X, target, s0, g=g)
            theta[i] = keep
            fd[i] = (up - down) / (2 * eps)
        assert np.max(np.abs(fd)) > 1e-3, key  # a real slope, not a flat spot
        np.testing.assert_allclose(getattr(G, key), fd, rtol=1e-6, atol=1e-7, err_msg=key)


# ------------------------------------------------------------------------- 3. PyTorch

TORCH_CASES = [
    pytest.param(None, 1, 1, 1, 1, "none", 1.0, id="single-T1-d1"),
    pytest.param(None, 7, 2, 3, 5, "shared", 0.5, id="single-T7-m>n-s0"),
    pytest.param(1, 5, 3, 4, 2, "batch", 1.0, id="N1-T5-s0batch"),
    pytest.param(3, 4, 2, 1, 3, "none", 2.0, id="N3-T4-d1"),
    pytest.param(4, 6, 3, 17, 2, "shared", 0.37, id="N4-T6-d17-s0shared"),
    pytest.param(2, 9, 2, 33, 3, "batch", 1.3, id="N2-T9-d33"),
]


def torch_reference(rnn, X, target, s0, g):
    """Outputs, loss and gradients of the same network by torch autograd (float64)."""
    torch = pytest.importorskip("torch")
    U, W, V, b, c = (np.asarray(getattr(rnn, k), dtype=np.float64) for k in KEYS)
    d, n = U.shape
    m = V.shape[0]
    batched = X.ndim == 3
    X3 = X if batched else X[np.newaxis]
    t3 = target if batched else target[np.newaxis]
    N = X3.shape[0]
    net = torch.nn.RNN(n, d, nonlinearity="tanh", bias=True, batch_first=True).double()
    lin = torch.nn.Linear(d, m, bias=True).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(U))
        net.weight_hh_l0.copy_(torch.from_numpy(W))
        net.bias_ih_l0.copy_(torch.from_numpy(b))
        net.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(V))
        lin.bias.copy_(torch.from_numpy(c))
    if s0 is None:
        leaf = torch.zeros((N, d), dtype=torch.float64, requires_grad=True)
        h0 = leaf
    else:
        leaf = torch.tensor(np.asarray(s0, dtype=np.float64), requires_grad=True)
        h0 = leaf.expand(N, d) if leaf.ndim == 1 else leaf
    out, _ = net(torch.from_numpy(np.ascontiguousarray(X3)), h0.unsqueeze(0))
    Y = lin(out)
    loss = g * ((torch.from_numpy(np.ascontiguousarray(t3)) - Y) ** 2).sum()
    loss.backward()
    S_out, Y_out = out.detach().numpy(), Y.detach().numpy()
    ds0 = leaf.grad.numpy()
    if not batched:
        S_out, Y_out, ds0 = S_out[0], Y_out[0], ds0.reshape(d)
    return {
        "S": S_out,
        "Y": Y_out,
        "loss": loss.item(),
        "U": net.weight_ih_l0.grad.numpy(),
        "W": net.weight_hh_l0.grad.numpy(),
        "V": lin.weight.grad.numpy(),
        "b": net.bias_ih_l0.grad.numpy(),
        "c": lin.bias.grad.numpy(),
        "s0": ds0,
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize((*ORACLE_ARGS, "g"), TORCH_CASES)
def test_matches_torch_autograd(rng, method, N, T, n, d, m, s0_kind, g):
    rnn, X, target, s0 = make_biased(rng, N, T, n, d, m, np.float64, s0_kind)
    ref = torch_reference(rnn, X, target, s0, g)
    S, Y = rnn.forward(X, s0)
    np.testing.assert_allclose(S, ref["S"], rtol=1e-10, atol=1e-12, err_msg="S")
    np.testing.assert_allclose(Y, ref["Y"], rtol=1e-10, atol=1e-12, err_msg="Y")
    assert rnn.loss(X, target, s0, g) == pytest.approx(ref["loss"], rel=1e-10)
    G = rnn.gradient(X, target, s0, g=g, method=method)
    assert G.loss == pytest.approx(ref["loss"], rel=1e-10)
    for key in (*KEYS, "s0"):
        got = getattr(G, key)
        assert got.shape == ref[key].shape, key
        np.testing.assert_allclose(got, ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


# ------------------------------------------------------------------ 4. threads and batches


def flat(G):
    return [G.U, G.W, G.V, G.b, G.c, G.s0, np.float64(G.loss)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("N", "T", "n", "d", "m"), [(7, 25, 3, 9, 2), (5, 12, 4, 40, 3)])
def test_thread_count_changes_no_bit(rng, method, N, T, n, d, m):
    rnn, X, target, s0 = make_biased(rng, N, T, n, d, m)
    results = []
    for nt in (1, 2):
        rnn.n_threads = nt
        results.append(
            (
                flat(rnn.gradient(X, target, s0, g=0.9, method=method)),
                rnn.forward(X, s0),
                rnn.loss(X, target, s0),
            )
        )
    (g1, f1, l1), (g2, f2, l2) = results
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(f1, f2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert l1 == l2


@pytest.mark.parametrize("method", METHODS)
def test_batch_gradient_is_the_sum_of_its_sequences(rng, method):
    rnn, X, target, s0 = make_biased(rng, 6, 15, 2, 7, 3)
    rnn.n_threads = 2
    G = rnn.gradient(X, target, s0, g=1.1, method=method)
    parts = [rnn.gradient(X[i], target[i], s0[i], g=1.1, method=method) for i in range(6)]
    for key in KEYS:
        want = sum(getattr(p, key) for p in parts)
        np.testing.assert_allclose(getattr(G, key), want, rtol=1e-12, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(G.s0, [p.s0 for p in parts], rtol=1e-12, atol=1e-14)
    assert G.loss == pytest.approx(sum(p.loss for p in parts), rel=1e-13)
    # a shared s0: G.s0 is the sum of the sequences' gradients
    shared = rnn.gradient(X, target, s0[0], g=1.1, method=method)
    alone = [rnn.gradient(X[i], target[i], s0[0], g=1.1, method=method) for i in range(6)]
    np.testing.assert_allclose(shared.s0, sum(p.s0 for p in alone), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(shared.b, sum(p.b for p in alone), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------ 5. no biases


@pytest.mark.parametrize("method", METHODS)
def test_models_without_biases_have_none(rng, method):
    base, X, target, s0 = make_problem(rng, 3, 5, 2, 4, 3)
    for rnn in (base, crnn.RNN(2, 4, 3, seed=0), crnn.RNN(2, 4, 3, seed=0, bias=False)):
        assert rnn.bias is False
        assert rnn.b is None
        assert rnn.c is None
        G = rnn.gradient(X, target, s0, method=method)
        assert G.b is None
        assert G.c is None
    assert crnn.RNN(2, 4, 3, seed=0, bias=True).bias is True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_zero_biases_are_the_model_without_biases(rng, dtype, method):
    plain, X, target, s0 = make_problem(rng, 4, 9, 3, 6, 2, dtype, w_scale=1.4)
    d, m = 6, 2
    zero = crnn.RNN.from_weights(
        plain.U, plain.W, plain.V, b=np.zeros(d), c=np.zeros(m), dtype=dtype
    )
    assert zero.bias
    rtol, atol = RTOL[dtype], ATOL[dtype]
    for a, b in zip(zero.forward(X, s0), plain.forward(X, s0), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert zero.loss(X, target, s0) == pytest.approx(plain.loss(X, target, s0), rel=rtol)
    Gz = zero.gradient(X, target, s0, g=0.5, method=method)
    Gp = plain.gradient(X, target, s0, g=0.5, method=method)
    for key in ("U", "W", "V", "s0"):
        scale = max(1.0, Gp.loss)
        np.testing.assert_allclose(
            getattr(Gz, key), getattr(Gp, key), rtol=rtol, atol=atol * scale, err_msg=key
        )
    # and the bias gradients of the zero biases are still there, and right
    weights, biases = oracle_weights(zero)
    want_b = sum(
        np.asarray(reference.gradient_bptt(*weights, x, t, s, 0.5, **biases)["b"])
        for x, t, s in sequences(cast(X, dtype), cast(target, dtype), cast(s0, dtype))
    )
    assert np.max(np.abs(want_b)) > 1e-2
    np.testing.assert_allclose(Gz.b, want_b, rtol=rtol, atol=atol * max(1.0, Gp.loss))


# -------------------------------------------------------------------------- 6. online


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("T", "n", "d", "m"), [(1, 1, 1, 1), (25, 2, 4, 3), (30, 3, 6, 1)])
def test_online_gradient_sum_is_the_bptt_gradient(rng, dtype, T, n, d, m):
    rnn, X, target, s0 = make_biased(rng, None, T, n, d, m, dtype, "shared")
    b, c = rnn.b.copy(), rnn.c.copy()
    trainer = crnn.OnlineRTRL(rnn, lr=0.0, g=0.7, s0=s0)
    assert trainer.sensitivities.shape == (d, d * n + d * d + d)
    Y = trainer.learn(X, target)
    G = rnn.gradient(X, target, s0, g=0.7)
    S = trainer.gradient_sum_
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 1e-5)
    for key in KEYS:
        got = getattr(S, key)
        assert got.shape == getattr(G, key).shape, key
        np.testing.assert_allclose(
            got, getattr(G, key), rtol=rtol, atol=atol * max(1, G.loss), err_msg=key
        )
    assert S.loss == pytest.approx(G.loss, rel=rtol)
    np.testing.assert_allclose(Y, rnn.predict(X, s0), rtol=rtol, atol=atol)
    np.testing.assert_array_equal(rnn.b, b)  # lr = 0 learns nothing
    np.testing.assert_array_equal(rnn.c, c)


def online_reference(U, W, V, b, c, X, target, lr, g, s0, clip=None):
    """Online RTRL with per-step updates of U, W, V, b and c, written with numpy.

    Returns the final weights and biases, the outputs, the state, the
    sensitivities (ds/dU (d, d, n), ds/dW (d, d, d), ds/db (d, d)), the sum of
    the per-step gradients and how many steps were clipped.
    """
    U, W, V, b, c = (a.copy() for a in (U, W, V, b, c))
    d, n = U.shape
    s = s0.copy()
    PU, PW, Pb = np.zeros((d, d, n)), np.zeros((d, d, d)), np.zeros((d, d))
    eye = np.eye(d)
    Y, clipped = [], 0
    total = dict.fromkeys(KEYS, 0.0)
    for x, y_hat in zip(X, target, strict=True):
        s_new = np.tanh(U @ x + W @ s + b)
        y = V @ s_new + c
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
        if clip is not None:
            norm = np.sqrt(sum(np.sum(a**2) for a in step.values()))
            if norm > clip:
                clipped += 1
                step = {k: a * (clip / norm) for k, a in step.items()}
        total = {k: total[k] + step[k] for k in KEYS}
        U, W, V, b, c = (a - lr * step[k] for a, k in zip((U, W, V, b, c), KEYS, strict=True))
        s = s_new
    params = dict(zip(KEYS, (U, W, V, b, c), strict=True))
    return params, np.array(Y), s, (PU, PW, Pb), total, clipped


@pytest.mark.parametrize("clip", [None, 0.5])
def test_online_updates_match_an_independent_implementation(rng, clip):
    T, n, d, m = 20, 2, 5, 3
    rnn, X, target, s0 = make_biased(rng, None, T, n, d, m, np.float64, "shared")
    before = {k: getattr(rnn, k).copy() for k in KEYS}
    params, Y_ref, s_ref, (PU, PW, Pb), total, clipped = online_reference(
        *before.values(), X, target, 0.05, 1.5, s0, clip
    )
    if clip is not None:
        assert clipped > 0  # the clipping was exercised
    trainer = crnn.OnlineRTRL(rnn, lr=0.05, g=1.5, clip=clip, s0=s0)
    Y = np.array([trainer.step(x, t) for x, t in zip(X, target, strict=True)])
    tol = {"rtol": 1e-11, "atol": 1e-13}
    np.testing.assert_allclose(Y, Y_ref, **tol)
    np.testing.assert_allclose(trainer.state, s_ref, **tol)
    for key in KEYS:
        np.testing.assert_allclose(getattr(rnn, key), params[key], **tol, err_msg=key)
        np.testing.assert_allclose(
            getattr(trainer.gradient_sum_, key), total[key], **tol, err_msg=f"sum {key}"
        )
        assert not np.allclose(getattr(rnn, key), before[key]), key  # it did learn
    P = trainer.sensitivities
    assert P.shape == (d, d * n + d * d + d)
    np.testing.assert_allclose(P[:, : d * n], PU.reshape(d, d * n), **tol, err_msg="dS/dU")
    np.testing.assert_allclose(
        P[:, d * n : d * n + d * d], PW.reshape(d, d * d), **tol, err_msg="dS/dW"
    )
    np.testing.assert_allclose(P[:, d * n + d * d :], Pb, **tol, err_msg="dS/db")
    assert trainer.n_steps_ == T


# ---------------------------------------------------------------------------- 7. fit


def offset_series(n_series=6, length=60):
    """Inputs sin(...), targets 3 + the next value: the targets' mean is 3.

    The phases come in pairs half a period apart, so the inputs come as X
    and -X. Without biases (and s0 = 0) the network is odd, Y(-X) = -Y(X), so
    its outputs average 0 over the data and its loss per value is at least
    (3 - 0)^2 = 9, whatever its weights; with c it can reach the offset.
    """
    t = np.arange(length + 1)
    phase = np.linspace(0, 2 * np.pi, n_series, endpoint=False)[:, None]
    s = np.sin(2 * np.pi * t / 20 + phase)[..., np.newaxis]
    return s[:, :-1], 3 + s[:, 1:]


def test_fit_learns_an_offset_that_a_model_without_biases_cannot():
    X, target = offset_series()
    losses = {}
    for bias in (False, True):
        rnn = crnn.RNN(1, 8, seed=0, bias=bias)
        start = {k: getattr(rnn, k).copy() for k in ("b", "c")} if bias else None
        before = rnn.loss(X, target) / target.size
        rnn.fit(X, target, epochs=300, seed=0)
        losses[bias] = rnn.loss(X, target) / target.size
        assert losses[bias] < before, (bias, before, losses[bias])
    for key in ("b", "c"):
        assert not np.allclose(getattr(rnn, key), start[key]), key
    assert losses[False] > 9 - 1e-9, losses  # the bound for an odd network
    assert losses[True] < 0.1, losses


def test_one_sgd_step_of_partial_fit_is_the_update_written_out(rng):
    rnn, X, target, _ = make_biased(rng, 4, 10, 2, 5, 3)
    ref = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V, b=rnn.b, c=rnn.c)
    G = ref.gradient(X, target)
    rnn.partial_fit(X, target, optimizer="sgd", lr=0.3)
    for key in KEYS:
        want = getattr(ref, key) - 0.3 * getattr(G, key) / target.size
        assert not np.allclose(want, getattr(ref, key)), key
        np.testing.assert_allclose(getattr(rnn, key), want, rtol=1e-14, atol=1e-16, err_msg=key)
    b1, c1 = rnn.b.copy(), rnn.c.copy()
    rnn.partial_fit(X, target)
    assert not np.array_equal(rnn.b, b1)
    assert not np.array_equal(rnn.c, c1)


def test_seeds_reproduce_biased_models_and_their_training():
    a = crnn.RNN(3, 7, 2, seed=11, bias=True)
    b = crnn.RNN(3, 7, 2, seed=11, bias=True)
    plain = crnn.RNN(3, 7, 2, seed=11)
    other = crnn.RNN(3, 7, 2, seed=12, bias=True)
    for key in KEYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    for key in ("U", "W", "V"):  # the biases are drawn after the weights
        np.testing.assert_array_equal(getattr(a, key), getattr(plain, key))
    assert not np.array_equal(a.b, other.b)
    bound = 1 / np.sqrt(7)
    for v in (a.b, a.c):
        assert np.all(np.abs(v) <= bound)
        assert np.all(v != 0)
    assert a.b.shape == (7,)
    assert a.c.shape == (2,)
    X, target = offset_series(8, 20)
    runs = []
    for seed in (3, 3, 4):
        rnn = crnn.RNN(1, 5, seed=0, bias=True)
        rnn.fit(X, target, epochs=4, batch_size=3, seed=seed)
        runs.append((rnn.loss_curve_, rnn.b.copy(), rnn.c.copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert not np.array_equal(runs[0][1], runs[2][1])


@pytest.mark.parametrize("init", ["glorot", "normal", "orthogonal", "callable"])
def test_other_initialisers_start_the_biases_at_zero(init):
    if init == "callable":
        init = lambda shape, fan_in, fan_out, rng: rng.normal(size=shape)
    rnn = crnn.RNN(2, 4, 3, seed=0, init=init, bias=True)
    np.testing.assert_array_equal(rnn.b, np.zeros(4))
    np.testing.assert_array_equal(rnn.c, np.zeros(3))
    assert rnn.b.dtype == rnn.c.dtype == np.float64
    assert np.any(rnn.U != 0)


# ------------------------------------------------------------ 8. save, load, copies, checks


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trips_keep_the_biases_bit_for_bit(rng, tmp_path, dtype):
    rnn, X, _, s0 = make_biased(rng, 3, 8, 2, 5, 3, dtype)
    path = tmp_path / "model.npz"
    rnn.save(path)
    Y = rnn.predict(X, s0)
    clones = {
        "load": crnn.load(path),
        "RNN.load": crnn.RNN.load(path),
        "pickle": pickle.loads(pickle.dumps(rnn)),
        "deepcopy": copy.deepcopy(rnn),
    }
    for how, clone in clones.items():
        assert clone.bias, how
        assert clone.dtype == dtype, how
        for key in KEYS:
            got, want = getattr(clone, key), getattr(rnn, key)
            assert got.dtype == want.dtype, (how, key)
            np.testing.assert_array_equal(got, want, err_msg=f"{how} {key}")
        np.testing.assert_array_equal(clone.predict(X, s0), Y, err_msg=how)
    # the copies own their biases
    clones["deepcopy"].b[0] += 1.0
    clones["pickle"].c[0] += 1.0
    np.testing.assert_array_equal(rnn.predict(X, s0), Y)


def test_round_trips_of_a_model_without_biases_stay_without(tmp_path):
    rnn = crnn.RNN(2, 3, seed=0)
    rnn.save(tmp_path / "m.npz")
    for clone in (crnn.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(rnn))):
        assert not clone.bias
        assert clone.b is None
        assert clone.c is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_weights_with_one_bias_gives_zeros_for_the_other(rng, dtype):
    U, W, V = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)), rng.normal(size=(3, 4))
    b, c = rng.normal(size=4), rng.normal(size=3)
    only_b = crnn.RNN.from_weights(U, W, V, b=b, dtype=dtype)
    assert only_b.bias
    np.testing.assert_array_equal(only_b.b, b.astype(dtype))
    np.testing.assert_array_equal(only_b.c, np.zeros(3))
    assert only_b.c.shape == (3,)
    assert only_b.b.dtype == only_b.c.dtype == dtype
    only_c = crnn.RNN.from_weights(U, W, V, c=c, dtype=dtype)
    assert only_c.bias
    np.testing.assert_array_equal(only_c.b, np.zeros(4))
    np.testing.assert_array_equal(only_c.c, c.astype(dtype))
    assert only_c.b.dtype == dtype
    # copied, not shared
    b[0] += 1
    assert only_b.b[0] != b[0]


def _from_weights(**kw):
    rng = np.random.default_rng(0)
    U, W, V = rng.normal(size=(4, 2)), rng.normal(size=(4, 4)), rng.normal(size=(3, 4))
    return crnn.RNN.from_weights(U, W, V, **kw)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"b": np.zeros(5)}, ValueError, "b"),
        ({"b": np.zeros(3)}, ValueError, "b"),
        ({"b": np.zeros((4, 1))}, ValueError, "b"),
        ({"b": 0.0}, ValueError, "b"),
        ({"b": np.zeros(4, dtype=complex)}, TypeError, "b"),
        ({"b": np.array(["a"] * 4)}, TypeError, "b"),
        ({"b": np.full(4, np.nan)}, ValueError, "b"),
        ({"c": np.zeros(4)}, ValueError, "c"),
        ({"c": np.zeros((1, 3))}, ValueError, "c"),
        ({"c": np.zeros(3, dtype=complex)}, TypeError, "c"),
        ({"c": [np.inf, 0, 0]}, ValueError, "c"),
        ({"b": np.zeros(4), "c": np.zeros(2)}, ValueError, "c"),
    ],
)
def test_from_weights_refuses_bad_biases_by_name(kwargs, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        _from_weights(**kwargs)


@pytest.mark.parametrize("value", [1, 0, "True", None, 1.0, np.array([True])])
def test_bias_must_be_a_bool(value):
    with pytest.raises(TypeError, match="bias"):
        crnn.RNN(2, 3, bias=value)


def test_bias_accepts_numpy_bools():
    assert crnn.RNN(2, 3, bias=np.True_).bias is True
    assert crnn.RNN(2, 3, bias=np.False_).bias is False


def test_assigning_biases_is_checked_and_copies():
    rnn = crnn.RNN(2, 4, 3, seed=0, bias=True, dtype=np.float32)
    new_b = np.arange(4.0)
    rnn.b = new_b
    new_b[0] = 99
    np.testing.assert_array_equal(rnn.b, [0, 1, 2, 3])
    assert rnn.b.dtype == np.float32
    rnn.c = [1, 2, 3]
    np.testing.assert_array_equal(rnn.c, [1, 2, 3])
    for key, bad in (("b", np.zeros(3)), ("b", np.zeros((4, 1))), ("c", np.zeros(4))):
        with pytest.raises(ValueError, match=rf"\b{key}\b"):
            setattr(rnn, key, bad)
    with pytest.raises(TypeError, match=r"\bb\b"):
        rnn.b = np.zeros(4, dtype=complex)
    with pytest.raises(TypeError, match=r"\bc\b"):
        rnn.c = None
    np.testing.assert_array_equal(rnn.c, [1, 2, 3])  # unchanged by the refusals
    plain = crnn.RNN(2, 4, 3, seed=0)
    for key, value in (("b", np.zeros(4)), ("c", np.zeros(3))):
        with pytest.raises(ValueError, match="no biases"):
            setattr(plain, key, value)
        assert getattr(plain, key) is None
    assert not plain.bias


# ------------------------------------------------------------------ 9. step and generate


def test_step_gives_the_outputs_of_forward(rng):
    rnn, X, _, s0 = make_biased(rng, 3, 12, 2, 5, 3)
    _, Y = rnn.forward(X, s0)
    rnn.state = s0
    batch = np.stack([rnn.step(X[:, t]) for t in range(12)], axis=1)
    np.testing.assert_allclose(batch, Y, rtol=1e-14, atol=1e-15)
    rnn.reset()
    _, Y0 = rnn.forward(X[0])
    one = np.array([rnn.step(x) for x in X[0]])
    np.testing.assert_allclose(one, Y0, rtol=1e-14, atol=1e-15)
    assert np.abs(Y0[0] - rnn.V @ np.tanh(rnn.U @ X[0, 0])).max() > 1e-3  # biases used


def closed_loop(rnn, n_steps, warmup, s0):
    """Generation written with numpy: warm up, then feed each output back."""
    U, W, V, b, c = (getattr(rnn, k) for k in KEYS)
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


def test_generate_feeds_back_the_outputs_of_forward(rng):
    rnn, X, _, s0 = make_biased(rng, 2, 10, 3, 6, 3, w_scale=0.8)
    out = rnn.generate(15, X[0], s0=s0[0])
    assert out.shape == (15, 3)
    np.testing.assert_allclose(out, closed_loop(rnn, 15, X[0], s0[0]), rtol=1e-12, atol=1e-13)
    # the outputs are forward's, with each generated value as the next input
    inputs = np.concatenate([X[0], out[:-1]])
    _, Y = rnn.forward(inputs, s0[0])
    np.testing.assert_allclose(out, Y[-15:], rtol=1e-12, atol=1e-13)
    # batch warm-up, and a start from x0
    outs = rnn.generate(7, X, s0=s0)
    for i in range(2):
        np.testing.assert_allclose(
            outs[i], closed_loop(rnn, 7, X[i], s0[i]), rtol=1e-12, atol=1e-13
        )
    from_x0 = rnn.generate(5, x0=X[1, 0])
    np.testing.assert_allclose(from_x0, closed_loop(rnn, 5, X[1, :1], None), rtol=1e-12, atol=1e-13)
    plain = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V)
    assert not np.allclose(plain.generate(15, X[0], s0=s0[0]), out)  # the biases count
