"""Learn next-step prediction of sine waves, then continue one in closed loop.

Run: python examples/sine.py [--quick]
"""

import argparse

import numpy as np

import crnn
from crnn import datasets


def main(quick=False):
    """Run the example; return the test error and the persistence baseline's."""
    waves = datasets.sine_waves(n_series=24, length=120, seed=0)
    X, target = datasets.next_step(waves)
    X_train, X_test, t_train, t_test = datasets.train_test_split(X, target, test_fraction=0.25)

    rnn = crnn.RNN(1, 16, seed=0)
    rnn.fit(X_train, t_train, epochs=60 if quick else 300, validation_fraction=0.2, seed=0)
    mse = rnn.loss(X_test, t_test) / t_test.size
    naive = float(np.mean((X_test - t_test) ** 2))
    print(f"{rnn.n_iter_} epochs; test MSE {mse:.2e} (persistence {naive:.2e})")

    # warm up on 80 observed steps of a test wave, then let the model run on its own
    future = rnn.generate(40, X_test[0, :80])
    truth = t_test[0, 79:119]
    print(f"closed-loop RMSE over 40 steps: {np.sqrt(np.mean((future - truth) ** 2)):.3f}")
    return mse, naive


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs (for CI)")
    main(parser.parse_args().quick)
