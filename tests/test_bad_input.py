"""Every public entry point against the table of bad inputs in bad_input_cases.py.

The cases run in child processes, many per child, with faulthandler on. When a
child dies (a segfault, an abort, an out-of-memory kill) or a case hangs (the
child prints its stack and exits), the case it was running fails with the
child's last words, and a new child carries on with the next case: a crash is
one failed case, never the end of the run.
"""

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import bad_input_cases
import pytest

HERE = pathlib.Path(__file__).resolve().parent
CHILDREN = 2  # at a time
TIMEOUT = 600  # seconds for all the cases of one child (a hung case exits sooner)
IDS = [case.id for case in bad_input_cases.CASES]


def _run_child(ids, results, command=None):
    """Run ids in one child after another until each has an outcome."""
    command = command or [sys.executable, str(HERE / "bad_input_cases.py")]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(_coverage_env())
    todo = list(ids)
    while todo:
        proc = subprocess.run(
            command,
            input=json.dumps(todo),
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
            check=False,
        )
        running = None
        for line in proc.stdout.splitlines():
            msg = json.loads(line)
            if "start" in msg:
                running = msg["start"]
            else:
                results[msg["id"]] = (msg["ok"], msg["detail"])
                running = None
        if running is not None:  # the child died in this case
            results[running] = (
                False,
                (
                    f"the child process died (exit status {proc.returncode}) in this case:\n"
                    f"{proc.stderr[-3000:]}"
                ),
            )
        elif proc.returncode != 0:
            raise RuntimeError(f"the child failed outside any case:\n{proc.stderr[-3000:]}")
        todo = [i for i in todo if i not in results]


def _coverage_env():
    """The child's coverage options when this process runs under coverage, else {}."""
    try:
        import coverage
    except ImportError:
        return {}
    cov = coverage.Coverage.current()
    if cov is None:
        return {}
    options = {
        "data_file": os.path.abspath(cov.config.data_file),
        "source": cov.config.source,
    }
    return {"CRNN_TEST_COVERAGE": json.dumps(options)}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Run the whole table once, in CHILDREN processes at a time.

    Under pytest-xdist the first worker to need the table runs it and the
    others read its outcomes (their temporary directories share a parent):
    the table runs once per test run, not once per worker.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _run_table()
    shared = tmp_path_factory.getbasetemp().parent / "bad_input_outcomes.json"
    try:
        os.close(os.open(shared.with_suffix(".lock"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # another worker runs it
        return _read_outcomes(shared)
    try:
        results = _run_table()
    except BaseException as exc:
        _write_atomically(shared, {"__error__": repr(exc)})
        raise
    _write_atomically(shared, results)
    return results


def _read_outcomes(shared):
    """Wait for the outcomes another worker writes to ``shared``, and return them."""
    deadline = time.monotonic() + TIMEOUT * CHILDREN
    while not shared.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no outcomes from the worker running the table in {shared}")
        time.sleep(0.05)
    results = json.loads(shared.read_text())
    if "__error__" in results:
        raise RuntimeError(f"the worker running the table failed: {results['__error__']}")
    return results


def _write_atomically(path, results):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results))
    os.replace(tmp, path)


def _run_table():
    """Run every case of the table; {id: (ok, detail)}."""
    results = {}
    start = time.perf_counter()
    chunks = [IDS[k::CHILDREN] for k in range(CHILDREN)]
    errors = []

    def work(chunk):
        try:
            _run_child(chunk, results)
        except Exception as exc:  # noqa: BLE001 - re-raised below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    results["__seconds__"] = time.perf_counter() - start
    return results


def test_the_table_is_large_and_covers_every_entry_point():
    prefixes = {
        "RNN-",
        "assign-",
        "from_weights-",
        "forward-",
        "predict-",
        "loss-",
        "bptt-",
        "rtrl-",
        "fit-",
        "partial_fit-",
        "OnlineRTRL",
        "step-",
        "state-",
        "generate-",
        "save-",
        "load-",
        "cli-",
    }
    for prefix in prefixes:
        assert any(i.startswith(prefix) for i in IDS), prefix
    assert len(IDS) >= 1000


@pytest.mark.parametrize("case_id", IDS)
def test_bad_input(case_id, outcomes):
    ok, detail = outcomes[case_id]
    if not ok:
        pytest.fail(f"{case_id}: {detail}", pytrace=False)


def test_a_crash_fails_only_its_case():
    """The runner survives a case that kills its process, and names that case."""
    script = (
        "import os, bad_input_cases as b\n"
        "b.BY_ID['crash'] = b.Case('crash', lambda tmp: os.abort())\n"
        "b.main()\n"
    )
    results = {}
    _run_child(
        ["forward-X-nan", "crash", "forward-X-inf-float32"],
        results,
        [sys.executable, "-c", script],
    )
    assert results["forward-X-nan"] == (True, results["forward-X-nan"][1])
    assert results["forward-X-inf-float32"][0] is True
    ok, detail = results["crash"]
    assert not ok
    assert "died" in detail
    assert "Fatal Python error: Aborted" in detail  # faulthandler's stack of the case
    assert "bad_input_cases.py" in detail
