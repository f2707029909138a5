"""Forecast the Mackey-Glass chaotic series (tau = 17) one step and many steps ahead.

Run: python examples/mackey_glass.py [--quick]
"""

import argparse

import numpy as np

import crnn
from crnn import datasets


def main(quick=False):
    """Run the example; return the test error and the persistence baseline's."""
    series = datasets.mackey_glass(1500, subsample=3.0, seed=0).reshape(-1, 1)
    n_train = 1000
    mean, std = series[:n_train].mean(), series[:n_train].std()
    z = (series - mean) / std

    # windows of 100 steps of the training part, as a batch of sequences
    train = datasets.windows(z[:n_train], 101, step=25)
    X, target = train[:, :-1], train[:, 1:]

    rnn = crnn.RNN(1, 32, seed=0)
    rnn.fit(X, target, epochs=30 if quick else 200, batch_size=16, validation_fraction=0.1, seed=0)

    # one step ahead over the test part, the state carried over from the training part
    _, state = rnn.predict(z[:n_train], return_state=True)
    pred = rnn.predict(z[n_train:-1], state) * std + mean
    truth = series[n_train + 1 :]
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    naive = float(np.sqrt(np.mean((series[n_train:-1] - truth) ** 2)))
    print(f"{rnn.n_iter_} epochs; next-step test RMSE {rmse:.5f}, persistence {naive:.5f}")

    # closed loop: 50 steps (150 time units) with no observation
    future = rnn.generate(50, z[: n_train + 1]) * std + mean
    err = np.abs(future[:, 0] - series[n_train + 1 : n_train + 51, 0])
    print(f"closed-loop error after 10, 25, 50 steps: {err[9]:.3f} {err[24]:.3f} {err[49]:.3f}")
    return rmse, naive


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs (for CI)")
    main(parser.parse_args().quick)
