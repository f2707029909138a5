"""The scripts in examples/ run, on small settings, and do what they say."""

import pathlib
import re
import runpy

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def test_examples_are_there():
    assert {p.name for p in SCRIPTS} >= {"sine.py", "mackey_glass.py", "online_drift.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs_quickly_and_beats_its_baseline(script, capsys):
    main = runpy.run_path(str(script))["main"]
    error, naive = main(quick=True)
    assert error < naive
    assert capsys.readouterr().out


def test_sine_closed_loop_forecast_beats_both_baselines(capsys):
    # before: the forecast (RMSE 0.907) lost to predicting zero (0.711) and to
    # the last value (0.813), and the example printed no baseline
    forecast, baseline = runpy.run_path(str(EXAMPLES / "sine.py"))["main"](quick=True)
    out = capsys.readouterr().out
    match = re.search(
        r"closed loop, 40 steps of (\d+) test waves: "
        r"RMSE crnn ([\d.]+), zero ([\d.]+), last value ([\d.]+)",
        out,
    )
    assert match, out
    n_waves, crnn_rmse, zero, last = int(match[1]), *map(float, match.groups()[1:])
    assert n_waves >= 10  # every test wave, not one
    assert crnn_rmse < zero
    assert crnn_rmse < last
    assert forecast == pytest.approx(crnn_rmse, abs=5e-4)
    assert baseline == pytest.approx(min(zero, last), abs=5e-4)
