# Stubs for the compiled kernels (crnn/_core.pyx with the units it includes,
# built once per instruction set as crnn._core_baseline, _core_avx2,
# _core_avx512; crnn/_core.py imports one, crnn/_kernels.py is their only
# caller). Every array is C-contiguous
# and of one dtype, float32 or float64, for all arguments of a call; inputs are
# const memoryviews, outputs and scratch writable ones.
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

_F: TypeAlias = NDArray[np.floating]

#: The variant in use ("baseline", "avx2" or "avx512"), and the ones known.
variant: str
VARIANTS: dict[str, tuple[str, ...]]

def supported(variant: str) -> bool: ...
def available() -> list[str]: ...
def _openmp_enabled() -> bool: ...
def _debug_build() -> bool: ...
def _simd_info() -> tuple[str, int, int]: ...
def _cpu_features() -> dict[str, bool]: ...
def _tanh_array(z: _F) -> None: ...  # floating[::1], IN/OUT
def _pack_size(n: int, d: int, m: int) -> int: ...
def _forward_work_size(R: int, n: int, d: int, m: int) -> int: ...
def _bptt_buffer_sizes(N: int, T: int, n: int, d: int, m: int, L: int) -> tuple[int, int]: ...
def _bptt_work_size(d: int, m: int) -> int: ...
def _rtrl_work_size(n: int, d: int, m: int, nch: int, bias: bool = False) -> int: ...
def _gradient_size(n: int, d: int, m: int, bias: bool = False) -> int: ...
def _online_work_size(n: int, d: int, m: int, bias: bool = False) -> int: ...
def _panel_columns() -> tuple[int, int]: ...
def _rows_per_block(N: int, n_threads: int) -> int: ...
def _set_main_thread(ident: int) -> None: ...  # the thread that runs signal handlers
def _in_signal_handler() -> bool: ...
def _forward(
    U: _F,  # const floating[:, ::1] (d, n)
    W: _F,  # const floating[:, ::1] (d, d)
    V: _F,  # const floating[:, ::1] (m, d)
    b: _F,  # const floating[::1] (d,), or (0,): no biases
    c: _F,  # const floating[::1] (m,), or (0,) with b
    X: _F,  # const floating[:, :, ::1] (N, T, n)
    s0: _F,  # const floating[:, ::1] (N, d)
    S: _F,  # floating[:, :, ::1] (N, T, d), OUT
    Y: _F,  # floating[:, :, ::1] (N, T, m), OUT
    pack: _F,  # floating[::1] (_pack_size,), SCRATCH
    work: _F,  # floating[:, ::1] (n_threads, _forward_work_size(_rows_per_block(N, n_threads), ...))
    n_threads: int,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _generate(
    U: _F,
    W: _F,
    V: _F,
    b: _F,
    c: _F,
    x0: _F,  # const floating[:, ::1] (N, n): the first inputs
    s0: _F,  # const floating[:, ::1] (N, d)
    out: _F,  # floating[:, :, ::1] (N, T, n): the outputs, each the next input (m == n), OUT
    sT: _F,  # floating[:, ::1] (N, d): the final states, OUT
    pack: _F,  # as in _forward, SCRATCH
    work: _F,  # as in _forward, SCRATCH
    n_threads: int,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _loss(
    U: _F,
    W: _F,
    V: _F,
    b: _F,
    c: _F,
    X: _F,
    target: _F,  # const floating[:, :, ::1] (N, T, m)
    s0: _F,
    g: float,
    E: _F,  # floating[::1] (N,), OUT
    pack: _F,  # as in _forward, SCRATCH
    work: _F,  # as in _forward, SCRATCH
    n_threads: int,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _bptt_gradient(
    U: _F,
    W: _F,
    V: _F,
    b: _F,
    c: _F,
    X: _F,
    target: _F,
    s0: _F,
    g: float,
    grad: _F,  # floating[::1] (_gradient_size,): [dU dW] (d, n+d), dV (m, d), (db, dc), OUT
    ds0: _F,  # floating[:, ::1] (N, d), OUT
    E: _F,  # floating[::1] (N,), OUT
    parts: _F,  # floating[:, ::1] (K, _gradient_size): the K parts' sums, SCRATCH
    pack: _F,  # floating[::1] (_pack_size,), SCRATCH
    A: _F,  # floating[::1] (_bptt_buffer_sizes[0],), SCRATCH
    B: _F,  # floating[::1] (_bptt_buffer_sizes[1],), SCRATCH
    work: _F,  # floating[:, ::1] (n_threads, _bptt_work_size(d, m)), SCRATCH
    L: int,  # steps per block of the backward recurrence
    n_threads: int,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _rtrl_gradient(
    U: _F,
    W: _F,
    V: _F,
    b: _F,
    c: _F,
    X: _F,
    target: _F,
    s0: _F,
    g: float,
    grad: _F,  # as in _bptt_gradient, OUT
    ds0: _F,  # as in _bptt_gradient, OUT
    E: _F,  # as in _bptt_gradient, OUT
    slots: _F,  # floating[:, ::1] (K, _gradient_size): K sequences' gradients, SCRATCH
    pack: _F,  # floating[::1] (_pack_size,), SCRATCH
    work: _F,  # floating[:, ::1] (n_threads, _rtrl_work_size(n, d, m, nch, bias)), SCRATCH
    nch: int,  # each sequence's sensitivity columns in nch chunks
    n_threads: int,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _rtrl_online(
    U: _F,  # floating[:, ::1] (d, n), IN/OUT
    W: _F,  # floating[:, ::1] (d, d), IN/OUT
    V: _F,  # floating[:, ::1] (m, d), IN/OUT
    b: _F,  # floating[::1] (d,) or (0,), IN/OUT
    c: _F,  # floating[::1] (m,) or (0,), IN/OUT
    X: _F,  # const floating[:, ::1] (T, n)
    target: _F,  # const floating[:, ::1] (T, m)
    s: _F,  # floating[::1] (d,), IN/OUT
    P: _F,  # floating[:, ::1] (2, panels of the d (n + d) (+ d) columns), IN/OUT
    cur: NDArray[np.intp],  # Py_ssize_t[::1] (1,): P[cur[0]] is current, IN/OUT
    g: float,
    lr: float,
    clip: float,
    Y: _F,  # floating[:, ::1] (T, m), OUT
    E: _F,  # floating[::1] (T,), OUT
    grad_sum: _F,  # floating[::1] (_gradient_size,), IN/OUT
    work: _F,  # floating[::1] (_online_work_size,), SCRATCH
) -> int: ...  # the steps made; -1 when the weights or data hold a NaN or an infinity
