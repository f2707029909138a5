#!/usr/bin/env python
# SPDX-License-Identifier: BSD-3-Clause
"""crnn.dynamics against the anchors' methods, side by side in one run (issue 15).

``python benchmarks/dynamics.py [--repeats R]`` prints two tables, every time
the median of R repeats (the rows of a table interleaved within each repeat):

1. the Lyapunov spectrum, d = 64, T = 10,000 steps, all 64 exponents, by
   ``crnn.dynamics.lyapunov_spectrum`` (the QR interval chosen by the kernel,
   and a QR at every step) against the per-step ``numpy.linalg.qr`` loop over
   Jacobians built in Python (the anchors' method), on the same trajectory,
   with the largest difference of the exponents; for Elman's cell (tanh,
   a = 1) and for a rate network (a = 0.1, Engelken, Wolf and Abbott's
   setting: a continuous-time network stepped with dt = 0.1);
2. fixed points, d = 64, 256 starting states, until q < 1e-12, by
   ``crnn.dynamics.fixed_points`` (Levenberg-Marquardt with the exact
   Jacobian) against FixedPointFinder's method (Adam on q with autograd, in
   PyTorch, its learning rate decaying from 0.01), with the points each
   finds, on a Hopfield-like network with many fixed points.

One thread each (numpy's BLAS, PyTorch and crnn), so that the ratios
measure the work, not the scheduler of a shared machine.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
from run import _cpu_name  # benchmarks/run.py, beside this file


def _median_times(calls, repeats):
    """{name: (median seconds, last result)}, each repeat calling every function once, in turn."""
    times = {name: [] for name in calls}
    out = {}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(v), out[name]) for name, v in times.items()}


def _numpy_lyapunov(rnn, S, s0, Q0):
    """The anchors' method: per step, J built in Python from the state, then numpy.linalg.qr."""
    W, b, a = rnn.W, rnn.b if rnn.b is not None else 0.0, rnn.leak
    d = W.shape[0]
    eye = np.eye(d)
    Q = Q0.copy()
    total = np.zeros(Q.shape[1])
    prev = s0
    for t in range(S.shape[0]):
        h = np.tanh(W @ prev + b)  # zero input
        J = (1 - a) * eye + a * (1 - h * h)[:, None] * W
        Q, R = np.linalg.qr(J @ Q)
        total += np.log(np.abs(np.diag(R)))
        prev = S[t]
    return np.sort(total / S.shape[0])[::-1]


def lyapunov_table(repeats):
    import crnn
    from crnn import dynamics

    d, T = 64, 10_000
    print(f"\n1. Lyapunov spectrum, d = {d}, T = {T:,}, all {d} exponents, zero input")
    print(
        f"{'network':<22} {'method':<34} {'time':>9} {'per step':>10} {'speed-up':>9} {'max |diff|':>11}"
    )
    for label, leak in (("tanh, a = 1, gain 2", 1.0), ("tanh, a = 0.1, gain 2", 0.1)):
        rng = np.random.default_rng(0)
        rnn = crnn.RNN(1, d, leak=leak, seed=0, n_threads=1)
        rnn.W = 2.0 * rng.normal(size=(d, d)) / np.sqrt(d)
        s0 = rng.normal(size=d)
        X = np.zeros((T, 1))
        S, _ = rnn.forward(X, s0)
        Q0 = np.linalg.qr(np.random.default_rng(1).standard_normal((d, d)))[0]
        calls = {
            "crnn, QR interval by the kernel": lambda rnn=rnn, s0=s0: dynamics.lyapunov_spectrum(
                rnn, n_steps=T, s0=s0, seed=1
            ),
            "crnn, a QR every step": lambda rnn=rnn, s0=s0: dynamics.lyapunov_spectrum(
                rnn, n_steps=T, s0=s0, seed=1, qr_every=1
            ),
            "numpy.linalg.qr loop (anchors)": lambda rnn=rnn, S=S, s0=s0, Q0=Q0: _numpy_lyapunov(
                rnn, S, s0, Q0
            ),
        }
        res = _median_times(calls, repeats)
        base, ref = res["numpy.linalg.qr loop (anchors)"]
        for name, (sec, out) in res.items():
            ex = out if isinstance(out, np.ndarray) else out.exponents
            diff = np.max(np.abs(ex - ref))
            extra = ""
            if not isinstance(out, np.ndarray):
                extra = f"  ({len(out.steps):,} QRs)"
            print(
                f"{label:<22} {name:<34} {sec:8.3f}s {sec / T * 1e6:8.1f}us {base / sec:8.1f}x"
                f" {diff:11.1e}{extra}"
            )
        print(f"{'':<22} largest exponent {ref[0]:.6f}, smallest {ref[-1]:.6f}")


def _torch_fixed_points(rnn, starts, tol, max_iter, lr):
    """FixedPointFinder's method: Adam on q(s) = 1/2 |F(s) - s|^2 with autograd, every start at once."""
    import torch

    W = torch.from_numpy(np.array(rnn.W))
    b = torch.from_numpy(np.array(rnn.b))
    S = torch.tensor(starts, requires_grad=True)
    opt = torch.optim.Adam([S], lr=lr)
    # the learning rate decays (x 0.999 a step, to 1e-8 at least): Adam's steps
    # are about lr long, and q < 1e-12 needs steps of 1e-6 and below
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.999**t, 1e-8 / lr))
    steps = 0
    while steps < max_iter:
        opt.zero_grad()
        q = 0.5 * ((torch.tanh(S @ W.T + b) - S) ** 2).sum(dim=1)
        if bool((q < tol).all()):
            break
        q.sum().backward()
        opt.step()
        sched.step()
        steps += 1
    with torch.no_grad():
        q = 0.5 * ((torch.tanh(S @ W.T + b) - S) ** 2).sum(dim=1)
    return S.detach().numpy(), q.numpy(), steps


def _unique(states, q, tol, merge=1e-6):
    kept = []
    for i in np.argsort(q):
        if q[i] < tol and all(np.linalg.norm(states[i] - states[j]) > merge for j in kept):
            kept.append(i)
    return states[kept]


def fixed_point_table(repeats):
    import torch

    import crnn
    from crnn import dynamics

    torch.set_num_threads(1)
    d, M, tol = 64, 256, 1e-12
    rng = np.random.default_rng(0)
    # a Hopfield-like network (W = 2/d sum of 4 patterns' outer products): stable
    # points near the patterns and their mixtures, saddles between them
    xi = rng.choice([-1.0, 1.0], size=(4, d))
    rnn = crnn.RNN(1, d, bias=True, seed=0, n_threads=1)
    rnn.W = 2.0 * xi.T @ xi / d + 0.1 * rng.normal(size=(d, d)) / np.sqrt(d)
    rnn.b = 0.01 * rng.normal(size=d)
    S, _ = rnn.forward(rng.normal(size=(M, 20, 1)), rng.normal(size=(M, d)))
    starts = S[:, rng.integers(0, 20)] + 0.1 * rng.normal(size=(M, d))  # trajectories, noise
    print(f"\n2. fixed points, d = {d}, {M} starting states, to q < {tol:g}, zero input")
    calls = {
        "crnn: Levenberg-Marquardt, exact J": lambda: dynamics.fixed_points(
            rnn, inits=starts, tol=tol
        ),
        "PyTorch: Adam on q (FixedPointFinder)": lambda: _torch_fixed_points(
            rnn, starts, tol, 20_000, 1e-2
        ),
    }
    res = _median_times(calls, repeats)
    sec_c, fp = res["crnn: Levenberg-Marquardt, exact J"]
    sec_t, (St, qt, iters) = res["PyTorch: Adam on q (FixedPointFinder)"]
    found_t = _unique(St, qt, tol)
    same = (
        sum(np.min(np.linalg.norm(found_t - s, axis=1)) < 1e-5 for s in fp.states)
        if len(found_t)
        else 0
    )
    print(f"{'method':<40} {'time':>9} {'speed-up':>9} {'points':>7} {'stable':>7}")
    print(
        f"{'crnn: Levenberg-Marquardt, exact J':<40} {sec_c:8.3f}s {sec_t / sec_c:8.1f}x {len(fp.states):7d} {int(fp.stable.sum()):7d}"
    )
    print(
        f"{'PyTorch: Adam on q (FixedPointFinder)':<40} {sec_t:8.3f}s {1.0:8.1f}x {len(found_t):7d}"
        f"        ({iters} Adam steps; {int((qt < tol).sum())}/{M} starts reached q < {tol:g})"
    )
    print(f"points found by both: {same} of crnn's {len(fp.states)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["lyapunov", "fixed"], default=None)
    args = parser.parse_args(argv)
    import crnn

    print(f"crnn {crnn.__version__} ({crnn._core.variant}), {_cpu_name()}, {os.cpu_count()} CPUs")
    print(f"numpy {np.__version__}, medians of {args.repeats} repeats, one thread each")
    if args.only in (None, "lyapunov"):
        lyapunov_table(args.repeats)
    if args.only in (None, "fixed"):
        fixed_point_table(args.repeats)


if __name__ == "__main__":
    sys.exit(main())
