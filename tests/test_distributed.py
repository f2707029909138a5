"""crnn.distributed against a real LocalCluster: 2 worker processes, 1 thread each."""

import itertools
import pathlib
import pickle
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

dask = pytest.importorskip(
    "dask", reason="the dask extra is not installed: pip install 'crnn[dask]'"
)
da = pytest.importorskip("dask.array", reason="dask[array] is not installed")
distributed = pytest.importorskip("distributed", reason="distributed is not installed")

import crnn
from crnn import distributed as cd

TOL = 1e-10


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: 8787 may be taken (a warning, an error here)
        worker_dashboard_address=None,
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture
def workers(client):
    """The cluster with its 2 workers (restarted by their nannies after a test kills one)."""
    client.wait_for_workers(2, timeout=120)
    return client


def _data(N=48, T=10, n=2, m=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, T, n))
    t = np.sin(np.cumsum(X[..., :m], axis=1)) + 0.1 * rng.normal(size=(N, T, m))
    return X, t


def _model(n=2, d=6, m=1, dtype=np.float64, bias=False):
    return crnn.RNN(n, d, m, seed=7, dtype=dtype, bias=bias)


#: Every equivalence with the local fit holds with the biases b and c too.
BIAS = pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])


def _chunked(a, k=12):
    return da.from_array(a, chunks=(k, -1, -1))


def _assert_same_fit(a, b, tol=TOL):
    assert a.bias == b.bias
    assert a._param_names() == b._param_names()
    for k in a._param_names():  # U, W, V, and b, c with biases
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=0, atol=tol, err_msg=k)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=tol, atol=0)
    assert a.n_iter_ == b.n_iter_
    if a.validation_scores_ is None:
        assert b.validation_scores_ is None
    else:
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=tol, atol=0)


# ---------------------------------------------------------------------- import


def _python(code):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_crnn_does_not_import_dask():
    out = _python(
        """
        import sys, crnn
        assert "dask" not in sys.modules and "distributed" not in sys.modules, "dask imported"
        import crnn.distributed
        assert "dask" in sys.modules
        """
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("missing", ["dask", "distributed"])
def test_missing_dask_names_the_extra(missing):
    out = _python(
        f"""
        import sys
        sys.modules[{missing!r}] = None  # as if it were not installed
        import crnn
        try:
            import crnn.distributed
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
        """
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'crnn[dask]'" in out.stdout


# ---------------------------------------------------------------------- fit


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "adam", "lr": 0.05},
        {"optimizer": "sgd", "lr": 0.1, "nesterov": True, "clip": 0.5},
        {"optimizer": "adagrad", "g": 0.5, "method": "rtrl"},
        {"optimizer": "adam", "lr": 0.05, "weight_decay": 0.01},
    ],
    ids=["adam", "sgd-nesterov-clip", "adagrad-rtrl", "adam-weight-decay"],
)
@BIAS
def test_fit_equals_local_full_batch_fit(workers, options, bias):
    X, t = _data()
    local, dist = _model(bias=bias), _model(bias=bias)
    b0 = None if dist.b is None else dist.b.copy()
    local.fit(X, t, epochs=6, batch_size=None, **options)
    out = cd.fit(dist, _chunked(X), _chunked(t), epochs=6, **options)
    assert out is dist
    assert dist.n_iter_ == 6
    _assert_same_fit(local, dist)
    if bias:  # the biases were trained, not just carried along
        assert not np.array_equal(dist.b, b0)
    np.testing.assert_allclose(dist.penalty_curve_, local.penalty_curve_, rtol=TOL)
    if "weight_decay" in options:
        assert dist.penalty_curve_[-1] > 0


@BIAS
def test_fit_with_uneven_chunks_and_validation_data(workers, bias):
    X, t = _data()
    Xv, tv = _data(N=10, seed=1)
    local, dist, dist2 = _model(bias=bias), _model(bias=bias), _model(bias=bias)
    local.fit(X, t, epochs=5, lr=0.05, validation_data=(Xv, tv))
    Xd = da.from_array(X, chunks=((5, 20, 1, 22), -1, -1))
    td = da.from_array(t, chunks=((5, 20, 1, 22), -1, -1))
    cd.fit(dist, Xd, td, epochs=5, lr=0.05, validation_data=(Xv, tv))
    _assert_same_fit(local, dist)
    # validation data on the workers too
    cd.fit(dist2, Xd, td, epochs=5, lr=0.05, validation_data=(_chunked(Xv, 4), _chunked(tv, 4)))
    _assert_same_fit(local, dist2)
    assert local.best_validation_score_ == pytest.approx(dist2.best_validation_score_, rel=TOL)


@BIAS
def test_fit_minibatches_and_validation_fraction_equal_local_fit(workers, bias):
    # the same seed draws the same split and the same mini-batches as RNN.fit
    X, t = _data()
    options = {"epochs": 3, "lr": 0.05, "batch_size": 10, "validation_fraction": 0.25, "seed": 3}
    local, dist = _model(bias=bias), _model(bias=bias)
    local.fit(X, t, **options)
    cd.fit(dist, _chunked(X, 16), _chunked(t, 16), **options)
    _assert_same_fit(local, dist)
    local2, dist2 = _model(bias=bias), _model(bias=bias)
    local2.fit(X, t, epochs=2, lr=0.05, batch_size=20, shuffle=False)
    cd.fit(dist2, _chunked(X, 16), _chunked(t, 16), epochs=2, lr=0.05, batch_size=20, shuffle=False)
    _assert_same_fit(local2, dist2)


@BIAS
def test_fit_early_stopping_and_warm_start(workers, bias):
    X, t = _data()
    local, dist = _model(bias=bias), _model(bias=bias)
    local.fit(X, t, epochs=30, lr=0.05, tol=10.0, n_iter_no_change=2)
    cd.fit(dist, _chunked(X), _chunked(t), epochs=30, lr=0.05, tol=10.0, n_iter_no_change=2)
    assert dist.n_iter_ == local.n_iter_ < 30
    n_iter = local.n_iter_
    local.fit(X, t, epochs=3, lr=0.05, warm_start=True)
    cd.fit(dist, _chunked(X), _chunked(t), epochs=3, lr=0.05, warm_start=True)
    _assert_same_fit(local, dist)
    assert dist.n_iter_ == n_iter + 3


@BIAS
def test_fit_restores_the_best_weights_biases_included(workers, bias):
    # a large step makes the validation score worse after its best epoch: the fit ends
    # with the weights (and biases) of the best epoch, like RNN.fit
    X, t = _data()
    Xv, tv = _data(N=10, seed=1)
    options = {"epochs": 8, "optimizer": "sgd", "lr": 3.0, "validation_data": (Xv, tv)}
    local, dist = _model(bias=bias), _model(bias=bias)
    local.fit(X, t, **options)
    cd.fit(dist, _chunked(X), _chunked(t), **options)
    _assert_same_fit(local, dist)
    scores = dist.validation_scores_
    assert min(scores) < scores[-1], "the test needs a fit whose last epoch is not its best"
    assert dist.loss(Xv, tv) / tv.size == pytest.approx(dist.best_validation_score_, rel=TOL)


@BIAS
def test_fit_on_lists_of_arrays_and_futures(workers, bias):
    X, t = _data()
    local, from_arrays, from_futures = _model(bias=bias), _model(bias=bias), _model(bias=bias)
    local.fit(X, t, epochs=4, lr=0.05)
    cuts = [0, 7, 30, 48]
    xs = [X[a:b] for a, b in itertools.pairwise(cuts)]
    ts = [t[a:b] for a, b in itertools.pairwise(cuts)]
    cd.fit(from_arrays, xs, ts, epochs=4, lr=0.05)
    _assert_same_fit(local, from_arrays)
    cd.fit(from_futures, workers.scatter(xs), ts, epochs=4, lr=0.05)
    _assert_same_fit(local, from_futures)


@BIAS
def test_fit_on_lists_with_different_lengths_scales_by_all_values(workers, bias):
    # chunks of different T: the mean is over every predicted value of the batch
    X1, t1 = _data(N=8, T=5)
    X2, t2 = _data(N=6, T=9, seed=2)
    rnn = _model(bias=bias)
    names = rnn._param_names()
    assert names == (("U", "W", "V", "b", "c") if bias else ("U", "W", "V"))
    w0 = {k: getattr(rnn, k).copy() for k in names}
    cd.fit(rnn, [X1, X2], [t1, t2], epochs=1, optimizer="sgd", lr=0.1, momentum=0.0)
    ref = _model(bias=bias)
    G1, G2 = ref.gradient(X1, t1), ref.gradient(X2, t2)
    count = t1.size + t2.size
    for k in names:
        expected = w0[k] - 0.1 * (getattr(G1, k) + getattr(G2, k)) / count
        np.testing.assert_allclose(getattr(rnn, k), expected, rtol=0, atol=TOL)
    assert rnn.loss_curve_[0] == pytest.approx((G1.loss + G2.loss) / count, rel=TOL)


@BIAS
def test_fit_float32_is_close_to_local(workers, bias):
    X, t = _data()
    local, dist = _model(dtype=np.float32, bias=bias), _model(dtype=np.float32, bias=bias)
    local.fit(X, t, epochs=3, lr=0.05)
    cd.fit(dist, _chunked(X), _chunked(t), epochs=3, lr=0.05)
    assert all(getattr(dist, k).dtype == np.float32 for k in dist._param_names())
    _assert_same_fit(local, dist, tol=1e-5)


@BIAS
def test_fit_reports_divergence_like_local_fit(workers, bias):
    X, t = _data()
    rnn = _model(bias=bias)
    with pytest.raises(FloatingPointError, match="diverged"):
        cd.fit(rnn, _chunked(X), _chunked(t * 1e300), epochs=2, lr=0.05)
    assert all(np.isfinite(getattr(rnn, k)).all() for k in rnn._param_names())


# ---------------------------------------------------------------------- workers dying


def _exit_soon(delay=0.05):
    """Run on a worker: end its process abruptly (its nanny starts a new one)."""
    import os
    import threading

    threading.Timer(delay, os._exit, (1,)).start()


def _kill_one(client, delay=0.05):
    victim = min(client.scheduler_info()["workers"])
    client.run(_exit_soon, delay, workers=[victim])


def _kill_after_epoch(client, epoch):
    def callback(model):
        if model.n_iter_ == epoch:
            _kill_one(client)

    return callback


def _check_recovered_or_failed_cleanly(client, fit, epochs, local_fit):
    """The fit either completes with the right weights, or fails clearly with right weights."""
    rnn = _model()
    error = None
    try:
        fit(rnn)
    except RuntimeError as exc:
        error = str(exc)
    if error is None:
        done = epochs
    else:
        assert "lost a worker or data" in error
        assert "keeps the weights of its last completed update" in error
        done = rnn.n_iter_  # full batch: one update per epoch
        assert done < epochs
    assert rnn.n_iter_ == done
    if done:
        _assert_same_fit(local_fit(done), rnn)
    client.wait_for_workers(2, timeout=120)
    print(f"updates completed: {done} of {epochs}" + ("" if error is None else f"; {error}"))
    return done


def _local_fit(X, t, bias=False, **options):
    def run(epochs):
        model = _model(bias=bias)
        model.fit(X, t, epochs=epochs, **options)
        return model

    return run


@BIAS
def test_worker_killed_mid_fit_dask_array_recovers(workers, bias):
    X, t = _data()
    rnn = _model(bias=bias)
    cd.fit(rnn, _chunked(X), _chunked(t), epochs=6, lr=0.05, callback=_kill_after_epoch(workers, 2))
    _assert_same_fit(_local_fit(X, t, bias, lr=0.05)(6), rnn)  # Dask recomputed the lost chunks


def test_worker_killed_mid_fit_scattered_arrays_recover(workers):
    X, t = _data()
    xs, ts = [X[:24], X[24:]], [t[:24], t[24:]]
    rnn = _model()
    cd.fit(rnn, xs, ts, epochs=6, lr=0.05, callback=_kill_after_epoch(workers, 2))
    _assert_same_fit(_local_fit(X, t, lr=0.05)(6), rnn)  # scattered again from the client


def test_worker_killed_mid_fit_user_futures_recover_or_fail_clearly(workers):
    X, t = _data()
    victim = min(workers.scheduler_info()["workers"])
    xs = workers.scatter([X[:24], X[24:]], workers=[victim])
    ts = workers.scatter([t[:24], t[24:]], workers=[victim])

    def fit(rnn):
        cd.fit(rnn, xs, ts, epochs=6, lr=0.05, retries=1, callback=_kill_after_epoch(workers, 2))

    _check_recovered_or_failed_cleanly(workers, fit, 6, _local_fit(X, t, lr=0.05))


def test_worker_killed_during_a_step(workers):
    # larger chunks, so that steps take a while; the kill lands at a random point
    X, t = _data(N=400, T=40, seed=4)
    killer = threading.Timer(0.3, _kill_one, (workers,))

    def fit(rnn):
        killer.start()
        cd.fit(rnn, _chunked(X, 100), _chunked(t, 100), epochs=40, lr=0.05)

    try:
        _check_recovered_or_failed_cleanly(workers, fit, 40, _local_fit(X, t, lr=0.05))
    finally:
        killer.join()


# ---------------------------------------------------------------------- inference


@BIAS
def test_predict_and_forward_are_lazy_and_equal_local(workers, bias):
    X, _ = _data(N=30)
    rnn = _model(bias=bias)
    Xd = da.from_array(X, chunks=((7, 13, 10), -1, -1))
    Y = cd.predict(rnn, Xd)
    S, Y2 = cd.forward(rnn, Xd)
    for arr, width in ((Y, 1), (S, 6), (Y2, 1)):
        assert isinstance(arr, da.Array)
        assert arr.shape == (30, 10, width)
        assert arr.chunks == ((7, 13, 10), (10,), (width,))
        assert arr.dtype == np.float64
        assert arr._meta.dtype == np.float64
    S_local, Y_local = rnn.forward(X)
    before = {k: getattr(rnn, k).copy() for k in rnn._param_names()}
    for k in rnn._param_names():
        getattr(rnn, k)[...] = 0  # the graph holds the weights (and biases) of the call
    np.testing.assert_allclose(Y.compute(), Y_local, rtol=1e-13, atol=1e-15)
    S_c, Y_c = dask.compute(S, Y2)
    np.testing.assert_allclose(S_c, S_local, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Y_c, Y_local, rtol=1e-13, atol=1e-15)
    for k, v in before.items():
        setattr(rnn, k, v)


@BIAS
def test_predict_with_initial_states_and_float32(workers, bias):
    X, _ = _data(N=20)
    rnn = _model(dtype=np.float32, bias=bias)
    rng = np.random.default_rng(1)
    s0 = rng.uniform(-0.5, 0.5, size=(20, 6))
    Xd = _chunked(X, 8)
    Y = cd.predict(rnn, Xd, s0)
    assert Y.dtype == np.float32
    np.testing.assert_allclose(Y.compute(), rnn.predict(X, s0), rtol=1e-6, atol=1e-6)
    Y = cd.predict(rnn, Xd, da.from_array(s0, chunks=(5, 6)))  # rechunked to match X
    np.testing.assert_allclose(Y.compute(), rnn.predict(X, s0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        cd.predict(rnn, Xd, s0[0]).compute(), rnn.predict(X, s0[0]), rtol=1e-6, atol=1e-6
    )


# ---------------------------------------------------------------------- sweep


def test_sweep_rows_and_best(workers):
    X, t = _data()
    grid = {"hidden_size": [3, 6], "lr": [0.01, 0.05], "seed": [0]}
    res = cd.sweep(X, t, grid, fit_params={"epochs": 8}, validation_fraction=0.25, seed=5)
    table, best, best_params, best_score = res
    assert len(table) == 4
    assert [(r["hidden_size"], r["lr"]) for r in table] == [
        (3, 0.01),
        (3, 0.05),
        (6, 0.01),
        (6, 0.05),
    ]
    for r in table:
        assert r["epochs"] == 8
        assert r["error"] is None
        assert np.isfinite(r["validation_score"])
    scores = [r["validation_score"] for r in table]
    assert best_score == min(scores)
    assert best_params == {k: v for k, v in table[int(np.argmin(scores))].items() if k in grid}
    assert isinstance(best, crnn.RNN)
    assert best.hidden_size == best_params["hidden_size"]
    # the same split, fit and score on this machine
    order = np.random.default_rng(5).permutation(48)
    val, train = np.sort(order[:12]), np.sort(order[12:])
    ref = crnn.RNN(2, best_params["hidden_size"], 1, seed=0)
    ref.fit(
        X[train], t[train], epochs=8, lr=best_params["lr"], seed=0, validation_data=(X[val], t[val])
    )
    assert ref.best_validation_score_ == pytest.approx(best_score, rel=1e-12)
    np.testing.assert_allclose(best.W, ref.W, rtol=0, atol=1e-12)


def test_sweep_over_bias_fits_biased_models_like_rnn_fit(workers):
    X, t = _data()
    Xv, tv = _data(N=10, seed=1)
    res = cd.sweep(
        X,
        t,
        {"bias": [False, True]},
        validation_data=(Xv, tv),
        model_params={"hidden_size": 5},
        fit_params={"epochs": 6, "lr": 0.05},
        seed=2,
    )
    assert [r["bias"] for r in res.table] == [False, True]
    assert res.best_model.bias is res.best_params["bias"]
    for row in res.table:
        ref = crnn.RNN(2, 5, 1, seed=2, bias=row["bias"])
        ref.fit(X, t, epochs=6, lr=0.05, seed=2, validation_data=(Xv, tv))
        assert ref.best_validation_score_ == pytest.approx(row["validation_score"], rel=1e-12)
    ref = crnn.RNN(2, 5, 1, seed=2, bias=res.best_params["bias"])
    ref.fit(X, t, epochs=6, lr=0.05, seed=2, validation_data=(Xv, tv))
    for k in ref._param_names():
        np.testing.assert_allclose(getattr(res.best_model, k), getattr(ref, k), atol=1e-12)


def test_sweep_list_of_configs_dask_data_and_divergence(workers):
    X, t = _data()
    Xv, tv = _data(N=8, seed=9)
    configs = [{"hidden_size": 4, "lr": 0.02}, {"hidden_size": 4, "lr": 1e308, "optimizer": "sgd"}]
    res = cd.sweep(
        _chunked(X), _chunked(t), configs, validation_data=(Xv, tv), fit_params={"epochs": 3}
    )
    assert res.table[1]["validation_score"] == np.inf
    assert "diverged" in res.table[1]["error"]
    assert res.best_params == configs[0]
    assert res.best_score == res.table[0]["validation_score"]


def test_sweep_table_as_a_data_frame(workers):
    X, t = _data(N=12)
    try:
        import pandas
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            cd.sweep(X, t, {"hidden_size": [2]}, as_frame=True)
        return
    res = cd.sweep(X, t, {"hidden_size": [2, 3]}, fit_params={"epochs": 2}, as_frame=True)
    assert isinstance(res.table, pandas.DataFrame)
    assert list(res.table["hidden_size"]) == [2, 3]


def test_sweep_bad_parameters(workers):
    X, t = _data()
    with pytest.raises(ValueError, match="unknown parameter 'hiden_size'"):
        cd.sweep(X, t, {"hiden_size": [3]})
    with pytest.raises(ValueError, match="hidden_size"):
        cd.sweep(X, t, {"lr": [0.1]})
    with pytest.raises(TypeError, match="dict of lists"):
        cd.sweep(X, t, "hidden_size")


# ---------------------------------------------------------------------- pickling on workers


@BIAS
def test_models_pickle_and_run_on_workers(workers, bias):
    X, t = _data(N=6)
    rnn = _model(bias=bias)
    rnn.fit(X, t, epochs=2)  # with its optimizer state
    Y = workers.submit(crnn.RNN.predict, rnn, X).result()
    np.testing.assert_array_equal(Y, rnn.predict(X))
    back = workers.submit(pickle.loads, pickle.dumps(rnn)).result()
    for k in rnn._param_names():
        np.testing.assert_array_equal(getattr(back, k), getattr(rnn, k))
    G = workers.submit(crnn.RNN.gradient, rnn, X, t).result()
    np.testing.assert_allclose(G.U, rnn.gradient(X, t).U, rtol=1e-13, atol=1e-15)
    variants = workers.run(lambda: __import__("crnn._core", fromlist=["variant"]).variant)
    assert len(variants) == 2
    assert all(isinstance(v, str) for v in variants.values())


# ---------------------------------------------------------------------- bad inputs


def test_bad_inputs_are_refused_clearly(workers):
    X, t = _data()
    rnn = _model()
    with pytest.raises(TypeError, match="from_array"):
        cd.fit(rnn, X, t)
    with pytest.raises(TypeError, match="target must be a dask array"):
        cd.fit(rnn, _chunked(X), t)
    with pytest.raises(ValueError, match="chunked along time"):
        cd.fit(rnn, da.from_array(X, chunks=(12, 5, -1)), da.from_array(t, chunks=(12, 5, -1)))
    with pytest.raises(ValueError, match="chunked alike along the batch axis"):
        cd.fit(rnn, _chunked(X, 12), _chunked(t, 16))
    with pytest.raises(ValueError, match="3-D"):
        cd.fit(rnn, _chunked(X)[0], _chunked(t)[0])
    with pytest.raises(ValueError, match="2 features"):
        cd.fit(rnn, _chunked(X[..., :1]), _chunked(t))
    Xn = X.copy()
    Xn[40, 3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        cd.fit(rnn, _chunked(Xn), _chunked(t))
    with pytest.raises(ValueError, match="same non-zero length"):
        cd.fit(rnn, [X], [t, t])
    with pytest.raises(ValueError, match="truncate"):
        cd.fit(rnn, _chunked(X), _chunked(t), truncate=5)
    with pytest.raises(TypeError, match="from_array"):
        cd.predict(rnn, X)
    with pytest.raises(ValueError, match="chunked along time"):
        cd.predict(rnn, da.from_array(X, chunks=(12, 5, -1)))
    with pytest.raises(ValueError, match="s0 must have shape"):
        cd.predict(rnn, _chunked(X), np.zeros(5))
    with pytest.raises(TypeError, match=r"model must be a crnn\.RNN"):
        cd.fit("model", _chunked(X), _chunked(t))
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        cd.fit(rnn, _chunked(X), _chunked(t), client="tcp://nowhere:1")
    assert np.array_equal(rnn.W, _model().W)  # nothing was trained


def test_no_client_is_a_clear_error():
    out = _python(
        """
        import numpy as np, dask.array as da, crnn, crnn.distributed as cd
        X = da.zeros((4, 3, 1), chunks=(2, -1, -1))
        try:
            cd.fit(crnn.RNN(1, 2), X, X)
        except ValueError as exc:
            print(exc)
        """
    )
    assert out.returncode == 0, out.stderr
    assert "no Dask client" in out.stdout


def test_readme_example_runs_and_matches_local_fit():
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    section = readme.split("## Distributed (Dask)", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```py\n(.*?)```", section, re.DOTALL)
    check = """
import numpy as np
ref = crnn.RNN(1, 16, seed=0)
ref.fit(w[:, :-1], w[:, 1:], epochs=20, lr=0.01)
assert max(np.abs(getattr(rnn, k) - getattr(ref, k)).max() for k in "UWV") < 1e-10
assert Y.shape == (595, 50, 1) and Y.chunks[0][0] == 100
assert len(best.table) == 4 and best.best_score == min(r["validation_score"] for r in best.table)
print("ok")
"""
    out = _python(block + check)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


# ---------------------------------------------------------------------- weights and lists (issue 14)


def _ragged(N=20, n=2, m=1, seed=5):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 15, size=N)
    X = [rng.normal(size=(int(T), n)) for T in lengths]
    t = [np.sin(np.cumsum(x[:, :m], axis=0)) for x in X]
    return X, t


def _weights(N=48, T=10, seed=9):
    w = np.random.default_rng(seed).uniform(0, 2, size=(N, T))
    w[:5] = 0  # whole sequences out of the loss
    w[:, :3] = 0  # and the first steps of every one
    return w


@pytest.mark.parametrize("shape", ["(N, T)", "(N, T, m)", "(T,)"])
@BIAS
def test_fit_with_sample_weight_equals_local_fit(workers, shape, bias):
    X, t = _data()
    w = {"(N, T)": _weights(), "(N, T, m)": _weights()[..., None], "(T,)": _weights()[7]}[shape]
    options = {"epochs": 3, "lr": 0.05, "batch_size": 12, "seed": 4}
    local, dist = _model(bias=bias), _model(bias=bias)
    local.fit(X, t, sample_weight=w, **options)
    wd = w if w.ndim == 1 else da.from_array(w, chunks=(16,) + (-1,) * (w.ndim - 1))
    cd.fit(dist, _chunked(X, 16), _chunked(t, 16), sample_weight=wd, **options)
    _assert_same_fit(local, dist)
    # the weights change the fit (the test would not see them ignored otherwise)
    plain = _model(bias=bias).fit(X, t, **options)
    assert not np.allclose(plain.U, dist.U)


def test_fit_with_sample_weight_on_lists_and_weighted_validation(workers):
    X, t = _data()
    w = _weights()
    Xv, tv = _data(N=10, seed=1)
    wv = np.random.default_rng(2).uniform(0, 1, size=(10, 10))
    options = {"epochs": 3, "lr": 0.05, "validation_data": (Xv, tv, wv)}
    local, dist = _model(), _model()
    local.fit(X, t, sample_weight=w, **options)
    cuts = [0, 7, 30, 48]
    parts = [slice(a, b) for a, b in itertools.pairwise(cuts)]
    cd.fit(
        dist,
        [X[p] for p in parts],
        [t[p] for p in parts],
        sample_weight=[w[p] for p in parts],
        **options,
    )
    _assert_same_fit(local, dist)
    # validation data with weights on the workers too
    dist2 = _model()
    val = (_chunked(Xv, 5), _chunked(tv, 5), da.from_array(wv, chunks=(5, -1)))
    cd.fit(
        dist2,
        _chunked(X),
        _chunked(t),
        sample_weight=da.from_array(w, chunks=(12, -1)),
        epochs=3,
        lr=0.05,
        validation_data=val,
    )
    _assert_same_fit(local, dist2)


def test_a_zero_weight_mini_batch_makes_no_step(workers):
    X, t = _data(N=24)
    w = np.ones((24, 10))
    w[:12] = 0  # the first mini-batch (no shuffling) has nothing to score
    options = {"epochs": 1, "optimizer": "sgd", "lr": 0.1, "batch_size": 12, "shuffle": False}
    local, dist = _model(), _model()
    local.fit(X, t, sample_weight=w, **options)
    cd.fit(
        dist,
        _chunked(X, 6),
        _chunked(t, 6),
        sample_weight=da.from_array(w, chunks=(6, -1)),
        **options,
    )
    _assert_same_fit(local, dist)
    one_step = _model().fit(X[12:], t[12:], **{**options, "batch_size": 12})
    np.testing.assert_allclose(dist.U, one_step.U, rtol=0, atol=TOL)


@BIAS
def test_fit_on_a_list_of_sequences_of_different_lengths_equals_local_fit(workers, bias):
    X, t = _ragged()
    w = [np.linspace(0, 1, x.shape[0]) for x in X]
    for options in (
        {"epochs": 3, "lr": 0.05},
        {"epochs": 2, "lr": 0.05, "batch_size": 6, "seed": 1, "validation_fraction": 0.2},
        {"epochs": 2, "lr": 0.05, "sample_weight": w, "method": "rtrl"},
    ):
        local, dist = _model(bias=bias), _model(bias=bias)
        local.fit(X, t, **options)
        cd.fit(dist, X, t, **options)
        _assert_same_fit(local, dist)
    # chunks that are themselves lists of sequences; validation data as a list
    local, dist = _model(bias=bias), _model(bias=bias)
    local.fit(X[:15], t[:15], epochs=2, lr=0.05, validation_data=(X[15:], t[15:]))
    cd.fit(
        dist,
        [X[:4], X[4:15]],
        [t[:4], t[4:15]],
        epochs=2,
        lr=0.05,
        validation_data=(X[15:], t[15:]),
    )
    _assert_same_fit(local, dist)


def test_predict_and_forward_on_a_list_of_sequences(workers):
    X, _ = _ragged(N=9)
    rnn = _model()
    s0 = np.random.default_rng(1).normal(size=(9, 6))
    Y = cd.predict(rnn, X, chunk_size=4)
    S, Y2 = cd.forward(rnn, X, s0, chunk_size=4)
    assert isinstance(Y, list)
    assert len(Y) == 9
    assert all(isinstance(y, da.Array) for y in Y)
    local_S, local_Y = rnn.forward(X, s0)
    for y, x, ref in zip(dask.compute(*Y), X, rnn.predict(X), strict=True):
        assert y.shape == (x.shape[0], 1)
        np.testing.assert_array_equal(y, ref)
    for s, y, rs, ry in zip(dask.compute(*S), dask.compute(*Y2), local_S, local_Y, strict=True):
        np.testing.assert_array_equal(s, rs)
        np.testing.assert_array_equal(y, ry)


def test_bad_weights_and_lists_are_refused_clearly(workers):
    X, t = _data(N=12)
    rnn = _model()
    Xd, td = _chunked(X, 6), _chunked(t, 6)
    with pytest.raises(ValueError, match="sample_weight"):
        cd.fit(rnn, Xd, td, sample_weight=da.zeros((12, 10), chunks=(6, -1)), epochs=1)
    with pytest.raises(ValueError, match=r"sample_weight.*chunked like X"):
        cd.fit(rnn, Xd, td, sample_weight=da.ones((12, 10), chunks=(4, -1)), epochs=1)
    with pytest.raises(ValueError, match=r"sample_weight.*shape"):
        cd.fit(rnn, Xd, td, sample_weight=da.ones((12, 9), chunks=(6, -1)), epochs=1)
    bad = np.ones((12, 10))
    bad[3, 4] = -1
    with pytest.raises(ValueError, match=r"sample_weight \(chunk 0\)"):
        cd.fit(rnn, Xd, td, sample_weight=da.from_array(bad, chunks=(6, -1)), epochs=1)
    with pytest.raises(ValueError, match=r"sample_weight must be a list of 2"):
        cd.fit(rnn, [X[:6], X[6:]], [t[:6], t[6:]], sample_weight=[np.ones((6, 10))], epochs=1)
    Xs, ts = _ragged(N=4)
    with pytest.raises(ValueError, match=r"target\[2\]"):
        cd.fit(rnn, Xs, [*ts[:2], ts[2][:-1], ts[3]], epochs=1)
    with pytest.raises(ValueError, match="sample_weight"):
        cd.fit(rnn, Xs, ts, sample_weight=[np.ones(3)] * 4, epochs=1)
    with pytest.raises(ValueError, match="chunk_size"):
        cd.predict(rnn, Xs, chunk_size=0)
    with pytest.raises(ValueError, match=r"X\[1\]"):
        cd.predict(rnn, [Xs[0], np.ones((3, 5))])


def test_sweep_on_a_list_of_sequences_scores_like_rnn_fit(workers):
    X, t = _ragged(N=16)
    result = cd.sweep(
        X[:12],
        t[:12],
        {"hidden_size": [3, 5]},
        validation_data=(X[12:], t[12:]),
        fit_params={"epochs": 3, "lr": 0.05},
        seed=2,
    )
    for row in result.table:
        local = crnn.RNN(2, row["hidden_size"], 1, seed=2, n_threads=1)
        local.fit(X[:12], t[:12], epochs=3, lr=0.05, seed=2, validation_data=(X[12:], t[12:]))
        assert row["validation_score"] == pytest.approx(local.best_validation_score_, rel=TOL)
    split = cd.sweep(X, t, {"hidden_size": [3]}, fit_params={"epochs": 2}, seed=1)
    assert np.isfinite(split.best_score)
    with pytest.raises(TypeError, match="validation_data must be a list"):
        cd.sweep(
            X, t, {"hidden_size": [3]}, validation_data=(np.ones((2, 4, 2)), np.ones((2, 4, 1)))
        )
