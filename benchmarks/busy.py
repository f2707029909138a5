#!/usr/bin/env python
# SPDX-License-Identifier: BSD-3-Clause
"""The default thread count on a busy machine (issue 13, point 2).

``python benchmarks/busy.py [--repeats R] [--scenes quiet,busy,blas,nested] [--json OUT]``

For each scene, every call below is timed with the default thread count
(``n_threads=None``) and with ``n_threads=1``, the two taking turns within
each repeat; a row gives the median seconds of each and their ratio
default / one thread. The scenes:

- ``quiet``: nothing else runs (the default should keep its two-thread
  speed-up: ratios below 1 on the larger calls);
- ``busy``: another process spins on a core for the whole scene (a second
  user's job, a build, another script);
- ``blas``: every call follows a 512 x 512 numpy matrix product, whose
  OpenBLAS threads keep spinning for a while after it (a loop that mixes
  numpy and crnn);
- ``nested``: another process makes crnn gradient calls with the default
  thread count all along (two joblib or Dask workers on one machine, each
  running crnn).

Goal: in the busy scenes, the default is never more than 1.3 times slower
than one thread, for any call. The calls run from small (0.05 ms) to large
(tens of ms), forward, loss, both gradients, ``generate``, lists of
sequences, and ``fit`` on 200 sequences of 50 steps in batches of 16 (the
case that was 5.9 times slower by default with one core busy).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
from run import _cpu_name  # benchmarks/run.py, beside this file

import crnn


def _calls():
    """[(name, hidden size, fn(model))], small to large."""
    rng = np.random.default_rng(0)
    calls = []
    for N, T, d in ((4, 20, 16), (16, 50, 16), (16, 50, 32), (32, 200, 32), (64, 100, 64)):
        X = rng.standard_normal((N, T, 4))
        Y = rng.standard_normal((N, T, 4))
        size = f"N{N} T{T} d{d}"
        calls.append((f"forward {size}", d, lambda r, X=X: r.forward(X)))
        calls.append((f"loss {size}", d, lambda r, X=X, Y=Y: r.loss(X, Y)))
        calls.append((f"bptt {size}", d, lambda r, X=X, Y=Y: r.gradient(X, Y)))
        if d == 16:
            calls.append((f"rtrl {size}", d, lambda r, X=X, Y=Y: r.gradient(X, Y, method="rtrl")))
    x0 = rng.standard_normal((32, 4))
    calls.append(("generate N32 T100 d32", 32, lambda r: r.generate(100, x0=x0)))
    lengths = rng.integers(10, 200, size=32)
    Xs = [rng.standard_normal((int(t), 4)) for t in lengths]
    Ys = [rng.standard_normal((int(t), 4)) for t in lengths]
    calls.append(("list loss 32 seqs d32", 32, lambda r: r.loss(Xs, Ys)))
    calls.append(("list bptt 32 seqs d32", 32, lambda r: r.gradient(Xs, Ys)))
    Xf = rng.standard_normal((200, 50, 4))
    Yf = rng.standard_normal((200, 50, 4))

    def fit(r):
        r.fit(Xf, Yf, epochs=1, batch_size=16, shuffle=False)

    calls.append(("fit 200x50 d16 batches of 16", 16, fit))
    return calls


_COMPETITORS = {
    "busy": "while True: pass",
    "nested": (
        "import numpy as np, crnn\n"
        "r = crnn.RNN(4, 32, 4, seed=0)\n"
        "X = np.random.default_rng(0).standard_normal((32, 100, 4))\n"
        "while True: r.gradient(X, X)"
    ),
}


def _loop(fn, before, min_time):
    """Seconds per call of fn over a loop lasting min_time (before() runs untimed first)."""
    total, k = 0.0, 0
    while total < min_time:
        before()
        start = time.perf_counter()
        fn()
        total += time.perf_counter() - start
        k += 1
    return total / k


def _scene(name, calls, repeats, min_time):
    """{call: (default seconds, one-thread seconds)} under the scene `name`."""
    competitor = None
    before = lambda: None
    if name in ("busy", "nested"):
        competitor = subprocess.Popen([sys.executable, "-c", _COMPETITORS[name]])
        time.sleep(1.0)
    elif name == "blas":
        A = np.ones((512, 512))
        before = lambda: A @ A
    rows = {}
    try:
        for call, d, fn in calls:
            default = crnn.RNN(4, d, 4, seed=1)
            single = crnn.RNN(4, d, 4, seed=1, n_threads=1)
            fn(default), fn(single)  # warm-up
            times = {"default": [], "one": []}
            for _ in range(repeats):
                times["default"].append(_loop(lambda: fn(default), before, min_time))  # noqa: B023
                times["one"].append(_loop(lambda: fn(single), before, min_time))  # noqa: B023
            rows[call] = (statistics.median(times["default"]), statistics.median(times["one"]))
            a, b = rows[call]
            print(
                f"{name:6s} {call:30s} {a * 1e3:10.3f} ms {b * 1e3:10.3f} ms {a / b:7.2f}",
                flush=True,
            )
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timed loop")
    parser.add_argument("--scenes", default="quiet,busy,blas,nested")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    print(f"CPU: {_cpu_name()}; crnn {crnn.__version__}; numpy {np.__version__}")
    print(f"{'scene':6s} {'call':30s} {'default':>13s} {'n_threads=1':>13s} {'ratio':>7s}")
    calls = _calls()
    result = {"cpu": _cpu_name(), "scenes": {}}
    for scene in args.scenes.split(","):
        result["scenes"][scene] = _scene(scene, calls, args.repeats, args.min_time)
    for scene, rows in result["scenes"].items():
        ratios = [a / b for a, b in rows.values()]
        worst = max(rows, key=lambda c: rows[c][0] / rows[c][1])
        print(
            f"{scene}: default / one thread from {min(ratios):.2f} to {max(ratios):.2f} (worst: {worst})"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
