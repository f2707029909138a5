# SPDX-License-Identifier: BSD-3-Clause
"""The ``crnn`` command: ``demo``, ``train``, ``predict`` and ``forecast``.

Data files hold one time series: rows are time steps, columns are features
(CSV with an optional header line, or a 1-D/2-D ``.npy``). ``train`` fits a
next-step predictor (input and output are the same features), standardising
each column with the training data's mean and standard deviation; the
scaling is saved with the model and undone on output.

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


def read_table(path: str, what: str = "DATA") -> NDArray[np.float64]:
    """Return the series in a CSV or .npy file as a 2-D float64 array (time, features)."""
    if not os.path.exists(path):
        raise CLIError(f"{what} file {path!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a directory, not a file")
    if path.endswith(".npy"):
        try:
            arr: NDArray[Any] = np.load(path, allow_pickle=False)
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
        arr = arr.astype(np.float64)
    else:
        arr = _read_csv(path, what)
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise CLIError(
            f"{what} file {path!r} must have at least 2 rows and 1 column, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise CLIError(
            f"{what} file {path!r}: row {row + 1}, column {col + 1} is not a finite number"
        )
    return arr


def _read_csv(path: str, what: str) -> NDArray[np.float64]:
    # utf-8-sig: a byte-order mark (some spreadsheets write one) is not part of
    # the first field, which would then be no number and taken for a header
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
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

    def numbers(row: list[str]) -> list[float] | None:
        try:
            return [float(c) for c in row]
        except ValueError:
            return None

    first = 1 if numbers(rows[0]) is None else 0  # a header line
    width = len(rows[first]) if first < len(rows) else len(rows[0])
    values = []
    for i, row in enumerate(rows[first:], start=first + 1):
        parsed = numbers(row)
        if parsed is None:
            bad = next(c for c in row if numbers([c]) is None)
            raise CLIError(f"{what} file {path!r}, line {i}: {bad!r} is not a number")
        if len(parsed) != width:
            raise CLIError(
                f"{what} file {path!r}, line {i}: {len(parsed)} columns, but the first data "
                f"line has {width}"
            )
        values.append(parsed)
    return np.array(values, dtype=np.float64).reshape(len(values), width)


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


def write_csv(path: str | None, array: _Array, header: list[str], replace: bool = True) -> None:
    """Write rows of numbers as CSV, atomically (to stdout when path is None or '-')."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
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
            f"{model.input_size}"
        )


def cmd_train(args: argparse.Namespace, out: IO[str]) -> int:
    """Fit a next-step predictor to the series in DATA and save it."""
    series = read_table(args.data)
    mean, scale = _fit_scaling(series)
    z = (series - mean) / scale
    X, target = _windows(z, args.window, max(1, args.window // 4))
    k = series.shape[1]
    model = RNN(k, args.hidden_size, seed=args.seed, bias=args.bias)
    check_output(args.output, args.force)
    print(
        f"training {model!r} on {series.shape[0]} steps of {k} feature(s) "
        f"({X.shape[0]} windows of {X.shape[1]} steps)",
        file=out,
    )
    start = time.perf_counter()
    try:
        model.fit(
            X,
            target,
            epochs=args.epochs,
            lr=args.lr,
            optimizer=args.optimizer,
            method=args.method,
            batch_size=args.batch_size,
            validation_fraction=0.1 if X.shape[0] >= 10 else None,
            seed=args.seed,
            verbose=not args.quiet,
        )
    except KeyboardInterrupt as exc:
        return _interrupted(model, exc, mean, scale, args)
    model.data_mean_, model.data_scale_ = mean, scale
    pred = model.predict(z[:-1]) * scale + mean
    print(
        f"{model.n_iter_} epochs in {time.perf_counter() - start:.1f} s; one-step RMSE on the "
        f"training series {_rmse(pred, series[1:]):.6g} (persistence "
        f"{_rmse(series[:-1], series[1:]):.6g})",
        file=out,
    )
    path = write_new(args.output, "crnn-model.npz", args.force, _saver(model))
    print(f"model saved to {path}", file=out)
    return 0


def _interrupted(
    model: RNN, exc: KeyboardInterrupt, mean: _Array, scale: _Array, args: argparse.Namespace
) -> int:
    """Ctrl-C during crnn train: save the best model so far, say so in one line; status 130."""
    epochs: int = getattr(model, "n_iter_", 0)
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


def _apply(args: argparse.Namespace, compute: Callable[[RNN, _Array], _Array], column: str) -> int:
    """Load MODEL and DATA, run compute(model, standardised data), write CSV."""
    model = _load_model(args.model)
    series = read_table(args.data)
    _check_columns(model, series, args.data)
    mean, scale = _scaling(model)
    path = None if args.output in (None, "-") else args.output
    check_output(path, args.force)
    z = _standardise(series, mean, scale, args.data)
    with np.errstate(over="ignore"):  # outputs beyond float64 are written as inf
        result = compute(model, z) * scale + mean
    header = [f"{column}_{j}" for j in range(result.shape[1])]
    if path is None:
        write_csv(None, result, header)
    else:
        write_new(path, None, args.force, lambda p, r: write_csv(p, result, header, r))
    return 0


def cmd_predict(args: argparse.Namespace, out: IO[str]) -> int:
    """One-step-ahead predictions: row t of the output predicts row t+1 of DATA."""
    return _apply(args, lambda model, z: model.predict(z), "prediction")


def cmd_forecast(args: argparse.Namespace, out: IO[str]) -> int:
    """Run over DATA, then forecast STEPS steps in closed loop."""
    return _apply(args, lambda model, z: model.generate(args.steps, z), "forecast")


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
    _, state = model.predict(z[:n_train], return_state=True)
    pred = model.predict(z[n_train:-1], state) * scale + mean
    truth = series[n_train + 1 :]
    rmse = _rmse(pred, truth)
    naive = _rmse(series[n_train:-1], truth)
    print(f"trained for {model.n_iter_} epochs in {fit_time:.1f} s", file=out)
    print(f"test RMSE, next step:  crnn {rmse:.5f}   persistence {naive:.5f}", file=out)
    change = 100 * (1 - rmse / naive)
    word = "lower" if change >= 0 else "higher"
    print(f"crnn's error is {abs(change):.1f}% {word} than persistence's", file=out)
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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``crnn`` command."""
    parser = argparse.ArgumentParser(
        prog="crnn",
        description="The Elman RNN with exact gradients (BPTT and RTRL), in compiled Cython.",
    )
    parser.add_argument("--version", action="version", version=f"crnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common_out(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("-o", "--output", help=f"where to write the {what}")
        p.add_argument("--force", action="store_true", help="overwrite an existing output file")

    p = sub.add_parser("demo", help="train on the Mackey-Glass series and compare with persistence")
    p.add_argument("--hidden-size", type=_positive_int, default=32)
    p.add_argument("--epochs", type=_positive_int, default=300)
    p.add_argument("--length", type=_positive_int, default=3000, help="series length (steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="PNG file of the forecast (default crnn-demo.png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    common_out(p, "model (default crnn-demo-model.npz)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="fit a next-step predictor to a series (CSV or .npy)")
    p.add_argument(
        "data", metavar="DATA", help="CSV or .npy: rows are time steps, columns features"
    )
    p.add_argument("--hidden-size", type=_positive_int, default=32)
    p.add_argument("--epochs", type=_positive_int, default=200)
    p.add_argument("--lr", type=_positive_float, default=None)
    p.add_argument("--optimizer", choices=["adam", "sgd", "adagrad"], default="adam")
    p.add_argument("--method", choices=["bptt", "rtrl"], default="bptt")
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--window", type=_positive_int, default=100, help="steps per training window")
    p.add_argument(
        "--bias",
        action="store_true",
        help="train a model with biases b and c (Z = UX + WS + b, Y = VS + c); saved with it",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    common_out(p, "model (default crnn-model.npz)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="one-step-ahead predictions over a series, as CSV")
    p.add_argument("model", metavar="MODEL", help="a model saved by 'crnn train'")
    p.add_argument("data", metavar="DATA")
    common_out(p, "CSV (default: standard output)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("forecast", help="run over a series, then forecast in closed loop, as CSV")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--steps", type=_positive_int, required=True)
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
