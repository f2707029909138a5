"""Track a drifting signal with exact online learning (real-time recurrent learning).

A sine wave's period drifts from 20 to 30 steps. A model trained once on the
beginning falls behind; crnn.OnlineRTRL keeps learning from every new step,
with the exact gradient of that step's error, and follows the drift.

Run: python examples/online_drift.py [--quick]
"""

import argparse

import numpy as np

import crnn


def main(quick=False):
    """Run the example; return the online learner's late error and the frozen model's."""
    length = 1500 if quick else 6000
    t = np.arange(length + 1)
    period = 20 + 10 * t / t[-1]
    signal = np.sin(2 * np.pi * np.cumsum(1 / period))[:, np.newaxis]
    X, target = signal[:-1], signal[1:]

    rnn = crnn.RNN(1, 12, seed=0)
    rnn.fit(X[:500], target[:500], epochs=150)  # offline, on the beginning only
    frozen = crnn.RNN.from_weights(rnn.U, rnn.W, rnn.V)

    online = crnn.OnlineRTRL(rnn, lr=0.005, clip=1.0)
    Y_online = np.empty_like(target)
    for start in range(0, length, 100):  # the stream arrives in chunks of 100 steps
        Y_online[start : start + 100] = online.learn(
            X[start : start + 100], target[start : start + 100]
        )
    Y_frozen = frozen.predict(X)

    late = slice(length - length // 5, length)
    err_online = float(np.sqrt(np.mean((Y_online[late] - target[late]) ** 2)))
    err_frozen = float(np.sqrt(np.mean((Y_frozen[late] - target[late]) ** 2)))
    print(f"{online.n_steps_} steps learned online")
    print(
        f"RMSE over the last {length // 5} steps: online {err_online:.4f}, frozen {err_frozen:.4f}"
    )
    return err_online, err_frozen


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter stream (for CI)")
    main(parser.parse_args().quick)
