"""Sequences of different lengths: lists of (T_i, n) arrays in and lists out.

Each sequence's states, outputs and loss are what it gets alone, bit for
bit, whatever the other sequences of the list, their order and the thread
count; a list's gradient is the sum of its sequences' gradients, taken one
by one, in the order of the list.
"""

import numpy as np
import pytest

import crnn

LENGTHS = [7, 3, 7, 0, 12, 1, 30]


def make(rng, lengths=LENGTHS, n=2, d=5, m=3, dtype=np.float64, **kw):
    rnn = crnn.RNN(n, d, m, seed=rng, bias=True, dtype=dtype, **kw)
    Xs = [rng.normal(size=(T, n)).astype(dtype) for T in lengths]
    ts = [rng.normal(size=(T, m)).astype(dtype) for T in lengths]
    s0 = rng.uniform(-0.5, 0.5, size=(len(lengths), d)).astype(dtype)
    return rnn, Xs, ts, s0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("cell", [{}, {"activation": "relu", "leak": 0.4}])
def test_each_sequence_gets_what_it_gets_alone(rng, dtype, n_threads, cell):
    rnn, Xs, ts, s0 = make(rng, dtype=dtype, **cell)
    rnn.n_threads = n_threads
    S, Y, final = rnn.forward(Xs, s0, return_state=True)
    assert isinstance(S, list)
    assert isinstance(Y, list)
    for i, x in enumerate(Xs):
        Si, Yi, fi = rnn.forward(x, s0[i], return_state=True)
        np.testing.assert_array_equal(S[i], Si)
        np.testing.assert_array_equal(Y[i], Yi)
        np.testing.assert_array_equal(final[i], fi)
        assert S[i].shape == (x.shape[0], 5)
    np.testing.assert_array_equal(rnn.predict(Xs, s0)[4], Y[4])
    loss = rnn.loss(Xs, ts, s0)
    alone = [rnn.loss(x, t, s) for x, t, s in zip(Xs, ts, s0, strict=True)]
    assert loss == float(np.sum(np.array(alone, dtype=np.float64)))


@pytest.mark.parametrize("method", ["bptt", "rtrl"])
def test_the_gradient_is_the_sum_of_the_sequences_in_order(rng, method):
    rnn, Xs, ts, s0 = make(rng)
    G = rnn.gradient(Xs, ts, s0, method=method)
    total = None
    for i, (x, t) in enumerate(zip(Xs, ts, strict=True)):
        if len(x) == 0:
            np.testing.assert_array_equal(G.s0[i], 0)
            continue
        Gi = rnn.gradient(x, t, s0[i], method=method)
        np.testing.assert_array_equal(G.s0[i], Gi.s0)
        parts = {k: getattr(Gi, k) for k in "UWVbc"}
        total = parts if total is None else {k: total[k] + parts[k] for k in parts}
    for k in "UWVbc":
        np.testing.assert_array_equal(getattr(G, k), total[k])
    for n_threads in (1, 2):
        rnn.n_threads = n_threads
        np.testing.assert_array_equal(rnn.gradient(Xs, ts, s0, method=method).W, G.W)


def test_the_order_of_the_list_changes_no_sequences_numbers(rng):
    rnn, Xs, ts, s0 = make(rng)
    perm = rng.permutation(len(Xs))
    _, Y = rnn.forward(Xs, s0)
    _, Yp = rnn.forward([Xs[i] for i in perm], s0[perm])
    for j, i in enumerate(perm):
        np.testing.assert_array_equal(Yp[j], Y[i])
    G = rnn.gradient(Xs, ts, s0)
    Gp = rnn.gradient([Xs[i] for i in perm], [ts[i] for i in perm], s0[perm])
    np.testing.assert_array_equal(Gp.s0, G.s0[perm])
    np.testing.assert_allclose(Gp.W, G.W, rtol=1e-13)


@pytest.mark.parametrize("method", ["bptt", "rtrl"])
def test_a_list_matches_a_padded_batch_with_zero_weights(rng, method):
    rnn, Xs, ts, s0 = make(rng)
    Tm, N = max(LENGTHS), len(LENGTHS)
    Xp, tp, wp = np.zeros((N, Tm, 2)), np.zeros((N, Tm, 3)), np.zeros((N, Tm))
    for i, T in enumerate(LENGTHS):
        Xp[i, :T], tp[i, :T], wp[i, :T] = Xs[i], ts[i], 1
    G = rnn.gradient(Xs, ts, s0, method=method)
    H = rnn.gradient(Xp, tp, s0, method=method, sample_weight=wp)
    for k in "UWVbc":
        np.testing.assert_allclose(getattr(G, k), getattr(H, k), rtol=1e-11, atol=1e-13)
    # padded steps after a sequence's end do not reach its dE/dS^0
    np.testing.assert_allclose(G.s0, H.s0, rtol=1e-11, atol=1e-13)
    assert G.loss == pytest.approx(H.loss, rel=1e-13)


def test_shared_and_default_initial_states(rng):
    rnn, Xs, ts, s0 = make(rng)
    G = rnn.gradient(Xs, ts, s0[0])
    H = rnn.gradient(Xs, ts, np.broadcast_to(s0[0], s0.shape))
    np.testing.assert_allclose(G.s0, H.s0.sum(axis=0), rtol=1e-13)
    assert rnn.gradient(Xs, ts).s0.shape == (len(Xs), 5)
    np.testing.assert_array_equal(rnn.forward(Xs)[1][2], rnn.predict(Xs[2]))


def test_weights_of_a_list(rng):
    rnn, Xs, ts, s0 = make(rng)
    ws = [rng.uniform(0, 2, size=T) for T in LENGTHS]
    G = rnn.gradient(Xs, ts, s0, sample_weight=ws)
    for i in (0, 4, 6):
        Gi = rnn.gradient(Xs[i], ts[i], s0[i], sample_weight=ws[i])
        np.testing.assert_array_equal(G.s0[i], Gi.s0)
    full = [np.broadcast_to(w[:, None], (len(w), 3)) for w in ws]
    assert rnn.loss(Xs, ts, s0, sample_weight=ws) == rnn.loss(Xs, ts, s0, sample_weight=full)


def test_a_list_of_sequences_of_one_length_is_still_a_list(rng):
    rnn, Xs, _, s0 = make(rng, lengths=[6, 6, 6])
    _, Y = rnn.forward(Xs, s0)
    assert isinstance(Y, list)
    _, Yb = rnn.forward(np.stack(Xs), s0)
    np.testing.assert_array_equal(np.stack(Y), Yb)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda X, t, s: (X, t[:-1], s), ValueError, "target must hold one sequence for each"),
        (lambda X, t, s: (X, [*t[:1], t[1][:-1], *t[2:]], s), ValueError, r"target\[1\]"),
        (lambda X, t, s: ([X[0][:, :1], *X[1:]], t, s), ValueError, r"X\[0\] must have 2 columns"),
        (lambda X, t, s: (X, np.zeros((7, 3)), s), TypeError, "target must be a list"),
        (lambda X, t, s: (X, np.zeros((7, 3, 3)), s), ValueError, r"target\[0\] must have shape"),
        (lambda X, t, s: (X, t, s[:3]), ValueError, "s0 must have shape"),
        (lambda X, t, s: ([*X[:2], X[2] * np.nan, *X[3:]], t, s), ValueError, r"X\[2\]"),
        (lambda X, t, s: ([*X[:2], X[2].astype(complex), *X[3:]], t, s), TypeError, r"X\[2\]"),
    ],
)
def test_bad_lists_are_refused_by_name(rng, change, error, match):
    rnn, Xs, ts, s0 = make(rng)
    X, t, s = change(Xs, ts, s0)
    with pytest.raises(error, match=match):
        rnn.gradient(X, t, s)
    with pytest.raises(error, match=match):
        rnn.loss(X, t, s)


def test_bad_list_weights_are_refused_by_name(rng):
    rnn, Xs, ts, s0 = make(rng)
    with pytest.raises(ValueError, match="sample_weight must be a list of 7 arrays"):
        rnn.loss(Xs, ts, s0, sample_weight=np.ones(7))
    ws = [np.ones(T) for T in LENGTHS]
    ws[4] = -ws[4]
    with pytest.raises(ValueError, match=r"sample_weight\[4\] must be >= 0"):
        rnn.gradient(Xs, ts, s0, sample_weight=ws)


# ---------------------------------------------------------------------- training on lists


def padded(Xs, ts):
    """The list as a batch padded with zeros, and the weights that leave the padding out."""
    N, Tm = len(Xs), max(x.shape[0] for x in Xs)
    Xp = np.zeros((N, Tm, Xs[0].shape[1]))
    tp = np.zeros((N, Tm, ts[0].shape[1]))
    wp = np.zeros((N, Tm))
    for i, (x, t) in enumerate(zip(Xs, ts, strict=True)):
        Xp[i, : len(x)], tp[i, : len(x)], wp[i, : len(x)] = x, t, 1
    return Xp, tp, wp


@pytest.mark.parametrize("truncate", [None, 4])
@pytest.mark.parametrize("batch_size", [None, 3])
def test_fit_on_a_list_makes_the_updates_of_the_padded_batch(rng, truncate, batch_size):
    _, Xs, ts, _ = make(rng, lengths=[7, 3, 9, 12, 1, 5])
    Xp, tp, wp = padded(Xs, ts)
    kw = {
        "epochs": 4,
        "truncate": truncate,
        "batch_size": batch_size,
        "seed": 5,
        "optimizer": "sgd",
        "lr": 0.05,
    }
    a = crnn.RNN(2, 5, 3, seed=0, bias=True).fit(Xs, ts, **kw)
    b = crnn.RNN(2, 5, 3, seed=0, bias=True).fit(Xp, tp, sample_weight=wp, **kw)
    for k in "UWVbc":
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)


def test_fit_on_a_list_learns_and_validates(rng):
    Xs = [rng.normal(size=(T, 1)) for T in rng.integers(5, 60, size=20)]
    ts = [np.cumsum(x, axis=0) * 0.2 for x in Xs]
    rnn = crnn.RNN(1, 8, seed=0, bias=True)
    before = rnn.loss(Xs, ts)
    rnn.fit(Xs, ts, epochs=60, batch_size=8, validation_fraction=0.25, seed=0)
    assert rnn.loss(Xs, ts) < 0.5 * before
    assert len(rnn.validation_scores_) == rnn.n_iter_
    # one sequence in a list: its tail is held out
    one = crnn.RNN(1, 8, seed=0).fit(Xs[:1], ts[:1], epochs=3, validation_fraction=0.3)
    assert len(one.validation_scores_) == 3
    rnn.partial_fit(Xs[:3], ts[:3], sample_weight=[np.ones(len(x)) for x in Xs[:3]])


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (lambda ts: ts[:-1], "target must hold one sequence for each of X's 3"),
        (lambda ts: [ts[0][:-1], *ts[1:]], r"target\[0\] must have shape"),
        (lambda ts: np.zeros((3, 4)), "target must be a list"),
    ],
)
def test_fit_refuses_bad_lists_by_name(rng, target, match):
    rnn, Xs, ts, _ = make(rng, lengths=[4, 2, 6])
    with pytest.raises((ValueError, TypeError), match=match):
        rnn.fit(Xs, target(ts), epochs=1)
    with pytest.raises(ValueError, match="X must have at least one time step"):
        rnn.fit([np.zeros((0, 2))], [np.zeros((0, 3))], epochs=1)
