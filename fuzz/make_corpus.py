"""Write the seed corpus kept in fuzz/corpus/ (run once; the files are committed).

    python fuzz/make_corpus.py

api/: random byte strings (every input decodes into some call).
load/: three valid model files as raw input (mode 0: the last byte % 3 == 0),
random inputs for the damaged (1) and assembled (2) modes, and hostile
archives as raw input (hostile-*: compressed entries, a small deflate bomb,
metadata nested beyond the recursion limit, too many entries, an .npy of
version 3, an .npy header declaring more than it holds).
csv/: data files as raw input (the last byte odd), and random inputs for the
assembled mode (the last byte even).
"""

import io
import json
import os
import pathlib
import tempfile
import zipfile

import numpy as np

import crnn

HERE = pathlib.Path(__file__).resolve().parent


def main():
    """Write the corpus."""
    rng = np.random.default_rng(20261125)
    api = HERE / "corpus" / "api"
    load = HERE / "corpus" / "load"
    for d in (api, load):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    for k in range(24):
        size = int(rng.integers(16, 400))
        (api / f"seed-{k:02d}").write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    with tempfile.TemporaryDirectory() as tmp:
        for k, (sizes, dtype) in enumerate(
            [((1, 1, 1), np.float64), ((2, 3, 2), np.float32), ((3, 2, 3), np.float64)]
        ):
            rnn = crnn.RNN(*sizes, dtype=dtype, seed=k)
            if k == 2:
                rnn.data_mean_, rnn.data_scale_ = np.zeros(3), np.ones(3)
            path = os.path.join(tmp, "m.npz")
            crnn.save(rnn, path)
            (load / f"model-{k}").write_bytes(pathlib.Path(path).read_bytes() + b"\x00")
    for k in range(12):
        body = rng.integers(0, 256, int(rng.integers(16, 200)), dtype=np.uint8).tobytes()
        (load / f"seed-{k:02d}").write_bytes(body + bytes([1 + k % 2]))  # modes 1 and 2
    hostile_load(load)
    csv_seeds(HERE / "corpus" / "csv", rng)


def _npy(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _zip(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def hostile_load(load):
    """Write the hostile archives of load/ (raw inputs: mode 0), each under 64 KiB."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npz")
        crnn.save(crnn.RNN(2, 3, 2, seed=0), path)
        with np.load(path) as npz:
            entries = {k: npz[k] for k in npz.files}
    members = {f"{k}.npy": _npy(v) for k, v in entries.items()}
    meta_key = "crnn_metadata"
    meta = json.loads(str(entries[meta_key][()]))
    files = {}
    files["compressed"] = _zip(members, zipfile.ZIP_DEFLATED)
    big = np.zeros((), dtype=f"<U{4 * 2**20}")  # 16 MiB of metadata: the JSON, then NULs
    big[()] = json.dumps(meta)
    files["deflate-bomb"] = _zip({**members, f"{meta_key}.npy": _npy(big)}, zipfile.ZIP_DEFLATED)
    depth = 5000  # beyond the recursion limit of 1000
    nested = {**members, f"{meta_key}.npy": _npy(np.array("[" * depth + "]" * depth))}
    files["nested-metadata"] = _zip(nested)
    deep = json.dumps(dict(meta, options="@")).replace(
        '"@"', '{"x": ' + "[" * depth + "]" * depth + "}"
    )
    files["nested-option"] = _zip({**members, f"{meta_key}.npy": _npy(np.array(deep))})
    many = dict(members)
    for k in range(300):
        many[f"e{k}"] = b""
    files["many-entries"] = _zip(many)
    v3 = bytearray(members["U.npy"])
    v3[6:8] = b"\x03\x00"
    files["npy-version-3"] = _zip({**members, "U.npy": bytes(v3)})
    header = np.lib.format.header_data_from_array_1_0(entries["W"])
    header["shape"] = (2**40,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    files["npy-declares-more"] = _zip({**members, "W.npy": buf.getvalue() + entries["W"].tobytes()})
    for name, data in files.items():
        assert len(data) < 1 << 16, (name, len(data))  # what mode 0 reads of an input
        (load / f"hostile-{name}").write_bytes(data + b"\x00")


def csv_seeds(directory, rng):
    """Write the seeds of csv/."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in directory.iterdir():
        f.unlink()
    raw = {
        "header": b"a,b\n1,2\n3,4\n5,6\n",
        "no-header": b"1\n2\n3\n",
        "bom": b"\xef\xbb\xbf1,2\n3,4\n",
        "bom-header": b"\xef\xbb\xbfx,y\n1,2\n3,4\n",
        "crlf-quotes": b'"a","b"\r\n"1",2\r\n3,"4e-3"\r\n',
        "blank-lines": b"\n1,2\n , \n\n3,4\n",
        "ragged": b"1,2\n3\n",
        "nan-inf": b"1,nan\n2,inf\n",
        "nul": b"1,2\n3,\x004\n",
        "latin-1": b"caf\xe9\n1\n2\n",
        "open-quote": b'1,"2\n3,4\n',
        "huge-numbers": b"1e308,1\n1e309,2\n",
    }
    for name, data in raw.items():
        (directory / f"raw-{name}").write_bytes(data + b"\x01")  # the last byte odd: raw
    for k in range(8):
        body = rng.integers(0, 256, int(rng.integers(16, 120)), dtype=np.uint8).tobytes()
        (directory / f"seed-{k:02d}").write_bytes(body + b"\x00")  # even: assembled


if __name__ == "__main__":
    main()
