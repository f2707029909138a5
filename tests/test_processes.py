"""Processes and signals (issue 13, points 1 and 3): fork, Ctrl-C, reentrant calls.

Every case runs a script in a subprocess with a timeout, so that a hang (a
forked child waiting on OpenMP threads that do not exist) fails the test
instead of hanging the suite. Each script prints "ok" when its checks pass.
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import crnn
from crnn import _core

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork and signals as on Linux")


def _script(code, timeout=120):
    """Run code in a fresh interpreter; fail on a hang, a crash or a missing "ok"."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script hung (no end in {timeout} s): {exc.stderr}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
    return proc.stdout


# What every entry point gives, computed in the parent after calls that used
# two OpenMP threads, then again in a forked child.
_CALLS = """
import numpy as np, crnn
rng = np.random.default_rng(0)
model = crnn.RNN(3, 24, 3, seed=0, n_threads={n_threads})
X = rng.standard_normal((8, 60, 3))
target = rng.standard_normal((8, 60, 3))

def calls():
    S, Y = model.forward(X)
    out = [S, Y, np.array(model.loss(X, target)), model.generate(5, X[:, :3])]
    for method in ("bptt", "rtrl"):
        G = model.gradient(X, target, method=method)
        out += [G.U, G.W, G.V, G.s0]
    other = crnn.RNN(3, 24, 3, seed=1, n_threads={n_threads})
    other.fit(X, target, epochs=2, seed=0, batch_size=4)
    out += [other.U, other.W, other.V]
    online = crnn.OnlineRTRL(crnn.RNN(3, 24, 3, seed=2), lr=0.01)
    out += [online.learn(X[0], target[0]), online.model.W]
    return out

def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

expected = calls()
"""


@pytest.mark.skipif(not _core._openmp_enabled(), reason="no OpenMP: no thread pool to lose")
@pytest.mark.parametrize("n_threads", [2, None])
def test_forked_child_runs_every_entry_point(n_threads):
    # before: the child's first call waited for ever on the parent's thread pool
    _script(
        _CALLS.format(n_threads=n_threads)
        + """
import os
pid = os.fork()
if pid == 0:
    os._exit(0 if same(calls(), expected) and same(calls(), expected) else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert same(calls(), expected)  # the parent still runs on its threads
print("ok")
""",
        timeout=60,
    )


@pytest.mark.skipif(not _core._openmp_enabled(), reason="no OpenMP: no thread pool to lose")
def test_fork_pools_and_process_pool_executor():
    _script(
        _CALLS.format(n_threads=None)
        + """
import multiprocessing, concurrent.futures

def child(_):
    return same(calls(), expected)

with multiprocessing.get_context("fork").Pool(2) as pool:
    assert all(pool.map(child, range(3)))
with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as ex:
    assert all(ex.map(child, range(3)))
print("ok")
""",
        timeout=90,
    )


def test_fork_while_another_thread_trains():
    # before: the child's copy stayed marked "being changed" for ever
    _script(
        """
import os, threading, time
import numpy as np, crnn
from crnn import _guard
rng = np.random.default_rng(0)
model = crnn.RNN(2, 8, seed=0)
X, target = rng.standard_normal((4, 30, 2)), rng.standard_normal((4, 30, 2))
done = threading.Event()
thread = threading.Thread(target=lambda: model.fit(X, target, epochs=10**6, n_iter_no_change=10**9))
thread.start()
deadline = time.monotonic() + 30
while not _guard._holders and time.monotonic() < deadline:
    time.sleep(0.001)
assert _guard._holders
pid = os.fork()
if pid == 0:
    try:
        model.partial_fit(X, target)
        with _guard.exclusive("a test", model):
            pass
    except RuntimeError:
        os._exit(3)
    os._exit(0)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
try:  # the parent's fit still holds its model
    model.partial_fit(X, target)
    raise SystemExit("the parent's mark was lost")
except RuntimeError:
    pass
print("ok" if code == 0 else code, flush=True)
os._exit(0)  # the training thread never ends
""",
        timeout=60,
    )


# ---------------------------------------------------------------------- Ctrl-C in a kernel

_KILL = """
import os, signal, threading, time
def sigint_after(seconds):
    sent = []
    def send():
        time.sleep(seconds)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=send, daemon=True).start()
    return sent
"""

# a training model's state after an update (the optimizer's step count, the
# weights, its slots), and whether two are the same update
_ONE_UPDATE = """
import numpy as np
def state(model):
    opt = model._fit_state["optimizer"]
    slots = {k: v.copy() for k, v in sorted(opt.__dict__.get("_slots", {}).items())}
    return opt.t, {k: v.copy() for k, v in model.parameters().items()}, slots

def same(a, b):
    return a[0] == b[0] and all(
        np.array_equal(a[i][k], b[i][k]) for i in (1, 2) for k in a[i]
    ) and a[1].keys() == b[1].keys() and a[2].keys() == b[2].keys()
"""


@pytest.mark.parametrize("method", ["rtrl", "bptt"])
def test_a_long_gradient_stops_soon_after_ctrl_c(method):
    # before: RTRL ran to its end before the KeyboardInterrupt, BPTT to the
    # end of its chunk; sizes for calls of 4 to 9 s here (one BPTT chunk)
    sizes = {"rtrl": "(2, 1500, 4), 64", "bptt": "(1, 6000, 4), 1024"}[method]
    out = _script(
        _KILL
        + f"""
import numpy as np, crnn
shape, d = {sizes}
rng = np.random.default_rng(0)
model = crnn.RNN(4, d, 4, seed=0, n_threads=2)
X, target = rng.standard_normal(shape), rng.standard_normal(shape)
small = X[:, :50], target[:, :50]
expected = model.gradient(*small, method="{method}")
t0 = time.perf_counter()
sent = sigint_after(0.3)
try:
    model.gradient(X, target, method="{method}")
    raise SystemExit("not interrupted, in %.2f s" % (time.perf_counter() - t0))
except KeyboardInterrupt:
    late = time.perf_counter() - sent[0]
G = model.gradient(*small, method="{method}")  # the workspaces are fine
assert np.array_equal(G.W, expected.W) and np.array_equal(G.s0, expected.s0)
print("stopped %.3f s after the signal" % late)
assert late < 2.0, late
print("ok")
""",
    )
    print(out)


def test_fit_and_partial_fit_interrupted_hold_one_update():
    # before: Ctrl-C in the optimizer's step left U of update k + 1 with W of update k
    _script(
        _KILL
        + _ONE_UPDATE
        + """
import copy
import numpy as np, crnn
from crnn import _fit

rng = np.random.default_rng(0)
X, target = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2))

# the interrupted runs first, then the reference: the state after every
# update of an uninterrupted run, as far as the interrupted runs went (how
# far depends on the machine's speed)
gots = []
for delay in np.linspace(0.05, 0.6, 12):
    model = crnn.RNN(2, 400, seed=0, bias=True)
    sigint_after(delay)
    try:
        model.fit(X, target, epochs=10**6, batch_size=1, seed=0, n_iter_no_change=10**9)
    except KeyboardInterrupt:
        pass
    gots.append((delay, state(model)))
reference = []
real = _fit.apply_update
def recording(params, optimizer, grads, loss, clip):
    real(params, optimizer, grads, loss, clip)
    reference.append(state(model))
_fit.apply_update = recording
model = crnn.RNN(2, 400, seed=0, bias=True)
reference.append((0, {k: v.copy() for k, v in model.parameters().items()}, {}))
epochs = max(got[0] for _, got in gots) // 2 + 1  # two updates an epoch
model.fit(X, target, epochs=epochs, batch_size=1, seed=0, n_iter_no_change=10**9)
_fit.apply_update = real
for delay, got in gots:
    assert same(got, reference[got[0]]), ("fit", delay, got[0])

# partial_fit: every call one update
gots = []
for delay in np.linspace(0.05, 0.4, 8):
    model = crnn.RNN(2, 400, seed=0, bias=True)
    model.partial_fit(X, target)
    sigint_after(delay)
    try:
        while True:
            model.partial_fit(X, target)
    except KeyboardInterrupt:
        pass
    gots.append((delay, state(model)))
reference = [None]
model = crnn.RNN(2, 400, seed=0, bias=True)
for _ in range(max(got[0] for _, got in gots)):
    model.partial_fit(X, target)
    reference.append(state(model))
for delay, got in gots:
    assert same(got, reference[got[0]]), ("partial_fit", delay, got[0])
print("ok")
""",
        timeout=300,
    )


def test_distributed_fit_interrupted_holds_one_update():
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    _script(
        _KILL
        + _ONE_UPDATE
        + """
import numpy as np, crnn, distributed, dask.array as da
import crnn.distributed as cd

rng = np.random.default_rng(0)
X = da.from_array(rng.standard_normal((4, 3, 2)), chunks=(2, -1, -1))
target = da.from_array(rng.standard_normal((4, 3, 2)), chunks=(2, -1, -1))

with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                        dashboard_address=":0") as client:
    options = dict(client=client, epochs=10**6, batch_size=2, seed=0, n_iter_no_change=10**9)
    gots = []  # the interrupted runs first, then the reference as far as they went
    for delay in np.linspace(0.2, 1.5, 8):
        model = crnn.RNN(2, 1000, seed=0)
        sigint_after(delay)
        try:
            cd.fit(model, X, target, **options)
        except KeyboardInterrupt:
            pass
        gots.append((delay, state(model)))
    reference = []
    real = cd.apply_update
    def recording(params, optimizer, grads, loss, clip):
        real(params, optimizer, grads, loss, clip)
        reference.append(state(model))
    cd.apply_update = recording
    model = crnn.RNN(2, 1000, seed=0)
    reference.append((0, {k: v.copy() for k, v in model.parameters().items()}, {}))
    options["epochs"] = max(got[0] for _, got in gots) // 2 + 1  # two updates an epoch
    cd.fit(model, X, target, **options)
    cd.apply_update = real
    for delay, got in gots:
        assert same(got, reference[got[0]]), (delay, got[0])
print("ok")
""",
        timeout=300,
    )


def test_online_learning_interrupted_holds_one_update():
    # before: a long chunk ran to its end; between two single steps, the
    # sensitivities could be those of one step and the weights of the next
    _script(
        _KILL
        + """
import numpy as np, crnn
rng = np.random.default_rng(0)
X, target = rng.standard_normal((400000, 2)), rng.standard_normal((400000, 2))

def snapshot(online):
    return [online.model.W.copy(), online.model.U.copy(), online.state.copy(),
            online.sensitivities, online.gradient_sum_.W]

def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

# one long chunk: stopped soon, and nothing changed
online = crnn.OnlineRTRL(crnn.RNN(2, 24, seed=0), lr=1e-3)
online.learn(X[:5], target[:5])
before = snapshot(online), online.n_steps_
t0 = time.perf_counter()
sent = sigint_after(0.3)
try:
    online.learn(X, target)
    raise SystemExit("not interrupted, in %.2f s" % (time.perf_counter() - t0))
except KeyboardInterrupt:
    late = time.perf_counter() - sent[0]
assert same(snapshot(online), before[0]) and online.n_steps_ == before[1]
assert late < 2.0, late

# a loop of single steps: the state of some number of whole steps
import hashlib
def digest(online):
    return hashlib.sha256(b"".join(a.tobytes() for a in snapshot(online))).digest()
steps = 40000
gots = []
for delay in np.linspace(0.02, 0.3, 10):
    online = crnn.OnlineRTRL(crnn.RNN(2, 24, seed=0), lr=1e-3)
    sigint_after(delay)
    try:
        for t in range(steps):
            online.step(X[t], target[t])
        raise SystemExit("not interrupted")
    except KeyboardInterrupt:
        pass
    gots.append((delay, online.model.W.tobytes(), digest(online)))
# the same steps, not interrupted: the digest after each step whose weights
# an interrupted run ended with (the others are not needed)
wanted = {w for _, w, _ in gots}
reference = {}
online = crnn.OnlineRTRL(crnn.RNN(2, 24, seed=0), lr=1e-3)
for t in range(steps):
    online.step(X[t], target[t])
    w = online.model.W.tobytes()
    if w in wanted:
        reference[w] = digest(online)
        if len(reference) == len(wanted):
            break
for delay, w, got in gots:
    assert reference.get(w) == got, ("steps", delay)
print("ok")
""",
        timeout=300,
    )


def test_a_call_from_a_signal_handler_gets_its_own_workspaces():
    # before: the handler's gradient, run between two chunks of an
    # interrupted one, wrote the chunk's partial sum: both came out wrong
    _script(
        """
import signal
import numpy as np, crnn
from crnn import _kernels
_kernels._BPTT_BYTES = 1 << 16  # many chunks, quickly
rng = np.random.default_rng(0)
model = crnn.RNN(3, 16, 3, seed=0, n_threads=2)
X, target = rng.standard_normal((400, 200, 3)), rng.standard_normal((400, 200, 3))
Xh, th = X[:40], target[:40]
expected = model.gradient(X, target)
inner = model.gradient(Xh, th)
results = []

def handler(signum, frame):
    G = model.gradient(Xh, th)
    results.append(np.array_equal(G.W, inner.W) and np.array_equal(G.U, inner.U))

signal.signal(signal.SIGALRM, handler)
outer = []
for delay in np.linspace(0.001, 0.03, 8):
    signal.setitimer(signal.ITIMER_REAL, delay)
    G = model.gradient(X, target)
    signal.setitimer(signal.ITIMER_REAL, 0)
    outer.append(np.array_equal(G.W, expected.W) and np.array_equal(G.U, expected.U))
assert len(results) >= 4, len(results)
assert all(results) and all(outer), (results, outer)

# inside a long kernel (the handler runs on its calling thread, within its
# parallel region): a gradient of either method, and a forward pass
model = crnn.RNN(4, 40, 4, seed=0, n_threads=2)
X, target = rng.standard_normal((2, 1500, 4)), rng.standard_normal((2, 1500, 4))
Xh, th = X[:, :30], target[:, :30]
expected = model.gradient(X, target, method="rtrl")
inner = [model.gradient(Xh, th, method=m) for m in ("bptt", "rtrl")] + [model.forward(Xh)]
results = []

def handler(signum, frame):
    got = [model.gradient(Xh, th, method=m) for m in ("bptt", "rtrl")] + [model.forward(Xh)]
    results.append(all(np.array_equal(x, y)
                       for a, b in zip(got, inner, strict=True)
                       for x, y in zip(arrays(a), arrays(b), strict=True)))

def arrays(out):
    return out if isinstance(out, tuple) else (out.U, out.W, out.V, out.s0)

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.03, 0.05)
G = model.gradient(X, target, method="rtrl")
signal.setitimer(signal.ITIMER_REAL, 0)
assert len(results) >= 3 and all(results), results
assert np.array_equal(G.W, expected.W) and np.array_equal(G.U, expected.U)
print("ok")
""",
    )


# ---------------------------------------------------------------------- crnn train


TRAIN_OPTIONS = ["--epochs", "100000", "--window", "200", "--hidden-size", "32"]


def test_crnn_train_interrupted_saves_the_best_model(tmp_path):
    # before: a traceback, status 1, and no model
    series = np.sin(np.arange(20000) * 0.05)[:, None]
    data = tmp_path / "series.npy"
    np.save(data, series)
    out = tmp_path / "model.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crnn", "train", data, "-o", out, *TRAIN_OPTIONS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = ""
        while "1/100000" not in seen:  # the first epoch's progress (a line, or tqdm's bar)
            char = proc.stderr.read(1)
            assert char, seen
            seen += char
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest, rest
    line = rest.strip().splitlines()[-1]
    assert line.startswith("crnn train: interrupted after epoch "), rest
    assert line.endswith(f"the best model so far is saved to {out}")
    k = int(line.split("epoch ")[1].split(";")[0])
    assert k >= 1
    model = crnn.load(out)
    assert model.interrupted_after_epoch_ == k
    assert model.data_mean_.shape == (1,)
    assert set(os.listdir(tmp_path)) == {"series.npy", "model.npz"}


def test_the_interrupted_epoch_is_saved_and_loaded(tmp_path):
    model = crnn.RNN(2, 4, seed=0)
    plain = crnn.load(model.save(tmp_path / "plain.npz"))
    assert not hasattr(plain, "interrupted_after_epoch_")
    model.interrupted_after_epoch_ = 7
    again = crnn.load(model.save(tmp_path / "stopped.npz"))
    assert again.interrupted_after_epoch_ == 7
