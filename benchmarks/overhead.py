"""The fixed cost of a call: crnn's small calls against the same step in plain numpy.

    python benchmarks/overhead.py [--repeats 7] [--json out.json]

Times, on one thread, d = 16 (n = m = 4): ``rnn.step(x)``, ``OnlineRTRL.step``,
``forward``, ``loss`` and ``gradient`` (both methods) on one step of one
sequence, and a mini-batch gradient of 16 sequences of 50 steps; beside them
the step of the same model written in plain numpy (``s = tanh(U x + W s);
y = V s``) and, when PyTorch is installed, ``torch.nn.RNNCell`` with a Linear
output. Each figure is the median over repeats of the mean time of a loop of
calls; ratios are to the numpy step measured in the same run, the rows
taking turns in every repeat, judged on CPU time (see ``_time``). Targets (issue
12): ``step`` <= 1.5x the numpy step, ``OnlineRTRL.step`` <= 3x, the calls on
T = N = 1 <= 3x.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
from run import _cpu_name  # benchmarks/run.py: the CPU's model name

import crnn


def _loops(fn, min_time=0.02):
    """Calls of fn in one timed loop: enough for min_time seconds."""
    fn()
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - t0 >= min_time:
            return loops
        loops *= 2


def _time(fn, loops):
    """(wall, CPU) seconds per call of fn over a loop of `loops` calls.

    CPU time is this thread's (time.thread_time): on a shared machine it
    leaves out the time the thread waited for a core.
    """
    w0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - w0) / loops, (time.thread_time() - c0) / loops


def main(argv=None):
    """Run the timings and print a table of microseconds and ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    n, d, m = 4, 16, 4
    rng = np.random.default_rng(0)
    rnn = crnn.RNN(n, d, m, seed=0, n_threads=1)
    U, W, V = rnn.U.copy(), rnn.W.copy(), rnn.V.copy()
    x = rng.normal(size=n)
    y = rng.normal(size=m)
    X1 = rng.normal(size=(1, n))
    Y1 = rng.normal(size=(1, m))
    Xb = rng.normal(size=(16, 50, n))
    Yb = rng.normal(size=(16, 50, m))
    online = crnn.OnlineRTRL(crnn.RNN(n, d, m, seed=1), lr=0.0)

    state = {"s": np.zeros(d)}

    def numpy_step():
        s = np.tanh(U @ x + W @ state["s"])
        state["s"] = s
        return V @ s

    rows = [("numpy step (plain numpy, the yardstick)", numpy_step)]
    try:
        import torch

        torch.set_num_threads(1)
        cell = torch.nn.RNNCell(n, d, bias=False, dtype=torch.float64)
        out = torch.nn.Linear(d, m, bias=False, dtype=torch.float64)
        xt = torch.from_numpy(x)[None]
        ht = {"h": torch.zeros(1, d, dtype=torch.float64)}

        def torch_step():
            with torch.no_grad():
                ht["h"] = cell(xt, ht["h"])
                return out(ht["h"])

        rows.append(("torch RNNCell + Linear step", torch_step))
    except ImportError:
        pass
    rows += [
        ("crnn rnn.step(x)", lambda: rnn.step(x)),
        ("crnn OnlineRTRL.step(x, y)", lambda: online.step(x, y)),
        ("crnn forward, T = N = 1", lambda: rnn.forward(X1)),
        ("crnn loss, T = N = 1", lambda: rnn.loss(X1, Y1)),
        ("crnn gradient bptt, T = N = 1", lambda: rnn.gradient(X1, Y1)),
        ("crnn gradient rtrl, T = N = 1", lambda: rnn.gradient(X1, Y1, method="rtrl")),
        ("crnn gradient bptt, 16 x 50 steps", lambda: rnn.gradient(Xb, Yb)),
    ]
    targets = {
        "crnn rnn.step(x)": 1.5,
        "crnn OnlineRTRL.step(x, y)": 3.0,
        "crnn forward, T = N = 1": 3.0,
        "crnn loss, T = N = 1": 3.0,
        "crnn gradient bptt, T = N = 1": 3.0,
        "crnn gradient rtrl, T = N = 1": 3.0,
    }
    print(f"crnn {crnn.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    print(f"CPU: {_cpu_name()}; d = {d}, n = m = {n}, float64, one thread")
    # the rows take turns in every repeat, so that a change of load on a
    # shared machine reaches them all; a ratio is the median over repeats of
    # the ratio within a repeat
    loops = [_loops(fn) for _, fn in rows]
    wall = {name: [] for name, _ in rows}
    cpu = {name: [] for name, _ in rows}
    for _ in range(args.repeats):
        for (name, fn), k in zip(rows, loops, strict=True):
            w, c = _time(fn, k)
            wall[name].append(w)
            cpu[name].append(c)
    base = rows[0][0]
    print(f"{'':42s} {'CPU time':>12s}  {'ratio (CPU)':>11s}  {'(wall)':>7s}")
    results = {}
    for name, _ in rows:
        t = statistics.median(cpu[name])
        ratio = statistics.median(c / b for c, b in zip(cpu[name], cpu[base], strict=True))
        ratio_wall = statistics.median(w / b for w, b in zip(wall[name], wall[base], strict=True))
        results[name] = {"cpu": t, "ratio_cpu": ratio, "ratio_wall": ratio_wall}
        target = targets.get(name)
        verdict = ""
        if target is not None:
            verdict = f"target <= {target}x: {'met' if ratio <= target else 'NOT met'}"
        print(f"{name:42s} {t * 1e6:9.2f} us  {ratio:10.2f}x  {ratio_wall:6.2f}x  {verdict}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": _cpu_name(), "calls": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
