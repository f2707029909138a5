"""Every online learning algorithm of crnn.online on the add task, side by side.

One stream of the add task (``crnn.datasets.add_task``: random bits, target
0.5 + 0.5 x^{t-5} - 0.25 x^{t-9}), one network (the Elman network with
biases, 32 units, one seed), and for every algorithm the same search over
the learning rate (each rate a run over the whole stream). Printed: the
loss over the last fifth of the stream (each prediction made before its
step's update) divided by the loss of predicting the mean (0.078125 per
step): 1 learns nothing, 0.2 has learnt the t-5 dependency alone, 0 both.
With --plot FILE (and matplotlib), the learning curves of the best rates.

Run: python examples/online_comparison.py [--quick] [--plot curves.png]
"""

import argparse
import time

import numpy as np

import crnn
from crnn import datasets, online

ALGORITHMS = {
    "RTRL": (online.RTRL, {}),
    "SnAp-2": (online.SnAp, {"n": 2}),
    "SnAp-1": (online.SnAp, {"n": 1}),
    "EProp": (online.EProp, {}),
    "RFLO": (online.RFLO, {}),
    "KF-RTRL": (online.KFRTRL, {"seed": 0}),
    "UORO": (online.UORO, {"seed": 0}),
    "TBPTT h=10": (online.TBPTT, {"horizon": 10}),
}


def _run(cls, options, X, target, hidden, lr, chunk=1000):
    """Squared errors of one run over the stream (inf from where it diverged)."""
    model = crnn.RNN(1, hidden, 1, bias=True, seed=0)
    trainer = cls(model, lr=lr, clip=1.0, **options)
    errors = np.full(len(X), np.inf)
    for start in range(0, len(X), chunk):
        stop = start + chunk
        try:
            Y = trainer.learn(X[start:stop], target[start:stop])
        except FloatingPointError:
            break
        errors[start:stop] = (Y[:, 0] - target[start:stop, 0]) ** 2
    return errors


def main(quick=False, plot=None):
    """Run the comparison; return RTRL's final normalised loss and the mean predictor's (1)."""
    length, hidden = (4000, 8) if quick else (40_000, 32)
    rates = (0.01, 0.03, 0.1) if quick else (0.001, 0.003, 0.01, 0.03, 0.1)
    X, target = datasets.add_task(length, seed=0)
    mean_loss = 0.078125  # Var(target): the loss of predicting the mean
    late = slice(length - length // 5, length)
    window = length // 40
    rows, curves = [], {}
    for name, (cls, options) in ALGORITHMS.items():
        t0 = time.perf_counter()
        best = None
        for lr in rates:
            errors = _run(cls, options, X, target, hidden, lr)
            final = float(np.mean(errors[late])) / mean_loss
            if best is None or final < best[0]:
                best = (final, lr, errors)
        seconds = time.perf_counter() - t0
        rows.append((name, best[0], best[1], seconds))
        curves[name] = best[2][: length // window * window].reshape(-1, window).mean(axis=1)
    print(f"the add task, {length} steps, {hidden} units; loss / mean predictor's, last fifth")
    print(f"{'algorithm':<12} {'loss':>6} {'best lr':>8} {'time (s), all rates':>20}")
    for name, final, lr, seconds in rows:
        print(f"{name:<12} {final:6.3f} {lr:8.3g} {seconds:20.2f}")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = (np.arange(len(next(iter(curves.values())))) + 1) * window
        for name, curve in curves.items():
            plt.plot(steps, curve / mean_loss, label=name)
        plt.axhline(0.2, color="grey", lw=0.5, ls="--")
        plt.xlabel("step")
        plt.ylabel(f"loss / mean predictor's (windows of {window} steps)")
        plt.ylim(0, 1.3)
        plt.legend()
        plt.savefig(plot, dpi=120)
    return rows[0][1], 1.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter stream (for CI)")
    parser.add_argument("--plot", default=None, help="save the learning curves to this file")
    args = parser.parse_args()
    main(args.quick, args.plot)
