"""The default thread count on a busy machine (issue 13, point 2).

With ``n_threads=None`` crnn times its calls and runs a kind and size of call
on one thread when one thread has been measured faster (a core held by
another process, or by another library's spinning threads), trying several
threads again once its calls have taken 40 times as long as the last try.
These tests drive that choice with a clock of their own
(``_kernels._clock``), so that they decide what "slow" is (in binary
fractions of a second, added without rounding); that the machine's real
times follow is measured in ``benchmarks/busy.py``.
"""

import numpy as np
import pytest

import crnn
from crnn import _core, _kernels

_BIG = 10**9  # work enough for several threads on a quiet machine


@pytest.fixture
def clock(monkeypatch):
    """A clock that moves only when told, and a fresh record of the calls' speeds."""

    class Clock:
        now = 1000.0

        def __call__(self):
            return self.now

    fake = Clock()
    monkeypatch.setattr(_kernels, "_clock", fake)
    monkeypatch.setattr(_kernels, "_SPEEDS", {})
    return fake


@pytest.fixture
def several():
    """The default's thread count for large work on this machine (skips when it is 1)."""
    nt = _kernels.threads(None, 64, _BIG)
    if nt == 1:
        pytest.skip("one CPU, or a build without OpenMP: nothing to choose")
    return nt


def _call(clock, nt_seconds):
    """Choose the threads of a call, 'run' it for nt_seconds[nt > 1] seconds; the count."""
    nt, key = _kernels._choose("test", None, 64, _BIG)

    def run():
        clock.now += nt_seconds[nt > 1]
        return nt

    return _kernels._timed(key, nt, _BIG, run)


def test_the_default_runs_on_one_thread_when_several_are_measured_slower(clock, several):
    ms = 1 / 1024
    slow_many = {False: ms, True: 10 * ms}  # a core is busy: two threads 10x slower
    assert _call(clock, slow_many) == several  # the first call: a quiet machine's choice
    assert _call(clock, slow_many) == 1  # the second measures one thread
    # it tries several threads again once the calls on one have taken 40 times
    # the second call (40 calls of 1 ms), and goes back at once
    counts = [_call(clock, slow_many) for _ in range(41)]
    assert counts == [1] * 40 + [several]
    # the next try waits for 40 times the slow try: 400 calls of 1 ms
    counts = [_call(clock, slow_many) for _ in range(401)]
    assert counts == [1] * 400 + [several]
    # the machine is quiet again: the next try finds two threads faster, and they stay
    quiet = {False: ms, True: 0.625 * ms}
    counts = [_call(clock, quiet) for _ in range(405)]
    assert counts == [1] * 400 + [several] * 5
    # time between the calls (the rest of the program) does not bring a try nearer
    clock.now += 1000.0
    assert _call(clock, quiet) == several


def test_on_a_quiet_machine_one_thread_is_tried_rarely(clock, several):
    quiet = {False: 1.0, True: 0.625}  # long calls, two threads faster
    counts = [_call(clock, quiet) for _ in range(80)]
    assert counts[:2] == [several, 1]
    # a try of one thread takes 1 s: the next comes after 40 s of calls, 64 of 0.625 s
    tries = [i for i, nt in enumerate(counts) if nt == 1]
    assert tries == [1, 1 + 64 + 1]


def test_sizes_and_kinds_are_measured_apart(clock, several):
    slow_many = {False: 1 / 1024, True: 10 / 1024}
    _call(clock, slow_many), _call(clock, slow_many)
    assert _call(clock, slow_many) == 1
    # another kind of call, or a size in another power of two, starts afresh
    assert _kernels._choose("other", None, 64, _BIG)[0] == several
    assert _kernels._choose("test", None, 64, 4 * _BIG)[0] == several


def test_an_explicit_thread_count_is_never_changed(clock, several):
    assert _kernels._choose("test", None, 64, _BIG)[1] is not None
    for n_threads in (1, 2):
        nt, key = _kernels._choose("test", n_threads, 64, _BIG)
        assert (nt, key) == (min(n_threads, several), None)
    # below the parallel threshold nothing is measured either
    assert _kernels._choose("test", None, 64, 1000) == (1, None)


@pytest.fixture
def spy(monkeypatch, clock):
    """Record the thread count of each timed kernel call; calls on several threads 'take' 10 ms."""
    counts = []
    timed = _kernels._timed

    def spying(key, nt, work, call):
        def slow():
            result = call()
            clock.now += 0.010 if nt > 1 else 0.001
            return result

        if key is not None:  # a call whose threads the default chose
            counts.append(nt)
        return timed(key, nt, work, slow)

    monkeypatch.setattr(_kernels, "_timed", spying)
    return counts


@pytest.mark.skipif(not _core._openmp_enabled(), reason="a build without OpenMP runs on one thread")
@pytest.mark.parametrize(
    "call",
    ["forward", "loss", "bptt", "rtrl", "generate", "list_loss", "list_bptt"],
)
def test_every_parallel_call_falls_back_to_one_thread_with_the_same_bits(spy, several, call):
    rng = np.random.default_rng(3)
    N, T, n, d, m = 16, 30, 3, 24, 3
    X = rng.normal(size=(N, T, n))
    Y = rng.normal(size=(N, T, m))
    Xs = [X[i, : 5 + i] for i in range(N)]
    Ys = [Y[i, : 5 + i] for i in range(N)]
    run = {
        "forward": lambda r: r.forward(X)[1],
        "loss": lambda r: r.loss(X, Y),
        "bptt": lambda r: r.gradient(X, Y).W,
        "rtrl": lambda r: r.gradient(X, Y, method="rtrl").W,
        "generate": lambda r: r.generate(T, x0=X[:, 0]),
        "list_loss": lambda r: r.loss(Xs, Ys),
        "list_bptt": lambda r: r.gradient(Xs, Ys).W,
    }[call]
    if call in ("list_loss", "list_bptt"):
        Xs = [X[i, : 20 + 10 * (i % 2)] for i in range(N)]  # two lengths, enough work each
        Ys = [Y[i, : 20 + 10 * (i % 2)] for i in range(N)]
    alone = run(crnn.RNN(n, d, m, seed=5, n_threads=1))
    rnn = crnn.RNN(n, d, m, seed=5)
    results = [run(rnn) for _ in range(4)]
    assert spy[0] == several
    assert set(spy[1:]) == {1}, spy
    for r in results:
        np.testing.assert_array_equal(r, alone)


@pytest.mark.skipif(not _core._openmp_enabled(), reason="a build without OpenMP runs on one thread")
def test_fit_falls_back_to_one_thread_and_trains_the_same(spy, several):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(64, 40, 3))
    Y = rng.normal(size=(64, 40, 2))
    alone = crnn.RNN(3, 24, 2, seed=2, n_threads=1).fit(
        X, Y, epochs=2, batch_size=16, shuffle=False
    )
    rnn = crnn.RNN(3, 24, 2, seed=2).fit(X, Y, epochs=2, batch_size=16, shuffle=False)
    assert spy[0] == several
    assert spy.count(several) <= 2, spy  # the first gradient, and the first loss
    for name in ("U", "W", "V"):
        np.testing.assert_array_equal(getattr(rnn, name), getattr(alone, name))
