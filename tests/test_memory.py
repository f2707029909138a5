"""No memory growth over thousands of calls of each entry point (issue 4, section 4).

A child process calls each entry point a few hundred times (so that caches,
such as the per-thread kernel workspaces, reach their size), then thousands
of times more while measuring

- the memory traced by tracemalloc (Python objects and numpy's buffers), which
  catches any array, object or reference kept per call;
- the resident set size (/proc/self/statm), which also catches memory the
  compiled kernels or the OpenMP runtime would take and not give back.

Refused calls (bad input, damaged files) are measured too: an exception
holding on to its arguments, or a kernel leaking on an error path, grows too.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import crnn

HERE = pathlib.Path(__file__).resolve().parent

#: Calls measured per entry point (after as many again to warm up), by default.
CALLS = 1500
WARM_UP = 300  # calls before the measured ones
#: Most traced bytes the CALLS calls may add (a leak of 44 bytes per call fails).
TRACED_LIMIT = 64 << 10
#: Most resident bytes they may add (a leak of 2.8 KiB per call fails).
RSS_LIMIT = 4 << 20


def _entry_points(tmp):
    """name -> (a call of no arguments, how many calls to measure)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 20, 3))
    target = rng.normal(size=(4, 20, 2))
    rnn = crnn.RNN(3, 8, 2, seed=0)
    rnn32 = crnn.RNN(3, 8, 2, seed=0, dtype=np.float32)
    two = crnn.RNN(3, 8, 2, seed=0, n_threads=2)
    square = crnn.RNN(3, 8, seed=0)
    trainer = crnn.OnlineRTRL(crnn.RNN(3, 8, 2, seed=1), lr=1e-4)
    fitted = crnn.RNN(3, 8, 2, seed=2)
    path = os.path.join(tmp, "model.npz")
    crnn.save(rnn, path)
    damaged = os.path.join(tmp, "damaged.npz")
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    data[len(data) // 2] ^= 0xFF
    with open(damaged, "wb") as fh:
        fh.write(bytes(data))
    csv = os.path.join(tmp, "series.csv")
    np.savetxt(csv, np.sin(np.arange(50) / 4.0)[:, None], delimiter=",")
    cli_model = os.path.join(tmp, "cli.npz")
    crnn.save(crnn.RNN(1, 4, seed=0), cli_model)
    out_csv = os.path.join(tmp, "out.csv")
    Xnan = X.copy()
    Xnan[1, 2, 0] = np.nan

    def refused(fn, exc):
        def call():
            try:
                fn()
            except exc:
                return
            raise AssertionError("not refused")

        return call

    def cli_predict():
        from crnn._cli import main

        assert main(["predict", cli_model, csv, "-o", out_csv, "--force"]) == 0

    return {
        "RNN()": (lambda: crnn.RNN(3, 8, 2, seed=0), CALLS),
        "RNN.from_weights": (lambda: crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V), CALLS),
        "weight assignment": (lambda: setattr(fitted, "W", rnn.W), CALLS),
        "forward": (lambda: rnn.forward(X), CALLS),
        "forward float32": (lambda: rnn32.forward(X), CALLS),
        # an OpenMP team per call: slow on a busy machine, so fewer calls
        "forward 2 threads": (lambda: two.forward(X), 300),
        "predict": (lambda: rnn.predict(X[0], return_state=True), CALLS),
        "loss": (lambda: rnn.loss(X, target), CALLS),
        "gradient bptt": (lambda: rnn.gradient(X, target), CALLS),
        "gradient rtrl": (lambda: rnn.gradient(X[:, :5], target[:, :5], method="rtrl"), CALLS),
        "gradient 2 threads": (lambda: two.gradient(X, target), 300),
        "fit": (lambda: fitted.fit(X, target, epochs=1, lr=1e-4, seed=0), CALLS),
        # partial_fit appends to loss_curve_ by design: that history is emptied each call
        "partial_fit": (lambda: fitted.partial_fit(X, target, lr=1e-4).loss_curve_.clear(), CALLS),
        "OnlineRTRL.learn": (lambda: trainer.learn(X[0], target[0]), CALLS),
        "OnlineRTRL.step": (lambda: trainer.step(X[0, 0], target[0, 0]), CALLS),
        "OnlineRTRL()": (lambda: crnn.OnlineRTRL(rnn), CALLS),
        "step": (lambda: square.step(X[0, 0]), CALLS),
        "generate": (lambda: square.generate(5, X[:, :5]), CALLS),
        "save": (lambda: crnn.save(rnn, path), 300),
        "load": (lambda: crnn.load(path), 1000),
        "refused forward (NaN)": (refused(lambda: rnn.forward(Xnan), ValueError), CALLS),
        "refused gradient (shape)": (refused(lambda: rnn.gradient(X, X), ValueError), CALLS),
        "refused fit (NaN)": (refused(lambda: fitted.fit(Xnan, target), ValueError), CALLS),
        "refused load (damaged)": (refused(lambda: crnn.load(damaged), ValueError), CALLS),
        "refused RNN (too large)": (refused(lambda: crnn.RNN(10**6, 10**6), MemoryError), CALLS),
        "the command: predict": (cli_predict, 150),
    }


def _rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(tmp, names):
    """Measure each entry point; print one JSON line per entry point."""
    import gc
    import tracemalloc
    import warnings

    warnings.simplefilter("error")
    points = _entry_points(tmp)

    def settle():
        gc.collect()
        # CPython's attribute cache keeps up to 4096 names looked up with getattr (built
        # strings such as "_" + name): bounded, but it would look like growth
        getattr(sys, "_clear_type_cache", lambda: None)()

    for name in names:
        call, count = points[name]
        for _ in range(min(count, WARM_UP)):  # caches reach their size (untraced: faster)
            call()
        settle()
        # what the measured calls allocate and leave alive: traced from here
        tracemalloc.start()
        traced0, rss0 = tracemalloc.get_traced_memory()[0], _rss()
        for _ in range(count):
            call()
        settle()
        traced, rss = tracemalloc.get_traced_memory()[0] - traced0, _rss() - rss0
        tracemalloc.stop()
        print(json.dumps({"name": name, "calls": count, "traced": traced, "rss": rss}), flush=True)


def _names(tmp_path):
    return list(_entry_points(str(tmp_path)))


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memory")
    names = _names(tmp)
    script = "import sys, json, test_memory as t\nt.child(sys.argv[1], json.loads(sys.argv[2]))\n"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    )
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script, str(tmp), json.dumps(names)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return {row["name"]: row for row in rows}


ENTRY_POINTS = [
    "RNN()",
    "RNN.from_weights",
    "weight assignment",
    "forward",
    "forward float32",
    "forward 2 threads",
    "predict",
    "loss",
    "gradient bptt",
    "gradient rtrl",
    "gradient 2 threads",
    "fit",
    "partial_fit",
    "OnlineRTRL.learn",
    "OnlineRTRL.step",
    "OnlineRTRL()",
    "step",
    "generate",
    "save",
    "load",
    "refused forward (NaN)",
    "refused gradient (shape)",
    "refused fit (NaN)",
    "refused load (damaged)",
    "refused RNN (too large)",
    "the command: predict",
]


def test_the_list_is_every_measured_entry_point(tmp_path):
    assert _names(tmp_path) == ENTRY_POINTS


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_no_growth_over_thousands_of_calls(measured, name):
    row = measured[name]
    assert row["traced"] < TRACED_LIMIT, (
        f"{name}: {row['calls']} calls kept {row['traced']} bytes of traced memory"
    )
    assert row["rss"] < RSS_LIMIT, (
        f"{name}: {row['calls']} calls grew the RSS by {row['rss']} bytes"
    )


def test_the_measurement_sees_a_leak(tmp_path):
    """A call that keeps 4 KiB each time is caught by both measures."""
    script = (
        "import numpy as np, test_memory as t\n"
        "kept = []\n"
        "t._entry_points = lambda tmp: {'leak': (lambda: kept.append(np.ones(512)), 2000)}\n"
        "t.child('.', ['leak'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(HERE))
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    row = json.loads(out.stdout)
    assert row["traced"] > TRACED_LIMIT
    assert row["rss"] > RSS_LIMIT
