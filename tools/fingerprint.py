"""Fingerprints of every kernel's results, to show that a refactor changes no bit.

    python tools/fingerprint.py out.json          # every variant this CPU runs
    python tools/fingerprint.py --compare a.json b.json

Runs forward, loss, both gradients, generate, step and online RTRL through
the public API on a grid of sizes (small ones, ones past a SIMD panel, a
batch split over threads, a long BPTT that runs in several blocks of steps),
float32 and float64, with and without biases, on 1 and 2 threads, and the
other cells (leak rates, activations), for each kernel variant (CRNN_KERNELS, one child process each), and writes the
SHA-256 of every result's bytes. Two runs agree exactly when no bit moved.
"""

import hashlib
import json
import os
import subprocess
import sys

CASES = [  # N, T, n, d, m
    (1, 1, 1, 1, 1),
    (3, 7, 2, 5, 3),
    (5, 40, 3, 17, 2),
    (8, 30, 4, 33, 9),
    (2, 1500, 2, 6, 2),
    (16, 50, 3, 16, 3),
]


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        import numpy as np

        a = np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _one_variant():
    import numpy as np

    import crnn
    from crnn import _core

    out = {}
    for dtype in (np.float64, np.float32):
        for bias in (False, True):
            for N, T, n, d, m in CASES:
                rng = np.random.default_rng(N * 1000 + T + d)
                X = rng.normal(size=(N, T, n))
                Y = rng.normal(size=(N, T, m))
                s0 = rng.uniform(-0.5, 0.5, (N, d))
                for nt in (1, 2):
                    key = f"{np.dtype(dtype).name} bias={bias} {N}x{T} n{n} d{d} m{m} t{nt}"
                    rnn = crnn.RNN(n, d, m, dtype=dtype, seed=7, bias=bias, n_threads=nt)
                    S, Yo = rnn.forward(X, s0)
                    out[key + " forward"] = _digest(S, Yo)
                    out[key + " loss"] = repr(rnn.loss(X, Y, s0, g=0.7))
                    for method in ("bptt", "rtrl"):
                        if method == "rtrl" and T * d * d * d * (n + d) > 3e7:
                            continue
                        G = rnn.gradient(X, Y, s0, g=0.7, method=method)
                        parts = [G.U, G.W, G.V, G.s0] + ([G.b, G.c] if bias else [])
                        out[key + " " + method] = _digest(*parts) + " " + repr(G.loss)
                    if n == m:
                        out[key + " generate"] = _digest(rnn.generate(9, X[:, :3], s0=s0))
                    rnn.reset()
                    ys = [rnn.step(X[:, t]) for t in range(min(T, 5))]
                    out[key + " step"] = _digest(*ys)
                    if N == 1 or nt == 2:
                        continue
                    for clip in (None, 0.3):
                        model = crnn.RNN(n, d, m, dtype=dtype, seed=3, bias=bias)
                        online = crnn.OnlineRTRL(model, lr=0.05, clip=clip)
                        preds = online.learn(X[0, :60], Y[0, :60])
                        G = online.gradient_sum_
                        parts = [preds, model.U, model.W, model.V, G.U, G.W, G.V]
                        parts += [online.sensitivities, online.state]
                        parts += [model.b, model.c, G.b, G.c] if bias else []
                        out[key + f" online clip={clip}"] = _digest(*parts)
            _cells(out, dtype, bias)
    return {"variant": _core.variant, "results": out}


def _cells(out, dtype, bias):
    """Add the other cells (leak rates, activations): both gradients and online RTRL."""
    import numpy as np

    import crnn

    N, T, n, d, m = 3, 25, 3, 13, 2
    rng = np.random.default_rng(11)
    X = rng.normal(size=(N, T, n))
    Y = rng.normal(size=(N, T, m))
    for activation in ("tanh", "relu", "identity"):
        for leak in (1.0, 0.3):
            key = f"{np.dtype(dtype).name} bias={bias} cell={activation},{leak}"
            rnn = crnn.RNN(
                n, d, m, dtype=dtype, seed=5, bias=bias, activation=activation, leak=leak
            )
            for method in ("bptt", "rtrl"):
                G = rnn.gradient(X, Y, g=0.7, method=method)
                parts = [G.U, G.W, G.V, G.s0] + ([G.b, G.c] if bias else [])
                out[key + " " + method] = _digest(*parts) + " " + repr(G.loss)
            model = crnn.RNN(
                n, d, m, dtype=dtype, seed=3, bias=bias, activation=activation, leak=leak
            )
            online = crnn.OnlineRTRL(model, lr=0.02, clip=1.0)
            preds = online.learn(X[0], Y[0])
            parts = [preds, *model.parameters().values(), online.sensitivities]
            est = online.gradient_estimate_
            parts += [est.U, est.W, est.V]
            out[key + " online"] = _digest(*parts)


def main(argv):
    """Write the fingerprints of every variant to argv[0], or compare two files."""
    if argv[:1] == ["--child"]:
        json.dump(_one_variant(), sys.stdout)
        return 0
    if argv[:1] == ["--compare"]:
        a, b = ({}, {})
        for out, path in zip((a, b), argv[1:3], strict=True):
            with open(path) as f:
                out.update(json.load(f))
        bad = 0
        for variant in sorted(set(a) | set(b)):
            ra, rb = a.get(variant, {}), b.get(variant, {})
            for key in sorted(set(ra) | set(rb)):
                if ra.get(key) != rb.get(key):
                    bad += 1
                    print(f"DIFFER {variant} {key}: {ra.get(key)} vs {rb.get(key)}")
            print(f"{variant}: {len(ra)} results compared")
        print("identical" if not bad else f"{bad} results differ")
        return 1 if bad else 0
    from crnn import _core

    result = {}
    for variant in _core.available():
        env = dict(os.environ, CRNN_KERNELS=variant)
        proc = subprocess.run(
            [sys.executable, __file__, "--child"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        child = json.loads(proc.stdout)
        result[child["variant"]] = child["results"]
        print(f"{variant}: {len(child['results'])} results")
    with open(argv[0], "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
