"""Shared test helpers (tests/ is on sys.path through pytest's pythonpath)."""

import numpy as np

# Tolerances for comparisons with the float64 oracle, by the dtype of the model.
RTOL = {np.float64: 1e-10, np.float32: 2e-4}
ATOL = {np.float64: 1e-12, np.float32: 2e-5}


def make_problem(rng, N, T, n, d, m, dtype=np.float64, w_scale=1.0):
    """Random weights and data of the given sizes (float64), and a model of dtype."""
    import crnn

    U = rng.normal(scale=w_scale / np.sqrt(n), size=(d, n))
    W = rng.normal(scale=w_scale / np.sqrt(d), size=(d, d))
    V = rng.normal(scale=1 / np.sqrt(d), size=(m, d))
    X = rng.normal(size=(N, T, n))
    target = rng.normal(size=(N, T, m))
    s0 = rng.uniform(-0.9, 0.9, size=(N, d))
    rnn = crnn.RNN.from_weights(U, W, V, dtype=dtype)
    return rnn, X, target, s0


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
