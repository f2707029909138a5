# SPDX-License-Identifier: BSD-3-Clause
"""Save and load models as one ``.npz`` file: :func:`save` and :func:`load`.

The file format (version 1)
---------------------------
An uncompressed zip archive that ``numpy.load(path, allow_pickle=False)``
reads; no entry needs pickle. Entries:

``crnn_metadata``
    A 0-d unicode array holding a JSON object::

        {"format": "crnn.RNN", "format_version": 1, "crnn_version": "0.1.0",
         "input_size": n, "hidden_size": d, "output_size": m, "dtype": "float64",
         "options": {"n_threads": null},
         "arrays": {"U": {"shape": [d, n], "sha256": "..."}, ...}}

``U``, ``W``, ``V`` (and any other array of the model)
    The arrays, in the model's dtype, C order. ``sha256`` is the digest of
    each array's bytes, so that a damaged file is refused even where the
    zip checksums are not looked at.

Every byte of the file is a function of the model: saving the same model
twice gives identical files (the zip timestamps are fixed).

The hooks
---------
What is saved comes from three optional hooks, so that a model class with
more arrays (biases, say) or options only has to provide them:

``model._state_arrays() -> dict[str, ndarray]``
    Every array that defines the model, by name. Default: ``U``, ``W``,
    ``V``, plus ``b`` and ``c`` when the model has them and they are not
    None.
``model._state_options() -> dict``
    JSON-serialisable options needed to rebuild the model. Default:
    ``{"n_threads": model.n_threads}``.
``cls._from_state(arrays, options, dtype) -> model``
    A classmethod that rebuilds a model from what the two others returned
    (arrays already checked for shape, dtype, checksum and finiteness).
    Default: ``cls.from_weights(U, W, V, dtype=dtype, n_threads=...)``,
    which refuses any other array or option (rather than load a model
    that would predict differently).

The loaded model is checked to hold exactly the saved arrays.
"""

import contextlib
import numbers
import os
import stat

import numpy as np

from crnn._validation import FLOAT_DTYPES

__all__ = ["FORMAT_VERSION", "load", "save"]

#: The version of the file format this crnn writes, and the newest it reads.
FORMAT_VERSION = 1

#: The value of the metadata's "format" field.
FORMAT_NAME = "crnn.RNN"

#: The name of the metadata entry in the archive.
METADATA_KEY = "crnn_metadata"

#: Arrays saved by default when the model has them and they are not None.
OPTIONAL_ARRAYS = ("b", "c")

_REQUIRED_ARRAYS = ("U", "W", "V")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: files do not depend on the clock


class _BadFile(Exception):
    """A reason to refuse a file; turned into a ValueError naming it."""


def _crnn_version():
    from crnn import __version__  # late: crnn/__init__ imports this module

    return __version__


def _rnn_class():
    from crnn._rnn import RNN  # late: _rnn imports this module inside its methods

    return RNN


def _check_path(path, name="path"):
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(
            f"{name} must be a str or an os.PathLike, got {type(path).__name__}"
        ) from None
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a str or an os.PathLike giving a str, got {path!r}")
    if not path:
        raise ValueError(f"{name} must not be empty")
    return path


# zipfile, hashlib, json, secrets and zlib are imported where they are used, not
# above: together they cost ~10 ms, which every ``import crnn`` would pay.


def _digest(arr):
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


# ---------------------------------------------------------------------- what a model holds


def _model_arrays(model):
    """Return {name: array} of every array that defines the model (not copied)."""
    hook = getattr(model, "_state_arrays", None)
    if callable(hook):
        arrays = dict(hook())
    else:
        arrays = {name: getattr(model, name) for name in _REQUIRED_ARRAYS}
        for name in OPTIONAL_ARRAYS:
            value = getattr(model, name, None)
            if value is not None:
                arrays[name] = value
    return arrays


def _model_options(model):
    hook = getattr(model, "_state_options", None)
    return dict(hook()) if callable(hook) else {"n_threads": model.n_threads}


def _expected_shapes(n, d, m):
    return {"U": (d, n), "W": (d, d), "V": (m, d)}


def _check_name(name, where):
    if not isinstance(name, str) or not name.isidentifier() or name == METADATA_KEY:
        raise _BadFile(f"{where} has an invalid array name {name!r}")
    return name


# ---------------------------------------------------------------------- save


def save(model, path):
    """Save a model to one ``.npz`` file, atomically.

    Parameters
    ----------
    model : RNN
        The model to save: its weights (and any other array it defines),
        sizes, dtype and options (``n_threads``).
    path : str or os.PathLike
        The file to write, **exactly as given**: no ``.npz`` suffix is
        added (unlike :func:`numpy.savez`), so ``save(rnn, "model")`` writes
        a file named ``model``. Use a ``.npz`` name by convention. An
        existing file is replaced; its permission bits are kept.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        If model is not an :class:`RNN` or path is not a path.
    ValueError
        If a weight holds NaN or infinity (such a model could not be
        loaded), or an array does not have the model's shape or dtype.
    OSError
        If the file cannot be written; the previous file, if any, is then
        left as it was.

    Notes
    -----
    The file is written to a temporary file in the same directory, flushed
    and synced to disk, then renamed over ``path`` with :func:`os.replace`,
    so that ``path`` always holds either the old model or the complete new
    one, even if the process dies. The temporary file is removed on any
    error. The pickle-free format is described in ``crnn._io``; the file
    also reads with ``numpy.load(path, allow_pickle=False)``.

    The carried state of :meth:`RNN.step` (``rnn.state``), the training
    history (``loss_curve_`` and so on) and the optimizer's moments are not
    saved: a loaded model starts from a fresh state, and ``partial_fit``
    from a fresh optimizer. Pickle keeps everything, for a short-lived copy.

    Examples
    --------
    >>> import crnn, os, tempfile
    >>> rnn = crnn.RNN(2, 8, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = crnn.save(rnn, path)
    >>> same = crnn.load(path)
    >>> bool((same.W == rnn.W).all()), same.dtype
    (True, dtype('float64'))
    """
    RNN = _rnn_class()
    if not isinstance(model, RNN):
        raise TypeError(f"model must be a crnn.RNN, got {type(model).__name__}")
    path = _check_path(path)
    entries = {METADATA_KEY: None}  # first in the archive
    meta_arrays = {}
    dtype = np.dtype(model.dtype)
    expected = _expected_shapes(model.input_size, model.hidden_size, model.output_size)
    arrays = _model_arrays(model)
    for name in _REQUIRED_ARRAYS:
        if name not in arrays:
            raise ValueError(f"model has no array {name!r} to save")
    for name, value in arrays.items():
        try:
            _check_name(name, "model")
        except _BadFile as exc:
            raise ValueError(str(exc)) from None
        arr = np.asarray(value)
        if arr.dtype != dtype:
            raise ValueError(
                f"model array {name} has dtype {arr.dtype}, not the model's dtype {dtype}"
            )
        if name in expected and arr.shape != expected[name]:
            raise ValueError(
                f"model array {name} has shape {arr.shape}, not {expected[name]} "
                "(was it reshaped in place?)"
            )
        if not np.isfinite(arr).all():
            raise ValueError(
                f"model array {name} holds NaN or infinity; such a model cannot be "
                "saved (load refuses non-finite weights)"
            )
        arr = np.ascontiguousarray(arr)
        entries[name] = arr
        meta_arrays[name] = {"shape": list(arr.shape), "sha256": _digest(arr)}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "crnn_version": _crnn_version(),
        "input_size": model.input_size,
        "hidden_size": model.hidden_size,
        "output_size": model.output_size,
        "dtype": dtype.name,
        "options": _model_options(model),
        "arrays": meta_arrays,
    }
    import json

    try:
        text = json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the model's options cannot be stored as JSON: {exc}") from None
    entries[METADATA_KEY] = np.array(text)
    _write_atomically(path, entries)
    return path


def _write_archive(fileobj, entries):
    """Write entries as an uncompressed .npz archive (what numpy.savez writes)."""
    import zipfile

    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in entries.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)


def _write_atomically(path, entries):
    """Write entries to path through a synced temporary file and os.replace."""
    import secrets

    target = os.path.realpath(path)  # through a symlink: replace what it points to
    directory, base = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            _write_archive(f, entries)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # keep an existing file's permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _sync_directory(directory):
    """Make the rename itself durable (POSIX); best effort elsewhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not POSIX
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- load


def load(path):
    """Load a model saved by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        The file, exactly as given (no suffix is added).

    Returns
    -------
    RNN
        A model with the saved weights, sizes, dtype and options: it
        predicts bit for bit what the saved model predicted.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    TypeError
        If path is not a path.
    ValueError
        If the file is not a crnn model (not an ``.npz`` archive, or an
        archive crnn did not write), is truncated or damaged, was written
        by a newer crnn in a format version this one cannot read, or holds
        arrays with a missing entry, a wrong shape or dtype, or NaN or
        infinity. The message names the file and the problem.

    Notes
    -----
    The file is read with ``allow_pickle=False``: loading never runs code
    from the file. See :func:`save` for what is and is not stored.
    """
    return _load(path, _rnn_class())


def _load(path, cls):
    path = _check_path(path)
    try:
        return _read(path, cls)
    except _BadFile as exc:
        raise ValueError(f"cannot load a crnn model from {path!r}: {exc}") from exc.__cause__
    except FileNotFoundError as exc:
        alt = path + ".npz"
        if not path.endswith(".npz") and os.path.isfile(alt):
            raise FileNotFoundError(
                exc.errno, f"{exc.strerror} (but {alt!r} exists: crnn reads the exact path)", path
            ) from None
        raise


def _read_errors():
    """Return everything a damaged archive or .npy entry can raise while it is read."""
    import struct
    import tokenize
    import zipfile
    import zlib

    return (
        zipfile.BadZipFile,
        zlib.error,
        struct.error,
        EOFError,
        ValueError,
        KeyError,
        OSError,
        MemoryError,
        OverflowError,
        NotImplementedError,  # zipfile: a damaged "version needed" or compression method
        RuntimeError,  # zipfile: a damaged flag that marks an entry as encrypted
        SyntaxError,  # numpy's .npy header parser (IndentationError, say)
        tokenize.TokenError,  # numpy's .npy header parser, on a version 1 header
    )


def _read(path, cls):
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block open() for ever
        kind = "a directory" if os.path.isdir(path) else "not a regular file"
        raise _BadFile(f"it is {kind}; a model is read from a file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
        if len(magic) < 4:
            raise _BadFile(
                f"the file is empty or too short ({len(magic)} bytes) for an .npz archive"
            )
        if magic == b"\x93NUM":
            raise _BadFile("not a crnn model file: it is a .npy array, not an .npz archive")
        if magic[:2] != b"PK":
            raise _BadFile("not a crnn model file: it is not an .npz (zip) archive")
        fh.seek(0)
        try:
            npz = np.load(fh, allow_pickle=False)
        except _read_errors() as exc:
            raise _BadFile(f"the archive is truncated or damaged ({_reason(exc)})") from exc
        with npz:
            return _read_archive(npz, cls)


def _reason(exc):
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _entry(npz, key):
    try:
        value = npz[key]
    except _read_errors() as exc:
        if "allow_pickle" in str(exc):
            raise _BadFile(
                f"entry {key!r} holds pickled Python objects, which crnn never writes "
                "(and does not load, as that could run code from the file)"
            ) from exc
        raise _BadFile(f"entry {key!r} is truncated or damaged ({_reason(exc)})") from exc
    if not isinstance(value, np.ndarray):  # numpy returns the bytes of a member that is no .npy
        raise _BadFile(f"entry {key!r} is not an .npy array (its header is damaged or missing)")
    return value


def _field(meta, key, kind, check=None, what=None):
    if key not in meta:
        raise _BadFile(f"the metadata has no {key!r} field")
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, kind) or (check and not check(value)):
        raise _BadFile(f"the metadata's {key!r} must be {what}, got {value!r}")
    return value


def _read_archive(npz, cls):
    keys = set(npz.files)
    if METADATA_KEY not in keys:
        shown = ", ".join(sorted(keys)[:6]) or "none"
        raise _BadFile(
            f"not a crnn model file: an .npz archive without a {METADATA_KEY!r} entry "
            f"(its entries: {shown})"
        )
    raw = _entry(npz, METADATA_KEY)
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise _BadFile(f"the {METADATA_KEY!r} entry is not a JSON string")
    # numpy turns any 4-byte value into a character, even beyond Unicode, and
    # such a str breaks the interpreter's invariants (json raises SystemError)
    codes = np.frombuffer(raw.astype(raw.dtype.newbyteorder("=")).tobytes(), dtype=np.uint32)
    if ((codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))).any():
        raise _BadFile(f"the {METADATA_KEY!r} entry holds code points that are not Unicode text")
    import json

    try:
        meta = json.loads(str(raw[()]))
    except ValueError as exc:
        raise _BadFile(f"the metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise _BadFile(f"not a crnn model file: the metadata's format is not {FORMAT_NAME!r}")
    writer = meta.get("crnn_version")
    writer = writer if isinstance(writer, str) else "an unknown version"
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _BadFile(
            f"unknown format version {version!r} (crnn {_crnn_version()} reads format "
            f"versions 1 to {FORMAT_VERSION})"
        )
    if version > FORMAT_VERSION:
        raise _BadFile(
            f"the file has format version {version}, newer than this crnn reads: it was "
            f"written by crnn {writer}, and crnn {_crnn_version()} reads format versions "
            f"1 to {FORMAT_VERSION}; upgrade crnn to load it"
        )
    n, d, m = (
        _field(meta, key, int, lambda v: v >= 1, "a positive integer")
        for key in ("input_size", "hidden_size", "output_size")
    )
    names = [dt.name for dt in FLOAT_DTYPES]
    dtype = np.dtype(_field(meta, "dtype", str, names.__contains__, f"one of {names}"))
    options = _field(meta, "options", dict, None, "a JSON object")
    listed = _field(meta, "arrays", dict, None, "a JSON object")
    for name in listed:
        _check_name(name, "the metadata")
    missing = [k for k in _REQUIRED_ARRAYS if k not in listed]
    if missing:
        raise _BadFile(f"the metadata lists no array {missing[0]!r}")
    unlisted = sorted(keys - set(listed) - {METADATA_KEY})
    if unlisted:
        raise _BadFile(f"the archive holds entries the metadata does not list: {unlisted}")
    expected = _expected_shapes(n, d, m)
    arrays = {}
    for name, info in listed.items():
        if name not in keys:
            raise _BadFile(f"missing array {name!r}")
        if not isinstance(info, dict):
            raise _BadFile(f"the metadata of array {name!r} is not a JSON object")
        arr = _entry(npz, name)
        if arr.dtype != dtype:
            raise _BadFile(f"array {name!r} has dtype {arr.dtype}, not the model's {dtype}")
        shape = info.get("shape")
        want = expected.get(name, tuple(shape) if isinstance(shape, list) else None)
        if arr.shape != want or shape != list(arr.shape):
            raise _BadFile(
                f"array {name!r} has shape {arr.shape}, expected {want} "
                f"(input_size={n}, hidden_size={d}, output_size={m})"
            )
        if info.get("sha256") != _digest(arr):
            raise _BadFile(f"array {name!r} is damaged: its checksum does not match")
        if not np.isfinite(arr).all():
            raise _BadFile(f"array {name!r} holds NaN or infinity")
        arrays[name] = arr
    model = _build(cls, arrays, options, dtype, writer)
    _check_restored(model, arrays, n, d, m, dtype)
    return model


def _build(cls, arrays, options, dtype, writer):
    hook = getattr(cls, "_from_state", None)
    if callable(hook):
        try:
            return hook(dict(arrays), dict(options), dtype)
        except (TypeError, ValueError) as exc:
            raise _BadFile(f"the saved model cannot be rebuilt: {exc}") from exc
    extra = sorted(set(arrays) - set(_REQUIRED_ARRAYS))
    if extra:
        raise _BadFile(
            f"it holds arrays {extra} that crnn {_crnn_version()}'s {cls.__name__} cannot "
            f"restore (written by crnn {writer})"
        )
    unknown = sorted(set(options) - {"n_threads"})
    if unknown:
        raise _BadFile(
            f"it holds options {unknown} that crnn {_crnn_version()}'s {cls.__name__} cannot "
            f"restore (written by crnn {writer})"
        )
    n_threads = options.get("n_threads")
    if n_threads is not None and (
        isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or n_threads == 0
    ):
        raise _BadFile(
            f"the option n_threads must be null or a non-zero integer, got {n_threads!r}"
        )
    return cls.from_weights(arrays["U"], arrays["W"], arrays["V"], dtype=dtype, n_threads=n_threads)


def _check_restored(model, arrays, n, d, m, dtype):
    """Refuse a model that does not hold exactly what the file holds (a faulty hook)."""
    sizes = (model.input_size, model.hidden_size, model.output_size)
    if sizes != (n, d, m) or model.dtype != dtype:
        raise _BadFile(
            f"the rebuilt model has sizes {sizes} and dtype {model.dtype}, the file "
            f"{(n, d, m)} and {dtype}"
        )
    held = _model_arrays(model)
    if set(held) != set(arrays) or any(
        not np.array_equal(np.asarray(held[k]), arrays[k]) for k in arrays
    ):
        raise _BadFile("the rebuilt model does not hold the saved arrays")
