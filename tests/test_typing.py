"""crnn's annotations, checked by mypy --strict (issue 18, point 2).

- the package itself (src/crnn, the compiled kernels described by
  crnn/_core.pyi) type-checks under ``mypy --strict``;
- tests/typing/user_ok.py, code written the way the README uses crnn,
  type-checks under ``mypy --strict`` against the installed crnn (and runs);
- tests/typing/user_errors.py, code with mistakes, gets exactly the errors
  its ``# E: <code> <text>`` comments announce, each on its line;
- the Literal types of the string options name what the validators take;
- the annotations cost no call anything: they are never evaluated.

mypy is in the test dependency group; only without it are the mypy tests skipped.
"""

import importlib.util
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import crnn

ROOT = Path(__file__).resolve().parents[1]
TYPING = ROOT / "tests" / "typing"
CONFIG = ROOT / "pyproject.toml"

needs_mypy = pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (pip install --group test)",
)

#: "path:line: error: message  [code]" (the path may hold a colon: C:\...)
_ERROR = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+): error: (?P<message>.*?)\s+\[(?P<code>[a-z-]+)\]$"
)
#: "...  # E: code text" at the end of a line of user_errors.py
_EXPECT = re.compile(r"#\s*E:\s*(?P<code>[a-z-]+)\s+(?P<text>.+?)\s*$")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory):
    """One mypy cache for this module's runs (numpy's stubs are analysed once)."""
    return tmp_path_factory.mktemp("mypy-cache")


def run_mypy(cache, *targets, cwd=ROOT):
    """Run mypy --strict with the project's configuration; return (exit status, output)."""
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--config-file",
        str(CONFIG),
        "--cache-dir",
        str(cache),
        "--no-pretty",
        "--no-color-output",
        "--no-error-summary",
        "--show-error-codes",
        *map(str, targets),
    ]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
@needs_mypy
def test_package_passes_mypy_strict(mypy_cache):
    status, output = run_mypy(mypy_cache, ROOT / "src" / "crnn")
    assert status == 0, output


@pytest.mark.slow
@needs_mypy
def test_user_code_passes_mypy_strict(mypy_cache, tmp_path):
    # from a directory of its own, so that the crnn mypy sees is the installed one
    status, output = run_mypy(mypy_cache, TYPING / "user_ok.py", cwd=tmp_path)
    assert status == 0, output


@needs_mypy
def test_user_code_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(TYPING / "user_ok.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def expected_errors(path):
    """{line: (code, text)} of the ``# E:`` comments of a file."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            out[number] = (match["code"], match["text"].strip('"'))
    return out


@pytest.mark.slow
@needs_mypy
def test_user_mistakes_are_reported(mypy_cache, tmp_path):
    path = TYPING / "user_errors.py"
    expected = expected_errors(path)
    assert len(expected) >= 20
    status, output = run_mypy(mypy_cache, path, cwd=tmp_path)
    assert status == 1, output
    found = {}
    for line in output.splitlines():
        match = _ERROR.match(line)
        if match:
            found.setdefault(int(match["line"]), []).append((match["code"], match["message"]))
    unexpected = {n: errs for n, errs in found.items() if n not in expected}
    assert not unexpected, f"errors on lines that announce none: {unexpected}\n{output}"
    for number, (code, text) in expected.items():
        errors = found.get(number, [])
        assert any(c == code and text in m for c, m in errors), (
            f"user_errors.py line {number}: expected a [{code}] error naming {text!r}, "
            f"mypy reported {errors or 'nothing'}"
        )


def test_literal_options_match_the_validators():
    """Each Literal of crnn._typing names exactly the values its validator accepts."""
    from crnn import _init, _optim, _typing, _validation

    assert set(typing.get_args(_typing.Method)) == set(_validation.METHODS)
    assert set(typing.get_args(_typing.OptimizerName)) == set(_optim.OPTIMIZERS)
    assert set(typing.get_args(_typing.InitName)) == set(_init.INITS)
    assert set(typing.get_args(_typing.Activation)) == set(_validation.ACTIVATION_NAMES)
    assert set(_validation.ACTIVATION_NAMES) == set(crnn._kernels.ACTIVATIONS)


def test_annotations_are_not_evaluated():
    """The annotations are strings (PEP 563): defining or calling a function evaluates none."""
    for fn in (
        crnn.RNN.__init__,
        crnn.RNN.forward,
        crnn.RNN.fit,
        crnn.RNN.gradient,
        crnn.OnlineRTRL.learn,
        crnn.datasets.mackey_glass,
        crnn.reference.gradient_rtrl,
    ):
        assert fn.__annotations__, fn
        assert all(isinstance(a, str) for a in fn.__annotations__.values()), fn
    code = (
        "import crnn, sys; crnn.RNN(2, 3).forward([[1.0, 2.0]]); "
        "print('crnn._typing' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == "False", proc.stdout + proc.stderr
