"""fit and partial_fit with sample_weight and weight_decay."""

import numpy as np
import pytest

import crnn


def data(rng, N=6, T=12, n=2, m=1):
    X = rng.normal(size=(N, T, n))
    target = np.cumsum(X[..., :m], axis=1) * 0.3
    return X, target


def sgd(**kw):
    return dict(optimizer="sgd", momentum=0.0, lr=0.05, shuffle=False, **kw)


def test_unit_weights_change_nothing(rng):
    X, target = data(rng)
    a = crnn.RNN(2, 5, 1, seed=0).fit(X, target, epochs=5, seed=1)
    b = crnn.RNN(2, 5, 1, seed=0).fit(X, target, epochs=5, seed=1, sample_weight=np.ones(12))
    np.testing.assert_array_equal(a.W, b.W)
    assert a.loss_curve_ == b.loss_curve_


def test_one_update_divides_by_the_sum_of_the_weights(rng):
    X, target = data(rng)
    w = rng.uniform(0, 3, size=(6, 12))
    rnn = crnn.RNN(2, 5, 1, seed=0, bias=True)
    G = rnn.gradient(X, target, sample_weight=w)
    before = {k: v.copy() for k, v in rnn.parameters().items()}
    rnn.fit(X, target, epochs=1, sample_weight=w, **sgd())
    for k, v in rnn.parameters().items():
        np.testing.assert_allclose(v, before[k] - 0.05 * getattr(G, k) / w.sum(), rtol=1e-12)
    assert rnn.loss_curve_[0] == pytest.approx(G.loss / w.sum())


def test_zero_weights_train_as_the_scored_steps_alone(rng):
    # the last steps unscored: the same updates as training on the first steps
    X, target = data(rng)
    w = np.ones(12)
    w[8:] = 0
    a = crnn.RNN(2, 5, 1, seed=0).fit(X, target, epochs=4, sample_weight=w, **sgd())
    b = crnn.RNN(2, 5, 1, seed=0).fit(X[:, :8], target[:, :8], epochs=4, **sgd())
    np.testing.assert_allclose(a.W, b.W, rtol=1e-12)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)


def test_a_label_at_the_end_is_learned(rng):
    # the sum of a sequence's inputs, scored at its last step only
    N, T = 64, 8
    X = rng.normal(size=(N, T, 1))
    target = np.zeros((N, T, 1))
    target[:, -1, 0] = 0.3 * X[:, :, 0].sum(axis=1)
    w = np.zeros(T)
    w[-1] = 1
    rnn = crnn.RNN(1, 8, seed=0, bias=True)
    before = rnn.loss(X, target, sample_weight=w)
    rnn.fit(X, target, epochs=300, lr=0.02, sample_weight=w, seed=0)
    after = rnn.loss(X, target, sample_weight=w)
    assert after < 0.05 * before
    # the unscored steps were free: their outputs are not the zero targets
    assert rnn.loss(X, target) > after


def test_truncated_windows_without_weight_make_no_step(rng):
    X, target = data(rng)
    w = np.zeros((6, 12))
    w[:, :4] = 1  # windows of 4: only the first has weight
    rnn = crnn.RNN(2, 5, 1, seed=0)
    rnn.fit(X, target, epochs=2, truncate=4, sample_weight=w, **sgd())
    ref = crnn.RNN(2, 5, 1, seed=0)
    ref.fit(X[:, :4], target[:, :4], epochs=2, **sgd())
    np.testing.assert_allclose(rnn.W, ref.W, rtol=1e-12)


def test_the_validation_split_keeps_the_weights(rng):
    X, target = data(rng)
    w = rng.uniform(0.5, 2, size=(6, 12))
    rnn = crnn.RNN(2, 5, 1, seed=0)
    # one epoch: the weights kept are those the score was taken with
    rnn.fit(X, target, epochs=1, validation_fraction=0.34, sample_weight=w, seed=3, **sgd())
    # the same split, by the same seed: score the held-out sequences with their weights
    from crnn._fit import split_sequences

    _, val = split_sequences(6, 0.34, np.random.default_rng(3))
    expected = rnn.loss(X[val], target[val], sample_weight=w[val]) / w[val].sum()
    assert rnn.validation_scores_ == [pytest.approx(expected, rel=1e-12)]
    # validation_data as a triple
    rnn = crnn.RNN(2, 5, 1, seed=0)
    rnn.fit(X[:4], target[:4], epochs=1, validation_data=(X[4:], target[4:], w[4:]), **sgd())
    last = rnn.validation_scores_[-1]
    assert last == pytest.approx(rnn.loss(X[4:], target[4:], sample_weight=w[4:]) / w[4:].sum())


@pytest.mark.parametrize(
    ("weight", "error", "match"),
    [
        (np.zeros(12), ValueError, "sample_weight must have a weight > 0"),
        (-np.ones(12), ValueError, "sample_weight must be >= 0"),
        (np.full(12, np.nan), ValueError, "sample_weight must contain only finite values"),
        (np.ones(11), ValueError, "sample_weight must have shape"),
    ],
)
def test_bad_weights_are_refused_before_training(rng, weight, error, match):
    X, target = data(rng)
    rnn = crnn.RNN(2, 5, 1, seed=0)
    W = rnn.W.copy()
    with pytest.raises(error, match=match):
        rnn.fit(X, target, epochs=2, sample_weight=weight)
    with pytest.raises(error, match=match):
        rnn.partial_fit(X, target, sample_weight=weight)
    np.testing.assert_array_equal(rnn.W, W)


def test_a_split_that_leaves_no_weight_is_refused(rng):
    X, target = data(rng, N=1)
    w = np.zeros(12)
    w[-2:] = 1  # only the held-out tail has weight
    with pytest.raises(ValueError, match="sample_weight is 0 on every value left to train"):
        crnn.RNN(2, 5, 1, seed=0).fit(X, target, validation_fraction=0.25, sample_weight=w)


def test_partial_fit_takes_weights(rng):
    X, target = data(rng)
    w = rng.uniform(0, 2, size=(6, 12, 1))
    a = crnn.RNN(2, 5, 1, seed=0)
    G = a.gradient(X, target, sample_weight=w)
    W = a.W.copy()
    a.partial_fit(X, target, optimizer="sgd", lr=0.1, sample_weight=w)
    # sgd's default momentum starts from zero velocity: the first step is lr g
    np.testing.assert_allclose(a.W, W - 0.1 * G.W / w.sum(), rtol=1e-12)


# ---------------------------------------------------------------------- weight decay


def test_weight_decay_adds_its_exact_gradient(rng):
    X, target = data(rng)
    rnn = crnn.RNN(2, 5, 1, seed=0, bias=True)
    G = rnn.gradient(X, target)
    before = {k: v.copy() for k, v in rnn.parameters().items()}
    lam = 0.3
    rnn.fit(X, target, epochs=1, weight_decay=lam, **sgd())
    for k, v in rnn.parameters().items():
        decay = 2 * lam * before[k] if k in ("U", "W", "V") else 0
        np.testing.assert_allclose(
            v, before[k] - 0.05 * (getattr(G, k) / target.size + decay), rtol=1e-12
        )
    # the curves: the data term as before, the penalty at the epoch's end
    assert rnn.loss_curve_[0] == pytest.approx(G.loss / target.size)
    norms = sum(float((rnn.parameters()[k] ** 2).sum()) for k in ("U", "W", "V"))
    assert rnn.penalty_curve_ == [pytest.approx(lam * norms)]


def test_weight_decay_shrinks_the_weights(rng):
    X, target = data(rng)
    plain = crnn.RNN(2, 6, 1, seed=0).fit(X, target, epochs=60, seed=0)
    decayed = crnn.RNN(2, 6, 1, seed=0).fit(X, target, epochs=60, seed=0, weight_decay=0.05)
    norm = lambda m: sum(float((m.parameters()[k] ** 2).sum()) for k in ("U", "W", "V"))
    assert norm(decayed) < 0.8 * norm(plain)
    assert plain.penalty_curve_ == [0.0] * plain.n_iter_
    assert len(decayed.penalty_curve_) == decayed.n_iter_
    assert decayed.penalty_curve_[-1] == pytest.approx(0.05 * norm(decayed))


def test_warm_start_and_partial_fit_extend_the_penalty_curve(rng):
    X, target = data(rng)
    rnn = crnn.RNN(2, 5, 1, seed=0)
    rnn.partial_fit(X, target)
    rnn.fit(X, target, epochs=2, warm_start=True, weight_decay=0.1)
    assert len(rnn.penalty_curve_) == len(rnn.loss_curve_) == 3
    assert rnn.penalty_curve_[0] == 0.0
    assert rnn.penalty_curve_[-1] > 0


@pytest.mark.parametrize(
    ("value", "error"),
    [(-0.1, ValueError), (float("nan"), ValueError), ("0.1", TypeError), (True, TypeError)],
)
def test_bad_weight_decay_is_refused(rng, value, error):
    X, target = data(rng)
    with pytest.raises(error, match="weight_decay must be"):
        crnn.RNN(2, 5, 1, seed=0).fit(X, target, weight_decay=value)
