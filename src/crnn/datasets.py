# SPDX-License-Identifier: BSD-3-Clause
"""Data for examples and tests, generated locally with numpy alone.

Generators
    :func:`sine_waves`    sine waves of several frequencies and phases, (N, T, 1)
    :func:`mackey_glass`  the Mackey-Glass chaotic series, (T, 1)
    :func:`flip_flop`     the n-bit flip-flop task of Sussillo and Barak, (N, T, n) twice
    :func:`add_task`      the add task of online learning (Pitis; Marschall et al.), (T, 1) twice
    :func:`mimic`         inputs and the outputs of a random teacher network of the same kind

Helpers
    :func:`next_step`         a series -> (X, target) pairs, target = X shifted by ``horizon``
    :func:`windows`           a long series -> (N, length, k) sub-sequences
    :func:`train_test_split`  along time for one series, along the batch for several

Every function is deterministic: the same arguments (and the same ``seed``)
give the same numbers, bit for bit. Nothing is downloaded.

Examples
--------
>>> from crnn import datasets
>>> series = datasets.mackey_glass(1200, seed=0)  # (1200, 1)
>>> X, target = datasets.next_step(series)  # (1199, 1) each
>>> X_train, X_test, t_train, t_test = datasets.train_test_split(X, target, 0.25)
>>> Xw, tw = datasets.windows(X_train, 100), datasets.windows(t_train, 100)
>>> Xw.shape, X_test.shape
((8, 100, 1), (300, 1))
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from crnn._validation import (
    as_real_array,
    check_dtype,
    check_int,
    check_real,
    check_size,
    is_real,
    make_rng,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import NDArray

    from crnn._rnn import RNN
    from crnn._typing import ArrayLike, FloatArray, FloatDType, Seed

    #: One cubic Hermite stage: offset, theta and the four basis weights.
    _Stage = tuple[int, float, float, float, float, float]

__all__ = ["flip_flop", "mackey_glass", "next_step", "sine_waves", "train_test_split", "windows"]

#: Frequencies (cycles per step) drawn by :func:`sine_waves` when none are given.
DEFAULT_FREQUENCIES = (0.02, 0.2)


# ---------------------------------------------------------------------- checks


def _series(value: object, name: str, ndims: tuple[int, ...] = (2, 3)) -> NDArray[Any]:
    """Return value as a real ndarray of one of the ranks in ndims (not copied)."""
    return as_real_array(value, name, ndims, {1: f" (use {name}[:, None] for a single feature)"})


def _per_series(
    value: object,
    name: str,
    n_series: int,
    default: tuple[float, float],
    unit_draws: NDArray[np.float64],
    low: float,
    high: float,
    high_open: bool,
) -> NDArray[np.float64]:
    """Resolve a frequencies/phases argument to an array of shape (n_series,).

    None draws from ``default``; a tuple (lo, hi) draws uniformly from [lo, hi);
    a real number is used for every series; any other array_like must hold one
    value per series. ``unit_draws`` are the uniform [0, 1) numbers to draw with.
    """
    if value is None:
        value = default
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(
                f"{name} given as a tuple must be a range (low, high); got {len(value)} "
                "values (pass a list or an array for one value per series)"
            )
        lo = check_real(value[0], f"{name}[0] (low)", low=low, high=high, high_open=high_open)
        hi = check_real(value[1], f"{name}[1] (high)", low=low, high=high, high_open=high_open)
        if lo > hi:
            raise ValueError(f"{name} range (low, high) must have low <= high, got {value}")
        return lo + (hi - lo) * unit_draws
    if is_real(value):
        return np.full(n_series, check_real(value, name, low=low, high=high, high_open=high_open))
    arr = _series(value, name, ndims=(1,)).astype(np.float64)
    if arr.shape != (n_series,):
        raise ValueError(
            f"{name} must be None, a number, a (low, high) tuple or one value per series "
            f"(shape ({n_series},)), got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr) | (arr < low) | ((arr >= high) if high_open else (arr > high))
    if bad.any():
        i = int(np.argmax(bad))
        bracket = ")" if high_open else "]"
        raise ValueError(
            f"{name} must be finite, in [{low}, {high}{bracket}; {name}[{i}] is {arr[i]}"
        )
    return arr


# ---------------------------------------------------------------------- sine waves


def sine_waves(
    n_series: int = 16,
    length: int = 100,
    *,
    frequencies: float | tuple[float, float] | ArrayLike | None = None,
    phases: float | tuple[float, float] | ArrayLike | None = None,
    noise: float = 0.0,
    seed: Seed = None,
    dtype: FloatDType = np.float64,
) -> FloatArray:
    r"""Return sine waves of several frequencies and phases.

    .. math:: x_i(t) = \sin(2 \pi f_i t + \varphi_i) + \sigma \varepsilon_{i,t},
        \quad t = 0, 1, \ldots, \text{length} - 1

    with :math:`\varepsilon` standard normal noise.

    Parameters
    ----------
    n_series : int, default 16
        N, the number of series.
    length : int, default 100
        T, the number of time steps of each series.
    frequencies : None, float, tuple (low, high) or array_like of shape (n_series,)
        Frequencies :math:`f_i` in cycles per time step, in (0, 0.5]
        (0.5 is the Nyquist frequency: two steps per cycle). None draws
        each uniformly from [0.02, 0.2) (periods of 5 to 50 steps); a tuple
        (low, high) draws uniformly from [low, high); a number is used for
        every series; a list or an array gives one frequency per series.
    phases : None, float, tuple (low, high) or array_like of shape (n_series,)
        Phases :math:`\varphi_i` in radians, in the same forms. None draws
        them uniformly from [0, 2 pi).
    noise : float, default 0.0
        :math:`\sigma`, the standard deviation of Gaussian noise added to
        every value (0 for clean waves).
    seed : None, int or numpy.random.Generator
        Source of the random frequencies, phases and noise. An int gives the
        same series every time; None gives fresh ones.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64

    Returns
    -------
    ndarray of shape (n_series, length, 1)
        One feature per step, ready for :func:`next_step`.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or value; the message names it.

    Notes
    -----
    The random numbers are drawn in a fixed order (one uniform per series
    for the frequencies, one for the phases, then the noise), and the draws
    are made even when they are not needed, so that with the same seed,
    giving the frequencies does not change the phases and vice versa.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn.datasets import sine_waves
    >>> sine_waves(4, 50, seed=0).shape
    (4, 50, 1)
    >>> x = sine_waves(1, 5, frequencies=0.25, phases=0.0)[0, :, 0]
    >>> np.round(x, 12) + 0.0
    array([ 0.,  1.,  0., -1.,  0.])
    """
    n_series = check_size(n_series, "n_series")
    length = check_size(length, "length")
    noise = check_real(noise, "noise", low=0.0)
    dtype = check_dtype(dtype)
    rng = make_rng(seed)
    u_freq = rng.random(n_series)
    u_phase = rng.random(n_series)
    freq = _per_series(
        frequencies, "frequencies", n_series, DEFAULT_FREQUENCIES, u_freq, 0.0, 0.5, False
    )
    if (freq <= 0).any():
        raise ValueError(f"frequencies must be > 0 cycles per step, got {freq.min()}")
    phase = _per_series(
        phases, "phases", n_series, (0.0, 2 * np.pi), u_phase, -np.inf, np.inf, False
    )
    t = np.arange(length, dtype=np.float64)
    x = np.sin(2 * np.pi * freq[:, np.newaxis] * t + phase[:, np.newaxis])
    if noise > 0:
        x += noise * rng.standard_normal(x.shape)
    return x[..., np.newaxis].astype(dtype)


# ---------------------------------------------------------------------- Mackey-Glass


def _hermite(theta: float) -> tuple[float, float, float, float]:
    """Cubic Hermite basis at theta in [0, 1): weights of x_j, h f_j, x_j+1, h f_j+1."""
    t2, t3 = theta * theta, theta * theta * theta
    return (2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + theta, -2 * t3 + 3 * t2, t3 - t2)


#: Bytes a step of the delay buffer takes: a float object (24 bytes) and its
#: slot in a list (8), for x and for x'.
_BYTES_PER_BUFFERED_STEP = 64


def _physical_memory() -> int | None:
    """Return this machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _delay_buffer(q: float, steps: int) -> int:
    """Return the number of steps the delay's ring buffer keeps, if it fits in memory.

    Steps k - ceil(q) - 1 .. k are read at step k, but never one before the
    first: a delay longer than the steps integrated needs no more than those
    steps (the values before t = 0 are the constant history). The buffer
    holds distinct steps either way, so the values are the same.
    """
    size = min(math.ceil(q) + 3, steps + 2)
    need, have = size * _BYTES_PER_BUFFERED_STEP, _physical_memory()
    if have is not None and need > have:
        raise ValueError(
            f"tau / dt = {q:.6g} steps of delay over {steps} integration steps need a "
            f"delay buffer of {size} steps ({need / 2**30:.3g} GiB), more than this "
            f"machine's memory ({have / 2**30:.3g} GiB); use a larger dt or a smaller tau"
        )
    return size


def _integrate_mackey_glass(
    steps: int,
    record: Iterable[int],
    tau: float,
    beta: float,
    gamma: float,
    n: float,
    dt: float,
    history: float,
) -> list[float]:
    """Integrate the Mackey-Glass equation by RK4; return x at the given step indices.

    x(t) = history for t <= 0. ``record`` is an increasing sequence of step
    indices k (times k * dt) whose values are returned. Pure Python floats:
    the recurrence is serial and a numpy scalar per operation would be slower.
    """
    q = tau / dt
    if abs(q - round(q)) <= 1e-9 * max(1.0, q):
        q = float(round(q))  # the delay falls on the grid: no interpolation at whole steps
    # For each RK4 stage time t_k + c dt, the delayed time t_k + c dt - tau is at
    # step position k + s with s = c - q = off + theta, 0 <= theta < 1.
    stages: list[_Stage] = []
    for c in (0.0, 0.5, 1.0):
        s = c - q
        off = math.floor(s)
        theta = s - off
        stages.append((off, theta, *_hermite(theta)))
    size = _delay_buffer(q, steps)
    xs = [0.0] * size
    fs = [0.0] * size
    half, sixth = 0.5 * dt, dt / 6.0

    def interpolate(j: int, theta: float, h00: float, h10: float, h01: float, h11: float) -> float:
        # cubic Hermite interpolation between steps j and j + 1, with the stored
        # derivatives: error O(dt^4), the order of RK4 itself
        if j + theta <= 0:  # at or before t = 0: the initial history
            return history
        a = j % size
        if theta == 0.0:
            return xs[a]
        b = (j + 1) % size
        return h00 * xs[a] + dt * (h10 * fs[a] + h11 * fs[b]) + h01 * xs[b]

    def delayed(k: int, stage: _Stage) -> float:
        off, theta, h00, h10, h01, h11 = stage
        return interpolate(k + off, theta, h00, h10, h01, h11)

    def delayed_at(pos: float) -> float:  # x(t - tau) at t = pos * dt, for any pos
        j = math.floor(pos - q)
        theta = pos - q - j
        return interpolate(j, theta, *_hermite(theta))

    def F(x: float, xd: float) -> float:
        return beta * xd / (1.0 + xd**n) - gamma * x  # type: ignore[no-any-return]

    def rk4(x: float, pos: float, h: float) -> float:  # one RK4 step of length h from t = pos * dt
        k1 = F(x, delayed_at(pos))
        dh = delayed_at(pos + 0.5 * h / dt)
        k2 = F(x + 0.5 * h * k1, dh)
        k3 = F(x + 0.5 * h * k2, dh)
        k4 = F(x + h * k3, delayed_at(pos + h / dt))
        return x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    # x(t - tau) has a derivative jump at t = tau (the history meets the solution
    # at t = 0), so dx/dt has a kink there. When tau falls inside a step, that
    # step is split at tau, or it would be integrated to second order only.
    kink = math.floor(q) if q != math.floor(q) else -1

    out = []
    records = iter(record)
    want = next(records, None)
    x = history
    s0, sh, s1 = stages
    for k in range(steps + 1):
        i = k % size
        xs[i] = x
        d0 = delayed(k, s0)
        k1 = beta * d0 / (1.0 + d0**n) - gamma * x
        fs[i] = k1  # x'(t_k), the right derivative at t = 0
        if k == want:
            out.append(x)
            want = next(records, None)
            if want is None:
                break
        if k == kink:
            h1 = (q - k) * dt
            x = rk4(rk4(x, k, h1), q, dt - h1)
            continue
        dh = delayed(k, sh)
        p = beta * dh / (1.0 + dh**n)
        k2 = p - gamma * (x + half * k1)
        k3 = p - gamma * (x + half * k2)
        d1 = delayed(k, s1)
        k4 = beta * d1 / (1.0 + d1**n) - gamma * (x + dt * k3)
        x = x + sixth * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return out


def mackey_glass(
    length: int = 1000,
    *,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10.0,
    dt: float = 0.1,
    subsample: float = 1.0,
    x0: float = 1.2,
    discard: float = 1000.0,
    seed: Seed = None,
    dtype: FloatDType = np.float64,
) -> FloatArray:
    r"""Return the Mackey-Glass chaotic time series.

    The solution of the delay differential equation

    .. math:: \frac{dx}{dt} = \beta \frac{x(t - \tau)}{1 + x(t - \tau)^n} - \gamma x(t)

    with the constant history :math:`x(t) = x_0` for :math:`t \le 0`,
    integrated with the classical fourth-order Runge-Kutta method at step
    ``dt``. The first ``discard`` time units (the transient) are dropped,
    then one value is kept every ``subsample`` time units.

    Parameters
    ----------
    length : int, default 1000
        T, the number of values returned.
    tau : float, default 17
        The delay :math:`\tau`, >= ``dt``. With the default beta, gamma
        and n, tau = 17 gives the classic chaotic benchmark; see Notes.
    beta, gamma, n : float, defaults 0.2, 0.1, 10
        The equation's constants, > 0.
    dt : float, default 0.1
        Integration step, in the equation's time units. When tau is a whole
        multiple of dt the delayed values fall on the grid; otherwise they
        are interpolated.
    subsample : float, default 1.0
        Time between returned values; a whole multiple of dt.
    x0 : float, default 1.2
        The initial history, > 0.
    discard : float, default 1000
        Time integrated and thrown away before the first returned value
        (rounded to a whole number of steps); 0 keeps the transient.
    seed : None, int or numpy.random.Generator
        None keeps the history at exactly ``x0``. Otherwise the history is
        the constant ``x0 * (1 + u)`` with u drawn uniformly from
        [-0.1, 0.1): different seeds give different trajectories on the same
        attractor, the same seed the same one.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        dtype of the result (the integration is always in float64).

    Returns
    -------
    ndarray of shape (length, 1)
        x at times ``discard + i * subsample``, i = 0 .. length - 1.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or value; the message names it.
        ValueError also if the delay buffer (see Notes) would not fit in
        this machine's memory.

    Notes
    -----
    Integration: every RK4 stage needs :math:`x(t - \tau)` at a step or a
    half step back in time; values between stored steps come from cubic
    Hermite interpolation through the two neighbouring steps and the
    derivatives there (which the equation gives), accurate to
    :math:`O(dt^4)`, so the whole scheme stays fourth order: halving dt
    divides the error by about 16. The derivative of x jumps at t = 0
    (where the constant history meets the solution), so dx/dt has a kink at
    t = tau; when tau is not a whole multiple of dt, the step holding t = tau
    is split there. Only the last ``tau / dt + 3`` steps are kept in
    memory, and never more than the steps integrated (64 bytes each): the
    memory follows the output and the delay, not tau alone. The cost is
    about 10 microseconds per time unit at dt = 0.1 (pure Python: the
    recurrence is serial).

    Dynamics, for beta = 0.2, gamma = 0.1, n = 10: x* = 1 is the positive
    fixed point (beta / (1 + 1) = gamma). Linearised there,
    :math:`\dot u(t) = -a u(t) - b u(t - \tau)` with :math:`a = \gamma = 0.1`
    and :math:`b = \beta (n - 2) / 4 = 0.4`, so x* is stable for
    :math:`\tau < \arccos(-a/b) / \sqrt{b^2 - a^2} \approx 4.71`. Beyond,
    a Hopf bifurcation gives a periodic orbit (e.g. tau = 7), period doubling
    follows (two alternating peak heights at tau = 14), and tau = 17 is
    chaotic (Mackey and Glass 1977; Farmer 1982), with values in about
    (0.4, 1.35). The test suite checks each of these.

    References
    ----------
    M. C. Mackey and L. Glass, "Oscillation and chaos in physiological
    control systems", Science 197(4300), 287-289, 1977.

    J. D. Farmer, "Chaotic attractors of an infinite-dimensional dynamical
    system", Physica D 4(3), 366-393, 1982.

    Examples
    --------
    >>> from crnn.datasets import mackey_glass
    >>> x = mackey_glass(500)
    >>> x.shape, bool(0.2 < x.min() and x.max() < 1.4)
    ((500, 1), True)
    """
    length = check_size(length, "length")
    tau = check_real(tau, "tau", low=0.0, low_open=True)
    beta = check_real(beta, "beta", low=0.0, low_open=True)
    gamma = check_real(gamma, "gamma", low=0.0, low_open=True)
    n = check_real(n, "n", low=0.0, low_open=True)
    dt = check_real(dt, "dt", low=0.0, low_open=True)
    subsample = check_real(subsample, "subsample", low=0.0, low_open=True)
    x0 = check_real(x0, "x0", low=0.0, low_open=True)
    discard = check_real(discard, "discard", low=0.0)
    dtype = check_dtype(dtype)
    if dt > tau:
        raise ValueError(f"dt must not exceed tau; got dt={dt} > tau={tau}")
    stride = round(subsample / dt)
    if stride < 1 or abs(stride * dt - subsample) > 1e-9 * subsample:
        raise ValueError(
            f"subsample must be a whole multiple of dt; got subsample={subsample}, dt={dt}"
        )
    start = round(discard / dt)
    steps = start + (length - 1) * stride
    if steps > 10**9:
        raise ValueError(
            f"length, discard and subsample ask for {steps} integration steps of dt={dt}, "
            "more than 10^9"
        )
    history = x0
    if seed is not None:
        history = x0 * (1.0 + make_rng(seed).uniform(-0.1, 0.1))
    record = range(start, steps + 1, stride)
    x = _integrate_mackey_glass(steps, record, tau, beta, gamma, n, dt, history)
    out = np.asarray(x, dtype=np.float64)[:, np.newaxis]
    if not np.isfinite(out).all():  # pragma: no cover - positive inputs keep x bounded
        raise ValueError("the integration diverged; try a smaller dt")
    return out.astype(dtype)


# ---------------------------------------------------------------------- helpers


def next_step(series: ArrayLike, horizon: int = 1) -> tuple[NDArray[Any], NDArray[Any]]:
    """Return (X, target) pairs for predicting ``horizon`` steps ahead.

    ``target[..., t, :]`` is ``series[..., t + horizon, :]`` and
    ``X[..., t, :]`` is ``series[..., t, :]``, so a model trained on them
    learns to forecast ``horizon`` steps ahead.

    Parameters
    ----------
    series : array_like of shape (T, k) or (N, T, k)
        One series of T steps with k features, or N of them.
    horizon : int, default 1
        How far ahead the target is, in steps; 1 <= horizon < T.

    Returns
    -------
    X : ndarray of shape (T - horizon, k) or (N, T - horizon, k)
    target : ndarray of the same shape
        Views into ``series`` when it is an ndarray (no copy is made; copy
        them before changing them in place).

    Raises
    ------
    TypeError, ValueError
        If series is not a 2-D or 3-D real array or horizon is not an int
        in [1, T).

    Examples
    --------
    >>> import numpy as np
    >>> X, target = next_step(np.arange(5.0)[:, None])
    >>> X[:, 0], target[:, 0]
    (array([0., 1., 2., 3.]), array([1., 2., 3., 4.]))
    """
    series = _series(series, "series")
    horizon = check_size(horizon, "horizon")
    T = series.shape[-2]
    if horizon >= T:
        raise ValueError(
            f"horizon must be less than the series' length {T} (axis -2 of shape "
            f"{series.shape}), got {horizon}"
        )
    return series[..., : T - horizon, :], series[..., horizon:, :]


def windows(series: ArrayLike, length: int, step: int | None = None) -> NDArray[Any]:
    """Cut a long series into sub-sequences of ``length`` steps.

    Window i covers steps ``i * step`` to ``i * step + length - 1``; steps
    after the last whole window are dropped.

    Parameters
    ----------
    series : array_like of shape (T, k) or (N, T, k)
        One series, or N series cut one after the other.
    length : int
        Steps per window, <= T.
    step : int, optional
        Steps between the starts of consecutive windows. None means
        ``length``: windows side by side, not overlapping. Less than
        ``length`` makes them overlap.

    Returns
    -------
    ndarray of shape (n_windows, length, k)
        ``n_windows = (T - length) // step + 1`` (times N for several
        series, all windows of the first series first). A new C-contiguous
        array of the input's dtype.

    Raises
    ------
    TypeError, ValueError
        If series is not a 2-D or 3-D real array, or length or step is not
        a positive int, or length exceeds T.

    Notes
    -----
    Apply it to X and to the target with the same arguments to keep them
    paired; each window then starts from the model's initial state, which
    loses the context before it (see ``truncate`` in training to carry the
    state across windows instead).

    Examples
    --------
    >>> import numpy as np
    >>> windows(np.arange(7)[:, None], 3)[..., 0]
    array([[0, 1, 2],
           [3, 4, 5]])
    >>> windows(np.arange(7)[:, None], 3, step=2)[..., 0]
    array([[0, 1, 2],
           [2, 3, 4],
           [4, 5, 6]])
    """
    series = _series(series, "series")
    length = check_size(length, "length")
    step = length if step is None else check_size(step, "step")
    batch = series if series.ndim == 3 else series[np.newaxis]
    T = batch.shape[1]
    if length > T:
        raise ValueError(
            f"length must not exceed the series' length {T} (axis -2 of shape "
            f"{series.shape}), got {length}"
        )
    count = (T - length) // step + 1
    starts = np.arange(count) * step
    idx = starts[:, np.newaxis] + np.arange(length)  # (count, length)
    out = batch[:, idx, :]  # (N, count, length, k): fancy indexing makes a copy
    return np.ascontiguousarray(out.reshape(-1, length, batch.shape[2]))


def train_test_split(
    X: ArrayLike, target: ArrayLike, test_fraction: float = 0.2
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Split (X, target) into a training part and a test part, without shuffling.

    - One series, (T, k): split **along time**. The first steps train, the
      last ``round(test_fraction * T)`` steps test, so the test part lies in
      the future of the training part, as in forecasting.
    - Several series, (N, T, k): split **along the batch**. The first
      sequences train, the last ``round(test_fraction * N)`` test; shuffle
      the batch first if its order means something.

    Each part keeps at least one step (or sequence).

    Parameters
    ----------
    X : array_like of shape (T, n) or (N, T, n)
    target : array_like of shape (T, m) or (N, T, m)
        Paired with X: the same rank and the same leading axes.
    test_fraction : float, default 0.2
        Share of the steps (one series) or sequences (several) for testing,
        in (0, 1).

    Returns
    -------
    X_train, X_test, target_train, target_test : ndarray
        In scikit-learn's order. Views into the inputs when they are ndarrays.

    Raises
    ------
    TypeError, ValueError
        If X or target is not a 2-D or 3-D real array, they do not pair, the
        fraction is outside (0, 1), or there is too little data for two parts.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(10.0)[:, None]
    >>> a, b, c, d = train_test_split(x[:-1], x[1:], test_fraction=0.3)
    >>> a.shape, b.shape, float(b[0, 0]), float(d[0, 0])
    ((6, 1), (3, 1), 6.0, 7.0)
    """
    X = _series(X, "X")
    target = _series(target, "target")
    test_fraction = check_real(
        test_fraction, "test_fraction", low=0.0, high=1.0, low_open=True, high_open=True
    )
    if target.ndim != X.ndim or target.shape[:-1] != X.shape[:-1]:
        raise ValueError(
            f"target must have X's leading axes {X.shape[:-1]} (and X's rank {X.ndim}), "
            f"got shape {target.shape}"
        )
    axis_name = "steps" if X.ndim == 2 else "sequences"
    total = X.shape[0]
    if total < 2:
        raise ValueError(
            f"X must have at least 2 {axis_name} to split (axis 0 of shape {X.shape}), got {total}"
        )
    n_test = min(max(round(test_fraction * total), 1), total - 1)
    cut = total - n_test
    return X[:cut], X[cut:], target[:cut], target[cut:]


# ---------------------------------------------------------------------- online learning's tasks

__all__ += ["add_task", "mimic"]


def add_task(
    length: int,
    t1: int = 5,
    t2: int = 9,
    *,
    seed: Seed = None,
    dtype: FloatDType = np.float64,
) -> tuple[FloatArray, FloatArray]:
    r"""Return one stream of the add task: random bits and a target that adds two of the past ones.

    .. math:: y^t = 0.5 + 0.5\, x^{t - t_1} - 0.25\, x^{t - t_2},
        \qquad x^t \in \{0, 1\} \text{ with probability } 1/2 \text{ each}

    (Pitis 2016; Marschall, Cho and Savin 2020, who train on it online). A
    network that predicts the mean has loss Var(y) = 0.078125 per step; one
    that has learnt the t1 dependency alone 0.015625 (0.2 of it), one that
    has learnt both 0. Marschall et al. read the target as the probability
    of a two-class output with a cross-entropy loss; here it is one output
    with the squared error.

    Parameters
    ----------
    length : int
        T, the number of steps.
    t1, t2 : int, default 5 and 9
        The delays, 0 <= t1 and 0 <= t2 (either may be the larger).
    seed : None, int or numpy.random.Generator
        Source of the bits: the same seed, the same stream.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64

    Returns
    -------
    X : ndarray of shape (length, 1)
        The bits x^t.
    target : ndarray of shape (length, 1)
        y^t; the bits before the stream's first step are drawn too, so that
        every target is defined.

    Examples
    --------
    >>> from crnn.datasets import add_task
    >>> X, target = add_task(1000, seed=0)
    >>> X.shape, target.shape, sorted(set(target[:, 0]))
    ((1000, 1), (1000, 1), [0.25, 0.5, 0.75, 1.0])
    """
    length = check_size(length, "length")
    t1 = check_int(t1, "t1", low=0)
    t2 = check_int(t2, "t2", low=0)
    dtype = check_dtype(dtype)
    rng = make_rng(seed)
    lag = max(t1, t2)
    bits = rng.integers(0, 2, size=length + lag).astype(np.float64)
    x = bits[lag:]
    y = 0.5 + 0.5 * bits[lag - t1 : lag - t1 + length] - 0.25 * bits[lag - t2 : lag - t2 + length]
    return x[:, None].astype(dtype), y[:, None].astype(dtype)


def mimic(
    length: int,
    input_size: int = 1,
    hidden_size: int = 16,
    output_size: int = 1,
    *,
    seed: Seed = None,
    dtype: FloatDType = np.float64,
    **options: Any,
) -> tuple[FloatArray, FloatArray, RNN]:
    """Return one stream whose targets a random teacher network of the same kind produces.

    The teacher is ``crnn.RNN(input_size, hidden_size, output_size,
    seed=..., **options)`` (``options`` as ``RNN``'s: ``init``,
    ``spectral_radius``, ``bias``, ``activation``, ``leak``); the inputs are
    standard normal, the targets its outputs from the zero state. A student
    of the same sizes can fit them exactly: the task measures how close an
    online algorithm gets.

    Parameters
    ----------
    length : int
        T, the number of steps.
    input_size, hidden_size, output_size : int
        The teacher's sizes.
    seed : None, int or numpy.random.Generator
        Source of the teacher's weights, then of the inputs.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
    **options
        The teacher's other options, as :class:`crnn.RNN` takes them.

    Returns
    -------
    X : ndarray of shape (length, input_size)
    target : ndarray of shape (length, output_size)
    teacher : RNN

    Examples
    --------
    >>> from crnn.datasets import mimic
    >>> X, target, teacher = mimic(500, 2, 8, 1, seed=0, spectral_radius=0.9)
    >>> X.shape, target.shape, teacher.hidden_size
    ((500, 2), (500, 1), 8)
    """
    from crnn._rnn import RNN

    length = check_size(length, "length")
    rng = make_rng(seed)
    teacher = RNN(input_size, hidden_size, output_size, dtype=dtype, seed=rng, **options)
    X = rng.standard_normal((length, teacher.input_size)).astype(teacher.dtype)
    _, Y = teacher.forward(X)
    return X, Y, teacher


# ---------------------------------------------------------------------- flip-flop (crnn.dynamics)


def flip_flop(
    n_sequences: int,
    length: int,
    n_bits: int = 3,
    *,
    p: float = 0.05,
    seed: Seed = None,
    dtype: FloatDType = np.float64,
) -> tuple[FloatArray, FloatArray]:
    """Return the n-bit flip-flop task (Sussillo and Barak 2013): inputs and targets.

    Each of ``n_bits`` input channels is 0 except for pulses of +1 or -1,
    each step's with probability ``p`` (and one on every channel at the
    first step, so that every bit is set from the start); the target of
    each channel is the sign of its last pulse, held until the next. A
    network that solves it holds 2^n_bits memories; its stable fixed points
    (:func:`crnn.dynamics.fixed_points`) are one per memory.

    Parameters
    ----------
    n_sequences, length : int
        N >= 1 sequences of T >= 1 steps.
    n_bits : int, default 3
        The channels (bits), >= 1.
    p : float, default 0.05
        The probability of a pulse on a channel at a step, in [0, 1].
    seed : None, int or numpy.random.Generator
    dtype : float32 or float64, default float64

    Returns
    -------
    X, target : ndarray of shape (N, T, n_bits)

    References
    ----------
    D. Sussillo and O. Barak, "Opening the black box: low-dimensional
    dynamics in high-dimensional recurrent neural networks", Neural
    Computation 25(3), 626-649, 2013.

    Examples
    --------
    >>> from crnn import datasets
    >>> X, target = datasets.flip_flop(2, 50, seed=0)
    >>> X.shape, sorted(set(target.ravel()))
    ((2, 50, 3), [-1.0, 1.0])
    """
    N = check_size(n_sequences, "n_sequences")
    T = check_size(length, "length")
    bits = check_size(n_bits, "n_bits")
    p = check_real(p, "p", low=0.0, high=1.0)
    dt = check_dtype(dtype)
    rng = make_rng(seed)
    pulse = rng.random((N, T, bits)) < p
    pulse[:, 0] = True
    sign = np.where(rng.random((N, T, bits)) < 0.5, -1.0, 1.0)
    X = np.where(pulse, sign, 0.0)
    last = np.where(pulse, np.arange(T)[None, :, None], 0)
    np.maximum.accumulate(last, axis=1, out=last)
    target = np.take_along_axis(X, last, axis=1)
    return X.astype(dt), target.astype(dt)
