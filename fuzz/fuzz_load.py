"""atheris fuzz target: crnn.load on damaged, foreign and hostile files.

Each input becomes a file in one of three ways: its raw bytes; a valid saved
model with its bytes flipped, cut or spliced by the input; or an .npz archive
assembled from the input (metadata fields and arrays of any name, dtype and
shape, pickled objects included). crnn.load must either raise ValueError
naming the file, or return a model whose weights are finite, of the shapes
the file's metadata gives, that predicts; any other exception, any warning,
a crash or a hang is a finding. Run it with fuzz/run.sh.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings

import atheris

with atheris.instrument_imports(include=["crnn"]):
    import crnn

import numpy as np

TMP = tempfile.mkdtemp(prefix="crnn-fuzz-load-")
PATH = os.path.join(TMP, "model.npz")


def _saved(n, d, m, dtype):
    buf_path = os.path.join(TMP, f"seed-{n}-{d}-{m}-{np.dtype(dtype).name}.npz")
    if not os.path.exists(buf_path):
        rnn = crnn.RNN(n, d, m, dtype=dtype, seed=0)
        rnn.data_mean_, rnn.data_scale_ = np.zeros(n), np.ones(n)
        crnn.save(rnn, buf_path)
    with open(buf_path, "rb") as fh:
        return fh.read()


def _value(fdp):
    """Return a JSON value of any kind, from the input."""
    kind = fdp.ConsumeIntInRange(0, 8)
    if kind == 0:
        return fdp.ConsumeIntInRange(-(2**63), 2**63)
    if kind == 1:
        return fdp.ConsumeIntInRange(-2, 6)
    if kind == 2:
        return fdp.ConsumeRegularFloat()
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(12)
    if kind == 4:
        return fdp.ConsumeBool()
    if kind == 5:
        return None
    if kind == 6:
        return [fdp.ConsumeIntInRange(-1, 5) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 7:
        return {"shape": [fdp.ConsumeIntInRange(-1, 5)], "sha256": fdp.ConsumeUnicode(8)}
    return {}


def _array(fdp):
    kind = fdp.ConsumeIntInRange(0, 6)
    shape = tuple(fdp.ConsumeIntInRange(0, 4) for _ in range(fdp.ConsumeIntInRange(0, 3)))
    if kind == 0:
        return np.zeros(shape, dtype=object)  # needs pickle
    if kind == 1:
        return np.full(shape, fdp.ConsumeFloat())
    if kind == 2:
        return np.zeros(shape, dtype=np.float32)
    if kind == 3:
        return np.zeros(shape, dtype=np.int8)
    if kind == 4:
        return np.array(fdp.ConsumeUnicode(10))
    if kind == 5:
        return np.zeros(shape, dtype=np.complex64)
    return np.zeros(shape)


def _assembled(fdp):
    """Return an .npz built from the input, starting from a valid model's entries."""
    n, d, m = (fdp.ConsumeIntInRange(1, 3) for _ in range(3))
    dtype = np.float32 if fdp.ConsumeBool() else np.float64
    with np.load(io.BytesIO(_saved(n, d, m, dtype))) as npz:
        entries = {k: npz[k] for k in npz.files}
    meta = json.loads(str(entries["crnn_metadata"][()]))
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        action = fdp.ConsumeIntInRange(0, 6)
        keys = [*sorted(meta), "format_version", "options", "arrays", "extra"]
        key = keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]
        names = sorted(entries)
        name = names[fdp.ConsumeIntInRange(0, len(names) - 1)]
        if action == 0:
            meta[key] = _value(fdp)
        elif action == 1:
            meta.pop(key, None)
        elif action == 2 and name != "crnn_metadata":
            entries[name] = _array(fdp)
        elif action == 3 and name != "crnn_metadata":
            del entries[name]
        elif action == 4:
            entries[fdp.ConsumeUnicodeNoSurrogates(6) or "x"] = _array(fdp)
        elif action == 5 and isinstance(meta.get("arrays"), dict) and meta["arrays"]:
            arrays = meta["arrays"]
            k = sorted(arrays)[fdp.ConsumeIntInRange(0, len(arrays) - 1)]
            arrays[k] = _value(fdp)
        elif action == 6 and isinstance(meta.get("options"), dict):
            meta["options"][fdp.ConsumeUnicodeNoSurrogates(6)] = _value(fdp)
    entries["crnn_metadata"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **entries)
    return buf.getvalue()


def _damaged(fdp):
    """Return a valid model's bytes with flips, cuts or splices from the input."""
    dims = [fdp.ConsumeIntInRange(1, 3) for _ in range(3)]
    data = bytearray(_saved(*dims, np.float64 if fdp.ConsumeBool() else np.float32))
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        action = fdp.ConsumeIntInRange(0, 2)
        at = fdp.ConsumeIntInRange(0, max(0, len(data) - 1))
        if action == 0 and data:
            data[at] ^= fdp.ConsumeIntInRange(1, 255)
        elif action == 1:
            del data[at:]
        else:
            data[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
    return bytes(data)


def TestOneInput(data):
    """Run one input (the entry point atheris calls)."""
    fdp = atheris.FuzzedDataProvider(data)
    how = fdp.ConsumeIntInRange(0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning of crnn's is a finding
        # numpy's own, when an entry's header looks written by Python 2 (crnn never
        # writes one): the read goes on, and ends in ValueError or a valid model
        warnings.filterwarnings("ignore", "Reading `.npy` or `.npz` file required", UserWarning)
        content = (fdp.ConsumeBytes(1 << 16), _damaged, _assembled)[how]
        if callable(content):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the harness's own odd arrays
                content = content(fdp)
        with open(PATH, "wb") as fh:
            fh.write(content)
        try:
            model = crnn.load(PATH)
        except ValueError as exc:
            if "model.npz" not in str(exc):
                raise AssertionError(f"the message does not name the file: {exc}") from exc
            return
        for w in (model.U, model.W, model.V):
            assert np.isfinite(w).all()
        n, d, m = model.input_size, model.hidden_size, model.output_size
        assert model.U.shape == (d, n)
        assert model.W.shape == (d, d)
        assert model.V.shape == (m, d)
        with contextlib.suppress(FloatingPointError):
            Y = model.predict(np.ones((2, n)))
            assert Y.shape == (2, m)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
