"""The scripts in examples/ run, on small settings, and do what they say."""

import pathlib
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
