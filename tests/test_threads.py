"""Python threads (issue 4, section 3).

Every kernel releases the GIL, so calls from several Python threads really run
at once (each with its own OpenMP team). These tests check that

- many threads working on separate models get bit for bit what serial calls get;
- many threads calling forward, predict, loss and gradient on one shared model
  get bit for bit what serial calls get, and leave the model as it was;
- two training calls on one model (fit, partial_fit, OnlineRTRL) cannot race:
  the second raises RuntimeError at once, and the first finishes normally.
"""

import copy
import threading

import numpy as np
import pytest

import crnn

N_PY_THREADS = 8


def _run_in_threads(work, args_list):
    """Run work(*args) in one thread per args, all started together; return results in order."""
    barrier = threading.Barrier(len(args_list))
    results = [None] * len(args_list)
    errors = []

    def target(i, args):
        try:
            barrier.wait()
            results[i] = work(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def _flat(result):
    if isinstance(result, (tuple, list)):
        return [x for r in result for x in _flat(r)]
    if isinstance(result, crnn.Gradient):
        return [result.U, result.W, result.V, result.s0, np.float64(result.loss)]
    if isinstance(result, crnn.RNN):
        return [result.U, result.W, result.V]
    return [np.asarray(result)]


def _assert_bitwise_equal(got, want):
    got, want = _flat(got), _flat(want)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        assert a.shape == b.shape
        assert np.array_equal(a, b), "a result differs from the serial one"


def _data(seed, N=6, T=25, n=3, m=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, T, n)), rng.normal(size=(N, T, m))


def _everything(seed, dtype, n_threads):
    """A model of its own and every entry point on it, in a fixed order."""
    rnn = crnn.RNN(3, 12, 2, seed=seed, dtype=dtype, n_threads=n_threads)
    X, target = _data(seed)
    out = [
        rnn.forward(X),
        rnn.predict(X[0]),
        rnn.loss(X, target),
        rnn.gradient(X, target),
        rnn.gradient(X, target, method="rtrl"),
    ]
    rnn.fit(X, target, epochs=3, batch_size=2, seed=seed)
    rnn.partial_fit(X, target)
    out.append(copy.deepcopy(rnn))
    trainer = crnn.OnlineRTRL(rnn, lr=0.01)
    out.append(trainer.learn(X[0], target[0]))
    out.append(copy.deepcopy(rnn))
    square = crnn.RNN(3, 12, seed=seed, dtype=dtype, n_threads=n_threads)
    out.append(square.generate(5, X[:2]))
    out.append([square.step(x) for x in X[0, :5]])
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_separate_models_in_many_threads_match_serial_calls(dtype):
    args = [(seed, dtype, (1, 2, None, -1)[seed % 4]) for seed in range(N_PY_THREADS)]
    serial = [_everything(*a) for a in args]
    for _ in range(2):
        threaded = _run_in_threads(_everything, args)
        for got, want in zip(threaded, serial, strict=True):
            _assert_bitwise_equal(got, want)


@pytest.mark.parametrize("n_threads", [1, 2, None])
def test_one_shared_model_forward_and_gradient_from_many_threads(n_threads):
    rnn = crnn.RNN(3, 12, 2, seed=0, n_threads=n_threads)
    before = [w.copy() for w in (rnn.U, rnn.W, rnn.V)]

    def calls(seed):
        X, target = _data(100 + seed, N=5)
        out = []
        for k in range(6):
            method = ("bptt", "rtrl")[k % 2]
            out.append(rnn.forward(X[k % 5 :]))
            out.append(rnn.predict(X[0], np.full(12, 0.1 * seed)))
            out.append(rnn.loss(X, target, g=0.5))
            out.append(rnn.gradient(X, target, method=method))
        return out

    args = [(seed,) for seed in range(N_PY_THREADS)]
    serial = [calls(*a) for a in args]
    threaded = _run_in_threads(calls, args)
    for got, want in zip(threaded, serial, strict=True):
        _assert_bitwise_equal(got, want)
    for w, b in zip((rnn.U, rnn.W, rnn.V), before, strict=True):
        assert np.array_equal(w, b), "a read-only call changed the shared model"


class Pause:
    """Hold a training call of a model inside its critical section, in another thread."""

    def __init__(self):
        self.inside, self.released = threading.Event(), threading.Event()
        self.threads, self.errors = [], []

    def start(self, fn, model, hook):
        """Run fn() in a thread; its first call of model.<hook> waits for release()."""
        original = getattr(model, hook)

        def blocking(*args, **kwargs):
            setattr(model, hook, original)  # only the first call waits
            self.inside.set()
            assert self.released.wait(timeout=60)
            return original(*args, **kwargs)

        setattr(model, hook, blocking)

        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - checked by the test
                self.errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        self.threads.append(t)
        assert self.inside.wait(timeout=60), "the first call did not reach its critical section"

    def release(self):
        self.released.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive()


@pytest.fixture
def pause():
    p = Pause()
    yield p
    p.release()


def _first_and_second(kind, model):
    X, target = _data(0, N=4, T=10, n=model.input_size, m=model.output_size)
    trainer = crnn.OnlineRTRL(model)
    return (
        {
            "fit": (lambda: model.fit(X, target, epochs=2), "gradient"),
            "partial_fit": (lambda: model.partial_fit(X, target), "gradient"),
            "online": (lambda: trainer.learn(X[0], target[0]), "_kernel_weights"),
        }[kind],
        X,
        target,
        trainer,
    )


SECOND_CALLS = {
    "fit": lambda model, X, target, trainer: model.fit(X, target, epochs=1),
    "partial_fit": lambda model, X, target, trainer: model.partial_fit(X, target),
    "online-same-trainer": lambda model, X, target, trainer: trainer.learn(X[0], target[0]),
    "online-same-trainer-step": lambda model, X, target, trainer: trainer.step(
        X[0, 0], target[0, 0]
    ),
    "online-other-trainer": lambda model, X, target, trainer: crnn.OnlineRTRL(model).learn(
        X[0], target[0]
    ),
}


@pytest.mark.parametrize("second", list(SECOND_CALLS))
@pytest.mark.parametrize("first", ["fit", "partial_fit", "online"])
def test_two_training_calls_on_one_model_fail_loudly(pause, first, second):
    model = crnn.RNN(3, 6, 2, seed=0)
    (fn, hook), X, target, trainer = _first_and_second(first, model)
    pause.start(fn, model, hook)
    # the first call is inside its critical section: the second must not start
    with pytest.raises(RuntimeError, match="being changed by"):
        SECOND_CALLS[second](model, X, target, trainer)
    pause.release()
    assert not pause.errors, pause.errors  # the first call finished normally
    # and the model can be trained again
    model.partial_fit(X, target)
    trainer.learn(X[0], target[0])


def test_a_trainer_cannot_be_reset_or_given_a_state_while_it_learns(pause):
    model = crnn.RNN(3, 6, 2, seed=0)
    (fn, hook), X, _, trainer = _first_and_second("online", model)
    pause.start(fn, model, hook)
    with pytest.raises(RuntimeError, match=r"being changed by OnlineRTRL\.learn"):
        trainer.reset()
    with pytest.raises(RuntimeError, match=r"being changed by OnlineRTRL\.learn"):
        trainer.state = np.zeros(6)
    # reading is fine, and so is predicting with the model from a copy
    copy.deepcopy(model).predict(X)


def test_the_hold_is_released_when_a_training_call_fails():
    model = crnn.RNN(1, 4, seed=0)
    start = [w.copy() for w in (model.U, model.W, model.V)]
    X = np.sin(np.arange(40) / 3.0).reshape(2, 20, 1)
    with pytest.raises(FloatingPointError):
        model.fit(X, X * 1e150, epochs=5, optimizer="sgd", lr=1e150)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(X, X, epochs=0)
    model.U, model.W, model.V = start
    model.fit(X, X, epochs=1)  # not held by the failed calls
    trainer = crnn.OnlineRTRL(model, lr=1e300)
    with pytest.raises(FloatingPointError):
        trainer.learn(X[0] * 1e3, X[0] * 1e300)
    trainer.lr = 0.01
    trainer.learn(X[0], X[0])


def test_many_threads_training_one_model_never_race():
    """Without any pause: each call either runs alone or is refused, never interleaved."""
    model = crnn.RNN(3, 8, 2, seed=0)
    X, target = _data(1, N=4, T=40)
    outcomes = []
    lock = threading.Lock()

    def train(k):
        for _ in range(5):
            try:
                if k % 2:
                    model.partial_fit(X, target)
                else:
                    crnn.OnlineRTRL(model, lr=1e-3).learn(X[k % 4], target[k % 4])
                result = "ran"
            except RuntimeError as exc:
                result = "refused" if "being changed by" in str(exc) else repr(exc)
            with lock:
                outcomes.append(result)

    _run_in_threads(train, [(k,) for k in range(6)])
    assert len(outcomes) == 30
    assert set(outcomes) <= {"ran", "refused"}, outcomes
    assert "ran" in outcomes
    assert all(np.isfinite(w).all() for w in (model.U, model.W, model.V))


# ---------------------------------------------------------------------- OpenMP's own limits

_BIG = 10**9  # multiply-adds: enough to ask for every thread


def _default_threads_in_a_child(env):
    import os
    import subprocess
    import sys

    code = f"from crnn import _kernels; print(_kernels.threads(None, 64, {_BIG}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(out.stdout)


def test_the_default_thread_count_honours_omp_num_threads():
    from crnn import _core
    from crnn._validation import available_cpus

    if not _core._openmp_enabled():
        pytest.skip("a build without OpenMP runs on one thread")
    assert _default_threads_in_a_child({"OMP_NUM_THREADS": "1"}) == 1
    expected = min(64, available_cpus())
    assert _default_threads_in_a_child({"OMP_NUM_THREADS": str(expected)}) == expected
    # an explicit count is the user's: OpenMP's limit does not cut it
    from crnn import _kernels

    assert _kernels.threads(2, 64, _BIG) == 2


def test_the_default_thread_count_honours_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from crnn import _core, _kernels
    from crnn._validation import available_cpus

    if not _core._openmp_enabled():
        pytest.skip("a build without OpenMP runs on one thread")
    before = _kernels.threads(None, 64, _BIG)
    assert before == min(64, available_cpus(), _core._openmp_max_threads())
    with threadpoolctl.threadpool_limits(1, "openmp"):
        assert _kernels.threads(None, 64, _BIG) == 1
        rnn = crnn.RNN(2, 8, seed=0)
        X = np.random.default_rng(0).normal(size=(64, 5, 2))
        inside = rnn.forward(X)[1]
    assert _kernels.threads(None, 64, _BIG) == before
    np.testing.assert_array_equal(rnn.forward(X)[1], inside)
