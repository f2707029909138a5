"""crnn.online: the online algorithms around exact RTRL, against their oracle and their papers."""

import copy
import pickle
import threading

import numpy as np
import pytest

import crnn
from crnn import datasets, online, reference

ALGORITHMS = {  # the oracle's name: (class, options)
    "rflo": (online.RFLO, {}),
    "eprop": (online.EProp, {}),
    "snap1": (online.SnAp, {"n": 1}),
    "snap2": (online.SnAp, {"n": 2}),
    "tbptt": (online.TBPTT, {"horizon": 3, "period": 2}),
    "uoro": (online.UORO, {"seed": 3}),
    "kfrtrl": (online.KFRTRL, {"seed": 4}),
    "rtrl": (online.RTRL, {}),
}
CELLS = [("tanh", 1.0, False), ("logistic", 0.6, True), ("relu", 0.3, True)]
M64 = (1 << 64) - 1


def _splitmix_signs(state):
    """The kernel's random signs (splitmix64, the top bit), from its starting state."""
    state &= M64
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        yield 1.0 if z >> 63 else -1.0


def _flat(G, bias):
    parts = [G.U.ravel(), G.W.ravel(), G.V.ravel()]
    return np.concatenate(parts + ([G.b, G.c] if bias else []))


def _params(model):
    return np.concatenate([np.ravel(v) for v in model.parameters().values()])


def _model(n=2, d=3, m=2, *, activation="tanh", leak=1.0, bias=False, seed=1, dtype=np.float64):
    return crnn.RNN(n, d, m, seed=seed, bias=bias, activation=activation, leak=leak, dtype=dtype)


def _oracle(name, model, X, target, trainer, **kw):
    signs = None
    if name in ("uoro", "kfrtrl"):
        signs = _splitmix_signs(int(np.int64(trainer._carried.ints[1]).view(np.uint64)))
    opts = ALGORITHMS[name][1]
    return reference.online(
        name,
        model.U,
        model.W,
        model.V,
        X,
        target,
        b=model.b if model.bias else None,
        c=model.c if model.bias else None,
        activation=model.activation,
        leak=model.leak,
        horizon=opts.get("horizon", 1),
        period=opts.get("period", 1),
        signs=signs,
        **kw,
    )


@pytest.mark.parametrize("name", list(ALGORITHMS))
@pytest.mark.parametrize(("activation", "leak", "bias"), CELLS)
def test_each_step_is_the_oracles(name, activation, leak, bias):
    rng = np.random.default_rng(0)
    T = 7
    X, target = rng.normal(size=(T, 2)), rng.normal(size=(T, 2))
    model = _model(activation=activation, leak=leak, bias=bias)
    start = copy.deepcopy(model)
    cls, opts = ALGORITHMS[name]
    trainer = cls(model, lr=0.05, clip=2.0, **opts)
    want = _oracle(name, start, X, target, trainer, lr=0.05, clip=2.0)
    for t in range(T):
        y = trainer.step(X[t], target[t])
        np.testing.assert_allclose(y, want["Y"][t], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            _flat(trainer.gradient_estimate_, bias), want["estimates"][t], rtol=1e-10, atol=1e-12
        )
    for key in ("U", "W", "V") + (("b", "c") if bias else ()):
        np.testing.assert_allclose(getattr(model, key), want[key], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trainer.state, want["s"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        _flat(trainer.gradient_sum_, bias), np.sum(want["estimates"], axis=0), atol=1e-11
    )
    assert trainer.loss_ == pytest.approx(sum(want["E"]), rel=1e-12)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_a_chunk_is_its_steps_one_by_one(name):
    rng = np.random.default_rng(1)
    X, target = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    cls, opts = ALGORITHMS[name]
    a, b = _model(bias=True), _model(bias=True)
    ta, tb = cls(a, lr=0.05, **opts), cls(b, lr=0.05, **opts)
    Ya = ta.learn(X, target)
    Yb = np.array([tb.step(x, y) for x, y in zip(X, target, strict=True)])
    np.testing.assert_array_equal(Ya, Yb)
    np.testing.assert_array_equal(_params(a), _params(b))
    np.testing.assert_array_equal(_flat(ta.gradient_sum_, True), _flat(tb.gradient_sum_, True))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("activation", "leak", "bias"), CELLS)
def test_snap2_on_a_dense_w_is_exact_rtrl(activation, leak, bias, dtype):
    rng = np.random.default_rng(2)
    X, target = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    a = _model(d=5, activation=activation, leak=leak, bias=bias, dtype=dtype)
    b = copy.deepcopy(a)
    snap, rtrl = online.SnAp(a, lr=0.02, n=2), online.RTRL(b, lr=0.02)
    Ya, Yb = snap.learn(X, target), rtrl.learn(X, target)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(Ya, Yb, rtol=tol, atol=tol)
    np.testing.assert_allclose(_params(a), _params(b), rtol=tol, atol=tol)
    np.testing.assert_allclose(
        _flat(snap.gradient_estimate_, bias), _flat(rtrl.gradient_estimate_, bias), atol=tol
    )


def test_snap_keeps_exactly_its_pattern():
    rng = np.random.default_rng(3)
    X, target = rng.normal(size=(12, 2)), rng.normal(size=(12, 1))
    d, n = 5, 2
    model = _model(n, d, 1)
    W = model.W.copy()
    W[np.abs(W) < 0.25] = 0  # a sparse W: SnAp-2's pattern is no longer full
    model.W = W
    for k, pattern in ((1, np.eye(d, dtype=bool)), (2, (W != 0) | np.eye(d, dtype=bool))):
        assert not pattern.all()
        trainer = online.SnAp(copy.deepcopy(model), lr=0.0, n=k)
        trainer.learn(X, target)
        mem = trainer._carried.mem[trainer._carried.ints[0]]
        if k == 1:  # the diagonal alone is carried: P[i, i, :], d (n + d) numbers
            assert mem.size == d * (n + d)
            P = np.zeros((d, d, n + d))
            P[np.arange(d), np.arange(d)] = mem.reshape(d, n + d)
        else:
            P = mem.reshape(d, d, n + d)  # P[l, i, :]: the influence of row i on unit l
        assert np.all(P[~pattern] == 0)
        assert np.all(np.abs(P[pattern]).sum(axis=-1) > 0)
        # ... and there, RTRL's recursion: the oracle's SnAp (RTRL, then the pattern)
        want = _oracle(f"snap{k}", model, X, target, trainer)
        np.testing.assert_allclose(
            _flat(trainer.gradient_sum_, False), np.sum(want["estimates"], axis=0), atol=1e-12
        )
    # SnAp-1 is e-prop's recursion (Menick et al. 2021, section 3)
    a, b = online.SnAp(copy.deepcopy(model), n=1), online.EProp(copy.deepcopy(model))
    np.testing.assert_array_equal(a.learn(X, target), b.learn(X, target))


def test_tbptt_with_a_horizon_past_the_stream_is_bptt():
    rng = np.random.default_rng(4)
    T = 25
    X, target = rng.normal(size=(T, 2)), rng.normal(size=(T, 2))
    for activation, leak, bias in CELLS:
        model = _model(activation=activation, leak=leak, bias=bias)
        want = model.gradient(X, target, method="bptt")
        for horizon, period in ((T, T), (T + 5, 1), (40, 5)):  # periods that divide T
            trainer = online.TBPTT(model, lr=0.0, horizon=horizon, period=period)
            trainer.learn(X, target)
            got = trainer.gradient_sum_
            for key in ("U", "W", "V") + (("b", "c") if bias else ()):
                np.testing.assert_allclose(
                    getattr(got, key), getattr(want, key), rtol=1e-10, atol=1e-12
                )
        # a short horizon is not BPTT (the test can fail)
        short = online.TBPTT(model, lr=0.0, horizon=2, period=1)
        short.learn(X, target)
        assert not np.allclose(short.gradient_sum_.W, want.W, atol=1e-6)


@pytest.mark.parametrize("name", ["uoro", "kfrtrl"])
def test_uoro_and_kfrtrl_are_unbiased(name):
    """The mean of the estimates over many seeds is RTRL's gradient, within its standard error."""
    rng = np.random.default_rng(5)
    T, runs = 6, 2000
    X, target = rng.normal(size=(T, 1)), rng.normal(size=(T, 1))
    model = _model(1, 3, 1, leak=0.7, bias=True)
    exact = online.RTRL(model, lr=0.0)
    exact.learn(X, target)
    want = _flat(exact.gradient_estimate_, True)
    cls = ALGORITHMS[name][0]
    trainer = cls(model, lr=0.0, seed=0)
    draws = np.empty((runs, want.size))
    for r in range(runs):
        trainer.reset()  # a new stream of signs from the trainer's generator
        trainer.learn(X, target)
        draws[r] = _flat(trainer.gradient_estimate_, True)
    mean, se = draws.mean(axis=0), draws.std(axis=0, ddof=1) / np.sqrt(runs)
    # U, W, b are estimated: the mean is within 4.5 standard errors of RTRL's (the
    # seeds are fixed, so this is no flaky test); V and c are exact in every algorithm
    exact = np.zeros(want.size, dtype=bool)
    exact[3 + 9 : 3 + 9 + 3] = exact[-1] = True  # V (1, 3), after U (3, 1), W (3, 3); c (1,)
    assert np.all(se[~exact] > 0)  # the estimates do vary
    np.testing.assert_allclose(draws[:, exact], np.broadcast_to(want[exact], (runs, 4)), atol=1e-12)
    z = np.abs(mean - want)[~exact] / se[~exact]
    assert z.max() < 4.5, (z.max(), mean, want)
    # a biased algorithm is not: RFLO's estimate lies many standard errors away
    rflo = online.RFLO(model, lr=0.0)
    rflo.learn(X, target)
    z = np.abs(_flat(rflo.gradient_estimate_, True) - want)[~exact] / se[~exact]
    assert z.max() > 4.5


def test_the_seed_gives_the_same_numbers():
    rng = np.random.default_rng(6)
    X, target = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    for cls in (online.UORO, online.KFRTRL):
        runs = [cls(_model(), lr=0.1, seed=7).learn(X, target) for _ in range(2)]
        np.testing.assert_array_equal(*runs)
        other = cls(_model(), lr=0.1, seed=8).learn(X, target)
        assert not np.array_equal(runs[0], other)


def test_online_rtrl_is_the_family_rtrl_and_learns_as_before():
    assert online.RTRL is crnn.OnlineRTRL
    assert crnn.online is online
    rng = np.random.default_rng(7)
    X, target = rng.normal(size=(15, 2)), rng.normal(size=(15, 2))
    model = _model(bias=True)
    trainer = crnn.OnlineRTRL(model, lr=0.0)
    trainer.learn(X, target)
    # the last step's estimate is the exact gradient of E^T: BPTT's over the stream minus
    # BPTT's over the stream without its last target
    weight = np.ones((15, 2))
    weight[-1] = 0
    full = model.gradient(X, target)
    rest = model.gradient(X, target, sample_weight=weight)
    G = trainer.gradient_estimate_
    for key in ("U", "W", "V", "b", "c"):
        np.testing.assert_allclose(
            getattr(G, key), getattr(full, key) - getattr(rest, key), atol=1e-12
        )


@pytest.mark.parametrize("name", [k for k in ALGORITHMS if k != "rtrl"])
def test_the_interface_and_guarantees(name):
    cls, opts = ALGORITHMS[name]
    rng = np.random.default_rng(8)
    X, target = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    model = _model()
    trainer = cls(model, lr=0.05, **opts)
    assert repr(trainer).startswith(f"{cls.__name__}(RNN(")
    assert trainer.gradient_sum_.method == name
    assert np.all(_flat(trainer.gradient_estimate_, False) == 0)
    trainer.learn(X, target)
    assert trainer.n_steps_ == 10
    # a chunk that diverges changes nothing
    before = (_params(model), trainer.state.copy(), trainer._carried.save())
    trainer.lr = 1e300
    with pytest.raises(FloatingPointError, match="diverged"):
        trainer.learn(X * 1e5, target * 1e200)
    np.testing.assert_array_equal(_params(model), before[0])
    np.testing.assert_array_equal(trainer.state, before[1])
    for a, b in zip(trainer._carried.save(), before[2], strict=True):
        np.testing.assert_array_equal(a, b)
    assert trainer.n_steps_ == 10
    # NaN in the data is named
    trainer.lr = 0.05
    with pytest.raises(ValueError, match="X"):
        trainer.learn(np.full((2, 2), np.nan), target[:2])
    with pytest.raises(ValueError, match="x must have shape"):
        trainer.step(np.zeros(3), target[0])
    # reset: a new stream
    trainer.reset()
    assert trainer.n_steps_ == 0
    assert trainer.loss_ == 0
    assert np.all(trainer.state == 0)
    # the model's training lock
    entered, release = threading.Event(), threading.Event()

    def hold():
        from crnn._guard import exclusive

        with exclusive("test.hold", model):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait(10)
    try:
        with pytest.raises(RuntimeError, match=r"being changed by test\.hold"):
            trainer.learn(X, target)
    finally:
        release.set()
        thread.join()
    # a pickled trainer goes on as the original
    clone = pickle.loads(pickle.dumps(trainer))
    np.testing.assert_array_equal(clone.learn(X, target), trainer.learn(X, target))


def test_float32_follows_float64():
    rng = np.random.default_rng(9)
    X, target = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    for name, (cls, opts) in ALGORITHMS.items():
        y64 = cls(_model(), lr=0.05, **opts).learn(X, target)
        y32 = cls(_model(dtype=np.float32), lr=0.05, **opts).learn(X, target)
        assert y32.dtype == np.float32
        np.testing.assert_allclose(y32, y64, rtol=2e-3, atol=2e-4, err_msg=name)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda m: online.TBPTT(m, horizon=0), ValueError, "horizon must be an integer >= 1"),
        (lambda m: online.TBPTT(m, horizon=2.0), TypeError, "horizon must be an integer"),
        (lambda m: online.TBPTT(m, horizon=3, period=4), ValueError, r"period must be .* got 4"),
        (lambda m: online.SnAp(m, n=3), ValueError, "n must be 1 or 2, got 3"),
        (lambda m: online.SnAp(m, n=0), ValueError, "n must be an integer >= 1"),
        (lambda m: online.UORO(m, seed=-1), ValueError, "seed must be"),
        (lambda m: online.KFRTRL(m, seed=True), TypeError, "seed must be"),
        (lambda m: online.RFLO(m, lr=-1), ValueError, "lr must be"),
        (lambda m: online.EProp(m, clip=0), ValueError, "clip must be"),
        (lambda m: online.RFLO("model"), TypeError, "model must be a crnn.RNN"),
    ],
)
def test_bad_options_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make(_model())


def test_the_add_task():
    X, target = datasets.add_task(5000, seed=0)
    x = X[:, 0]
    np.testing.assert_array_equal(target[9:, 0], 0.5 + 0.5 * x[4:-5] - 0.25 * x[:-9])
    assert set(np.unique(x)) == {0.0, 1.0}
    assert target.var() == pytest.approx(0.078125, rel=0.05)  # the mean predictor's loss
    X2, t2 = datasets.add_task(5000, t1=2, t2=3, seed=0, dtype=np.float32)
    assert X2.dtype == t2.dtype == np.float32
    np.testing.assert_array_equal(t2[3:, 0], 0.5 + 0.5 * X2[1:-2, 0] - 0.25 * X2[:-3, 0])
    np.testing.assert_array_equal(
        datasets.add_task(50, seed=1)[1], datasets.add_task(50, seed=1)[1]
    )
    with pytest.raises(ValueError, match="t1 must be an integer >= 0, got -1"):
        datasets.add_task(10, t1=-1)
    with pytest.raises(ValueError, match="length must be"):
        datasets.add_task(0)
    assert {"add_task", "mimic"} <= set(datasets.__all__)


def test_mimic_is_a_teachers_output():
    X, target, teacher = datasets.mimic(200, 2, 6, 3, seed=0, leak=0.5, bias=True)
    assert X.shape == (200, 2)
    assert target.shape == (200, 3)
    np.testing.assert_array_equal(target, teacher.forward(X)[1])
    assert teacher.leak == 0.5
    assert teacher.bias
    again = datasets.mimic(200, 2, 6, 3, seed=0, leak=0.5, bias=True)
    np.testing.assert_array_equal(again[1], target)
    with pytest.raises(ValueError, match="leak"):
        datasets.mimic(10, leak=2.0)


def test_online_algorithms_learn_the_add_task():
    """Every algorithm, with one learning rate, beats predicting the mean on a short stream."""
    X, target = datasets.add_task(3000, t1=1, t2=3, seed=0)
    late = slice(2000, None)
    base = target[late].var()
    for name, (cls, opts) in ALGORITHMS.items():
        model = crnn.RNN(1, 16, 1, bias=True, seed=0)
        trainer = cls(model, lr=0.02, **{**opts, "horizon": 5} if name == "tbptt" else opts)
        Y = trainer.learn(X, target)
        err = np.mean((Y[late] - target[late]) ** 2) / base
        assert err < 0.6, (name, err)


@pytest.mark.parametrize("name", ["uoro", "tbptt"])
def test_an_interrupted_chunk_is_put_back_whole(name):
    """Ctrl-C (a SIGALRM handler raising KeyboardInterrupt) within a chunk undoes the chunk."""
    import signal

    cls, opts = ALGORITHMS[name]
    rng = np.random.default_rng(10)
    X, target = rng.normal(size=(200_000, 1)), rng.normal(size=(200_000, 1))
    model = _model(1, 32, 1, bias=True)
    trainer = cls(model, lr=1e-4, clip=1.0, **opts)
    trainer.learn(X[:100], target[:100])
    before = (_params(model), trainer.state.copy(), trainer._carried.save())

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.learn(X, target)  # about 1 s uninterrupted
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    np.testing.assert_array_equal(_params(model), before[0])
    np.testing.assert_array_equal(trainer.state, before[1])
    for a, b in zip(trainer._carried.save(), before[2], strict=True):
        np.testing.assert_array_equal(a, b)
    assert trainer.n_steps_ == 100
    # and it goes on as if the chunk had not been given
    again = copy.deepcopy(trainer)
    np.testing.assert_array_equal(
        again.learn(X[:50], target[:50]), trainer.learn(X[:50], target[:50])
    )
