"""atheris fuzz target: the crnn command's reader of data files (CSV and .npy).

Each input becomes a DATA file in one of two ways: its raw bytes, as a CSV
file (quotes, byte-order marks, NUL bytes, fields beyond the csv module's
limit, any encoding, numbers Python reads and numbers it does not); or a
CSV assembled from the input (a header or none, rows of numbers, empty and
blank lines, ragged rows, NaN and infinity, a long field, a byte-order
mark). ``crnn._cli.read_table`` must either raise the command's one-line
error (CLIError, which the command prints with status 2) naming the file, or
return a finite float64 array of at least 2 rows and 1 column with as many
rows as the file has data lines; any other exception, any warning, a crash
or a hang is a finding. Run it with fuzz/run.sh.
"""

import os
import sys
import tempfile
import warnings

import atheris

with atheris.instrument_imports(include=["crnn"]):
    from crnn import _cli

import numpy as np

TMP = tempfile.mkdtemp(prefix="crnn-fuzz-csv-")
PATH = os.path.join(TMP, "data.csv")

FIELDS = ("1", "-2.5", "1e308", "1e309", "nan", "inf", " 3 ", "0x1", "", "a", '"4"', "1_0")


def _assembled(fdp):
    """Return the bytes of a CSV built from the input, and its number of data lines."""
    width = fdp.ConsumeIntInRange(1, 4)
    lines = []
    if fdp.ConsumeBool():
        lines.append(",".join(f"col{j}" for j in range(width)))
    rows = 0
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        kind = fdp.ConsumeIntInRange(0, 5)
        if kind == 0:
            lines.append("")  # blank lines are skipped
            continue
        if kind == 1:
            lines.append(" , " * (width - 1))  # so are lines of blanks
            continue
        if kind == 2:  # any field, of a list of odd ones
            cells = [FIELDS[fdp.ConsumeIntInRange(0, len(FIELDS) - 1)] for _ in range(width)]
        elif kind == 3:  # ragged
            cells = [str(fdp.ConsumeRegularFloat()) for _ in range(fdp.ConsumeIntInRange(1, 5))]
        elif kind == 4:  # a field beyond csv.field_size_limit()
            cells = ["7" * fdp.ConsumeIntInRange(100_000, 200_000)] * width
        else:
            cells = [repr(fdp.ConsumeRegularFloat()) for _ in range(width)]
        lines.append(",".join(cells))
        rows += any(c.strip() for c in cells)  # a line of blank fields is skipped
    text = "\n".join(lines) + ("\n" if fdp.ConsumeBool() else "")
    bom = b"\xef\xbb\xbf" if fdp.ConsumeBool() else b""
    return bom + text.encode("utf-8"), rows


def TestOneInput(data):
    """Run one input (the entry point atheris calls)."""
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        content, rows = fdp.ConsumeBytes(1 << 16), None
    else:
        content, rows = _assembled(fdp)
    with open(PATH, "wb") as fh:
        fh.write(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning is a finding
        try:
            arr = _cli.read_table(PATH)
        except _cli.CLIError as exc:
            message = str(exc)
            if "data.csv" not in message:
                raise AssertionError(f"the message does not name the file: {message}") from exc
            if "\n" in message:
                raise AssertionError(f"the message is not one line: {message!r}") from exc
            return
    assert arr.dtype == np.float64
    assert arr.ndim == 2
    assert arr.shape[0] >= 2
    assert arr.shape[1] >= 1
    assert np.isfinite(arr).all()
    if rows is not None:  # a header line, when there is one, is not data
        assert arr.shape[0] in (rows, rows - 1), (arr.shape, rows)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
