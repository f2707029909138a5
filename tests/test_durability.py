"""Nothing lost: a save killed by a signal (issue 4, section 6).

A child process saves over an existing model file and is stopped, at a chosen
point of the save, until the parent sends it a signal. Whatever the signal and
the point, the path then holds either the old model, intact and loadable, or
(once the rename is done) the complete new one; never a mixture, and never a
file that loads as something else. A temporary file left by a killed save is
never taken for a model.

(That load refuses files of a newer format version is in test_io.py and the
bad-input table; that the command never overwrites without --force is in
test_cli.py and the bad-input table.)
"""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import crnn

CHILD = r"""
import os, sys, time
import numpy as np
import crnn
from crnn import _files

path, ready, stage = sys.argv[1:4]

def stop_here():
    with open(ready, "w"):
        pass
    time.sleep(600)  # until the parent's signal

if stage == "mid-array":  # halfway through the bytes of W, the second weight
    write_array, calls = np.lib.format.write_array, []
    def patched(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the metadata, U, then W
            fp.write(array.tobytes()[: array.nbytes // 2])
            stop_here()
        return write_array(fp, array, *args, **kwargs)
    np.lib.format.write_array = patched
elif stage == "before-fsync":  # the whole archive written, not yet on disk
    fsync = os.fsync
    os.fsync = lambda fd: (stop_here(), fsync(fd))
elif stage == "before-rename":
    replace = os.replace
    os.replace = lambda src, dst: (stop_here(), replace(src, dst))
elif stage == "after-rename":  # renamed, the directory not yet synced
    sync = _files.sync_directory
    _files.sync_directory = lambda d: (stop_here(), sync(d))
crnn.save(crnn.RNN(3, 40, 2, seed=9), path)
print("saved")
"""

STAGES = ["mid-array", "before-fsync", "before-rename", "after-rename"]
SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


def _model_of(path):
    return crnn.load(path)


def _same_model(a, b):
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in "UWV")


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("stage", STAGES)
def test_a_save_killed_midway_loses_nothing(tmp_path, stage, sig):
    path = tmp_path / "model.npz"
    old = crnn.RNN(3, 40, 2, seed=1)
    crnn.save(old, path)
    before = path.read_bytes()
    new = crnn.RNN(3, 40, 2, seed=9)
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(ready), stage],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached the stage"
            time.sleep(0.01)
        child.send_signal(sig)
        out, _err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "saved" not in out  # the save did not complete
    assert child.returncode != 0

    if stage == "after-rename":  # the new model is complete, and is the file
        assert _same_model(_model_of(path), new)
    else:  # the old model, byte for byte
        assert path.read_bytes() == before
        assert _same_model(_model_of(path), old)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("model.npz", "ready"))
    if sig == signal.SIGINT or stage == "after-rename":
        assert left == []  # KeyboardInterrupt: the temporary file was removed
    else:  # a killed process cannot clean up: a hidden temporary file may stay
        assert all(name.startswith(".model.npz.") and name.endswith(".tmp") for name in left)
        for name in left:  # never taken for a model
            if stage == "mid-array":
                with pytest.raises(ValueError, match="cannot load"):
                    crnn.load(tmp_path / name)
    # and the next save works and replaces the file
    crnn.save(new, path)
    assert _same_model(crnn.load(path), new)
