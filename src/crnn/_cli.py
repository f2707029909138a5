# SPDX-License-Identifier: BSD-3-Clause
"""The ``crnn`` command: ``demo``, ``train``, ``predict`` and ``forecast``.

Data files hold one time series: rows are time steps, columns are features
(CSV with an optional header line, or a 1-D/2-D ``.npy``); ``--columns``
picks some of them, by header name or index, and ``--delimiter`` is the
CSV's separator. ``train`` fits a next-step predictor (input and output are
the same features) on all but the last steps of the series, which it holds
out to measure the model against persistence; each column is standardised
with the training part's mean and standard deviation, a scaling saved with
the model and undone on output. The CSV written keeps the input's column
names.

No file is ever overwritten unless the user names it and passes ``--force``;
default output names that exist already get a numbered suffix instead. Both
hold at the moment a file is written, not only when the command starts: an
output file is created only under a name that is free then
(:func:`write_new`).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from crnn._files import write_atomically
from crnn._guard import uninterrupted
from crnn._rnn import RNN
from crnn._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from numpy.typing import NDArray

    _Array = NDArray[Any]

__all__ = ["main"]


class CLIError(Exception):
    """A problem with the command line or its files, reported without a traceback."""


# ---------------------------------------------------------------------- files


def read_table(
    path: str, what: str = "DATA", *, columns: str | None = None, delimiter: str = ","
) -> NDArray[np.float64]:
    """Return the series in a CSV or .npy file as a 2-D float64 array (time, features)."""
    return read_data(path, what, columns=columns, delimiter=delimiter)[0]


def read_data(
    path: str, what: str = "DATA", *, columns: str | None = None, delimiter: str = ","
) -> tuple[NDArray[np.float64], list[str] | None]:
    """Return (values, names): the series in a CSV or .npy file and its columns' names.

    ``values`` is a 2-D float64 array (time, features) of the columns chosen
    by ``columns`` (a comma-separated string of header names and indices, a
    whole number being an index: 0 the first, negative from the end; None:
    every column), in that order.
    ``names`` are those columns' names in the CSV's header line, or None
    when there is no header (a .npy file has none). ``delimiter`` separates
    the CSV's fields. Only the chosen columns need to hold numbers.
    """
    if not os.path.exists(path):
        raise CLIError(f"{what} file {path!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a directory, not a file")
    names = None
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CLIError(f"{what} file {path!r} is not a readable .npy array: {exc}") from None
        if arr.dtype.kind not in "fiub":
            raise CLIError(f"{what} file {path!r} holds {arr.dtype} values, not numbers")
        if arr.ndim == 1:
            arr = arr[:, np.newaxis]
        if arr.ndim != 2:
            raise CLIError(
                f"{what} file {path!r} must hold a 1-D or 2-D array, got shape {arr.shape}"
            )
        if columns is not None and arr.shape[1] > 0:
            arr = arr[:, _column_indices(columns, None, arr.shape[1], f"{what} file {path!r}")[0]]
        arr = arr.astype(np.float64)
    else:
        arr, names = _read_csv(path, what, columns, delimiter)
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise CLIError(
            f"{what} file {path!r} must have at least 2 rows and 1 column, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise CLIError(
            f"{what} file {path!r}: row {row + 1}, column {col + 1} is not a finite number"
        )
    return arr, names


def _numbers(fields: Sequence[str]) -> list[float] | None:
    try:
        return [float(c) for c in fields]
    except ValueError:
        return None


def _read_csv(
    path: str, what: str, columns: str | None, delimiter: str
) -> tuple[NDArray[np.float64], list[str] | None]:
    # utf-8-sig: a byte-order mark (some spreadsheets write one) is not part of
    # the first field, which would then be no number and taken for a header
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            try:
                rows = [r for r in reader if r and any(c.strip() for c in r)]
            except csv.Error as exc:  # a field beyond csv.field_size_limit(), say
                raise CLIError(
                    f"{what} file {path!r}, line {reader.line_num}: not a CSV line ({exc})"
                ) from None
    except UnicodeDecodeError:
        raise CLIError(f"{what} file {path!r} is not a text CSV file") from None
    if not rows:
        raise CLIError(f"{what} file {path!r} is empty")

    # The first line is a header when it is not all numbers. With --columns,
    # whose other columns may hold anything (dates, say), when a column is
    # chosen by name, the chosen fields of it are not all numbers, or a field
    # of it is no number where the next line has one.
    first_line = [c.strip() for c in rows[0]]
    if columns is None:
        chosen = None
        header = _numbers(first_line) is None
    else:
        possible_names = first_line if _numbers(first_line) is None else None
        chosen, by_name = _column_indices(
            columns, possible_names, len(first_line), f"{what} file {path!r}"
        )
        second = rows[1] if len(rows) > 1 else []
        header = (
            by_name
            or _numbers([first_line[j] for j in chosen]) is None
            or any(
                _numbers([a]) is None and _numbers([b]) is not None
                for a, b in zip(first_line, second, strict=False)
            )
        )
    first = 1 if header else 0
    width = len(rows[first]) if first < len(rows) else len(rows[0])
    if header and first < len(rows) and len(rows[0]) != width:
        raise CLIError(
            f"{what} file {path!r}: the header line has {len(rows[0])} columns, but the first "
            f"data line has {width}"
        )
    values = []
    for i, row in enumerate(rows[first:], start=first + 1):
        if len(row) != width:
            raise CLIError(
                f"{what} file {path!r}, line {i}: {len(row)} columns, but the first data "
                f"line has {width}"
            )
        fields = row if chosen is None else [row[j] for j in chosen]
        parsed = _numbers(fields)
        if parsed is None:
            bad = next(c for c in fields if _numbers([c]) is None)
            hint = (
                " (choose the columns that hold numbers with --columns)" if chosen is None else ""
            )
            raise CLIError(f"{what} file {path!r}, line {i}: {bad!r} is not a number{hint}")
        values.append(parsed)
    k = width if chosen is None else len(chosen)
    names = None
    if header:
        names = first_line if chosen is None else [first_line[j] for j in chosen]
    return np.array(values, dtype=np.float64).reshape(len(values), k), names


def _column_indices(
    columns: str, names: list[str] | None, width: int, where: str
) -> tuple[list[int], bool]:
    """Resolve --columns; return (column indices, whether a column was chosen by name).

    Each comma-separated field that is a whole number is an index (0 the
    first column, negative counting from the end); any other is a name in
    ``names``, the header line (None when there is none).
    """
    indices, by_name = [], False
    for field in (f.strip() for f in columns.split(",")):
        try:
            j = int(field)
        except ValueError:
            j = None
        if j is None:
            if names is None:
                raise CLIError(
                    f"--columns: {where} has no header line to find {field!r} in; give "
                    "column indices (0 is the first)"
                )
            if field not in names:
                raise CLIError(
                    f"--columns: {where} has no column named {field!r} (its columns: "
                    f"{', '.join(names)})"
                )
            if names.count(field) > 1:
                raise CLIError(f"{where}: its header has more than one column named {field!r}")
            j = names.index(field)
            by_name = True
        else:
            if not -width <= j < width:
                raise CLIError(
                    f"--columns: column index {j} is out of range: {where} has {width} "
                    f"column(s), indices 0 to {width - 1} (or -{width} to -1)"
                )
            j %= width
        if j in indices:
            raise CLIError(f"--columns: column {field!r} is chosen twice")
        indices.append(j)
    return indices, by_name


def check_output(requested: str | None, force: bool) -> None:
    """Refuse, before any work, an output path that will not be writable.

    The user's path is refused if it exists, unless --force, or if it is a
    directory or its directory does not exist. (Checked again when the file
    is written: see :func:`write_new`.)
    """
    if requested is None:
        return
    if os.path.exists(requested) and not force:
        raise CLIError(f"{requested!r} exists; pass --force to overwrite it")
    if os.path.isdir(requested):
        raise CLIError(f"{requested!r} is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(requested))
    if not os.path.isdir(parent):  # found now, not after a long training
        raise CLIError(f"cannot write {requested!r}: directory {parent!r} does not exist")


def write_new(
    requested: str | None, default: str | None, force: bool, write: Callable[[str, bool], object]
) -> str:
    """Write an output file with ``write(path, replace)``; return the path written.

    The user's path is replaced only with --force; otherwise it must be free
    at the moment the file is put there. Without a path, the default name is
    used, or, if it is taken, the first free of ``stem-1.ext``,
    ``stem-2.ext``, ...; each is claimed the same way, so two commands
    running at once never write to one name.
    """
    candidates = [requested] if requested is not None else _numbered(default)  # type: ignore[arg-type]
    for path in candidates:
        try:
            write(path, requested is not None and force)
        except FileExistsError:
            if requested is not None:
                raise CLIError(f"{requested!r} exists; pass --force to overwrite it") from None
            continue
        except OSError as exc:
            raise CLIError(f"cannot write {path!r}: {exc.strerror or exc}") from None
        return path
    raise AssertionError("unreachable")  # pragma: no cover - _numbered never ends


def _numbered(default: str) -> Iterator[str]:
    stem, ext = os.path.splitext(default)
    yield default
    k = 1
    while True:
        yield f"{stem}-{k}{ext}"
        k += 1


def write_csv(
    path: str | None, array: _Array, header: list[str], replace: bool = True, delimiter: str = ","
) -> None:
    """Write rows of numbers as CSV, atomically (to stdout when path is None or '-')."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", delimiter=delimiter)
    writer.writerow(header)
    for row in np.atleast_2d(array):
        writer.writerow([repr(float(v)) for v in row])
    text = buf.getvalue()
    if path in (None, "-"):
        sys.stdout.write(text)
        return
    write_atomically(path, lambda fh: fh.write(text), mode="w", replace=replace)


# ---------------------------------------------------------------------- scaling


def _fit_scaling(series: _Array) -> tuple[_Array, _Array]:
    with np.errstate(over="ignore", invalid="ignore"):  # reported just below
        mean = series.mean(axis=0)
        scale = series.std(axis=0)
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        raise CLIError(
            "the DATA values are too large to standardise (their mean or standard deviation "
            "overflows float64); rescale the data"
        )
    scale[scale == 0] = 1.0
    return mean, scale


def _standardise(series: _Array, mean: _Array, scale: _Array, path: str) -> _Array:
    with np.errstate(over="ignore"):  # reported just below
        z = (series - mean) / scale
    if not np.isfinite(z).all():
        raise CLIError(f"DATA file {path!r} holds values too large for the model's scaling")
    return z


def _scaling(model: RNN) -> tuple[_Array, _Array]:
    mean = getattr(model, "data_mean_", None)
    scale = getattr(model, "data_scale_", None)
    if mean is None or scale is None:
        return np.zeros(model.input_size), np.ones(model.input_size)
    return np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64)


def _windows(series: _Array, length: int, step: int) -> tuple[_Array, _Array]:
    """Next-step training pairs from windows of `length` steps of one series."""
    from crnn.datasets import windows

    if series.shape[0] <= length + 1:
        return series[np.newaxis, :-1], series[np.newaxis, 1:]
    w = windows(series, length + 1, step)
    return w[:, :-1], w[:, 1:]


def _rmse(a: _Array, b: _Array) -> float:
    with np.errstate(over="ignore"):  # an inf RMSE is the honest answer
        return float(np.sqrt(np.mean((a - b) ** 2)))


def _one_step_errors(
    model: RNN, z: _Array, series: _Array, start: int, mean: _Array, scale: _Array
) -> tuple[_Array, float, float]:
    """Predict series[start + 1:] one step ahead, the state run over z[:start] first.

    Return (predictions, the model's RMSE, persistence's RMSE), in the
    data's units; persistence predicts that the next value is the current one.
    """
    _, state = model.predict(z[:start], return_state=True)
    pred = model.predict(z[start:-1], state) * scale + mean
    truth = series[start + 1 :]
    return pred, _rmse(pred, truth), _rmse(series[start:-1], truth)


def _compared(rmse: float, naive: float) -> str:
    """'12.3% lower' (or higher): the model's error against persistence's."""
    if not naive > 0:
        return "persistence is exact here" if rmse > 0 else "both exact"
    change = 100 * (1 - rmse / naive)
    return f"{abs(change):.1f}% {'lower' if change >= 0 else 'higher'}"


# ---------------------------------------------------------------------- commands


def _load_model(path: str) -> RNN:
    if not os.path.exists(path):
        raise CLIError(f"MODEL file {path!r} does not exist")
    try:
        return RNN.load(path)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _saver(model: RNN) -> Callable[[str, bool], str]:
    return lambda path, replace: model.save(path, overwrite=replace)


def _check_columns(model: RNN, data: _Array, path: str) -> None:
    if data.shape[1] != model.input_size:
        raise CLIError(
            f"DATA file {path!r} has {data.shape[1]} columns, but the model was trained on "
            f"{model.input_size} (choose them with --columns)"
        )


def _warn(command: str, message: str) -> None:
    print(f"crnn {command}: warning: {message}", file=sys.stderr)


def _held_out_steps(n_steps: int, fraction: float) -> int:
    """How many of the last steps `crnn train` holds out: round(fraction * n_steps).

    At least 1 when fraction > 0, and at most n_steps - 2, so that at least
    one next-step pair is left to train on; 0 when the series is too short.
    """
    if fraction == 0:
        return 0
    return max(0, min(max(round(fraction * n_steps), 1), n_steps - 2))


def _hyperparameters(args: argparse.Namespace, where: str) -> dict[str, Any]:
    """Return the options of HYPERPARAMETERS that go to ``where`` ("model" or "fit")."""
    names = (flag[2:].replace("-", "_") for flag, to, _ in HYPERPARAMETERS if to == where)
    return {name: getattr(args, name) for name in names}


def cmd_train(args: argparse.Namespace, out: IO[str]) -> int:
    """Fit a next-step predictor to the series in DATA, measure it on held-out steps, save it."""
    series, names = read_data(args.data, columns=args.columns, delimiter=args.delimiter)
    n_test = _held_out_steps(series.shape[0], args.test_fraction)
    n_train = series.shape[0] - n_test
    mean, scale = _fit_scaling(series[:n_train])  # the training part's, as the model will see
    z = _standardise(series, mean, scale, args.data)
    X, target = _windows(z[:n_train], args.window, max(1, args.window // 4))
    k = series.shape[1]
    model = RNN(k, seed=args.seed, **_hyperparameters(args, "model"))
    check_output(args.output, args.force)
    if args.test_fraction > 0 and n_test == 0:
        _warn(
            "train",
            f"the series has only {series.shape[0]} steps: none is held out, so the model's "
            "error is not measured",
        )
    if n_train < args.window + 1:
        _warn(
            "train",
            f"the training part has {n_train} steps, fewer than --window {args.window} + 1: "
            f"the model trains on one sequence of {n_train - 1} steps; give a longer series "
            "or a smaller --window",
        )
    held = f"; the last {n_test} held out" if n_test else "; none held out"
    print(
        f"training {model!r} on {n_train} steps of {k} feature(s) "
        f"({X.shape[0]} windows of {X.shape[1]} steps){held}",
        file=out,
    )
    start = time.perf_counter()
    lm = args.optimizer == "lm"  # Levenberg-Marquardt: the full batch
    try:
        model.fit(
            X,
            target,
            validation_fraction=0.1 if X.shape[0] >= 10 else None,
            seed=args.seed,
            verbose=not args.quiet,
            **(_hyperparameters(args, "fit") | ({"batch_size": None} if lm else {})),
        )
    except KeyboardInterrupt as exc:
        return _interrupted(model, exc, mean, scale, args)
    model.data_mean_, model.data_scale_ = mean, scale
    print(f"{model.n_iter_} epochs in {time.perf_counter() - start:.1f} s", file=out)
    worse = False
    if n_test:
        # each held-out step predicted from the one before, the state run over
        # the training part first: data the model was not fitted to
        _, rmse, naive = _one_step_errors(model, z, series, n_train - 1, mean, scale)
        print(
            f"held-out RMSE, next step (last {n_test} steps):  crnn {rmse:.6g}   "
            f"persistence {naive:.6g}  ({_compared(rmse, naive)})",
            file=out,
        )
        worse = not rmse < naive
    path = write_new(args.output, "crnn-model.npz", args.force, _saver(model))
    what = f" (columns: {', '.join(names)})" if names is not None else ""
    print(f"model saved to {path}{what}", file=out)
    if worse:  # said after the save, which may fail (one line, status 2) instead
        _warn(
            "train",
            f"the model's held-out error ({rmse:.6g}) is not below persistence's "
            f"({naive:.6g}): persistence (the next value is the current one) does at least as "
            "well; try more --epochs, another --hidden-size or --window, or more data",
        )
    return 0


def _interrupted(
    model: RNN, exc: KeyboardInterrupt, mean: _Array, scale: _Array, args: argparse.Namespace
) -> int:
    """Ctrl-C during crnn train: save the best model so far, say so in one line; status 130."""
    epochs = getattr(model, "n_iter_", 0)
    if not epochs:
        print(
            "crnn train: interrupted before the first epoch ended; nothing saved", file=sys.stderr
        )
        return 130
    best = getattr(exc, "best_weights", None)
    path = args.output
    try:
        with uninterrupted():  # a second Ctrl-C waits for the save to end
            if best is not None:  # the best validation score's weights, as fit keeps them
                for name, value in model.parameters().items():
                    value[...] = best[name]
            model.data_mean_, model.data_scale_ = mean, scale
            model.interrupted_after_epoch_ = epochs
            path = write_new(args.output, "crnn-model.npz", args.force, _saver(model))
    except KeyboardInterrupt:
        pass  # the save is complete: stopping is what was asked
    what = "the best model so far" if best is not None else "the model so far (no validation)"
    print(
        f"crnn train: interrupted after epoch {epochs}; {what} is saved to {path}", file=sys.stderr
    )
    return 130


def _apply(
    args: argparse.Namespace,
    compute: Callable[[RNN, _Array], _Array],
    column: str,
    bounds: bool = False,
) -> int:
    """Load MODEL and DATA, run compute(model, standardised data), write CSV.

    ``bounds``: compute gives three blocks of columns, the values and their
    lower and upper bounds, written with the suffixes _lower and _upper.
    """
    model = _load_model(args.model)
    series, names = read_data(args.data, columns=args.columns, delimiter=args.delimiter)
    _check_columns(model, series, args.data)
    mean, scale = _scaling(model)
    path = None if args.output in (None, "-") else args.output
    check_output(path, args.force)
    z = _standardise(series, mean, scale, args.data)
    with np.errstate(over="ignore"):  # outputs beyond float64 are written as inf
        if bounds:
            result = compute(model, z) * np.tile(scale, 3) + np.tile(mean, 3)
        else:
            result = compute(model, z) * scale + mean
    k = result.shape[1] // 3 if bounds else result.shape[1]
    header = names if names is not None else [f"{column}_{j}" for j in range(k)]
    if bounds:
        header = [*header, *(f"{h}_lower" for h in header), *(f"{h}_upper" for h in header)]
    if path is None:
        write_csv(None, result, header, delimiter=args.delimiter)
    else:
        write_new(
            path,
            None,
            args.force,
            lambda p, r: write_csv(p, result, header, r, delimiter=args.delimiter),
        )
    return 0


def cmd_predict(args: argparse.Namespace, out: IO[str]) -> int:
    """One-step-ahead predictions: row t of the output predicts row t+1 of DATA."""
    return _apply(args, lambda model, z: model.predict(z), "prediction")


def cmd_forecast(args: argparse.Namespace, out: IO[str]) -> int:
    """Run over DATA, then forecast STEPS steps in closed loop (with --interval, its bounds)."""
    if args.interval is None:
        return _apply(args, lambda model, z: model.generate(args.steps, z), "forecast")
    return _apply(args, lambda model, z: _with_bounds(model, z, args), "forecast", bounds=True)


def _with_bounds(model: RNN, z: _Array, args: argparse.Namespace) -> _Array:
    """Return the forecast of z (standardised) and its --interval's bounds: (steps, 3 k)."""
    from statistics import NormalDist

    if getattr(model, "laplace_", None) is None:
        if z.shape[0] < 2:
            raise CLIError("--interval needs at least two rows of DATA to fit the posterior")
        model.laplace(z[:-1], z[1:])
    future, std = model.generate(args.steps, z, return_std=True)
    q = NormalDist().inv_cdf(0.5 + args.interval / 2)
    return np.concatenate([future, future - q * std, future + q * std], axis=1)


def cmd_demo(args: argparse.Namespace, out: IO[str]) -> int:
    """Mackey-Glass next-step prediction, against the persistence baseline."""
    from crnn.datasets import mackey_glass

    start = time.perf_counter()
    series = mackey_glass(args.length, subsample=3.0, seed=args.seed)
    series = series.reshape(-1, 1)
    n_train = int(0.7 * len(series))
    train, test = series[:n_train], series[n_train:]
    mean, scale = _fit_scaling(train)
    z = (series - mean) / scale
    X, target = _windows(z[:n_train], 100, 25)
    model = RNN(1, args.hidden_size, seed=args.seed)
    print(
        f"Mackey-Glass series (tau = 17, sampled every 3 time units): {len(series)} steps, "
        f"{n_train} to train on ({X.shape[0]} windows of 100), {len(test)} to test",
        file=out,
    )
    print(f"model: {model!r}, exact BPTT gradients, Adam", file=out)
    # the output names are checked before training, not after
    check_output(args.output, args.force)
    if not args.no_plot:
        check_output(args.plot, args.force)
    model.fit(
        X,
        target,
        epochs=args.epochs,
        batch_size=16,
        validation_fraction=0.1,
        seed=args.seed,
        verbose=not args.quiet,
    )
    model.data_mean_, model.data_scale_ = mean, scale
    fit_time = time.perf_counter() - start
    # one-step predictions over the test part, the state warmed up on the training part
    pred, rmse, naive = _one_step_errors(model, z, series, n_train, mean, scale)
    print(f"trained for {model.n_iter_} epochs in {fit_time:.1f} s", file=out)
    print(f"test RMSE, next step:  crnn {rmse:.5f}   persistence {naive:.5f}", file=out)
    print(f"crnn's error is {_compared(rmse, naive)} than persistence's", file=out)
    path = write_new(args.output, "crnn-demo-model.npz", args.force, _saver(model))
    print(f"model saved to {path}", file=out)
    horizon = min(200, len(test) - 1)
    future = model.generate(horizon, z[: n_train + 1]) * scale + mean
    _plot(args, series, n_train, pred, future, out)
    return 0


def _plot(
    args: argparse.Namespace,
    series: _Array,
    n_train: int,
    pred: _Array,
    future: _Array,
    out: IO[str],
) -> None:
    if args.no_plot:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is not installed (pip install 'crnn[plot]')", file=out)
        return
    shown = min(300, len(series) - n_train)  # the first steps of the test part
    t = np.arange(n_train, n_train + shown)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    axes[0].plot(t, series[t, 0], color="black", lw=1, label="truth")
    axes[0].plot(t[1:], pred[: shown - 1, 0], color="tab:red", lw=1, ls="--", label="crnn")
    axes[0].set_title("one step ahead, on data the model has not seen")
    axes[0].legend(loc="upper right")
    h = min(len(future), shown - 1)
    axes[1].plot(t, series[t, 0], color="black", lw=1, label="truth")
    axes[1].plot(t[1 : 1 + h], future[:h, 0], color="tab:blue", lw=1.2, label="crnn")
    axes[1].set_title("closed loop: each forecast fed back as the next input, no data")
    axes[1].set_xlabel("step (3 time units each)")
    axes[1].legend(loc="upper right")
    fig.tight_layout()
    try:
        path = write_new(
            args.plot,
            "crnn-demo.png",
            args.force,
            lambda p, r: write_atomically(
                p, lambda fh: fig.savefig(fh, format="png", dpi=100), replace=r
            ),
        )
    finally:
        plt.close(fig)
    print(f"plot saved to {path}", file=out)


# ---------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _real(check: Callable[[float], bool], what: str) -> Callable[[str], float]:
    """Return an argparse type: a number for which check holds ("must be {what}" if not)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


_positive_float = _real(lambda v: bool(np.isfinite(v)) and v > 0, "a number > 0")
_non_negative_float = _real(lambda v: bool(np.isfinite(v)) and v >= 0, "a number >= 0")
_fraction = _real(lambda v: 0 <= v < 1, "in [0, 1)")
_leak = _real(lambda v: 0 < v <= 1, "in (0, 1]")
_probability = _real(lambda v: 0 < v < 1, "in (0, 1)")


def _delimiter(text: str) -> str:
    if text in ("\\t", "tab"):
        return "\t"
    if len(text) != 1:
        raise argparse.ArgumentTypeError(
            f"must be one character (or \\t or tab for a tab), got {text!r}"
        )
    if text in '\r\n"0123456789.+-':
        raise argparse.ArgumentTypeError(f"{text!r} cannot separate fields of numbers")
    return text


# The hyperparameters `crnn train` hands on: (flag, where, argparse keywords).
# "model" options go to RNN(...), "fit" options to RNN.fit(...), as the
# keyword the flag names (--hidden-size: hidden_size); a new hyperparameter
# of either is one line here.
HYPERPARAMETERS = (
    ("--hidden-size", "model", {"type": _positive_int, "default": 32, "help": "hidden units d"}),
    (
        "--bias",
        "model",
        {
            "action": argparse.BooleanOptionalAction,
            "default": True,
            "help": "biases b and c (Z = UX + WS + b, Y = VS + c); --no-bias: Elman's network "
            "without them",
        },
    ),
    (
        "--activation",
        "model",
        {
            "choices": ["tanh", "relu", "identity", "logistic"],
            "default": "tanh",
            "help": "the activation f of the state, S = (1 - a) S' + a f(Z)",
        },
    ),
    (
        "--leak",
        "model",
        {"type": _leak, "default": 1.0, "help": "the leak rate a, in (0, 1] (1: no leak)"},
    ),
    (
        "--weight-decay",
        "fit",
        {
            "type": _non_negative_float,
            "default": 0.0,
            "help": "adds weight_decay (|U|^2 + |W|^2 + |V|^2) to the training objective",
        },
    ),
    (
        "--epochs",
        "fit",
        {"type": _positive_int, "default": 200, "help": "the most passes over the windows"},
    ),
    (
        "--lr",
        "fit",
        {
            "type": _positive_float,
            "default": None,
            "help": "learning rate (default: 0.01 for adam and sgd, 0.1 for adagrad)",
        },
    ),
    (
        "--optimizer",
        "fit",
        {
            "choices": ["adam", "sgd", "adagrad", "lm"],
            "default": "adam",
            "help": "the optimizer",
        },
    ),
    (
        "--method",
        "fit",
        {"choices": ["bptt", "rtrl"], "default": "bptt", "help": "how gradients are computed"},
    ),
    (
        "--batch-size",
        "fit",
        {"type": _positive_int, "default": 16, "help": "windows per update (lm: all of them)"},
    ),
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's line ends with its default, unless it has none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``crnn`` command."""
    parser = argparse.ArgumentParser(
        prog="crnn",
        description="The Elman RNN with exact gradients (BPTT and RTRL), in compiled Cython.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"crnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)

    def common_out(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("-o", "--output", help=f"where to write the {what}")
        p.add_argument("--force", action="store_true", help="overwrite an existing output file")

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--columns",
            help="the columns to use, comma-separated: names in the CSV's header line, or "
            "indices (whole numbers: 0 the first, -1 the last); only they need to hold "
            "numbers (default: every column)",
        )
        p.add_argument(
            "--delimiter",
            type=_delimiter,
            default=",",
            help="the CSV's field separator, also used in the CSV written; \\t or tab for a tab "
            "(default: a comma)",
        )

    p = command("demo", "train on the Mackey-Glass series and compare with persistence")
    p.add_argument("--hidden-size", type=_positive_int, default=32, help="hidden units d")
    p.add_argument("--epochs", type=_positive_int, default=300, help="the most passes")
    p.add_argument("--length", type=_positive_int, default=3000, help="series length (steps)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, weights and shuffling")
    p.add_argument("--plot", help="PNG file of the forecast (default: crnn-demo.png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    common_out(p, "model (default: crnn-demo-model.npz)")
    p.set_defaults(func=cmd_demo)

    p = command("train", "fit a next-step predictor to a series (CSV or .npy)")
    p.add_argument(
        "data", metavar="DATA", help="CSV or .npy: rows are time steps, columns features"
    )
    data_options(p)
    for flag, _, options in HYPERPARAMETERS:
        p.add_argument(flag, **options)
    p.add_argument("--window", type=_positive_int, default=100, help="steps per training window")
    p.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        help="the share of the series, at its end, held out of training to measure the "
        "model's error against persistence's (0: none)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weights, shuffling and validation split"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    common_out(p, "model (default: crnn-model.npz)")
    p.set_defaults(func=cmd_train)

    p = command("predict", "one-step-ahead predictions over a series, as CSV")
    p.add_argument("model", metavar="MODEL", help="a model saved by 'crnn train'")
    p.add_argument("data", metavar="DATA", help="CSV or .npy, the columns the model was trained on")
    data_options(p)
    common_out(p, "CSV (default: standard output)")
    p.set_defaults(func=cmd_predict)

    p = command("forecast", "run over a series, then forecast in closed loop, as CSV")
    p.add_argument("model", metavar="MODEL", help="a model saved by 'crnn train'")
    p.add_argument("data", metavar="DATA", help="CSV or .npy, the columns the model was trained on")
    p.add_argument("--steps", type=_positive_int, required=True, help="steps to forecast")
    p.add_argument(
        "--interval",
        type=_probability,
        default=None,
        help="also write the lower and upper bounds of this central predictive interval "
        "(e.g. 0.95): the Laplace approximation saved with the model (RNN.laplace), or, "
        "when it has none, one fitted to DATA's next-step pairs; linearised through the "
        "closed loop",
    )
    data_options(p)
    common_out(p, "CSV (default: standard output)")
    p.set_defaults(func=cmd_forecast)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crnn`` command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args, sys.stdout)  # type: ignore[no-any-return]
    except CLIError as exc:
        print(f"crnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FloatingPointError, MemoryError) as exc:
        print(f"crnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
