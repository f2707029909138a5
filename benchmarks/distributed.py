#!/usr/bin/env python
# SPDX-License-Identifier: BSD-3-Clause
"""Data-parallel training on Dask against a local fit on the same data (issue 5).

Run ``python benchmarks/distributed.py`` (``--quick`` for a smaller run,
``--help`` for the options). It

1. defines a dataset as a dask array generated on the workers, chunk by chunk
   (by default 200 000 noisy sine windows of 20 steps, next-step targets);
2. fits it with ``crnn.distributed.fit`` (full batch, Adam) on a
   ``LocalCluster`` of 1 and then 2 worker processes of 1 thread each:
   the first epoch includes generating and persisting the data, the next
   ones are timed apart (the median epoch);
3. records every task with Dask's task stream, and reports the fraction of
   each steady epoch during which the busiest worker was not computing a
   gradient (scheduling, transfers, the tree sum, the client's update; an
   upper bound on communication), and the bytes that travel per update;
4. fits the same data (computed locally) with ``RNN.fit(batch_size=None)`` at
   1 and 2 kernel threads, and reports throughput (sequences per second per
   epoch), the overhead of Dask against the local fit, peak memory (RSS) of
   each process, and the largest weight difference between the distributed
   and the local fit (they compute the same thing);
5. runs the gradients of the same chunks one after the other in this process,
   with no Dask, which is what one worker computes: against it, the 1-worker
   fit shows Dask's own overhead.
"""

import argparse
import os
import resource
import statistics
import sys
import time

# This file is named like the distributed package: take its folder off the path
# before anything imports distributed (here, and in the worker processes).
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import numpy as np

import crnn

try:
    import dask
    import dask.array as da
    import distributed

    import crnn.distributed as cd
except ImportError as exc:
    sys.exit(f"{exc}")


def windows(block_id, rows, length, seed):
    """Noisy sine windows of one chunk (rows, length + 1, 1), from (seed, chunk)."""
    rng = np.random.default_rng([seed, block_id])
    t = np.arange(length + 1)
    freq = rng.uniform(0.02, 0.1, size=(rows, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(rows, 1))
    s = np.sin(2 * np.pi * freq * t + phase) + 0.05 * rng.normal(size=(rows, length + 1))
    return s[..., np.newaxis]


def dataset(N, T, chunk, seed):
    """X, target as dask arrays (N, T, 1), made on the workers (no data in the graph)."""
    sizes = [min(chunk, N - s) for s in range(0, N, chunk)]
    blocks = [
        da.from_delayed(
            dask.delayed(windows, pure=True)(i, rows, T, seed), (rows, T + 1, 1), np.float64
        )
        for i, rows in enumerate(sizes)
    ]
    w = da.concatenate(blocks, axis=0)
    return w[:, :-1], w[:, 1:]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def busy_fraction(records, start, stop):
    """Largest share of [start, stop] one worker spent computing gradients; median task time."""
    busy, durations = {}, []
    for r in records:
        if not str(r["key"]).startswith("_shard_gradient"):
            continue
        for ss in r["startstops"]:
            if ss["action"] != "compute":
                continue
            a, b = max(ss["start"], start), min(ss["stop"], stop)
            if b > a:
                busy[r["worker"]] = busy.get(r["worker"], 0.0) + b - a
                durations.append(ss["stop"] - ss["start"])
    return max(busy.values(), default=0.0) / (stop - start), statistics.median(durations)


def fit_on_dask(n_workers, X, target, d, epochs, seed):
    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    started = time.perf_counter() - t0
    model = crnn.RNN(1, d, seed=seed)
    stamps = []
    begin = time.time()
    with distributed.get_task_stream(client) as ts:
        cd.fit(
            model,
            X,
            target,
            client=client,
            epochs=epochs + 1,
            lr=0.01,
            n_iter_no_change=10**6,
            callback=lambda m: stamps.append(time.time()),
        )
    epoch_times = np.diff(stamps)
    busy, task = busy_fraction(ts.data, stamps[0], stamps[-1])
    rss = client.run(peak_rss_mib)
    client.close()
    cluster.close()
    return {
        "model": model,
        "cluster start (s)": started,
        "first epoch, with persisting (s)": stamps[0] - begin,
        "epoch (s)": statistics.median(epoch_times),
        "not computing": 1 - busy,
        "gradient task (s)": task,
        "worker peak RSS (MiB)": max(rss.values()),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sequences", type=int, default=200_000)
    p.add_argument("--length", type=int, default=20, help="time steps per sequence")
    p.add_argument("--hidden-size", type=int, default=16)
    p.add_argument("--chunk", type=int, default=25_000, help="sequences per dask chunk")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (after a first one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="20 000 sequences, 2 epochs")
    args = p.parse_args(argv)
    if args.quick:
        args.sequences, args.chunk, args.epochs = 20_000, 5_000, 2
    N, T, d = args.sequences, args.length, args.hidden_size
    n = m = 1
    P = d * (n + d + m)
    X, target = dataset(N, T, args.chunk, args.seed)
    print(
        f"data: {N} sequences of {T} steps, n = m = 1, {X.numblocks[0]} chunks of "
        f"{args.chunk}; X and target {2 * X.nbytes / 2**20:.0f} MiB; model d = {d}, "
        f"P = d(n + d + m) = {P} weights; full batch, Adam, float64"
    )
    print(
        f"crnn {crnn.__version__}, dask {dask.__version__}, distributed "
        f"{distributed.__version__}; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at the start"
    )

    rows = {}
    for workers in (1, 2):
        r = fit_on_dask(workers, X, target, d, args.epochs, args.seed)
        rows[f"dask, {workers} worker{'s' if workers > 1 else ''} x 1 thread"] = r

    Xl, tl = dask.compute(X, target, scheduler="sync")
    base_rss = peak_rss_mib()
    for threads in (1, 2):
        model = crnn.RNN(1, d, seed=args.seed, n_threads=threads)
        t0 = time.perf_counter()
        model.fit(Xl, tl, epochs=args.epochs + 1, lr=0.01, batch_size=None, n_iter_no_change=10**6)
        rows[f"local RNN.fit, {threads} thread{'s' if threads > 1 else ''}"] = {
            "model": model,
            "epoch (s)": (time.perf_counter() - t0) / (args.epochs + 1),
            "process peak RSS (MiB)": peak_rss_mib(),
        }
    # the same chunks as the workers, one after the other, with no Dask: Dask's own overhead
    model = crnn.RNN(1, d, seed=args.seed, n_threads=1)
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        for a in range(0, N, args.chunk):
            model.gradient(Xl[a : a + args.chunk], tl[a : a + args.chunk])
        times.append(time.perf_counter() - t0)
    rows["local, the same chunks, 1 thread"] = {"epoch (s)": statistics.median(times)}
    print(f"(the local process held {base_rss:.0f} MiB with the data alone)")

    reference = rows["local RNN.fit, 1 thread"]
    print()
    header = (
        f"{'':34} {'epoch s':>8} {'seq/s':>9} {'vs local 1t':>11} {'vs local 2t':>11} "
        f"{'not computing':>13} {'peak RSS MiB':>12} {'max |dW|':>9}"
    )
    print(header)
    for name, r in rows.items():
        diff = "-"
        if "model" in r:
            diff = max(
                float(np.max(np.abs(getattr(r["model"], k) - getattr(reference["model"], k))))
                for k in "UWV"
            )
            diff = f"{diff:.1e}"
        rss = r.get("worker peak RSS (MiB)", r.get("process peak RSS (MiB)"))
        rss = "-" if rss is None else f"{rss:.0f}"
        nc = f"{r['not computing']:.1%}" if "not computing" in r else "-"
        print(
            f"{name:34} {r['epoch (s)']:8.3f} {N / r['epoch (s)']:9.0f} "
            f"{r['epoch (s)'] / reference['epoch (s)']:11.2f} "
            f"{r['epoch (s)'] / rows['local RNN.fit, 2 threads']['epoch (s)']:11.2f} "
            f"{nc:>13} {rss:>12} {diff:>9}"
        )
    for name, r in rows.items():
        if "cluster start (s)" in r:
            print(
                f"{name}: cluster start {r['cluster start (s)']:.2f} s, first epoch (generating "
                f"and persisting the data) {r['first epoch, with persisting (s)']:.2f} s, "
                f"median gradient task {r['gradient task (s)']:.3f} s"
            )
    print(
        f"per update: the weights, {8 * P} B, go to each of the {X.numblocks[0]} gradient tasks "
        f"(inside the task); {X.numblocks[0]} partial gradients of {8 * P} B are summed on the "
        f"workers (fan-in 4) and one, {8 * P} B, returns to the client"
    )


if __name__ == "__main__":
    main()
