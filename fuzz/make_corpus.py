"""Write the seed corpus kept in fuzz/corpus/ (run once; the files are committed).

    python fuzz/make_corpus.py

api/: random byte strings (every input decodes into some call).
load/: three valid model files as raw input (mode 0: the last byte % 3 == 0),
and random inputs for the damaged (1) and assembled (2) modes.
"""

import os
import pathlib
import tempfile

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


if __name__ == "__main__":
    main()
