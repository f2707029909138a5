"""One Levenberg-Marquardt iteration: crnn against the same iteration in PyTorch.

    python benchmarks/lm.py [--repeats 5] [--sizes 8,16,32] [--no-curves] [--plot PNG]

The problem: next-step prediction of the Mackey-Glass series (tau = 17),
30 windows of 50 steps (1500 predicted values), n = m = 1, biases, tanh,
float64, d = 8, 16 and 32 (P = 97, 305 and 1121 parameters). One iteration
is what ``fit(..., optimizer="lm")`` does when its first trial is taken:
the Gauss-Newton products H = J^T J and v = J^T r, the solve of (H + mu I)
delta = -v, and the loss at theta + delta.

- crnn: ``rnn.gauss_newton`` (J in forward mode in the kernels, J^T [J r]
  summed by them in windows: J is never held whole), ``numpy.linalg.solve``,
  ``rnn.loss``.
- PyTorch: the network as a loop over steps of torch ops, J by
  ``torch.func.jacfwd`` and by ``torch.autograd.functional.jacobian``
  (``vectorize=True``; the faster of the two is the peer), then
  ``J.T @ J``, ``J.T @ r``, ``torch.linalg.solve`` and the loss.

Both on one thread (``torch.set_num_threads(1)``, crnn's ``n_threads=1``,
numpy's BLAS limited by threadpoolctl),
after checking that the two give the same H and step. Each figure is the
median over repeats. Also the peak memory of ``gauss_newton`` (tracemalloc)
against the size of J, and, unless ``--no-curves``, the validation curves of
Adam (300 epochs) and LM (30 iterations) at d = 16 (issue 17's check).
Target (issue 17): crnn >= 5x faster at every d.
"""

import argparse
import statistics
import sys
import time
import tracemalloc

import numpy as np
from run import _cpu_name  # benchmarks/run.py: the CPU's model name

import crnn
from crnn import datasets


def problem():
    series = datasets.mackey_glass(1200, subsample=3.0)
    train = datasets.windows(series[:800], 51, step=25)[:30]
    val = datasets.windows(series[800:], 51, step=25)
    return train[:, :-1], train[:, 1:], val[:, :-1], val[:, 1:]


def crnn_iteration(rnn, X, target, mu=1e-3):
    H, v, _ = rnn.gauss_newton(X, target)
    delta = np.linalg.solve(H + mu * np.eye(H.shape[0]), -v)
    theta = rnn.flat_weights()
    rnn.set_flat_weights(theta + delta)
    E = rnn.loss(X, target)
    rnn.set_flat_weights(theta)
    return H, delta, E


def torch_iteration(torch, rnn, X, target, jac, mu=1e-3):
    n, d, m = rnn.input_size, rnn.hidden_size, rnn.output_size
    Xt, tt = torch.from_numpy(X), torch.from_numpy(target)

    def outputs(theta):
        U = theta[: d * n].reshape(d, n)
        W = theta[d * n : d * n + d * d].reshape(d, d)
        V = theta[d * n + d * d : d * (n + d + m)].reshape(m, d)
        b = theta[d * (n + d + m) : d * (n + d + m) + d]
        c = theta[d * (n + d + m) + d :]
        s = torch.zeros(X.shape[0], d, dtype=theta.dtype)
        ys = []
        for t in range(X.shape[1]):
            s = torch.tanh(Xt[:, t] @ U.T + s @ W.T + b)
            ys.append(s @ V.T + c)
        return torch.stack(ys, dim=1)

    theta = torch.from_numpy(rnn.flat_weights())
    if jac == "jacfwd":
        J = torch.func.jacfwd(outputs)(theta)
    else:
        J = torch.autograd.functional.jacobian(outputs, theta, vectorize=True)
    with torch.no_grad():
        J = J.reshape(-1, theta.shape[0])
        r = (outputs(theta) - tt).reshape(-1)
        H = J.T @ J
        v = J.T @ r
        delta = torch.linalg.solve(H + mu * torch.eye(H.shape[0], dtype=H.dtype), -v)
        E = float(((outputs(theta + delta) - tt) ** 2).sum())
    return H.numpy(), delta.numpy(), E


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def curves():
    X, target, Xv, tv = problem()
    print("\nvalidation loss per value, Mackey-Glass next step, d = 16 (every 30th Adam epoch)")
    for optimizer, epochs, every in (("adam", 300, 30), ("lm", 30, 3)):
        rnn = crnn.RNN(1, 16, bias=True, seed=0)
        t0 = time.perf_counter()
        rnn.fit(
            X,
            target,
            optimizer=optimizer,
            epochs=epochs,
            validation_data=(Xv, tv),
            n_iter_no_change=epochs,
            seed=0,
        )
        took = time.perf_counter() - t0
        shown = "  ".join(f"{v:.3g}" for v in rnn.validation_scores_[every - 1 :: every])
        print(
            f"{optimizer:4s} {rnn.n_iter_:3d} iterations {took:5.2f} s  best "
            f"{rnn.best_validation_score_:.3g}:  {shown}"
        )


def plot(path):
    """The README's figure: a closed-loop forecast of the series with its 95% band."""
    import matplotlib.pyplot as plt

    series = datasets.mackey_glass(1600, subsample=3.0)
    series = series + 0.01 * np.random.default_rng(0).normal(size=series.shape)  # measured
    train = datasets.windows(series[:1200], 51, step=25)
    rnn = crnn.RNN(1, 8, bias=True, seed=0)
    rnn.fit(train[:, :-1], train[:, 1:], optimizer="lm", epochs=50)
    post = rnn.laplace(train[:, :-1], train[:, 1:])
    start, steps = 1300, 60
    future, band = rnn.generate(steps, series[start - 100 : start + 1], return_std=True)
    t = np.arange(start - 60, start + steps + 1)
    ahead = np.arange(start + 1, start + steps + 1)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, series[t, 0], color="black", lw=1, label="the series (noise sd 0.01)")
    ax.plot(ahead, future[:, 0], color="tab:blue", lw=1.5, label="generate, closed loop")
    ax.fill_between(
        ahead,
        future[:, 0] - 1.96 * band[:, 0],
        future[:, 0] + 1.96 * band[:, 0],
        color="tab:blue",
        alpha=0.25,
        label="95% band (Laplace, linearised)",
    )
    ax.axvline(start + 0.5, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("step")
    ax.set_title(
        f"Mackey-Glass, d = 8, Levenberg-Marquardt; sigma = {post.noise_variance**0.5:.4f}"
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", default="8,16,32")
    p.add_argument("--no-curves", action="store_true")
    p.add_argument("--plot", default=None, help="also draw the README's figure (matplotlib)")
    args = p.parse_args(argv)
    if args.plot:
        plot(args.plot)
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is needed: pip install torch==2.13.0")
    torch.set_num_threads(1)
    try:  # numpy's BLAS (crnn's solve) on one thread too
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        print("threadpoolctl is not installed: numpy's solve may use several threads")
    X, target, _, _ = problem()
    print(f"CPU: {_cpu_name()}; one thread; N = 30, T = 50, n = m = 1, float64; ms, medians")
    print(f"crnn {crnn.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    print(
        f"{'d':>3} {'P':>5} {'crnn':>9} {'jacfwd':>9} {'autograd':>9} {'lead':>7}  "
        f"{'GN peak MB':>10} {'J MB':>7}"
    )
    for d in (int(k) for k in args.sizes.split(",")):
        rnn = crnn.RNN(1, d, bias=True, seed=0, n_threads=1)
        H, delta, E = crnn_iteration(rnn, X, target)
        for jac in ("jacfwd", "autograd"):
            Ht, dt, Et = torch_iteration(torch, rnn, X, target, jac)
            assert np.allclose(H, Ht, rtol=1e-9, atol=1e-9 * np.abs(H).max()), jac
            assert np.allclose(delta, dt, rtol=1e-5, atol=1e-7 * np.abs(delta).max()), jac
            assert np.isclose(E, Et, rtol=1e-6), jac
        ours = median_time(lambda rnn=rnn: crnn_iteration(rnn, X, target), args.repeats)
        peers = {
            jac: median_time(
                lambda jac=jac, rnn=rnn: torch_iteration(torch, rnn, X, target, jac), args.repeats
            )
            for jac in ("jacfwd", "autograd")
        }
        tracemalloc.start()
        rnn.gauss_newton(X, target)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        P = H.shape[0]
        print(
            f"{d:3d} {P:5d} {ours * 1e3:9.2f} {peers['jacfwd'] * 1e3:9.2f} "
            f"{peers['autograd'] * 1e3:9.2f} {min(peers.values()) / ours:6.1f}x  "
            f"{peak / 2**20:10.2f} {X.shape[0] * X.shape[1] * P * 8 / 2**20:7.2f}"
        )
    if not args.no_curves:
        curves()


if __name__ == "__main__":
    main()
