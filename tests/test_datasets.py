"""crnn.datasets: sine waves, the Mackey-Glass series and the pairing/splitting helpers.

The Mackey-Glass tests check the integrator against an exact solution, its
order of convergence, and the equation's known dynamics for the classic
constants (beta, gamma, n = 0.2, 0.1, 10): a stable fixed point below
tau ~ 4.71 (a linearisation in the docstring), a periodic orbit beyond, a
period-2 orbit at tau = 14, chaos at tau = 17.
"""

import math

import numpy as np
import pytest

import crnn
from crnn import datasets
from crnn.datasets import mackey_glass, next_step, sine_waves, train_test_split, windows

# ---------------------------------------------------------------------- sine waves


def test_sine_waves_shape_dtype_and_values():
    x = sine_waves(5, 40, seed=0)
    assert x.shape == (5, 40, 1)
    assert x.dtype == np.float64
    assert np.abs(x).max() <= 1.0
    assert sine_waves(2, 3, seed=0, dtype=np.float32).dtype == np.float32


def test_sine_waves_are_the_formula():
    freq, phase = np.array([0.05, 0.125, 0.3]), np.array([0.0, 1.0, -2.0])
    x = sine_waves(3, 50, frequencies=freq, phases=phase)
    t = np.arange(50)
    expected = np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])
    np.testing.assert_allclose(x[..., 0], expected, rtol=0, atol=1e-15)
    # a list is per series too; a number is shared
    np.testing.assert_array_equal(sine_waves(3, 50, frequencies=list(freq), phases=list(phase)), x)
    y = sine_waves(4, 8, frequencies=0.25, phases=0.5)
    np.testing.assert_array_equal(y, np.broadcast_to(y[:1], y.shape))


def test_sine_waves_random_frequencies_and_phases_follow_the_seed():
    a, b = sine_waves(8, 60, seed=1), sine_waves(8, 60, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sine_waves(8, 60, seed=2))
    # several distinct series: no two rows equal
    rows = {tuple(np.round(r[:, 0], 12)) for r in a}
    assert len(rows) == 8
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(sine_waves(3, 9, seed=gen), sine_waves(3, 9, seed=5))


def _dominant_frequency(x):
    spectrum = np.abs(np.fft.rfft(x, n=len(x) * 16))
    return np.argmax(spectrum) / (len(x) * 16)


def test_sine_waves_frequency_range_is_honoured():
    x = sine_waves(20, 400, frequencies=(0.1, 0.15), seed=3)
    found = np.array([_dominant_frequency(r[:, 0]) for r in x])
    assert found.min() > 0.1 - 0.003
    assert found.max() < 0.15 + 0.003
    default = sine_waves(50, 400, seed=4)
    found = np.array([_dominant_frequency(r[:, 0]) for r in default])
    lo, hi = datasets.DEFAULT_FREQUENCIES
    assert lo - 0.003 < found.min()
    assert found.max() < hi + 0.003
    assert found.max() - found.min() > 0.5 * (hi - lo)  # really several frequencies


def test_sine_waves_phase_range_and_given_frequencies_keep_the_phases():
    # the same seed gives the same phases whether or not frequencies are given
    a = sine_waves(6, 30, seed=7)
    b = sine_waves(6, 30, frequencies=0.1, seed=7)
    np.testing.assert_allclose(a[:, 0], b[:, 0], atol=1e-15)  # t = 0: sin(phase)
    c = sine_waves(6, 30, phases=(0.0, 0.0), seed=7)
    assert np.all(c[:, 0] == 0)


def test_sine_waves_noise():
    clean = sine_waves(4, 2000, seed=9)
    noisy = sine_waves(4, 2000, noise=0.1, seed=9)
    resid = (noisy - clean).ravel()
    assert abs(resid.std() - 0.1) < 0.005
    assert abs(resid.mean()) < 0.005
    np.testing.assert_array_equal(noisy, sine_waves(4, 2000, noise=0.1, seed=9))


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"n_series": 0}, ValueError, "n_series"),
        ({"n_series": 2.0}, TypeError, "n_series"),
        ({"length": -1}, ValueError, "length"),
        ({"length": True}, TypeError, "length"),
        ({"noise": -0.1}, ValueError, "noise"),
        ({"noise": float("nan")}, ValueError, "noise"),
        ({"noise": "a"}, TypeError, "noise"),
        ({"frequencies": 0.0}, ValueError, "frequencies"),
        ({"frequencies": 0.7}, ValueError, "frequencies"),
        ({"frequencies": (0.3, 0.1)}, ValueError, "frequencies"),
        ({"frequencies": (0.1, 0.2, 0.3)}, ValueError, "frequencies"),
        ({"frequencies": (0.1, 0.9)}, ValueError, "frequencies"),
        ({"frequencies": [0.1, 0.2]}, ValueError, "frequencies"),
        ({"frequencies": [0.1, 0.2, np.nan]}, ValueError, "frequencies"),
        ({"frequencies": [0.1, 0.2, 1j]}, TypeError, "frequencies"),
        ({"frequencies": "fast"}, TypeError, "frequencies"),
        ({"phases": [1.0, np.inf, 0.0]}, ValueError, "phases"),
        ({"phases": np.zeros((3, 1))}, ValueError, "phases"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": "abc"}, TypeError, "seed"),
        ({"dtype": np.int32}, ValueError, "dtype"),
        ({"dtype": "nonsense"}, TypeError, "dtype"),
    ],
)
def test_sine_waves_bad_arguments(kwargs, exc, name):
    args = {"n_series": 3, "length": 10, **kwargs}
    with pytest.raises(exc, match=name):
        sine_waves(**args)


# ---------------------------------------------------------------------- Mackey-Glass


def test_mackey_glass_shape_dtype_and_determinism():
    x = mackey_glass(300)
    assert x.shape == (300, 1)
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, mackey_glass(300))
    y = mackey_glass(300, dtype=np.float32)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32))
    np.testing.assert_array_equal(mackey_glass(100, seed=3), mackey_glass(100, seed=3))
    assert not np.array_equal(mackey_glass(100, seed=3), mackey_glass(100, seed=4))


def test_mackey_glass_matches_the_exact_solution_on_the_first_delay_interval():
    # For 0 <= t <= tau the delayed value is the history x0, so the equation is
    # linear: x(t) = c / gamma + (x0 - c / gamma) exp(-gamma t), c = beta x0 / (1 + x0^n).
    x0, beta, gamma, n = 1.2, 0.2, 0.1, 10.0
    x = mackey_glass(18, discard=0, x0=x0)[:, 0]  # t = 0 .. 17 = tau
    c = beta * x0 / (1 + x0**n)
    t = np.arange(18)
    exact = c / gamma + (x0 - c / gamma) * np.exp(-gamma * t)
    np.testing.assert_allclose(x, exact, rtol=0, atol=1e-10)  # RK4's error at dt = 0.1
    fine = mackey_glass(18, discard=0, x0=x0, dt=0.025)[:, 0]
    np.testing.assert_allclose(fine, exact, rtol=0, atol=1e-12)


def _euler(t_end, tau=17.0, beta=0.2, gamma=0.1, n=10.0, x0=1.2, dt=1e-3):
    """An independent, slow, first-order check: explicit Euler on a fine grid."""
    q = round(tau / dt)
    hist = [x0] * (q + 1)  # x at t = -tau .. 0
    for _ in range(round(t_end / dt)):
        xd, x = hist[-q - 1], hist[-1]
        hist.append(x + dt * (beta * xd / (1 + xd**n) - gamma * x))
    step = round(1 / dt)
    return np.array(hist[q::step])


def test_mackey_glass_agrees_with_a_fine_euler_solution():
    x = mackey_glass(61, discard=0)[:, 0]
    ref = _euler(60.0)
    assert ref.shape == x.shape
    err = np.abs(x - ref).max()
    assert err < 2e-4  # Euler's own error at dt = 1e-3
    assert err > 0  # (not the same computation)


@pytest.mark.parametrize("tau", [17.0, 16.95])
def test_mackey_glass_halving_dt_changes_little(tau):
    # over a short horizon, including the transient and the kink at t = tau;
    # tau = 16.95 is not a whole multiple of dt = 0.1
    a = mackey_glass(300, tau=tau, dt=0.1, discard=0)
    b = mackey_glass(300, tau=tau, dt=0.05, discard=0)
    assert np.abs(a - b).max() < 1e-7


def test_mackey_glass_is_fourth_order():
    ref = mackey_glass(200, dt=0.0125, discard=0)
    errors = [np.abs(mackey_glass(200, dt=dt, discard=0) - ref).max() for dt in (0.2, 0.1)]
    order = math.log2(errors[0] / errors[1])
    assert 3.5 < order < 4.5, errors


def test_mackey_glass_tau17_stays_in_its_known_range():
    for seed in (None, 0, 1, 2):
        x = mackey_glass(3000, seed=seed)
        assert 0.2 < x.min() < 0.5
        assert 1.2 < x.max() < 1.4


def _peaks(x):
    """Heights of the local maxima of a 1-D series."""
    mid = x[1:-1]
    return mid[(mid > x[:-2]) & (mid >= x[2:])]


def test_mackey_glass_tau17_is_aperiodic():
    x = mackey_glass(20000, subsample=0.1)[:, 0]  # 2000 time units, finely sampled
    peaks = _peaks(x)
    assert len(peaks) > 25
    # a periodic orbit repeats a few peak heights; chaos spreads them out
    assert peaks.max() - peaks.min() > 0.2
    assert len(np.unique(np.round(peaks, 2))) > 15


@pytest.mark.parametrize(("tau", "grows"), [(17.0, True), (30.0, True), (7.0, False)])
def test_mackey_glass_sensitive_dependence_only_when_chaotic(tau, grows):
    a = mackey_glass(3000, tau=tau, x0=1.2)
    b = mackey_glass(3000, tau=tau, x0=1.2 + 1e-9)
    late = np.abs(a - b)[-500:].max()
    if grows:
        assert late > 1e-2  # 1e-9 grew by seven orders of magnitude
    else:
        assert late < 1e-8


@pytest.mark.parametrize("tau", [3.0, 4.0])
def test_mackey_glass_small_tau_settles_on_the_fixed_point(tau):
    # x* = 1 is stable for tau < arccos(-1/4) / sqrt(0.15) ~ 4.71
    assert math.acos(-0.1 / 0.4) / math.sqrt(0.4**2 - 0.1**2) == pytest.approx(4.708, abs=1e-3)
    x = mackey_glass(200, tau=tau, discard=2000)
    np.testing.assert_allclose(x, 1.0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tau", [5.0, 7.0, 10.0])
def test_mackey_glass_beyond_the_hopf_bifurcation_is_periodic(tau):
    x = mackey_glass(10000, tau=tau, discard=3000, subsample=0.1)[:, 0]
    peaks = _peaks(x)
    assert len(peaks) > 10
    assert x.max() - x.min() > 0.1  # not the fixed point
    assert peaks.max() - peaks.min() < 1e-3  # every peak the same height: one cycle


def test_mackey_glass_tau14_has_doubled_its_period():
    x = mackey_glass(10000, tau=14.0, discard=3000, subsample=0.1)[:, 0]
    peaks = _peaks(x)
    heights = np.unique(np.round(peaks, 2))
    assert len(heights) == 2
    # and they alternate
    high = peaks > heights.mean()
    assert np.all(high[1:] != high[:-1])


def test_mackey_glass_memory_follows_the_output_not_tau():
    # a delay of 10^7 steps, of which 10 001 are integrated: the buffer used to
    # hold all 10^7 (160 MB here; 1.55 GiB at tau = 1e7)
    from helpers import fresh_thread_peak

    peak = fresh_thread_peak(lambda: mackey_glass(2, tau=1e6))
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MiB traced"


@pytest.mark.parametrize("tau", [20.0, 20.05])
@pytest.mark.parametrize("length", [2, 20, 21, 22, 40])
def test_mackey_glass_a_buffer_cut_to_the_steps_gives_the_same_values(monkeypatch, tau, length):
    # around tau / dt = 200 steps integrated, where the cut starts to bite
    short = mackey_glass(length, tau=tau, discard=0)
    full = datasets._delay_buffer
    monkeypatch.setattr(
        datasets, "_delay_buffer", lambda q, steps: max(full(q, steps), math.ceil(q) + 3)
    )
    np.testing.assert_array_equal(short, mackey_glass(length, tau=tau, discard=0))


def test_mackey_glass_a_delay_buffer_beyond_memory_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(datasets, "_physical_memory", lambda: 2**20)  # a 1 MiB machine
    assert mackey_glass(10, tau=17.0).shape == (10, 1)  # 173 steps: 11 KiB
    with pytest.raises(ValueError, match=r"delay buffer of 20003 steps .* more than this machine"):
        mackey_glass(10**6, tau=2000.0)
    monkeypatch.setattr(datasets, "_physical_memory", lambda: None)  # unknown: no check
    assert mackey_glass(2, tau=2000.0).shape == (2, 1)


def test_mackey_glass_subsample_and_discard_pick_the_right_times():
    fine = mackey_glass(101, subsample=0.1, discard=0)
    coarse = mackey_glass(11, subsample=1.0, discard=0)
    np.testing.assert_array_equal(coarse, fine[::10])
    later = mackey_glass(5, discard=5.0)
    np.testing.assert_array_equal(later, mackey_glass(10, discard=0)[5:])
    assert mackey_glass(1, discard=0)[0, 0] == 1.2


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"length": 0}, ValueError, "length"),
        ({"length": 10.0}, TypeError, "length"),
        ({"tau": 0}, ValueError, "tau"),
        ({"tau": -17}, ValueError, "tau"),
        ({"tau": float("inf")}, ValueError, "tau"),
        ({"beta": 0}, ValueError, "beta"),
        ({"gamma": "0.1"}, TypeError, "gamma"),
        ({"n": -1}, ValueError, "n must"),
        ({"dt": 0}, ValueError, "dt"),
        ({"dt": 20.0}, ValueError, "dt must not exceed tau"),
        ({"subsample": 0.15}, ValueError, "subsample"),
        ({"subsample": 0.05}, ValueError, "subsample"),
        ({"x0": 0.0}, ValueError, "x0"),
        ({"x0": None}, TypeError, "x0"),
        ({"discard": -1}, ValueError, "discard"),
        ({"seed": 2.5}, TypeError, "seed"),
        ({"dtype": np.complex128}, ValueError, "dtype"),
        ({"length": 10**9, "subsample": 10.0}, ValueError, "integration steps"),
    ],
)
def test_mackey_glass_bad_arguments(kwargs, exc, name):
    args = {"length": 10, "discard": 0, **kwargs}
    with pytest.raises(exc, match=name):
        mackey_glass(**args)


# ---------------------------------------------------------------------- next_step


def test_next_step_single_and_batch():
    s = np.arange(12.0).reshape(6, 2)
    X, target = next_step(s)
    np.testing.assert_array_equal(X, s[:-1])
    np.testing.assert_array_equal(target, s[1:])
    X, target = next_step(s, horizon=3)
    assert X.shape == target.shape == (3, 2)
    np.testing.assert_array_equal(target, s[3:])
    b = np.arange(24.0).reshape(2, 6, 2)
    X, target = next_step(b, horizon=2)
    np.testing.assert_array_equal(X, b[:, :4])
    np.testing.assert_array_equal(target, b[:, 2:])
    assert X.base is not None  # views, as documented


def test_next_step_pairs_train_a_model():
    # the pairs have exactly the shapes the model wants
    series = sine_waves(3, 20, seed=0)
    X, target = next_step(series)
    rnn = crnn.RNN(1, 4, seed=0)
    assert rnn.predict(X).shape == target.shape
    assert np.isfinite(rnn.loss(X, target))


@pytest.mark.parametrize(
    ("series", "horizon", "exc", "name"),
    [
        (np.arange(5.0), 1, ValueError, r"series\[:, None\]"),
        (np.zeros((2, 2, 2, 2)), 1, ValueError, "series must be 2-D or 3-D"),
        (np.zeros((5, 1)), 5, ValueError, "horizon"),
        (np.zeros((5, 1)), 0, ValueError, "horizon"),
        (np.zeros((5, 1)), 1.0, TypeError, "horizon"),
        (np.zeros((5, 1), complex), 1, TypeError, "series"),
        (np.array([["a"], ["b"]]), 1, TypeError, "series"),
        (None, 1, TypeError, "series"),
        ([[1.0], [2.0, 3.0]], 1, ValueError, "series"),
    ],
)
def test_next_step_bad_arguments(series, horizon, exc, name):
    with pytest.raises(exc, match=name):
        next_step(series, horizon)


# ---------------------------------------------------------------------- windows


def test_windows_side_by_side_and_overlapping():
    s = np.arange(20).reshape(10, 2)
    w = windows(s, 4)
    assert w.shape == (2, 4, 2)  # the last 2 steps are dropped
    np.testing.assert_array_equal(w[0], s[0:4])
    np.testing.assert_array_equal(w[1], s[4:8])
    w = windows(s, 4, step=3)
    assert w.shape == (3, 4, 2)
    for i in range(3):
        np.testing.assert_array_equal(w[i], s[3 * i : 3 * i + 4])
    assert windows(s, 10).shape == (1, 10, 2)
    assert windows(s, 1).shape == (10, 1, 2)
    assert w.flags.c_contiguous
    assert w.flags.writeable
    assert w.dtype == s.dtype
    w[...] = -1  # a copy: the series is untouched
    assert s.min() == 0


def test_windows_of_several_series_come_series_by_series():
    b = np.arange(2 * 9 * 1).reshape(2, 9, 1)
    w = windows(b, 3, step=3)
    assert w.shape == (6, 3, 1)
    np.testing.assert_array_equal(w[:3].reshape(-1), b[0, :, 0])
    np.testing.assert_array_equal(w[3:].reshape(-1), b[1, :, 0])


def test_windows_keep_pairs_paired():
    series = mackey_glass(301)
    X, target = next_step(series)
    Xw, tw = windows(X, 50, step=25), windows(target, 50, step=25)
    np.testing.assert_array_equal(Xw[:, 1:], tw[:, :-1])


@pytest.mark.parametrize(
    ("length", "step", "exc", "name"),
    [
        (11, None, ValueError, "length must not exceed"),
        (0, None, ValueError, "length"),
        (2.5, None, TypeError, "length"),
        (3, 0, ValueError, "step"),
        (3, -1, ValueError, "step"),
        (3, "2", TypeError, "step"),
    ],
)
def test_windows_bad_arguments(length, step, exc, name):
    with pytest.raises(exc, match=name):
        windows(np.zeros((10, 1)), length, step)


# ---------------------------------------------------------------------- train_test_split


def test_split_one_series_along_time():
    s = np.arange(11.0)[:, None]
    X, target = next_step(s)  # 10 steps
    X_tr, X_te, t_tr, t_te = train_test_split(X, target, test_fraction=0.3)
    assert X_tr.shape == t_tr.shape == (7, 1)
    assert X_te.shape == t_te.shape == (3, 1)
    np.testing.assert_array_equal(np.concatenate([X_tr, X_te]), X)
    np.testing.assert_array_equal(np.concatenate([t_tr, t_te]), target)
    assert X_te[0, 0] == 7.0
    assert t_tr[-1, 0] == 7.0


def test_split_several_series_along_the_batch():
    b = sine_waves(10, 30, seed=0)
    X, target = next_step(b)
    X_tr, X_te, t_tr, _t_te = train_test_split(X, target)  # 0.2 by default
    assert X_tr.shape == (8, 29, 1)
    assert X_te.shape == (2, 29, 1)
    np.testing.assert_array_equal(X_te, X[8:])
    np.testing.assert_array_equal(t_tr, target[:8])


def test_split_keeps_both_parts_non_empty():
    X = np.zeros((2, 1))
    for f in (0.01, 0.99):
        X_tr, X_te, _, _ = train_test_split(X, X, f)
        assert len(X_tr) == len(X_te) == 1


@pytest.mark.parametrize(
    ("X", "target", "fraction", "exc", "name"),
    [
        (np.zeros((5, 1)), np.zeros((5, 1)), 0.0, ValueError, "test_fraction"),
        (np.zeros((5, 1)), np.zeros((5, 1)), 1.0, ValueError, "test_fraction"),
        (np.zeros((5, 1)), np.zeros((5, 1)), "0.2", TypeError, "test_fraction"),
        (np.zeros((5, 1)), np.zeros((4, 1)), 0.2, ValueError, "target must have X's"),
        (np.zeros((2, 5, 1)), np.zeros((5, 1)), 0.2, ValueError, "target must have X's"),
        (np.zeros((1, 1)), np.zeros((1, 1)), 0.5, ValueError, "at least 2 steps"),
        (np.zeros((1, 4, 1)), np.zeros((1, 4, 1)), 0.5, ValueError, "at least 2 sequences"),
        (np.zeros(5), np.zeros(5), 0.2, ValueError, "X must be 2-D or 3-D"),
        (np.zeros((5, 1)), None, 0.2, TypeError, "target"),
    ],
)
def test_split_bad_arguments(X, target, fraction, exc, name):
    with pytest.raises(exc, match=name):
        train_test_split(X, target, fraction)


def test_the_whole_pipeline_is_deterministic_and_numpy_only():
    def pipeline():
        series = mackey_glass(700, seed=11)
        X, target = next_step(series)
        X_tr, X_te, t_tr, t_te = train_test_split(X, target, 0.2)
        return windows(X_tr, 50), windows(t_tr, 50), X_te, t_te

    first, second = pipeline(), pipeline()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert first[0].shape == (11, 50, 1)
    assert set(datasets.__all__) == {
        "add_task",
        "mimic",
        "flip_flop",
        "mackey_glass",
        "next_step",
        "sine_waves",
        "train_test_split",
        "windows",
    }
