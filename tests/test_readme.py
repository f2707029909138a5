"""Every code block of the README runs on its own, as written.

Each Python block runs alone, in a fresh namespace and a temporary
directory, and what it says (its comments' numbers included) is checked.
Each shell block that runs ``crnn`` runs there too, through this Python
(``python -m crnn``), with the output it prints compared, numbers aside, with
the ```text block the README shows after it. Commands that install or run
the tests (pip, pytest, the sanitizer build) are not run here.
"""

import itertools
import pathlib
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks():
    """(language, code, line of its first line of code) of each fenced block."""
    return [(m[1], m[2], TEXT.count("\n", 0, m.start(2)) + 1) for m in BLOCK.finditer(TEXT)]


def _python_blocks():
    return [(code, line) for lang, code, line in _blocks() if lang in ("python", "py")]


# ---------------------------------------------------------------------- Python blocks


def _quick_start(ns, printed, code):
    assert ns["S"].shape == (8, 100, 16)
    assert ns["Y"].shape == (8, 100, 2)
    assert ns["G"].U.shape == (16, 3)
    for name in ("U", "W", "V", "s0"):  # "the same numbers by RTRL"
        np.testing.assert_allclose(getattr(ns["H"], name), getattr(ns["G"], name), atol=1e-10)


def _training(ns, printed, code):
    rnn = ns["rnn"]
    assert rnn.n_iter_ >= 1
    assert len(rnn.loss_curve_) == len(rnn.validation_scores_) == rnn.n_iter_


def _numbers(text):
    return [float(v) for v in re.findall(r"-?\d+\.\d+", text)]


def _biases(ns, printed, code):
    biased, X, target = ns["biased"], ns["X"], ns["target"]
    assert biased.bias
    assert ns["Gb"].c.shape == (1,)
    # what the block prints is what its comment says, to the comment's digits
    (comment,) = (line.split("#")[1] for line in code.splitlines() if "print(" in line)
    shown, got = _numbers(comment), _numbers(printed)
    assert len(shown) == len(got) == 4
    for value, claimed in zip(got, shown, strict=True):
        assert abs(value - claimed) <= 0.005 + 1e-12, (got, shown)
    c, vs = float(biased.c[0]), float((biased.forward(X)[0] @ biased.V.T).mean())
    assert f"c is {c:.2f} and V·S" in TEXT  # the paragraph after the block
    assert f"carries {vs:.2f}." in TEXT
    Y = biased.predict(X)
    np.testing.assert_allclose(Y.mean(), c + vs, rtol=1e-12)
    assert abs(Y.mean() - target.mean()) < 0.01  # the offset is learnt...
    assert c < 0.05 * target.mean()  # ...but not by c


def _online(ns, printed, code):
    assert ns["online"].n_steps_ == 599
    assert ns["Y"].shape == (598, 1)


def _online_family(ns, printed, code):
    assert (
        ns["exact"].gradient_estimate_.W.shape == ns["uoro"].gradient_estimate_.W.shape == (16, 16)
    )
    assert ns["Y"].shape == (2000, 1)
    assert ns["trainer"].n_steps_ == 2000


def _dask(ns, printed, code):
    assert ns["Y"].shape == (595, 50, 1)
    assert ns["best"].best_params["hidden_size"] in (8, 16)


def _sklearn(ns, printed, code):
    assert ns["grid"].best_params_["hidden_size"] in (8, 16)
    assert ns["Xw"].shape == (95, 50, 1)


def _cell(ns, printed, code):
    # the printed mean loss of the last step is the comment's, and far below the start's
    (comment,) = (line.split("#")[1] for line in code.splitlines() if "print(" in line)
    shown, got = _numbers(comment), _numbers(printed)
    assert abs(got[0] - shown[0]) <= 0.00005 + 1e-12, (got, shown)
    assert got[0] < 0.01 * shown[1]
    rnn, X, target = ns["rnn"], ns["X"], ns["target"]
    assert rnn.penalty_curve_[-1] > 0
    assert rnn.loss(X, target) > 10 * rnn.loss(X, target, sample_weight=ns["last_only"])
    assert [y.shape for y in ns["leaky"].predict(ns["seqs"])] == [(5, 1), (40, 1), (17, 1)]
    assert (ns["leaky"].activation, ns["leaky"].leak) == ("relu", 0.3)


def _dynamics(ns, printed, code):
    points, rnn = ns["points"], ns["rnn"]
    assert printed.split() == ["8"]
    memories = {tuple(v) for v in (points.states[points.stable] @ rnn.V.T > 0)}
    assert len(memories) == 8
    assert ns["J"].shape == (60, 16, 16)
    assert ns["spectrum"].exponents.shape == (16,)
    assert ns["profile"].shape == (61,)  # lags 0 .. T


def _second_order(ns, printed, code):
    rnn, X = ns["rnn"], ns["X"]
    assert rnn.n_iter_ <= 30
    assert ns["std"].shape == ns["Y"].shape == (30, 50, 1)
    assert (ns["std"] > 0).all()
    assert ns["future"].shape == ns["band"].shape == (20, 1)
    assert ns["band"][-1, 0] > ns["band"][0, 0]  # the band widens with the horizon
    assert ns["J"].shape == (2, 50, 1, 89) == (*X[:2].shape, rnn.flat_weights().size)
    assert ns["G"].U.shape == (30, 8, 1)
    assert ns["G"].loss.shape == (30,)
    assert ns["post"].noise_variance > 0


# a block is recognised by a line of its code; every block has its check
CHECKS = {
    'rnn.fit(X, target, optimizer="lm", epochs=30)': _second_order,
    "rnn = crnn.RNN(input_size=3, hidden_size=16, output_size=2, seed=0)": _quick_start,
    "rnn.fit(X, target, epochs=300, batch_size=16, validation_fraction=0.1, seed=0)": _training,
    "biased.fit(X, target, epochs=300, seed=0)": _biases,
    "online = crnn.OnlineRTRL(crnn.RNN(1, 16, seed=0), lr=0.005, clip=1.0)": _online,
    "uoro = online.UORO(model, lr=0.0, seed=0)": _online_family,
    "cd.fit(rnn, X, target, epochs=20, lr=0.01)": _dask,
    "grid.fit(Xw[:80], yw[:80])": _sklearn,
    'leaky = crnn.RNN(1, 8, activation="relu", leak=0.3, seed=0)': _cell,
    "points = dynamics.fixed_points(rnn, inits=S.reshape(-1, 16)[::5])": _dynamics,
}


def _check_of(code):
    """The check of the block holding this code, or None when there is not one only."""
    checks = [check for key, check in CHECKS.items() if key in code]
    return checks[0] if len(checks) == 1 else None


def _name(code):
    check = _check_of(code)
    return "unchecked" if check is None else check.__name__[1:]


def test_every_python_block_has_its_check():
    blocks = _python_blocks()
    assert len(blocks) == len(CHECKS)
    assert sorted(_name(code) for code, _ in blocks) == sorted(
        f.__name__[1:] for f in CHECKS.values()
    )


# the block's LocalCluster takes the default dashboard port, 8787: if it is
# taken, distributed warns and picks another, which is no failure of the README
# (and the socket of the failed attempt, left to the garbage collector, is
# reported as unraisable: no failure of the README either)
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*socket.socket:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize(
    ("code", "line"),
    _python_blocks(),
    ids=[f"{_name(code)}-line-{line}" for code, line in _python_blocks()],
)
def test_python_block_runs_on_its_own(code, line, tmp_path, monkeypatch, capsys):
    if "import dask" in code:
        pytest.importorskip("dask.array", reason="the dask extra is not installed")
        pytest.importorskip("distributed", reason="the dask extra is not installed")
    if "sklearn" in code:
        pytest.importorskip("sklearn", reason="scikit-learn is not installed")
        pytest.importorskip("pandas", reason="pandas is not installed")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    # padded so that a traceback names the README's own line numbers
    exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)  # noqa: S102
    check = _check_of(code)
    assert check is not None, f"README line {line}: a block with no check of its own in CHECKS"
    check(namespace, capsys.readouterr().out, code)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind


# ---------------------------------------------------------------------- shell blocks


def _commands(code):
    """The block's commands: lines joined at backslashes, split at &&."""
    for line in code.replace("\\\n", " ").splitlines():
        for command in line.split("&&"):
            if command.strip():
                yield shlex.split(command)


def _shell_blocks():
    """(code, line, the ```text block shown after it or None) of blocks that run crnn."""
    blocks, found = _blocks(), []
    for i, (lang, code, line) in enumerate(blocks):
        if lang not in ("bash", "sh") or not any(c[0] == "crnn" for c in _commands(code)):
            continue
        after = blocks[i + 1] if i + 1 < len(blocks) else None
        found.append((code, line, after[1] if after and after[0] == "text" else None))
    return found


def _skeleton(line):
    """A line of output with its numbers (and run-time details) left out."""
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", line.strip())


# lines that change with the machine, or that go to stderr (fit's progress)
VARIABLE = ("...", "epoch ", "no plot:", "plot saved to")


def test_the_shell_blocks_that_run_crnn_are_found():
    blocks = _shell_blocks()
    assert len(blocks) >= 2  # the demo and the command's example
    assert all(shown is not None for _, _, shown in blocks)


@pytest.mark.parametrize(
    ("code", "line", "shown"),
    _shell_blocks(),
    ids=[
        "-".join(["crnn", next(c[1] for c in _commands(code) if c[0] == "crnn"), "line", str(line)])
        for code, line, _ in _shell_blocks()
    ],
)
def test_shell_block_runs_and_prints_what_the_readme_shows(code, line, shown, tmp_path):
    printed = []
    for command in _commands(code):
        if command[0] == "crnn":
            argv = [sys.executable, "-m", "crnn", *command[1:]]
        elif command[:2] == ["python", "-c"]:
            argv = [sys.executable, *command[1:]]
        elif command[0] == "pip":
            continue  # the install: done before the tests
        else:
            pytest.fail(f"README line {line}: no way to run {command} here")
        proc = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
        )
        assert proc.returncode == 0, f"README line {line}: {command}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        printed += proc.stdout.splitlines()
        for flag, value in itertools.pairwise(command):
            if flag in ("-o", "--output"):
                assert (tmp_path / value).is_file(), value
    got = {_skeleton(p) for p in printed if not p.startswith(VARIABLE)}
    expected = {_skeleton(s) for s in shown.splitlines() if not s.startswith(VARIABLE)}
    assert got == expected
