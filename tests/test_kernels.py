"""The fast kernels: each compiled variant, the tanh, tiles, chunks, threads, workspaces."""

import importlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from helpers import ATOL, RTOL, fresh_thread_peak, make_problem

import crnn
from crnn import _core, _kernels, reference

VARIANTS = _core.available()


@pytest.fixture(params=VARIANTS)
def kernels(request, monkeypatch):
    """Run the model's calls on one compiled variant."""
    mod = importlib.import_module(f"crnn._core_{request.param}")
    monkeypatch.setattr(_kernels, "_core", mod)
    return mod


def test_the_widest_supported_variant_is_used():
    assert VARIANTS, "no compiled kernels"
    assert "baseline" in VARIANTS
    forced = os.environ.get("CRNN_KERNELS")
    assert _core.variant == (forced or VARIANTS[0])
    assert _core._simd_info()[0] == _core.variant


def _run_forced(variant, code):
    env = {**os.environ, "CRNN_KERNELS": variant}
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_baseline_kernels_can_be_forced():
    code = (
        "import numpy as np, crnn, crnn._core as c\n"
        "r = crnn.RNN(3, 7, 2, seed=0)\n"
        "X = np.random.default_rng(0).normal(size=(3, 9, 3))\n"
        "G = r.gradient(X, X[..., :2])\n"
        "print(c.variant, c._simd_info()[0], repr(G.loss))\n"
    )
    out = _run_forced("baseline", code)
    assert out.returncode == 0, out.stderr
    variant, isa, loss = out.stdout.split()
    assert variant == isa == "baseline"
    rnn = crnn.RNN(3, 7, 2, seed=0)
    X = np.random.default_rng(0).normal(size=(3, 9, 3))
    assert float(loss) == pytest.approx(rnn.gradient(X, X[..., :2]).loss, rel=1e-12)


def test_unknown_variant_is_refused():
    out = _run_forced("sse9", "import crnn")
    assert out.returncode != 0
    assert "CRNN_KERNELS" in out.stderr


def _ulps(got, ref):
    ref = np.asarray(ref)
    return np.abs(got.astype(np.float64) - ref.astype(np.float64)) / np.spacing(
        np.abs(ref).astype(ref.dtype)
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_is_within_a_few_ulp(kernels, dtype):
    x = np.concatenate(
        [
            np.linspace(-25, 25, 200_001),
            np.geomspace(1e-300 if dtype == np.float64 else 1e-37, 1e3, 20_000),
            -np.geomspace(1e-30, 1e300 if dtype == np.float64 else 1e30, 20_000),
            [0.0, 0.5 * np.log(3), 19.06, 20.0, 40.0, 1e308 if dtype == np.float64 else 3e38],
        ]
    ).astype(dtype)
    got = x.copy()
    kernels._tanh_array(got)
    ref = np.tanh(x.astype(np.float64)).astype(dtype)  # correctly rounded to a fraction of an ulp
    err = _ulps(got, ref)
    assert err.max() <= 4, (x[err.argmax()], got[err.argmax()], ref[err.argmax()])
    assert np.all(np.abs(got) <= 1)
    np.testing.assert_array_equal(np.signbit(got[x != 0]), np.signbit(x[x != 0]))
    # with check_finite=False a NaN must come through, and infinity saturates
    special = np.array([np.nan, np.inf, -np.inf, 1.0] * 9, dtype=dtype)
    kernels._tanh_array(special)
    assert np.isnan(special[::4]).all()
    np.testing.assert_array_equal(special[1::4], 1.0)
    np.testing.assert_array_equal(special[2::4], -1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("N", "T", "n", "d", "m"),
    [(7, 5, 5, 37, 3), (2, 4, 1, 33, 17), (5, 3, 9, 4, 40), (1, 6, 2, 70, 1)],
)
def test_each_variant_matches_the_oracle(kernels, rng, dtype, N, T, n, d, m):
    # sizes that are not multiples of any tile: remainder rows and columns
    rnn, X, target, s0 = make_problem(rng, N, T, n, d, m, dtype, w_scale=1.3)
    S, Y = rnn.forward(X, s0)
    E = rnn.loss(X, target, s0, 0.7)
    Gs = [rnn.gradient(X, target, s0, 0.7, method=k) for k in ("bptt", "rtrl")]
    args = [w.astype(np.float64) for w in (rnn.U, rnn.W, rnn.V)]
    cast = [np.asarray(a, dtype=dtype).astype(np.float64) for a in (X, target, s0)]
    total = {"U": 0.0, "W": 0.0, "V": 0.0}
    loss = 0.0
    for b in range(N):
        S_ref, Y_ref = reference.forward(*args, cast[0][b], cast[2][b])
        np.testing.assert_allclose(S[b], S_ref, rtol=RTOL[dtype], atol=ATOL[dtype])
        np.testing.assert_allclose(Y[b], Y_ref, rtol=RTOL[dtype], atol=ATOL[dtype])
        ref = reference.gradient_bptt(*args, cast[0][b], cast[1][b], cast[2][b], 0.7)
        for G in Gs:
            np.testing.assert_allclose(
                G.s0[b], ref["s0"], rtol=RTOL[dtype], atol=ATOL[dtype] * 10, err_msg=G.method
            )
        for key, value in total.items():
            total[key] = value + np.asarray(ref[key])
        loss += ref["loss"]
    for G in Gs:
        for key, value in total.items():
            scale = np.abs(value).max()
            np.testing.assert_allclose(
                getattr(G, key), value, rtol=RTOL[dtype], atol=ATOL[dtype] * 10 * scale
            )
        assert G.loss == pytest.approx(loss, rel=RTOL[dtype] * 10)
    assert pytest.approx(loss, rel=RTOL[dtype] * 10) == E
    assert Gs[0].loss == Gs[1].loss == E  # one forward pass, summed one way


def _all_results(rnn, X, target, s0):
    G = [rnn.gradient(X, target, s0, method=k) for k in ("bptt", "rtrl")]
    return [*rnn.forward(X, s0), rnn.loss(X, target, s0)] + [
        getattr(g, k) for g in G for k in ("U", "W", "V", "s0", "loss")
    ]


@pytest.mark.skipif(not _core._openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N", [1, 2, 3, 5])
def test_blocks_and_column_chunks_do_not_change_a_bit(kernels, rng, dtype, N):
    # N < threads: RTRL splits one sequence's sensitivity columns over the
    # threads; BPTT and forward split the batch into blocks of other sizes
    rnn, X, target, s0 = make_problem(rng, N, 6, 3, 13, 2, dtype)
    ref = None
    for nt in (1, 2, 3, 4, 7):
        rnn.n_threads = nt
        got = _all_results(rnn, X, target, s0)
        if ref is None:
            ref = got
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N", [1, 5])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("d", [4, 12, 20])
def test_the_last_columns_are_computed_like_the_panels(kernels, rng, dtype, N, bias, d):
    # A model of d units, and the same model inside one of 40 units (the
    # others held at zero): its products' columns fall past the last whole
    # SIMD panel (a vector of columns, then scalar chains) in the first,
    # inside panels (vector tiles) in the second. Every path rounds a
    # multiply-add alike, so no bit differs.
    n, D, m = 9, 40, 3
    small = crnn.RNN(n, d, m, seed=1, dtype=dtype, bias=bias)
    U, W, V = np.zeros((D, n)), np.zeros((D, D)), np.zeros((m, D))
    U[:d], W[:d, :d], V[:, :d] = small.U, small.W, small.V
    extra = {"b": np.r_[small.b, np.zeros(D - d)], "c": small.c} if bias else {}
    big = crnn.RNN.from_weights(U, W, V, dtype=dtype, **extra)
    X = rng.normal(size=(N, 12, n)).astype(dtype)
    target = rng.normal(size=(N, 12, m)).astype(dtype)
    S, Y = small.forward(X)
    S_big, Y_big = big.forward(X)
    np.testing.assert_array_equal(S, S_big[..., :d])
    np.testing.assert_array_equal(Y, Y_big)
    for method in ("bptt", "rtrl"):
        G, H = small.gradient(X, target, method=method), big.gradient(X, target, method=method)
        np.testing.assert_array_equal(G.U, H.U[:d])
        np.testing.assert_array_equal(G.W, H.W[:d, :d])
        np.testing.assert_array_equal(G.V, H.V[:, :d])
        if bias:
            np.testing.assert_array_equal(G.b, H.b[:d])
            np.testing.assert_array_equal(G.c, H.c)


@pytest.mark.skipif(not _core._openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("N", [8, 7])
def test_bptt_products_in_parts_do_not_depend_on_the_threads(kernels, rng, monkeypatch, bias, N):
    # N x 300 (sequence, step) rows: the final products run in 4 parts, over
    # groups of 2 sequences step by step (7: the last group has one), while
    # each thread's block of sequences (8 / nt of them, rounded up) has a
    # region of the buffers of its own; the order comes from the sizes, so
    # every thread count gives the same bits, and the parts add up to the
    # product in one piece
    rnn = crnn.RNN(3, 21, 2, seed=0, bias=bias)
    X = rng.normal(size=(N, 300, 3))
    target = rng.normal(size=(N, 300, 2))
    names = ["U", "W", "V", "s0"] + (["b", "c"] if bias else [])
    ref = None
    for nt in (1, 2, 3, 4, 5):
        rnn.n_threads = nt
        G = rnn.gradient(X, target)
        if ref is None:
            ref = G
        for k in names:
            np.testing.assert_array_equal(getattr(G, k), getattr(ref, k))
    monkeypatch.setattr(_kernels, "_PARTS", 1)
    whole = rnn.gradient(X, target)
    for k in names:
        np.testing.assert_allclose(getattr(ref, k), getattr(whole, k), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("rows", "L"), [(1, 1), (12, 3), (32, 8), (1 << 30, 23)])
def test_bptt_in_blocks_of_steps_matches_the_oracle(kernels, rng, monkeypatch, bias, rows, L):
    # the backward recurrence keeps the deltas of L steps (a ring) and the
    # gradient's products run after each block, the chains going on from the
    # block before: 23 steps in blocks of 1, 3 (the first one short), 8 and
    # all 23, four sequences in 4 parts, on every thread count
    monkeypatch.setattr(_kernels, "_BPTT_BLOCK_ROWS", rows)
    N, T = 4, 23
    assert _kernels._bptt_steps(N, T) == L
    rnn, X, target, s0 = make_problem(rng, N, T, 3, 13, 2, w_scale=1.5)
    if bias:
        rnn = crnn.RNN.from_weights(
            rnn.U, rnn.W, rnn.V, b=rng.normal(size=13), c=rng.normal(size=2)
        )
    monkeypatch.setattr(_kernels, "_PART_MIN_STEPS", 1)
    extra = {"b": rnn.b, "c": rnn.c} if bias else {}
    total = {}
    for i in range(N):
        r = reference.gradient_bptt(rnn.U, rnn.W, rnn.V, X[i], target[i], s0[i], 0.7, **extra)
        for key in ["U", "W", "V", *extra]:
            total[key] = total.get(key, 0.0) + np.asarray(r[key])
        total.setdefault("s0", []).append(r["s0"])
    first = None
    for nt in (1, 2, 3):
        rnn.n_threads = nt
        G = rnn.gradient(X, target, s0, g=0.7)
        for key, value in total.items():
            np.testing.assert_allclose(
                getattr(G, key), value, rtol=RTOL[np.float64], atol=ATOL[np.float64], err_msg=key
            )
        if first is None:
            first = G
        for key in total:
            np.testing.assert_array_equal(getattr(G, key), getattr(first, key))


def test_bptt_keeps_the_deltas_of_one_block_of_steps():
    # one long sequence: BPTT's workspace is its states (with the inputs and
    # output errors, T (n + d + m) scalars) and a ring of deltas whose size
    # does not depend on T; the deltas of all T steps would be another T d
    N, T, n, d, m = 1, 20000, 2, 30, 2
    rnn = crnn.RNN(n, d, m, seed=0)
    X = np.zeros((T, n))
    L = _kernels._bptt_steps(N, T)
    assert L < T
    history = T * (n + d + m) * 8
    peak = fresh_thread_peak(lambda: rnn.gradient(X, X))
    assert history < peak < history + (1 << 20), (peak, history)


def test_a_sequence_does_not_depend_on_its_batch(rng):
    rnn, X, target, s0 = make_problem(rng, 9, 7, 4, 23, 3)
    rnn.n_threads = 2
    S, Y = rnn.forward(X, s0)
    G = rnn.gradient(X, target, s0)
    H = rnn.gradient(X, target, s0, method="rtrl")
    for b in range(9):
        Sb, Yb = rnn.forward(X[b], s0[b])
        np.testing.assert_array_equal(S[b], Sb)
        np.testing.assert_array_equal(Y[b], Yb)
        np.testing.assert_array_equal(G.s0[b], rnn.gradient(X[b], target[b], s0[b]).s0)
        np.testing.assert_array_equal(
            H.s0[b], rnn.gradient(X[b], target[b], s0[b], method="rtrl").s0
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_workspaces_start_on_a_cache_line(dtype):
    # a 64-byte SIMD load from a workspace that starts mid-line spans two
    # lines (W4's forward pass ran 30% slower with such a placement)
    for size in (1, 3, 17, 1000, 4097):
        for name in ("align test a", "align test b"):
            buf = _kernels._scratch(name, (size,), dtype)
            assert buf.ctypes.data % 64 == 0
            assert buf.shape == (size,)
            assert buf.dtype == dtype
            assert buf.flags.c_contiguous
            assert buf.flags.writeable
        grown = _kernels._scratch("align test a", (size + 5, 2), dtype)
        assert grown.ctypes.data % 64 == 0
        assert grown.shape == (size + 5, 2)


def test_workspaces_are_reused_safely(rng):
    rnn, X, target, s0 = make_problem(rng, 4, 30, 3, 9, 2)
    first = _all_results(rnn, X, target, s0)
    # other sizes in between grow and reuse the same cached buffers
    rnn.gradient(X[:, :3], target[:, :3], s0)
    rnn.gradient(X[:1], target[:1], s0[:1], method="rtrl")
    big = crnn.RNN.from_weights(*(np.ones((k, j)) * 0.1 for k, j in ((20, 3), (20, 20), (2, 20))))
    big.gradient(np.ones((3, 50, 3)), np.ones((3, 50, 2)))
    again = _all_results(rnn, X, target, s0)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_calls_from_several_python_threads_at_once(rng):
    rnn, _, _, _ = make_problem(rng, 1, 1, 3, 11, 2)
    data = [make_problem(rng, 3, 20 + 5 * i, 3, 11, 2)[1:] for i in range(6)]
    expected = [_all_results(rnn, *args) for args in data]
    errors = []

    def worker(order):
        try:
            for _ in range(5):
                for i in order:
                    got = _all_results(rnn, *data[i])
                    for a, b in zip(got, expected[i], strict=True):
                        np.testing.assert_array_equal(a, b)
        except AssertionError as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(list(range(k, 6)) + list(range(k)),))
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_the_stub_file_names_every_kernel_and_its_parameters():
    # crnn/_core.pyi documents the compiled entry points: the same functions,
    # with the same parameter names in the same order, as every variant has
    import ast
    import inspect
    import pathlib

    stub = pathlib.Path(_core.__file__).with_suffix(".pyi")
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    stubbed = {
        f.name: [a.arg for a in f.args.args]
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.name.startswith("_")
    }
    assert {
        "_forward",
        "_loss",
        "_bptt_gradient",
        "_rtrl_gradient",
        "_generate",
        "_rtrl_online",
    } <= set(stubbed)
    for variant in VARIANTS:
        mod = importlib.import_module(f"crnn._core_{variant}")
        compiled = {
            name
            for name in dir(mod)
            if name.startswith("_") and not name.startswith("__") and callable(getattr(mod, name))
        }
        assert compiled <= set(stubbed), compiled - set(stubbed)
        for name, params in stubbed.items():
            if hasattr(mod, name):
                got = list(inspect.signature(getattr(mod, name)).parameters)
                assert got == params, (variant, name, got, params)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(
    ("N", "T", "d", "n_threads"),
    [(1, 100, 8, 1), (3, 33, 5, 2), (70, 40, 40, 1), (70, 40, 40, 2), (120, 3, 700, 1)],
)
def test_outputs_of_many_steps_at_once_equal_those_of_one_step(kernels, N, T, d, n_threads, bias):
    # the kernels compute Y = V S for 32 steps at a time (fewer when the
    # loss keeps the states itself: 70 x 40 states allow 23 steps, 120 x 700
    # only one), apart from the recurrence; a step run alone must give the
    # same bits, and so must the three kernels' losses
    rng = np.random.default_rng(N + T + d)
    n, m = 3, 2
    rnn = crnn.RNN(n, d, m, seed=1, bias=bias, n_threads=n_threads)
    X = rng.normal(size=(N, T, n))
    target = rng.normal(size=(N, T, m))
    S, Y = rnn.forward(X)
    s = np.zeros((N, d))
    E = np.zeros(N)
    for t in range(T):
        St, Yt = rnn.forward(X[:, t : t + 1], s)
        np.testing.assert_array_equal(St[:, 0], S[:, t])
        np.testing.assert_array_equal(Yt[:, 0], Y[:, t])
        s = St[:, 0]
        E += ((target[:, t] - Yt[:, 0]) ** 2).sum(axis=1)
    loss = rnn.loss(X, target)
    assert rnn.gradient(X, target).loss == loss
    assert loss == pytest.approx(E.sum(), rel=1e-12)
    if d <= 40:
        S_ref, Y_ref = reference.forward(rnn.U, rnn.W, rnn.V, X[-1], b=rnn.b, c=rnn.c)
        np.testing.assert_allclose(S[-1], S_ref, rtol=RTOL[np.float64], atol=ATOL[np.float64])
        np.testing.assert_allclose(Y[-1], Y_ref, rtol=RTOL[np.float64], atol=ATOL[np.float64])
