"""Open the black box: the fixed points of a network trained on the 3-bit flip-flop task.

Sussillo and Barak (2013): a network that remembers the sign of the last
pulse on each of 3 input channels holds 2^3 = 8 memories, and its dynamics
has one stable fixed point per memory (with saddles between them). crnn
trains the Elman network on the task, then crnn.dynamics finds its fixed
points from states of its own trajectories, classifies them by the
eigenvalues of the exact Jacobian, measures the Lyapunov spectrum along a
trajectory and the gradient's decay with the lag, and (with matplotlib)
plots the fixed points with the trajectories in the top two principal
components.

Run: python examples/flip_flop.py [--quick] [--plot PATH]
"""

import argparse

import numpy as np

import crnn
from crnn import datasets, dynamics


def main(quick=False, plot=None):
    """Run the example; return the trained network's test RMSE and that of predicting zero.

    ``plot``: a path for the figure (with matplotlib), or None for none.
    """
    d = 16
    X, target = datasets.flip_flop(64, 60, seed=0)
    rnn = crnn.RNN(3, d, 3, seed=0)
    rnn.fit(X, target, epochs=300 if quick else 600, lr=0.02, batch_size=16, seed=0)

    X_test, t_test = datasets.flip_flop(32, 200, seed=1)  # longer than the training sequences
    S, Y = rnn.forward(X_test)
    rmse = float(np.sqrt(np.mean((Y - t_test) ** 2)))
    zero = float(np.sqrt(np.mean(t_test**2)))
    print(f"test RMSE (32 sequences of 200 steps): crnn {rmse:.4f}, predicting zero {zero:.4f}")

    points = dynamics.fixed_points(rnn, inits=S[:8].reshape(-1, d)[::4], noise=0.01, seed=0)
    stable = points.states[points.stable]
    print(
        f"{len(points.states)} fixed points with zero input, {len(stable)} stable, "
        f"{len(points.states) - len(stable)} unstable"
    )
    for s, eig in zip(stable, points.eigenvalues[points.stable], strict=True):
        memory = " ".join(f"{v:+.2f}" for v in s @ rnn.V.T)
        print(f"  stable point: outputs {memory}, largest |eigenvalue| {abs(eig[0]):.3f}")

    lyap = dynamics.lyapunov_spectrum(rnn, X_test[0], warmup=20, seed=0)
    print(f"largest Lyapunov exponents along a test sequence: {np.round(lyap.exponents[:3], 4)}")
    profile = dynamics.gradient_by_lag(rnn, X_test[:4], t_test[:4], max_lag=50)
    print(f"mean |dE^t/dS^(t-k)| at k = 0, 10, 50: {profile[[0, 10, 50]]}")

    if plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("no plot: matplotlib is not installed (pip install 'crnn[plot]')")
        else:
            fig, ax = plt.subplots(figsize=(5, 5))
            dynamics.plot_fixed_points(points, S[:4], ax=ax)
            ax.set_title("3-bit flip-flop: fixed points and trajectories")
            fig.savefig(plot, dpi=120, bbox_inches="tight")
            plt.close(fig)
            print(f"plot written to {plot}")
    return rmse, zero


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter training (for CI)")
    parser.add_argument("--plot", default="flip_flop.png", help="the figure's path ('' for none)")
    args = parser.parse_args()
    main(args.quick, args.plot)
