# SPDX-License-Identifier: BSD-3-Clause
"""The ``crnn`` command: ``python -m crnn demo``."""

import argparse
import sys
import time

import numpy as np

import crnn


def _sine_data(n_series, length, rng):
    """Sine waves of random frequency and phase, as next-step pairs (X, target)."""
    t = np.arange(length + 1)
    freq = rng.uniform(0.05, 0.2, size=(n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_series, 1))
    series = np.sin(2 * np.pi * freq * t + phase)[..., np.newaxis]
    return series[:, :-1], series[:, 1:]


def demo(hidden_size=16, steps=300, seed=0, out=sys.stdout):
    """Train the seed's RNN on next-step prediction of sine waves, checking both gradients.

    Full-batch Adam on the exact BPTT gradient; at
    the end the RTRL gradient is computed too and compared with BPTT.
    Returns the final loss divided by the initial loss.
    """
    rng = np.random.default_rng(seed)
    X, target = _sine_data(32, 60, rng)
    X_test, target_test = _sine_data(8, 60, rng)
    rnn = crnn.RNN(1, hidden_size, seed=seed)
    print(f"crnn {crnn.__version__}: {rnn!r}", file=out)
    print("data: 32 sine waves of 60 steps (test: 8 more), next-step prediction", file=out)
    # Adam on the mean squared error (E divided by the number of predictions)
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    scale = 1.0 / target.size
    moments = {k: [np.zeros_like(getattr(rnn, k)), np.zeros_like(getattr(rnn, k))] for k in "UWV"}
    start = time.perf_counter()
    E0 = rnn.loss(X_test, target_test)
    for step in range(1, steps + 1):
        G = rnn.gradient(X, target)
        if step == 1 or step % (steps // 5) == 0:
            test = rnn.loss(X_test, target_test)
            print(f"  step {step:4d}   train loss {G.loss:10.4f}   test loss {test:9.4f}", file=out)
        for k, (m1, m2) in moments.items():
            grad = scale * getattr(G, k)
            m1 += (1 - beta1) * (grad - m1)
            m2 += (1 - beta2) * (grad * grad - m2)
            step_size = lr * np.sqrt(1 - beta2**step) / (1 - beta1**step)
            getattr(rnn, k)[...] -= step_size * m1 / (np.sqrt(m2) + eps)
    elapsed = time.perf_counter() - start
    E1 = rnn.loss(X_test, target_test)
    persistence = float(np.sum((target_test - X_test) ** 2))
    print(f"trained in {elapsed:.2f} s ({steps} exact BPTT gradients, Adam)", file=out)
    print(
        f"test loss {E1:.4f} vs {E0:.4f} untrained and {persistence:.4f} for the naive "
        f"'next = current' forecast",
        file=out,
    )
    A = rnn.gradient(X[:4], target[:4], method="bptt")
    B = rnn.gradient(X[:4], target[:4], method="rtrl")
    diff = max(np.abs(getattr(A, k) - getattr(B, k)).max() for k in ("U", "W", "V", "s0"))
    print(f"RTRL and BPTT gradients agree to {diff:.1e} (largest absolute difference)", file=out)
    return E1 / E0


def main(argv=None):
    """Entry point of the ``crnn`` console script."""
    parser = argparse.ArgumentParser(prog="crnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="train on sine waves and compare RTRL with BPTT")
    p_demo.add_argument("--hidden-size", type=int, default=16)
    p_demo.add_argument("--steps", type=int, default=300)
    p_demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.hidden_size < 1 or args.steps < 5:
            parser.error("--hidden-size must be >= 1 and --steps >= 5")
        demo(args.hidden_size, args.steps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
