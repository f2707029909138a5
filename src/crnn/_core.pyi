# Stubs for the compiled kernels (crnn/_core.pyx). Every array is C-contiguous
# and of one dtype, float32 or float64, for all arguments of a call; inputs are
# const memoryviews, outputs and scratch writable ones.
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

_F: TypeAlias = NDArray[np.floating]

def _openmp_enabled() -> bool: ...
def _debug_build() -> bool: ...
def _loss_work_size(T: int, n: int, d: int, m: int) -> int: ...
def _bptt_work_size(T: int, n: int, d: int, m: int) -> int: ...
def _rtrl_work_size(T: int, n: int, d: int, m: int) -> int: ...
def _forward(
    U: _F,  # const floating[:, ::1] (d, n)
    W: _F,  # const floating[:, ::1] (d, d)
    V: _F,  # const floating[:, ::1] (m, d)
    X: _F,  # const floating[:, :, ::1] (N, T, n)
    s0: _F,  # const floating[:, ::1] (N, d)
    S: _F,  # floating[:, :, ::1] (N, T, d), OUT
    Y: _F,  # floating[:, :, ::1] (N, T, m), OUT
    n_threads: int,
) -> None: ...
def _loss(
    U: _F,
    W: _F,
    V: _F,
    X: _F,
    target: _F,  # const floating[:, :, ::1] (N, T, m)
    s0: _F,
    g: float,
    E: _F,  # floating[::1] (N,), OUT
    work: _F,  # floating[:, ::1] (n_threads, _loss_work_size), SCRATCH
    n_threads: int,
) -> None: ...
def _gradient(
    U: _F,
    W: _F,
    V: _F,
    X: _F,
    target: _F,
    s0: _F,
    g: float,
    method: int,  # 0 = BPTT, 1 = RTRL
    grad: _F,  # floating[::1] (d*n + d*d + m*d,), OUT
    ds0: _F,  # floating[:, ::1] (N, d), OUT
    E: _F,  # floating[::1] (N,), OUT
    slots: _F,  # floating[:, ::1] (K, d*n + d*d + m*d), SCRATCH
    work: _F,  # floating[:, ::1] (n_threads, work size), SCRATCH
    n_threads: int,
) -> None: ...
