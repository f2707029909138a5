"""Per-step cost of crnn.online's algorithms: against d, and against plain numpy at batch size 1.

    python benchmarks/online.py [--repeats 5] [--sizes 8 16 32 64 128 256] [--json out.json]

Each algorithm trains an Elman network (n = m = 1, tanh, no leak, biases)
online on the add task (``crnn.datasets.add_task``), lr 0.01, clip 1: crnn's
``learn`` over a chunk (one compiled call), and the same algorithm written
in plain numpy, one Python step at a time at batch size 1, vectorised over
the units, as the anchor of the field (Marschall et al. 2020's
``vanilla-rtrl``) runs it. Before timing, the numpy version is checked
against crnn on the first steps (the same predictions, to 1e-8; the
stochastic ones with their own signs are not compared). Each figure is the
median over repeats of the CPU time per step (the chunk's over its steps,
enough steps for about 0.1 s; CPU time, as benchmarks/overhead.py, so that
waiting for a core on the shared machine is left out); in the comparison
numpy and crnn take turns in every repeat and the ratio is the median of the
repeats' ratios. crnn's online kernels are single-threaded, numpy runs with
OPENBLAS_NUM_THREADS=1 (set below, before numpy is imported).
Target (issue 16): crnn >= 10x numpy at d = 32 for every algorithm.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import statistics
import time

import numpy as np
from run import _cpu_name  # benchmarks/run.py: the CPU's model name

import crnn
from crnn import datasets, online

ALGORITHMS = {
    "RTRL": (online.RTRL, {}),
    "SnAp-2": (online.SnAp, {"n": 2}),
    "SnAp-1": (online.SnAp, {"n": 1}),
    "EProp": (online.EProp, {}),
    "RFLO": (online.RFLO, {}),
    "KFRTRL": (online.KFRTRL, {"seed": 0}),
    "UORO": (online.UORO, {"seed": 0}),
    "TBPTT(h=10)": (online.TBPTT, {"horizon": 10, "period": 1}),
}
LR = 0.01
CLIP = 1.0  # the largest norm of a step's gradient (UORO diverges without it)


def numpy_learner(name, model):
    """One step of the algorithm in plain numpy (batch size 1): step(x, target) -> y."""
    U, W, V = model.U.copy(), model.W.copy(), model.V.copy()
    b, c = model.b.copy(), model.c.copy()
    d, n = U.shape
    K = n + d + 1
    st = {"s": np.zeros(d), "ring": []}
    if name in ("RTRL", "SnAp-2"):
        st["P"] = np.zeros((d, d, K))  # P[l, i, j]: d s_l / d [U W b]_ij
        mask = ((W != 0) | np.eye(d, dtype=bool))[:, :, None]
    elif name in ("SnAp-1", "EProp", "RFLO"):
        st["B"] = np.zeros((d, K))
    elif name == "UORO":
        st["st"], st["th"] = np.zeros(d), np.zeros((d, K))
    elif name == "KFRTRL":
        st["u"], st["A"] = np.zeros(K), np.zeros((d, d))
    rng = np.random.default_rng(0)
    eps = 1e-7
    diag = np.arange(d)

    def step(x, target):
        nonlocal U, W, V, b, c
        s = st["s"]
        z = U @ x + W @ s + b
        s_new = np.tanh(z)
        y = V @ s_new + c
        e = -2.0 * (target - y)
        cv = V.T @ e
        fp = 1.0 - s_new**2
        xs = np.concatenate([x, s, [1.0]])
        if name in ("RTRL", "SnAp-2"):
            P = (W @ st["P"].reshape(d, d * K)).reshape(d, d, K)  # one BLAS product
            P[diag, diag] += xs
            P *= fp[:, None, None]
            if name == "SnAp-2":
                P *= mask
            st["P"] = P
            G = (cv @ P.reshape(d, d * K)).reshape(d, K)
        elif name == "RFLO":
            st["B"] = np.outer(fp, xs)
            G = cv[:, None] * st["B"]
        elif name in ("EProp", "SnAp-1"):
            st["B"] = (fp * W[diag, diag])[:, None] * st["B"] + np.outer(fp, xs)
            G = cv[:, None] * st["B"]
        elif name == "UORO":
            nu = rng.choice([-1.0, 1.0], size=d)
            Js = fp * (W @ st["st"])
            nuD = (nu * fp)[:, None] * xs[None, :]
            r0 = np.sqrt(np.linalg.norm(st["th"]) / (np.linalg.norm(Js) + eps)) + eps
            r1 = np.sqrt(np.linalg.norm(nuD) / (np.linalg.norm(nu) + eps)) + eps
            st["st"] = r0 * Js + r1 * nu
            st["th"] = st["th"] / r0 + nuD / r1
            G = (cv @ st["st"]) * st["th"]
        elif name == "KFRTRL":
            c1, c2 = rng.choice([-1.0, 1.0], size=2)
            JA = fp[:, None] * (W @ st["A"])
            p1 = np.sqrt(np.linalg.norm(JA) / (np.linalg.norm(st["u"]) + eps)) + eps
            p2 = np.sqrt(np.linalg.norm(fp) / (np.linalg.norm(xs) + eps)) + eps
            st["u"] = c1 * p1 * st["u"] + c2 * p2 * xs
            st["A"] = c1 * JA / p1 + np.diag(c2 * fp / p2)
            G = np.outer(cv @ st["A"], st["u"])
        else:  # TBPTT, period 1
            st["ring"] = [*st["ring"], (xs, fp, cv)][-10:]
            G = np.zeros((d, K))
            g = np.zeros(d)
            for k, (xs_t, fp_t, cv_t) in enumerate(reversed(st["ring"])):
                g = g + (cv_t if k == 0 else 0.0)
                delta = fp_t * g
                G += np.outer(delta, xs_t)
                g = W.T @ delta
        gV = np.outer(e, s_new)
        norm = np.sqrt(np.sum(G * G) + np.sum(gV * gV) + np.sum(e * e))
        scale = CLIP / norm if norm > CLIP else 1.0
        U = U - LR * scale * G[:, :n]
        W = W - LR * scale * G[:, n : n + d]
        b = b - LR * scale * G[:, -1]
        V = V - LR * scale * gV
        c = c - LR * scale * e
        st["s"] = s_new
        return y

    return step


def _step_time(fn, steps):
    """CPU seconds per step of fn(steps): this thread's time, which leaves out the time it
    waited for a core on a shared machine (crnn's online kernels and numpy's products,
    at OPENBLAS_NUM_THREADS=1, run on this thread alone)."""
    t0 = time.thread_time()
    fn(steps)
    return (time.thread_time() - t0) / steps


def _median_step_time(fn, steps, repeats):
    return statistics.median(_step_time(fn, steps) for _ in range(repeats))


def _steps_for(fn, budget=0.1):
    """Steps whose run takes about `budget` seconds (at least 3)."""
    t0 = time.perf_counter()
    fn(3)
    per = (time.perf_counter() - t0) / 3
    return max(3, int(budget / max(per, 1e-9)))


def main(argv=None):
    """Time every algorithm and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    p.add_argument("--numpy-sizes", type=int, nargs="+", default=[8, 32, 64])
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    X, target = datasets.add_task(200_000, seed=0)
    results = {"cpu": _cpu_name(), "per_step_us": {}, "numpy_us": {}}
    print(f"crnn {crnn.__version__}, CPU: {results['cpu']}, kernel variant {crnn._core.variant}")
    print("microseconds per step, median of", args.repeats, "repeats\n")
    header = "algorithm".ljust(13) + "".join(f"d={d:<9d}" for d in args.sizes)
    print(header)
    for name, (cls, opts) in ALGORITHMS.items():
        row = {}
        for d in args.sizes:
            model = crnn.RNN(1, d, 1, bias=True, seed=0)
            trainer = cls(model, lr=LR, clip=CLIP, **opts)

            def run(steps, trainer=trainer):
                trainer.learn(X[:steps], target[:steps])

            steps = _steps_for(run)
            row[d] = 1e6 * _median_step_time(run, steps, args.repeats)
        results["per_step_us"][name] = row
        print(name.ljust(13) + "".join(f"{row[d]:<11.3g}" for d in args.sizes), flush=True)

    print("\nplain numpy at batch size 1 / crnn, taking turns (us per step; median ratio)\n")
    for name, (cls, opts) in ALGORITHMS.items():
        cells = []
        results["numpy_us"][name] = {}
        for d in args.numpy_sizes:
            model = crnn.RNN(1, d, 1, bias=True, seed=0)
            ref = numpy_learner(name, model)
            if name not in ("UORO", "KFRTRL"):  # the same algorithm: the same predictions
                check = cls(crnn.RNN(1, d, 1, bias=True, seed=0), lr=LR, clip=CLIP, **opts)
                want = check.learn(X[:20], target[:20])
                got = np.array([ref(X[t], target[t]) for t in range(20)])
                assert np.allclose(got, want, rtol=1e-8, atol=1e-8), (name, d)

            def run_numpy(steps, ref=ref):
                for t in range(steps):
                    ref(X[t], target[t])

            trainer = cls(crnn.RNN(1, d, 1, bias=True, seed=0), lr=LR, clip=CLIP, **opts)

            def run_crnn(steps, trainer=trainer):
                trainer.learn(X[:steps], target[:steps])

            steps, steps_crnn = _steps_for(run_numpy), _steps_for(run_crnn)
            pairs = [  # the two take turns in every repeat
                (_step_time(run_numpy, steps), _step_time(run_crnn, steps_crnn))
                for _ in range(args.repeats)
            ]
            us = 1e6 * statistics.median(p[0] for p in pairs)
            us_crnn = 1e6 * statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[0] / p[1] for p in pairs)
            results["numpy_us"][name][d] = (us, us_crnn, ratio)
            cells.append(f"d={d}: {us:8.3g} / {us_crnn:8.3g} us ({ratio:5.1f}x)")
        print(name.ljust(13) + "   ".join(cells), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
