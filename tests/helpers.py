"""Shared test helpers (tests/ is on sys.path through pytest's pythonpath)."""

import numpy as np

# Tolerances for comparisons with the float64 oracle, by the dtype of the model.
RTOL = {np.float64: 1e-10, np.float32: 2e-4}
ATOL = {np.float64: 1e-12, np.float32: 2e-5}


BIASES = [False, True]  # for @pytest.mark.parametrize("bias", BIASES)


def make_problem(rng, N, T, n, d, m, dtype=np.float64, w_scale=1.0, bias=False):
    """Random weights and data of the given sizes (float64), and a model of dtype.

    bias=True gives the model random nonzero biases b and c, drawn after
    everything else, so that the weights and data are those of bias=False.
    """
    import crnn

    U = rng.normal(scale=w_scale / np.sqrt(n), size=(d, n))
    W = rng.normal(scale=w_scale / np.sqrt(d), size=(d, d))
    V = rng.normal(scale=1 / np.sqrt(d), size=(m, d))
    X = rng.normal(size=(N, T, n))
    target = rng.normal(size=(N, T, m))
    s0 = rng.uniform(-0.9, 0.9, size=(N, d))
    biases = {}
    if bias:
        biases = {"b": rng.normal(scale=0.7, size=d), "c": rng.normal(scale=1.5, size=m)}
    rnn = crnn.RNN.from_weights(U, W, V, dtype=dtype, **biases)
    assert rnn.bias is bias
    return rnn, X, target, s0


def make_case(rng, N, T, n, d, m, dtype=np.float64, s0_kind="batch", w_scale=1.0, bias=False):
    """make_problem for one sequence (N None: X (T, n)) or a batch, and an s0 of a kind.

    s0_kind is "none" (None), "shared" (one (d,) state) or "batch" ((N, d));
    a single sequence has s0 (d,) unless s0_kind is "none".
    """
    rnn, X, target, s0 = make_problem(rng, N or 1, T, n, d, m, dtype, w_scale, bias)
    if N is None:
        X, target = X[0], target[0]
    if s0_kind == "none":
        s0 = None
    elif s0_kind == "shared" or N is None:
        s0 = s0[0]
    return rnn, X, target, s0


def params(rnn):
    """The names of the model's parameters: U, W, V, and b, c when it has biases."""
    return ("U", "W", "V", "b", "c") if rnn.bias else ("U", "W", "V")


def fresh_thread_peak(call):
    """Peak bytes traced while call() runs in a new thread.

    A new thread starts with an empty workspace cache (crnn keeps its
    workspaces per Python thread), so the peak includes every allocation the
    call needs.
    """
    import threading
    import tracemalloc

    peaks = []

    def run():
        tracemalloc.start()
        try:
            call()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert peaks, "the call raised in its thread"
    return peaks[0]
