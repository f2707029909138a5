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
def _openmp_max_threads() -> int: ...
def _debug_build() -> bool: ...
def _simd_info() -> tuple[str, int, int]: ...
def _cpu_features() -> dict[str, bool]: ...
def _tanh_array(z: _F) -> None: ...  # floating[::1], IN/OUT
def _activate_array(z: _F, act: int) -> None: ...  # z = f(z), floating[::1], IN/OUT
def _slope_array(h: _F, act: int) -> None: ...  # h = f'(z) from h = f(z), IN/OUT
def _forward_workspace_size(N: int, n: int, d: int, m: int, n_threads: int) -> int: ...
def _bptt_buffer_sizes(N: int, T: int, n: int, d: int, m: int, L: int) -> tuple[int, int]: ...
def _bptt_workspace_size(
    N: int, T: int, n: int, d: int, m: int, L: int, K: int, bias: bool, leaky: bool, n_threads: int
) -> int: ...
def _rtrl_workspace_size(
    n: int, d: int, m: int, nch: int, bias: bool, K: int, n_threads: int
) -> int: ...
def _gradient_size(n: int, d: int, m: int, bias: bool = False) -> int: ...
def _online_work_size(n: int, d: int, m: int, bias: bool = False) -> int: ...
def _panel_columns() -> tuple[int, int]: ...
def _rows_per_block(N: int, n_threads: int) -> int: ...
def _parameter_size(n: int, d: int, m: int, bias: bool = False) -> int: ...
def _set_main_thread(ident: int) -> None: ...  # the thread that runs signal handlers
def _in_signal_handler() -> bool: ...
def _forward(
    theta: _F,  # const floating[::1] (_parameter_size,): U, W, V, then b, c with biases
    X: _F,  # const floating[:, :, ::1] (N, T, n)
    s0: _F,  # const floating[:, ::1] (N, d)
    S: _F,  # floating[:, :, ::1] (N, T, d), OUT
    Y: _F,  # floating[:, :, ::1] (N, T, m), OUT
    ws: _F,  # floating[::1] (_forward_workspace_size(N, n, d, m, n_threads),), SCRATCH
    n_threads: int,
    act: int,  # the activation, a CELL_ code of _cell.pxi
    leak: float,  # the leak rate, in (0, 1]
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _step(
    theta: _F,  # as in _forward
    x: _F,  # const floating[:, ::1] (N, n)
    s: _F,  # const floating[:, ::1] (N, d)
    s_new: _F,  # floating[:, ::1] (N, d), OUT
    y: _F,  # floating[:, ::1] (N, m), OUT
    act: int,
    leak: float,
) -> int: ...  # the count of NaN and infinite values in theta, x and s
def _generate(
    theta: _F,
    x0: _F,  # const floating[:, ::1] (N, n): the first inputs
    s0: _F,  # const floating[:, ::1] (N, d)
    out: _F,  # floating[:, :, ::1] (N, T, n): the outputs, each the next input (m == n), OUT
    sT: _F,  # floating[:, ::1] (N, d): the final states, OUT
    ws: _F,  # as in _forward, SCRATCH
    n_threads: int,
    act: int,
    leak: float,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _loss(
    theta: _F,
    X: _F,
    target: _F,  # const floating[:, :, ::1] (N, T, m)
    weight: _F | None,  # const floating[:, :, ::1] (N, T, m); None (or (0, 0, 0)): none
    s0: _F,
    g: float,
    E: _F,  # floating[::1] (N,), OUT
    ws: _F,  # as in _forward, SCRATCH
    n_threads: int,
    act: int,
    leak: float,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _bptt_gradient(
    theta: _F,
    X: _F,
    target: _F,
    weight: _F | None,  # as in _loss
    s0: _F,
    g: float,
    out: _F,  # floating[::1] (_gradient_size + N d + N,): dE/dtheta, dE/dS^0, E, OUT
    ws: _F,  # floating[::1] (_bptt_workspace_size(N, T, n, d, m, L, K, bias, leaky, n_threads),)
    K: int,  # the batch's gradient in K parts (groups of sequences), added in order
    L: int,  # steps per block of the backward recurrence
    n_threads: int,
    act: int,
    leak: float,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _rtrl_gradient(
    theta: _F,
    X: _F,
    target: _F,
    weight: _F | None,  # as in _loss
    s0: _F,
    g: float,
    out: _F,  # as in _bptt_gradient, OUT
    ws: _F,  # floating[::1] (_rtrl_workspace_size(n, d, m, nch, bias, K, n_threads),)
    K: int,  # sequences whose gradients are computed at a time, then added in order
    nch: int,  # each sequence's sensitivity columns in nch chunks
    n_threads: int,
    act: int,
    leak: float,
) -> int: ...  # the count of NaN and infinite values in the weights and inputs
def _rtrl_online(
    theta: _F,  # floating[::1] (_parameter_size,), IN/OUT
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
    last: _F,  # floating[::1] (_gradient_size,): the last step's gradient, OUT
    work: _F,  # floating[::1] (_online_work_size,), SCRATCH
    act: int,
    leak: float,
) -> int: ...  # the steps made; -1 when the weights or data hold a NaN or an infinity

# crnn.online: the online algorithms around exact RTRL (_online_family.pxi)
def _online_family_sizes(
    alg: int, n: int, d: int, m: int, bias: bool, horizon: int
) -> tuple[int, int, int]: ...  # (rows, row size) of the carried memory, the work's size
def _online_family(
    alg: int,  # the algorithm, an ALG_ code of _online_family.pxi
    theta: _F,  # floating[::1] (_parameter_size,), IN/OUT
    X: _F,  # const floating[:, ::1] (T, n)
    target: _F,  # const floating[:, ::1] (T, m)
    s: _F,  # floating[::1] (d,), IN/OUT
    mem: _F,  # floating[:, ::1] (rows, size) of _online_family_sizes, IN/OUT
    ints: NDArray[np.intp],  # Py_ssize_t[::1] (7,): the counters, IN/OUT
    mask: _F,  # const floating[::1] (d * d,): SnAp-2's pattern
    g: float,
    lr: float,
    clip: float,
    Y: _F,  # floating[:, ::1] (T, m), OUT
    E: _F,  # floating[::1] (T,), OUT
    grad_sum: _F,  # floating[::1] (_parameter_size,), IN/OUT
    last: _F,  # floating[::1] (_parameter_size,), OUT
    work: _F,  # floating[::1] (the work's size), SCRATCH
    act: int,
    leak: float,
) -> int: ...  # the steps made; -1 when the weights or data hold a NaN or an infinity
def _dyn_jacobians_work_size(d: int, n_threads: int) -> int: ...
def _dyn_jacobians(
    theta: _F,  # as in _forward
    X: _F,  # const floating[:, ::1] (R, n): the inputs of R independent points
    P: _F,  # const floating[:, ::1] (R, d): the states they meet
    S: _F,  # floating[:, ::1] (R, d): the next states F(P[r]), OUT
    J: _F,  # floating[:, :, ::1] (R, d, d): dF/ds, OUT
    Jx: _F,  # floating[:, :, ::1] (R, d, n) dF/dx, OUT; or (0, d, n) for none
    ws: _F,  # floating[::1] (_dyn_jacobians_work_size(d, n_threads),), SCRATCH
    m: int,  # the output size
    n_threads: int,
    act: int,
    leak: float,
) -> None: ...
def _dyn_lyapunov_work_size(d: int, k: int) -> int: ...
def _dyn_lyapunov(
    theta: _F,  # as in _forward
    X: _F,  # const floating[:, ::1] (T, n): every step's input, the warm-up's first
    s: _F,  # floating[::1] (d,): S^0, IN; S^T, OUT
    Q: _F,  # floating[:, ::1] (k, d): orthonormal tangent rows, IN/OUT
    warmup: int,  # steps of the state alone, < T
    every: int,  # steps between two QRs, >= 1; 0: chosen as it goes
    logs: _F,  # floating[:, ::1] (C, k): log |r_ii| per QR, OUT (C: see _dynamics.pxi)
    at: NDArray[np.intp],  # Py_ssize_t[::1] (C,): the steps each QR closes, OUT
    ws: _F,  # floating[::1] (_dyn_lyapunov_work_size(d, k),), SCRATCH
    m: int,  # the output size
    act: int,
    leak: float,
) -> int: ...  # the QRs made
def _jacobian_sensitivity_columns(n: int, d: int, bias: bool = False) -> int: ...
def _jacobian_workspace_size(n: int, d: int, bias: bool, n_threads: int) -> int: ...
def _output_jacobian(
    theta: _F,  # const floating[::1] (_parameter_size,)
    X: _F,  # const floating[:, :, ::1] (N, T, n)
    s: _F,  # floating[:, ::1] (N, d): S^0, then S^T, IN/OUT
    sens: _F,  # floating[:, :, ::1] (N, d, _jacobian_sensitivity_columns): IN/OUT
    J: _F,  # floating[:, :, :, ::1] (N, T, m, P): dY/dtheta in theta's layout, OUT
    Y: _F,  # floating[:, :, ::1] (N, T, m): the outputs, OUT
    ws: _F,  # floating[::1] (_jacobian_workspace_size(n, d, bias, n_threads),), SCRATCH
    n_threads: int,
    act: int,
    leak: float,
) -> int: ...  # the count of NaN and infinite values in the weights, X and s
def _gram_update(
    B: _F,  # const floating[:, ::1] (R, p + 1): [J r]
    Bp: _F,  # floating[::1] (R (p + 1),): B packed, SCRATCH
    H: _F,  # floating[:, ::1] (p, p + 1): += J^T [J r], upper triangle, IN/OUT
    n_threads: int,
) -> int: ...
