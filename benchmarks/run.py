#!/usr/bin/env python
# SPDX-License-Identifier: BSD-3-Clause
"""Side-by-side benchmark of crnn against numpy, PyTorch and JAX (issue 6).

Run ``python benchmarks/run.py`` (``--help`` for the options). In one process
it

1. measures the machine's matrix-multiply peak (a large numpy matmul, 1 and
   2 BLAS threads, float64 and float32);
2. for every workload, dtype and operation, builds each implementation on the
   same weights and data, checks that all of them agree with crnn (relative
   error below 1e-8 in float64, 2e-3 in float32), then times each one: one
   warm-up call, then the median of several repeats (each repeat runs the call
   often enough to last ``--min-time`` seconds);
3. prints a table of median times, the ratio of each to crnn at the same
   thread count (JAX, which has no thread knob inside a process, is compared
   with crnn at 2 threads), the achieved GFLOP/s and the fraction of the
   matmul peak at that thread count;
4. measures the peak memory (RSS) of crnn's RTRL and BPTT against T, each in
   a subprocess of its own, and the import time of crnn;
5. times crnn and the peers against T, N and d and plots them (PNG) when
   matplotlib is installed;
6. checks the targets of issue 6 and prints, for each, the measured ratio and
   whether it is met.

FLOP count (a multiply and an add count as two; tanh and other elementwise
work are not counted), for N sequences of T steps, sizes n, d, m:

- forward: ``F = 2 N T d (n + d + m)``  (U X, W S, V S)
- gradient by BPTT: ``F = N T (4 d n + 6 d^2 + 6 m d)``: the forward pass,
  then V^T e and W^T delta in the backward recurrence, then the three outer
  products delta X^T, delta S^T and e S^T;
- gradient by RTRL: ``F = N T (2 d (n + d + m) + 4 m d + 2 Q (d^2 + d))``
  with ``Q = d (n + d)`` sensitivities per state: the forward pass, V^T e and
  e S^T, the sensitivity update W P (2 d^2 Q) and its contraction c^T P
  (2 d Q). crnn also carries the d sensitivities to S^0 (not counted).

Peers, written here as a user of each would write them:

- numpy, BPTT: vectorised over the batch, time-major, U X and V S for all
  steps in one matmul each, one matmul per step in each recurrence, and the
  three gradient products as one matmul each over all steps;
- numpy, RTRL: the sensitivities of the whole batch as one (d, N, d, n + d)
  tensor, one matmul per step for W P;
- PyTorch: ``nn.RNN(n, d, nonlinearity="tanh", bias=False, batch_first=True)``
  and ``nn.Linear(d, m, bias=False)``, loss as a sum of squares, autograd;
- JAX: ``lax.scan`` forward, ``jax.value_and_grad`` for BPTT and a scanned
  RTRL, all jit-compiled; compile time (the first call) is reported apart.
"""

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

WORKLOADS = {  # name: (N, T, n, d, m)
    "W1": (32, 200, 4, 32, 4),
    "W2": (16, 500, 16, 128, 16),
    "W3": (64, 100, 64, 512, 64),
    "W4": (1, 10000, 1, 64, 1),
    "W5": (1, 1000, 4, 32, 4),
}
OPS = ("gradient", "rtrl", "forward")
RTRL_WORKLOADS = ("W1", "W5")  # elsewhere RTRL's d^4 cost runs to TFLOPs
IMPLS = ("crnn", "numpy", "torch", "jax")
TOL = {"float64": 1e-8, "float32": 2e-3}
G = 0.5  # the loss scale g


def flops(op, N, T, n, d, m):
    """Floating-point operations of one call (the formulas of the docstring)."""
    if op == "forward":
        return 2 * N * T * d * (n + d + m)
    if op == "gradient":
        return N * T * (4 * d * n + 6 * d * d + 6 * m * d)
    Q = d * (n + d)
    return N * T * (2 * d * (n + d + m) + 4 * m * d + 2 * Q * (d * d + d))


# --------------------------------------------------------------------------- threads


def _threadpool_limits(k):
    """Limit numpy's BLAS to k threads (needs threadpoolctl), or do nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=k, user_api="blas")


def _have_threadpoolctl():
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- peers


def numpy_forward(U, W, V, X):
    """Forward pass, vectorised over the batch: returns Y (N, T, m)."""
    N, T, n = X.shape
    d = U.shape[0]
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))  # time-major (T, N, n)
    Zin = (Xt.reshape(T * N, n) @ U.T).reshape(T, N, d)
    S = np.empty((T, N, d), dtype=X.dtype)
    s = np.zeros((N, d), dtype=X.dtype)
    WT = W.T
    for t in range(T):
        s = np.tanh(Zin[t] + s @ WT)
        S[t] = s
    Y = (S.reshape(T * N, d) @ V.T).reshape(T, N, -1)
    return {"Y": Y.transpose(1, 0, 2)}


def numpy_bptt(U, W, V, X, target, g):
    """BPTT, vectorised over the batch, one matmul per step each way."""
    N, T, n = X.shape
    d, m = U.shape[0], V.shape[0]
    dt = X.dtype
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2)).reshape(T * N, n)
    Tt = np.ascontiguousarray(target.transpose(1, 0, 2)).reshape(T * N, m)
    Zin = (Xt @ U.T).reshape(T, N, d)
    S = np.empty((T + 1, N, d), dtype=dt)  # S^0 .. S^T
    S[0] = 0
    WT = W.T
    for t in range(T):
        S[t + 1] = np.tanh(Zin[t] + S[t] @ WT)
    S1 = S[1:].reshape(T * N, d)
    R = Tt - S1 @ V.T
    loss = g * float(np.sum(R * R, dtype=np.float64))
    Eg = (-2 * g) * R  # e^t, (T N, m)
    C = (Eg @ V).reshape(T, N, d)  # V^T e^t
    D = np.empty((T, N, d), dtype=dt)
    delta = np.zeros((N, d), dtype=dt)
    for t in range(T - 1, -1, -1):
        delta = (1 - S[t + 1] ** 2) * (C[t] + delta @ W)
        D[t] = delta
    D2 = D.reshape(T * N, d)
    return {
        "U": D2.T @ Xt,
        "W": D2.T @ S[:-1].reshape(T * N, d),
        "V": Eg.T @ S1,
        "loss": loss,
    }


def numpy_rtrl(U, W, V, X, target, g):
    """RTRL, vectorised over the batch: one matmul per step for W P.

    P[l, b, i, j] = dS^t_l / d theta_ij of sequence b, theta = [U | W]
    (j < n: U, j >= n: W), kept as one (d, N, d, n + d) tensor.
    """
    N, T, n = X.shape
    d, m = U.shape[0], V.shape[0]
    dt = X.dtype
    P = np.zeros((d, N, d, n + d), dtype=dt)
    grad = np.zeros((d, n + d), dtype=dt)
    dV = np.zeros((m, d), dtype=dt)
    s = np.zeros((N, d), dtype=dt)
    xs = np.empty((N, n + d), dtype=dt)
    ar = np.arange(d)
    loss = 0.0
    for t in range(T):
        x = X[:, t]
        xs[:, :n] = x
        xs[:, n:] = s
        s = np.tanh(x @ U.T + s @ W.T)
        r = target[:, t] - s @ V.T
        loss += g * float(np.sum(r * r, dtype=np.float64))
        e = (-2 * g) * r
        P = (W @ P.reshape(d, -1)).reshape(P.shape)
        P[ar, :, ar, :] += xs  # the direct term delta_li [x; s^{t-1}]_j
        P *= (1 - s * s).T[:, :, None, None]
        c = e @ V  # (N, d): c_l = sum_k e_k v_kl
        grad += (c.T.reshape(1, d * N) @ P.reshape(d * N, -1)).reshape(d, n + d)
        dV += e.T @ s
    return {"U": grad[:, :n], "W": grad[:, n:], "V": dV, "loss": loss}


def _torch_setup(U, W, V, X, target, g, op):
    import torch

    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    n, d, m = U.shape[1], U.shape[0], V.shape[0]
    rnn = torch.nn.RNN(n, d, nonlinearity="tanh", bias=False, batch_first=True).to(dtype)
    lin = torch.nn.Linear(d, m, bias=False).to(dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(U))
        rnn.weight_hh_l0.copy_(torch.from_numpy(W))
        lin.weight.copy_(torch.from_numpy(V))
    Xt = torch.from_numpy(X)
    Tt = torch.from_numpy(target)
    params = (rnn.weight_ih_l0, rnn.weight_hh_l0, lin.weight)

    if op == "forward":

        def run():
            with torch.no_grad():
                return {"Y": lin(rnn(Xt)[0]).numpy()}

        return run

    def run():
        for p in params:
            p.grad = None
        loss = g * ((Tt - lin(rnn(Xt)[0])) ** 2).sum()
        loss.backward()
        return {
            "U": params[0].grad.numpy(),
            "W": params[1].grad.numpy(),
            "V": params[2].grad.numpy(),
            "loss": float(loss),
        }

    return run


_JAX_FNS = {}


def _jax_functions():
    """The jitted JAX peers (built once)."""
    if _JAX_FNS:
        return _JAX_FNS
    import jax
    import jax.numpy as jnp
    from jax import lax

    def states(U, W, X):
        s0 = jnp.zeros((X.shape[0], U.shape[0]), X.dtype)

        def step(s, x):
            s = jnp.tanh(x @ U.T + s @ W.T)
            return s, s

        return lax.scan(step, s0, jnp.swapaxes(X, 0, 1))[1]  # (T, N, d)

    def forward(U, W, V, X):
        return jnp.swapaxes(states(U, W, X) @ V.T, 0, 1)

    def loss(params, X, target, g):
        U, W, V = params
        Y = states(U, W, X) @ V.T
        return g * jnp.sum((jnp.swapaxes(target, 0, 1) - Y) ** 2)

    def rtrl(U, W, V, X, target, g):
        N, _, n = X.shape
        d, m = U.shape[0], V.shape[0]
        ar = jnp.arange(d)

        def step(carry, inp):
            s, P, grad, dV, E = carry
            x, tgt = inp
            xs = jnp.concatenate([x, s], axis=1)
            s = jnp.tanh(x @ U.T + s @ W.T)
            r = tgt - s @ V.T
            e = -2 * g * r
            P = jnp.tensordot(W, P, axes=1)
            P = P.at[ar, :, ar, :].add(xs[None])
            P = P * (1 - s * s).T[:, :, None, None]
            grad = grad + jnp.einsum("bl,lbij->ij", e @ V, P)
            return (s, P, grad, dV + e.T @ s, E + g * jnp.sum(r * r)), None

        z = jnp.zeros
        carry = (
            z((N, d), X.dtype),
            z((d, N, d, n + d), X.dtype),
            z((d, n + d), X.dtype),
            z((m, d), X.dtype),
            z((), X.dtype),
        )
        inputs = (jnp.swapaxes(X, 0, 1), jnp.swapaxes(target, 0, 1))
        _, _, grad, dV, E = lax.scan(step, carry, inputs)[0]
        return grad[:, :n], grad[:, n:], dV, E

    _JAX_FNS["forward"] = jax.jit(forward)
    _JAX_FNS["gradient"] = jax.jit(jax.value_and_grad(loss))
    _JAX_FNS["rtrl"] = jax.jit(rtrl)
    return _JAX_FNS


def _jax_setup(U, W, V, X, target, g, op):
    import jax

    fns = _jax_functions()
    Uj, Wj, Vj, Xj, Tj = (jax.device_put(a) for a in (U, W, V, X, target))
    gj = X.dtype.type(g)
    if op == "forward":

        def run():
            return {"Y": np.asarray(fns["forward"](Uj, Wj, Vj, Xj).block_until_ready())}

    elif op == "gradient":

        def run():
            E, (dU, dW, dV) = fns["gradient"]((Uj, Wj, Vj), Xj, Tj, gj)
            dV.block_until_ready()
            return {"U": np.asarray(dU), "W": np.asarray(dW), "V": np.asarray(dV), "loss": float(E)}

    else:

        def run():
            dU, dW, dV, E = fns["rtrl"](Uj, Wj, Vj, Xj, Tj, gj)
            dV.block_until_ready()
            return {"U": np.asarray(dU), "W": np.asarray(dW), "V": np.asarray(dV), "loss": float(E)}

    return run


def _crnn_setup(model, X, target, g, op):
    if op == "forward":
        return lambda: {"Y": model.forward(X)[1]}
    method = "rtrl" if op == "rtrl" else "bptt"

    def run():
        Gr = model.gradient(X, target, g=g, method=method)
        return {"U": Gr.U, "W": Gr.W, "V": Gr.V, "loss": Gr.loss}

    return run


def available_impls():
    out = ["crnn", "numpy"]
    for mod in ("torch", "jax"):
        try:
            __import__(mod)
        except ImportError:
            continue
        out.append(mod)
    return out


# --------------------------------------------------------------------------- timing


def measure(fn, repeats, min_time):
    """Median seconds per call, after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    fn()
    est = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, math.ceil(min_time / est))
    if est * repeats > 5.0:  # a slow call: fewer repeats, but at least 3
        repeats = max(3, min(repeats, int(5.0 / est)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def matmul_peak(dtype, threads, size, repeats):
    """GFLOP/s of a square numpy matmul at the given BLAS thread count."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    c = np.empty_like(a)
    with _threadpool_limits(threads):
        sec = measure(lambda: np.matmul(a, b, out=c), repeats, 0.2)
    return 2 * size**3 / sec / 1e9


def relerr(result, ref):
    """Largest relative error over the arrays (max |a - b| / max |b|) and the loss."""
    worst = 0.0
    for key, value in ref.items():
        a = np.asarray(result[key], dtype=np.float64)
        b = np.asarray(value, dtype=np.float64)
        scale = max(np.abs(b).max(), 1e-300)
        worst = max(worst, float(np.abs(a - b).max() / scale))
    return worst


# --------------------------------------------------------------------------- main table


def make_problem(name, dtype, scale):
    N, T, n, d, m = WORKLOADS[name]
    if scale:
        N, T = min(N, 4), min(T, 20)
    import crnn

    rng = np.random.default_rng(6)
    model = crnn.RNN(n, d, m, seed=6, dtype=dtype)
    X = rng.standard_normal((N, T, n)).astype(dtype)
    target = rng.standard_normal((N, T, m)).astype(dtype)
    return (N, T, n, d, m), model, X, target


def thread_settings(impl, threads):
    """(label, context factory) pairs for the thread counts of an implementation."""
    if impl == "jax":
        return [("all", contextlib.nullcontext)]
    if impl == "numpy":
        if not _have_threadpoolctl():
            return [("default", contextlib.nullcontext)]
        return [(str(k), lambda k=k: _threadpool_limits(k)) for k in threads]
    if impl == "torch":
        import torch

        @contextlib.contextmanager
        def torch_threads(k):
            old = torch.get_num_threads()
            torch.set_num_threads(k)
            try:
                yield
            finally:
                torch.set_num_threads(old)

        return [(str(k), lambda k=k: torch_threads(k)) for k in threads]
    return [(str(k), k) for k in threads] + [("auto", None)]


def run_table(args, peaks):
    rows = []
    failures = []
    for name in args.workloads:
        for dtype in args.dtypes:
            sizes, model, X, target = make_problem(name, np.dtype(dtype), args.quick)
            N, T, n, d, m = sizes
            U, W, V = model.U, model.W, model.V
            for op in args.ops:
                if op == "rtrl" and name not in RTRL_WORKLOADS:
                    continue
                ref = None
                for impl in args.impls:
                    if impl == "crnn":
                        fn = _crnn_setup(model, X, target, G, op)
                    elif impl == "numpy":
                        if op == "forward":
                            fn = functools.partial(numpy_forward, U, W, V, X)
                        elif op == "gradient":
                            fn = functools.partial(numpy_bptt, U, W, V, X, target, G)
                        else:
                            fn = functools.partial(numpy_rtrl, U, W, V, X, target, G)
                    elif impl == "torch":
                        if op == "rtrl":
                            continue  # autograd is reverse mode: there is no torch RTRL
                        fn = _torch_setup(U, W, V, X, target, G, op)
                    else:
                        fn = _jax_setup(U, W, V, X, target, G, op)
                    t0 = time.perf_counter()
                    result = fn()  # the first call: JAX compiles here
                    first = time.perf_counter() - t0
                    if impl == "crnn":
                        ref = result if op != "rtrl" else ref
                        if op == "rtrl":  # RTRL is checked against crnn's BPTT
                            ref = _crnn_setup(model, X, target, G, "gradient")()
                    err = relerr(result, ref)
                    ok = err < TOL[dtype]
                    if not ok:
                        failures.append(f"{name} {dtype} {op} {impl}: relative error {err:.2e}")
                    for label, knob in thread_settings(impl, args.threads):
                        if impl == "crnn":
                            model.n_threads = knob
                            ctx = contextlib.nullcontext()
                            # torch's and JAX's worker threads spin for a while
                            # after their last call: let them go idle first
                            time.sleep(0.0 if args.quick else 0.3)
                        else:
                            ctx = knob()
                        with ctx:
                            sec = measure(fn, args.repeats, args.min_time)
                        f = flops(op, N, T, n, d, m)
                        row = {
                            "workload": name,
                            "sizes": sizes,
                            "dtype": dtype,
                            "op": op,
                            "impl": impl,
                            "threads": label,
                            "ms": sec * 1e3,
                            "gflops": f / sec / 1e9,
                            "relerr": err,
                            "agrees": ok,
                        }
                        if impl == "jax":
                            row["compile_ms"] = (first - sec) * 1e3
                        rows.append(row)
                        print(_format_row(row, rows, peaks), flush=True)
                    model.n_threads = None
    return rows, failures


def _peer_ratio(row, rows):
    """Time of this row over crnn's at the same thread count (2 for 'all')."""
    want = "2" if row["threads"] in ("all", "default") else row["threads"]
    for r in rows:
        if (
            r["impl"] == "crnn"
            and r["workload"] == row["workload"]
            and r["dtype"] == row["dtype"]
            and r["op"] == row["op"]
            and r["threads"] == want
        ):
            return row["ms"] / r["ms"]
    return float("nan")


def _peak_for(row, peaks):
    k = {"all": 2, "default": 2, "auto": 2}.get(row["threads"])
    if k is None:
        k = int(row["threads"])
    return peaks.get((row["dtype"], min(k, 2)), float("nan"))


HEADER = (
    f"{'wl':3} {'op':8} {'dtype':7} {'impl':5} {'thr':>4} {'median ms':>10} "
    f"{'x crnn':>7} {'GFLOP/s':>8} {'%peak':>6} {'rel.err':>8}  note"
)


def _format_row(row, rows, peaks):
    ratio = _peer_ratio(row, rows)
    pct = 100 * row["gflops"] / _peak_for(row, peaks)
    note = ""
    if "compile_ms" in row:
        note = f"compile {row['compile_ms']:.0f} ms"
    if "auto_threads" in row:
        note = f"auto = {row['auto_threads']} thread(s)"
    if not row["agrees"]:
        note += " DISAGREES"
    return (
        f"{row['workload']:3} {row['op']:8} {row['dtype']:7} {row['impl']:5} "
        f"{row['threads']:>4} {row['ms']:10.3f} {ratio:7.2f} {row['gflops']:8.2f} "
        f"{pct:6.1f} {row['relerr']:8.1e}  {note}"
    )


# --------------------------------------------------------------------------- targets


def _best(rows, wl, op, dtype, impls):
    cand = [r for r in rows if r["workload"] == wl and r["op"] == op and r["dtype"] == dtype]
    cand = [r for r in cand if r["impl"] in impls]
    return min(cand, key=lambda r: r["ms"]) if cand else None


def _crnn_at(rows, wl, op, dtype, threads):
    for r in rows:
        if (r["workload"], r["op"], r["dtype"], r["impl"], r["threads"]) == (
            wl,
            op,
            dtype,
            "crnn",
            threads,
        ):
            return r
    return None


def check_targets(rows, peaks, extra):
    """Return (description, measured, met) triples for the targets of issue 6."""
    out = []
    peers = ("numpy", "torch", "jax")
    f64 = "float64"

    def vs_peers(op, wl, factor):
        c = _best(rows, wl, op, f64, ("crnn",))
        p = _best(rows, wl, op, f64, peers)
        if c and p:
            ratio = p["ms"] / c["ms"]
            out.append(
                (
                    (
                        f"{op} {wl}: >= {factor}x faster than the fastest peer "
                        f"({p['impl']} {p['threads']} thr {p['ms']:.2f} ms vs crnn "
                        f"{c['threads']} thr {c['ms']:.2f} ms)"
                    ),
                    f"{ratio:.2f}x",
                    ratio >= factor,
                )
            )

    for wl in ("W1", "W2", "W4", "W5"):
        vs_peers("gradient", wl, 2)
    vs_peers("gradient", "W3", 1)
    c = _best(rows, "W3", "gradient", f64, ("crnn",))
    if c:
        k = 2 if c["threads"] == "auto" else int(c["threads"])
        frac = c["gflops"] / peaks[(f64, min(k, 2))]
        out.append(
            (
                f"gradient W3: >= 75% of the matmul peak at {k} thread(s)",
                f"{100 * frac:.0f}%",
                frac >= 0.75,
            )
        )
    vs_peers("rtrl", "W1", 2)
    vs_peers("rtrl", "W5", 1.5)
    for wl in ("W1", "W4", "W5"):
        vs_peers("forward", wl, 2)
    for wl in ("W2", "W3"):
        a = _best(rows, wl, "gradient", "float32", ("crnn",))
        b = _best(rows, wl, "gradient", f64, ("crnn",))
        if a and b:
            r = b["ms"] / a["ms"]
            out.append(
                (f"gradient {wl}: float32 >= 1.6x faster than float64", f"{r:.2f}x", r >= 1.6)
            )
    for wl in ("W1", "W2", "W3"):
        one = _crnn_at(rows, wl, "gradient", f64, "1")
        two = _crnn_at(rows, wl, "gradient", f64, "2")
        if one and two:
            r = one["ms"] / two["ms"]
            out.append((f"gradient {wl}: 2 threads >= 1.7x faster than 1", f"{r:.2f}x", r >= 1.7))
    slower = []
    for r in rows:
        if r["impl"] == "crnn" and r["threads"] == "auto":
            one = _crnn_at(rows, r["workload"], r["op"], r["dtype"], "1")
            if one and r["ms"] > 1.1 * one["ms"]:
                slower.append(f"{r['op']} {r['workload']} {r['dtype']} {one['ms'] / r['ms']:.2f}x")
    out.append(
        (
            "crnn's default thread count never > 10% slower than 1 thread"
            + (f" (slower: {', '.join(slower)})" if slower else ""),
            f"{len(slower)} slower",
            not slower,
        )
    )
    out.extend(extra)
    return out


# --------------------------------------------------------------------------- memory


MEMORY_SIZES = (4, 8, 4)  # n, d, m of the memory runs


def _rss_kib(field):
    """VmRSS or VmHWM (peak) of this process in KiB, from /proc (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def memory_child(method, T):
    """Run in a subprocess: print the peak RSS growth (KiB) of one gradient call.

    The peak is reset first (``/proc/self/clear_refs``), so what the imports
    left behind does not hide the call's own peak; elsewhere the fallback is
    ``ru_maxrss``, which can only show growth beyond the import's peak.
    """
    import resource

    import crnn

    n, d, m = MEMORY_SIZES
    rng = np.random.default_rng(0)
    model = crnn.RNN(n, d, m, seed=0, n_threads=1)
    X = rng.standard_normal((T, n))
    target = rng.standard_normal((T, m))
    model.gradient(X[:2], target[:2], method=method)  # load everything lazily loaded
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _rss_kib("VmRSS")
        model.gradient(X, target, method=method)
        after = _rss_kib("VmHWM")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model.gradient(X, target, method=method)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"method": method, "T": T, "kib": after - before}))


def run_memory(Ts):
    out = []
    for method in ("rtrl", "bptt"):
        for T in Ts:
            res = subprocess.run(
                [sys.executable, __file__, "--memory-child", method, str(T)],
                capture_output=True,
                text=True,
                check=True,
            )
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def import_times(impls, repeats):
    """Median import time (ms) of each module, each time in a fresh interpreter.

    Returns two dicts, module -> ms: the cumulative time ``-X importtime``
    reports, and the wall-clock time of ``python -c "import mod"`` less that of
    ``python -c pass`` (the interpreter's own start-up). The runs are
    interleaved, so that a slow spell of the machine hits every module alike.
    """
    mods = ["numpy", "crnn"] + [m for m in ("torch", "jax") if m in impls]
    cumulative = {mod: [] for mod in mods}
    wall = {mod: [] for mod in ["pass", *mods]}

    def run(*args):
        start = time.perf_counter()
        res = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True)
        return (time.perf_counter() - start) * 1e3, res.stderr

    for _ in range(repeats):
        wall["pass"].append(run("-c", "pass")[0])
        for mod in mods:
            wall[mod].append(run("-c", f"import {mod}")[0])
            for line in run("-X", "importtime", "-c", f"import {mod}")[1].splitlines():
                parts = [p.strip() for p in line.split("|")]
                if len(parts) == 3 and parts[2] == mod:
                    cumulative[mod].append(int(parts[1]) / 1e3)
    start_up = statistics.median(wall["pass"])
    return (
        {mod: statistics.median(v) for mod, v in cumulative.items()},
        {mod: statistics.median(wall[mod]) - start_up for mod in mods},
    )


# --------------------------------------------------------------------------- scaling


SWEEP_BASE = (32, 200, 4, 32, 4)  # W1
SWEEPS = {
    "T": (50, 100, 200, 400, 800),
    "N": (4, 8, 16, 32, 64),
    "d": (8, 16, 32, 64, 128, 256),
}


def run_sweeps(impls, repeats, min_time, quick):
    """Gradient (BPTT, float64) time against T, N and d; crnn with default threads."""
    import crnn

    results = []
    for axis, values in SWEEPS.items():
        if quick:
            values = values[:2]
        for v in values:
            N, T, n, d, m = SWEEP_BASE
            N, T, d = (
                (v if axis == "N" else N),
                (v if axis == "T" else T),
                (v if axis == "d" else d),
            )
            rng = np.random.default_rng(1)
            model = crnn.RNN(n, d, m, seed=1)
            X = rng.standard_normal((N, T, n))
            target = rng.standard_normal((N, T, m))
            U, W, V = model.U, model.W, model.V
            for impl in impls:
                if impl == "crnn":
                    fn = _crnn_setup(model, X, target, G, "gradient")
                elif impl == "numpy":
                    fn = functools.partial(numpy_bptt, U, W, V, X, target, G)
                elif impl == "torch":
                    fn = _torch_setup(U, W, V, X, target, G, "gradient")
                else:
                    fn = _jax_setup(U, W, V, X, target, G, "gradient")
                sec = measure(fn, repeats, min_time)
                results.append({"axis": axis, "value": v, "impl": impl, "ms": sec * 1e3})
                print(f"  sweep {axis}={v:<5} {impl:6} {sec * 1e3:9.3f} ms", flush=True)
    return results


def linearity(sweep):
    """crnn's time per sequence-step at the largest over the smallest of the T and N sweeps."""
    out = []
    for axis in ("T", "N"):
        pts = sorted(
            (r["value"], r["ms"]) for r in sweep if r["axis"] == axis and r["impl"] == "crnn"
        )
        if len(pts) >= 2:
            per = [ms / v for v, ms in pts]
            spread = max(per) / per[0]  # sublinear (better use of the cores) is fine
            out.append(
                (
                    (
                        f"gradient W1: time at most linear in {axis} (time per unit of {axis}, "
                        f"largest over that at {pts[0][0]}, {pts[0][0]}..{pts[-1][0]}) <= 1.3"
                    ),
                    f"{spread:.2f}",
                    spread <= 1.3,
                )
            )
    return out


def plot(sweep, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, axis in zip(axes, SWEEPS, strict=True):
        for impl in sorted({r["impl"] for r in sweep}):
            pts = sorted(
                (r["value"], r["ms"]) for r in sweep if r["axis"] == axis and r["impl"] == impl
            )
            if pts:
                ax.loglog(*zip(*pts, strict=True), marker="o", label=impl)
        ax.set_xticks(SWEEPS[axis])
        ax.set_xticks([], minor=True)
        ax.set_xticklabels([str(v) for v in SWEEPS[axis]])
        ax.set_xlabel(axis)
        ax.set_ylabel("ms per gradient (BPTT, float64)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"time against {axis} (others as W1: N=32, T=200, n=4, d=32, m=4)", fontsize=8)
        ax.legend()
    fig.suptitle(f"crnn and peers, {platform.processor() or platform.machine()}, {_cpu_name()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


# --------------------------------------------------------------------------- driver


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed: numpy's BLAS thread count is not controlled"
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(
        f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
        f"({i['num_threads']} threads)"
        for i in info
    )


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats: a smoke test")
    p.add_argument("--json", metavar="PATH", help="write every measurement to PATH")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, W1..W5")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated: crnn,numpy,torch,jax")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--threads", default="1,2", help="thread counts for the knobs")
    p.add_argument("--ops", default=",".join(OPS), help="gradient (BPTT), rtrl, forward")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7, quick 2)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per repeat (0.05)")
    p.add_argument("--no-memory", action="store_true", help="skip the RSS measurements")
    p.add_argument("--no-sweep", action="store_true", help="skip the T, N, d sweeps and the plot")
    p.add_argument("--plot", metavar="PNG", default=None, help="plot path (benchmarks/scaling.png)")
    p.add_argument("--memory-child", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        return args
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}")
    have = available_impls()
    wanted = [i.strip() for i in args.impls.split(",") if i.strip()]
    for i in wanted:
        if i not in IMPLS:
            p.error(f"unknown implementation {i!r}")
    skipped = [i for i in wanted if i not in have]
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")
    args.impls = [i for i in wanted if i in have]
    if "crnn" not in args.impls:
        args.impls.insert(0, "crnn")  # the reference every peer is checked against
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in args.dtypes:
        if d not in TOL:
            p.error(f"unknown dtype {d!r}")
    args.threads = [int(k) for k in args.threads.split(",")]
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    for o in args.ops:
        if o not in OPS:
            p.error(f"unknown op {o!r}")
    if args.repeats is None:
        args.repeats = 2 if args.quick else 7
    if args.min_time is None:
        args.min_time = 0.0 if args.quick else 0.05
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0
    if "jax" in args.impls:
        import jax

        jax.config.update("jax_enable_x64", True)
    import crnn
    from crnn import _core

    print(
        f"crnn {crnn.__version__} ({_core.__name__}), numpy {np.__version__}, python "
        f"{platform.python_version()}, {_cpu_name()}, {os.cpu_count()} CPUs"
    )
    print(f"numpy BLAS: {_blas_info()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        if var in os.environ:
            print(f"  {var}={os.environ[var]}")
    for mod in ("torch", "jax"):
        if mod in args.impls:
            print(f"{mod} {sys.modules[mod].__version__ if mod in sys.modules else ''}".strip())

    size = 512 if args.quick else 2048
    peaks = {}
    for dtype in args.dtypes:
        for k in (1, 2):
            peaks[(dtype, k)] = matmul_peak(np.dtype(dtype), k, size, 3)
            print(f"matmul peak {dtype} {k} thread(s): {peaks[(dtype, k)]:.1f} GFLOP/s ({size}^3)")
    print()
    print(HEADER)
    rows, failures = run_table(args, peaks)

    extra = []
    memory = []
    if not args.no_memory:
        Ts = (100, 1000) if args.quick else (1000, 10000, 100000)
        memory = run_memory(Ts)
        n, d, m = MEMORY_SIZES
        print(f"\npeak RSS growth of one gradient call (crnn, N=1, n={n}, d={d}, m={m}):")
        for r in memory:
            states = r["T"] * d * 8 / 1024
            history = r["T"] * (n + d + m) * 8 / 1024
            print(
                f"  {r['method']:4}  T={r['T']:<7} {r['kib']:8d} KiB   (states T d: {states:.0f} KiB,"
                f" with inputs and errors T (n + d + m): {history:.0f} KiB)"
            )
        rt = sorted((r["T"], r["kib"]) for r in memory if r["method"] == "rtrl")
        grow = rt[-1][1] - rt[0][1]
        allowed = 256 + (rt[-1][0] - rt[0][0]) * n / 1024  # the finiteness check's bool temporary
        extra.append(
            (
                (
                    "rtrl: peak memory does not grow with T (growth from the smallest to the "
                    "largest T <= 256 KiB + the T n bytes of the input finiteness check)"
                ),
                f"{grow} KiB",
                grow <= allowed,
            )
        )
        big = max(memory, key=lambda r: (r["method"] == "bptt", r["T"]))
        states = big["T"] * d * 8 / 1024
        history = big["T"] * (n + d + m) * 8 / 1024
        extra.append(
            (
                (
                    f"bptt: peak memory at T={big['T']} <= the states with their inputs and "
                    "output errors, T (n + d + m) doubles, + 1 MiB"
                ),
                f"{big['kib']} KiB vs {history:.0f} KiB ({states:.0f} KiB of states)",
                big["kib"] <= history + 1024,
            )
        )

    imports, imports_wall = import_times(args.impls, 3 if args.quick else 7)
    print(
        "\nimport time (median, ms): cumulative as -X importtime reports it, and "
        "wall clock less `python -c pass`:"
    )
    for mod, ms in imports.items():
        print(f"  {mod:6} {ms:8.1f} {imports_wall[mod]:8.1f}")
    own = imports["crnn"] - imports["numpy"]
    extra.append(
        (
            "import crnn < 50 ms",
            f"{imports['crnn']:.1f} ms ({own:.1f} ms without numpy)",
            imports["crnn"] < 50,
        )
    )

    sweep = []
    if not args.no_sweep:
        print("\nscaling: gradient (BPTT, float64) against T, N and d")
        sweep = run_sweeps(
            args.impls, 3 if not args.quick else 1, 0.02 if not args.quick else 0, args.quick
        )
        extra.extend(linearity(sweep))
        if args.plot or not args.quick:
            plot(sweep, args.plot or os.path.join(os.path.dirname(__file__), "scaling.png"))

    print("\ntargets of issue 6 (float64, each implementation at its best thread count):")
    targets = check_targets(rows, peaks, extra)
    for desc, measured, met in targets:
        print(f"  [{'met' if met else 'NOT met':7}] {measured:>12}  {desc}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "cpu": _cpu_name(),
                    "peaks": {f"{k[0]}/{k[1]}": v for k, v in peaks.items()},
                    "rows": rows,
                    "memory": memory,
                    "imports_ms": imports,
                    "imports_wall_ms": imports_wall,
                    "sweep": sweep,
                    "targets": [{"target": a, "measured": b, "met": c} for a, b, c in targets],
                },
                f,
                indent=1,
            )
        print(f"results written to {args.json}")
    if failures:
        print("\nDISAGREEMENT:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
