"""Learn next-step prediction of sine waves, then continue them in closed loop.

Sine waves of random frequencies (periods of 5 to 50 steps) and phases. The
model learns to predict each next value; then, given the first 80 steps of
waves it has not seen, it continues each on its own for 40 steps, every
output fed back as the next input. Two baselines forecast the same steps:
zero (the waves' mean) and the last observed value (persistence).

Run: python examples/sine.py [--quick]
"""

import argparse

import numpy as np

import crnn
from crnn import datasets


def main(quick=False):
    """Run the example; return the closed-loop forecast's RMSE and the better baseline's."""
    waves = datasets.sine_waves(n_series=200, length=120, seed=0)
    X, target = datasets.next_step(waves)
    X_train, X_test, t_train, t_test = datasets.train_test_split(X, target, test_fraction=0.25)

    rnn = crnn.RNN(1, 32, seed=0)
    epochs = 300 if quick else 1000
    # full batch; the weights kept are those of the best validation score
    rnn.fit(X_train, t_train, epochs=epochs, validation_fraction=0.2, n_iter_no_change=100, seed=0)
    mse = rnn.loss(X_test, t_test) / t_test.size
    naive = float(np.mean((X_test - t_test) ** 2))
    print(f"{rnn.n_iter_} epochs; next-step test MSE {mse:.2e} (persistence {naive:.2e})")

    # the first 80 steps of each test wave observed, then 40 steps in closed loop
    observed, horizon = 80, 40
    truth = t_test[:, observed - 1 : observed - 1 + horizon]

    def rmse(forecast):
        return float(np.sqrt(np.mean((forecast - truth) ** 2)))

    forecast = rmse(rnn.generate(horizon, X_test[:, :observed]))
    zero = rmse(np.zeros_like(truth))
    last = rmse(X_test[:, observed - 1 : observed])
    print(
        f"closed loop, {horizon} steps of {len(X_test)} test waves: RMSE crnn {forecast:.3f}, "
        f"zero {zero:.3f}, last value {last:.3f}"
    )
    return forecast, min(zero, last)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for CI)")
    main(parser.parse_args().quick)
