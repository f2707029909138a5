#!/usr/bin/env python
# SPDX-License-Identifier: BSD-3-Clause
"""The cell's options and sequences of different lengths, timed (issue 14).

``python benchmarks/cells.py [--old SITE] [--repeats R]`` prints three tables,
every figure the median of R repeats, the rows of a table interleaved within
each repeat (a shared machine's noise falls on all of them alike):

1. the cells: forward, BPTT and RTRL gradients of each activation with and
   without a leak, as ratios to Elman's cell (tanh, a = 1) in the same run,
   and PyTorch's ``nn.RNN(nonlinearity="relu")`` beside crnn's relu cell;
2. Elman's cell against the build before the cells existed (``--old``, a
   directory holding that build's ``crnn`` package: ``pip install --target
   SITE`` of the earlier commit), each call in its own subprocess pair,
   alternated: the ratio new / old of the median CPU times;
3. a list of sequences of lengths drawn from 10 to 1000 against the same
   sequences padded to the longest (zero weights on the padding), forward
   and gradient, for d = 16 and d = 64.

One thread each (``n_threads=1``, torch.set_num_threads(1)) so that the
ratios measure the work, not the scheduler of a shared machine.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from run import _cpu_name  # benchmarks/run.py, beside this file


def _time(fn, min_time=0.05):
    """Seconds of one call: a warm-up, then as many calls as last min_time, averaged."""
    fn()
    k, start = 0, time.perf_counter()
    while True:
        fn()
        k += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / k


def _interleaved(calls, repeats):
    """{name: median seconds}, each repeat running every call once, in turn."""
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(_time(fn))
    return {name: statistics.median(v) for name, v in times.items()}


CELLS = [
    ("tanh", 1.0),
    ("relu", 1.0),
    ("identity", 1.0),
    ("logistic", 1.0),
    ("tanh", 0.5),
    ("relu", 0.3),
]


def cells_table(repeats):
    import crnn

    rng = np.random.default_rng(0)
    print("\n1. cells: time / time of tanh, a = 1 (same op, same run)")
    for N, T, n, d, m, ops in (
        (32, 200, 4, 32, 4, ("forward", "bptt")),
        (1, 300, 4, 16, 4, ("forward", "bptt", "rtrl")),
    ):
        X = rng.normal(size=(N, T, n))
        Y = rng.normal(size=(N, T, m))
        calls = {}
        for act, leak in CELLS:
            rnn = crnn.RNN(n, d, m, activation=act, leak=leak, seed=0, n_threads=1)
            rnn.W *= 0.5  # relu and the identity stay bounded
            for op in ops:
                fn = {
                    "forward": lambda r=rnn, X=X: r.forward(X),
                    "bptt": lambda r=rnn, X=X, Y=Y: r.gradient(X, Y),
                    "rtrl": lambda r=rnn, X=X, Y=Y: r.gradient(X, Y, method="rtrl"),
                }[op]
                calls[(act, leak, op)] = fn
        torch_calls = _torch_relu(X, Y, d) if "rtrl" not in ops else {}
        t = _interleaved({**calls, **torch_calls}, repeats)
        print(f"  N={N} T={T} n={n} d={d} m={m}")
        for op in ops:
            base = t[("tanh", 1.0, op)]
            cells = "  ".join(
                f"{act} a={leak:g} {t[(act, leak, op)] / base:4.2f}" for act, leak in CELLS[1:]
            )
            print(f"    {op:8s} tanh a=1 {base * 1e3:8.3f} ms   {cells}")
            if ("torch", op) in t:
                print(
                    f"    {op:8s} torch relu {t[('torch', op)] * 1e3:8.3f} ms = "
                    f"{t[('torch', op)] / t[('relu', 1.0, op)]:.2f} x crnn relu"
                )


def _torch_relu(X, Y, d):
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    n, m = X.shape[2], Y.shape[2]
    rnn = torch.nn.RNN(n, d, nonlinearity="relu", bias=False, batch_first=True).double()
    lin = torch.nn.Linear(d, m, bias=False).double()
    Xt, Yt = torch.tensor(X), torch.tensor(Y)

    def forward():
        with torch.no_grad():
            return lin(rnn(Xt)[0])

    def bptt():
        rnn.zero_grad()
        lin.zero_grad()
        loss = ((lin(rnn(Xt)[0]) - Yt) ** 2).sum()
        loss.backward()

    return {("torch", "forward"): forward, ("torch", "bptt"): bptt}


_CHILD = r"""
import sys, time, numpy as np, crnn
op, N, T, n, d, m, k = sys.argv[1], *map(int, sys.argv[2:8])
rng = np.random.default_rng(0)
X = rng.normal(size=(N, T, n)); Y = rng.normal(size=(N, T, m))
rnn = crnn.RNN(n, d, m, seed=0, n_threads=1)
x = X[0, 0]
fn = {"forward": lambda: rnn.forward(X), "bptt": lambda: rnn.gradient(X, Y),
      "rtrl": lambda: rnn.gradient(X, Y, method="rtrl"), "step": lambda: rnn.step(x)}[op]
fn()
best = []
for _ in range(5):
    t0 = time.thread_time()
    for _ in range(k):
        fn()
    best.append((time.thread_time() - t0) / k)
print(min(best))
"""

AB_CASES = [
    ("step", 1, 1, 4, 16, 4, 20000),
    ("forward", 32, 200, 4, 32, 4, 30),
    ("bptt", 32, 200, 4, 32, 4, 10),
    ("bptt", 1, 1, 4, 16, 4, 5000),
    ("rtrl", 1, 300, 4, 16, 4, 10),
]


def ab_table(old, repeats):
    print(f"\n2. Elman's cell, this build against {old}: CPU time new / old (median of pairs)")
    for case in AB_CASES:
        ratios, news = [], []
        for _ in range(repeats):
            args = [sys.executable, "-c", _CHILD, *map(str, case)]
            new = float(subprocess.check_output(args, text=True))
            env = dict(os.environ, PYTHONPATH=old)
            was = float(subprocess.check_output(args, text=True, env=env))
            ratios.append(new / was)
            news.append(new)
        op, N, T, _, d, _, _ = case
        print(
            f"  {op:8s} N={N:3d} T={T:4d} d={d:3d}: {statistics.median(news) * 1e6:10.1f} us, "
            f"new / old {statistics.median(ratios):.3f}"
        )


def ragged_table(repeats):
    import crnn

    print("\n3. sequences of lengths 10..1000 (N = 64): a list against the padded batch")
    rng = np.random.default_rng(0)
    N, n, m = 64, 2, 1
    lengths = rng.integers(10, 1001, size=N)
    Xs = [rng.normal(size=(T, n)) for T in lengths]
    ts = [rng.normal(size=(T, m)) for T in lengths]
    Tm = int(lengths.max())
    Xp, tp, wp = np.zeros((N, Tm, n)), np.zeros((N, Tm, m)), np.zeros((N, Tm))
    for i, T in enumerate(lengths):
        Xp[i, :T], tp[i, :T], wp[i, :T] = Xs[i], ts[i], 1
    print(
        f"  steps: sum T_i = {lengths.sum()}, N max T = {N * Tm} ({lengths.sum() / (N * Tm):.2f})"
    )
    for d in (16, 64):
        rnn = crnn.RNN(n, d, m, seed=0, n_threads=1)
        calls = {
            "forward list": lambda r=rnn: r.forward(Xs),
            "forward padded": lambda r=rnn: r.forward(Xp),
            "gradient list": lambda r=rnn: r.gradient(Xs, ts),
            "gradient padded": lambda r=rnn: r.gradient(Xp, tp, sample_weight=wp),
        }
        t = _interleaved(calls, repeats)
        for op in ("forward", "gradient"):
            a, b = t[f"{op} list"], t[f"{op} padded"]
            print(
                f"  d={d:3d} {op:8s} list {a * 1e3:8.2f} ms  padded {b * 1e3:8.2f} ms  "
                f"list / padded {a / b:.2f}"
            )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--old", help="site directory of an earlier build, for table 2")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="one repeat each (CI's smoke run)")
    args = p.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    import crnn

    print(f"crnn {crnn.__version__} ({crnn._core.variant}), {_cpu_name()}, {os.cpu_count()} CPUs")
    cells_table(repeats)
    if args.old:
        ab_table(args.old, repeats)
    ragged_table(repeats)


if __name__ == "__main__":
    main()
