# SPDX-License-Identifier: BSD-3-Clause
"""The model file format, one ``.npz`` archive: :func:`write` and :func:`read`.

The file format (version 1)
---------------------------
An uncompressed zip archive that ``numpy.load(path, allow_pickle=False)``
reads; no entry needs pickle. :func:`read` reads uncompressed archives only
(it never inflates an entry), of at most :data:`MAX_ENTRIES` entries,
each an ``.npy`` whose header declares exactly the bytes it holds: what a
file can make it read and hold is bounded by the file's size. Entries:

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

What the file holds of a model is the model's business: this module knows
no model class. :meth:`crnn.RNN.save` gives :func:`write` the sizes, dtype,
named arrays and options; :meth:`crnn.RNN.load` gives :func:`read` a
function that rebuilds a model from the checked :class:`Contents`.
:func:`crnn.save` and :func:`crnn.load` (``crnn._saving``) call those two.
"""

from __future__ import annotations

import os
import stat
from collections import namedtuple
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np

from crnn._files import write_atomically
from crnn._validation import FLOAT_DTYPES
from crnn._version import __version__

if TYPE_CHECKING:
    import zipfile as _zipfile
    from collections.abc import Callable, Mapping

    from numpy.typing import DTypeLike, NDArray

_T = TypeVar("_T")

__all__ = ["FORMAT_VERSION", "BadFile", "Contents", "read", "write"]

#: The version of the file format this crnn writes, and the newest it reads.
FORMAT_VERSION = 1

#: The value of the metadata's "format" field.
FORMAT_NAME = "crnn.RNN"

#: The name of the metadata entry in the archive.
METADATA_KEY = "crnn_metadata"

#: The most entries :func:`read` accepts in an archive (a model has at most 8).
MAX_ENTRIES = 256

_REQUIRED_ARRAYS = ("U", "W", "V")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: files do not depend on the clock


class BadFile(Exception):
    """A reason to refuse a file; :func:`read` turns it into a ValueError naming the file."""


#: What a model file holds, checked: ``sizes`` (input_size, hidden_size,
#: output_size), ``dtype``, ``arrays`` (name -> ndarray of that dtype, finite,
#: checksums verified), ``options`` (the JSON object) and ``writer`` (the crnn
#: version that wrote the file, or "an unknown version").
Contents = namedtuple("Contents", ["sizes", "dtype", "arrays", "options", "writer"])


def _check_path(path: object, name: str = "path") -> str:
    try:
        path = os.fspath(path)  # type: ignore[call-overload]
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


def _digest(arr: NDArray[Any]) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


# ---------------------------------------------------------------------- the arrays


def _expected_shapes(n: int, d: int, m: int) -> dict[str, tuple[int, ...]]:
    return {"U": (d, n), "W": (d, d), "V": (m, d)}


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or name == METADATA_KEY:
        raise BadFile(f"{where} has an invalid array name {name!r}")
    return name


# ---------------------------------------------------------------------- save


def write(
    path: object,
    sizes: tuple[int, int, int],
    dtype: DTypeLike,
    arrays: Mapping[str, NDArray[Any]],
    options: Mapping[str, Any],
    *,
    replace: bool = True,
) -> str:
    """Write a model file, atomically (see :func:`crnn.save`).

    Parameters
    ----------
    path : str or os.PathLike
        The file, exactly as given (no suffix is added).
    sizes : (int, int, int)
        input_size, hidden_size, output_size.
    dtype : numpy.dtype
        The dtype every array must have.
    arrays : dict of str to ndarray
        The arrays, by name: at least ``U``, ``W`` and ``V``.
    options : dict
        JSON-serialisable options.
    replace : bool, default True
        Whether an existing file at path is replaced (see
        :func:`crnn._files.write_atomically`).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        If path is not a path.
    ValueError
        If an array is missing, badly named, of another dtype or shape, or
        holds NaN or infinity, or the options are not JSON.
    FileExistsError
        If replace is False and path exists.
    OSError
        If the file cannot be written, or path is a directory, device or
        FIFO; the previous file is then kept.

    Notes
    -----
    Each array is copied first, and the copy is checked, digested and
    written: a file's checksums are those of the bytes it holds even if
    another thread changes the model's arrays meanwhile.
    """
    path = _check_path(path)
    entries: dict[str, Any] = {METADATA_KEY: None}  # first in the archive
    meta_arrays = {}
    dtype = np.dtype(dtype)
    n, d, m = sizes
    expected = _expected_shapes(n, d, m)
    for name in _REQUIRED_ARRAYS:
        if name not in arrays:
            raise ValueError(f"model has no array {name!r} to save")
    for name, value in arrays.items():
        try:
            _check_name(name, "model")
        except BadFile as exc:
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
        arr = np.array(arr, order="C", copy=True)  # one snapshot: the bytes digested are written
        if not np.isfinite(arr).all():
            raise ValueError(
                f"model array {name} holds NaN or infinity; such a model cannot be "
                "saved (load refuses non-finite weights)"
            )
        entries[name] = arr
        meta_arrays[name] = {"shape": list(arr.shape), "sha256": _digest(arr)}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "crnn_version": __version__,
        "input_size": n,
        "hidden_size": d,
        "output_size": m,
        "dtype": dtype.name,
        "options": dict(options),
        "arrays": meta_arrays,
    }
    import json

    try:
        text = json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the model's options cannot be stored as JSON: {exc}") from None
    entries[METADATA_KEY] = np.array(text)
    write_atomically(path, lambda f: _write_archive(f, entries), replace=replace)
    return path


def _write_archive(fileobj: IO[bytes], entries: Mapping[str, NDArray[Any]]) -> None:
    """Write entries as an uncompressed .npz archive (what numpy.savez writes)."""
    import zipfile

    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in entries.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as f:
                # (numpy < 2.3 does not annotate numpy.lib.format)
                np.lib.format.write_array(f, arr, allow_pickle=False)  # type: ignore[no-untyped-call, unused-ignore]


# ---------------------------------------------------------------------- load


def read(path: object, build: Callable[[Contents], _T]) -> _T:
    """Read and check a model file; return what ``build`` makes of it (see :func:`crnn.load`).

    Parameters
    ----------
    path : str or os.PathLike
        The file, exactly as given (no suffix is added).
    build : callable
        ``build(contents)`` turns the checked :class:`Contents` into a
        model; it raises :class:`BadFile` to refuse them.

    Returns
    -------
    object
        What ``build`` returned.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    TypeError
        If path is not a path.
    ValueError
        If the file is not a model file crnn can read, or ``build`` refused
        it; the message names the file and the problem.
    """
    path = _check_path(path)
    try:
        return build(_read(path))
    except BadFile as exc:
        raise ValueError(f"cannot load a crnn model from {path!r}: {exc}") from exc.__cause__
    except FileNotFoundError as exc:
        alt = path + ".npz"
        if not path.endswith(".npz") and os.path.isfile(alt):
            raise FileNotFoundError(
                exc.errno, f"{exc.strerror} (but {alt!r} exists: crnn reads the exact path)", path
            ) from None
        raise


def _read_errors() -> tuple[type[BaseException], ...]:
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


def _read(path: str) -> Contents:
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block open() for ever
        kind = "a directory" if os.path.isdir(path) else "not a regular file"
        raise BadFile(f"it is {kind}; a model is read from a file")
    import zipfile

    with open(path, "rb") as fh:
        magic = fh.read(4)
        if len(magic) < 4:
            raise BadFile(
                f"the file is empty or too short ({len(magic)} bytes) for an .npz archive"
            )
        if magic == b"\x93NUM":
            raise BadFile("not a crnn model file: it is a .npy array, not an .npz archive")
        if magic[:2] != b"PK":
            raise BadFile("not a crnn model file: it is not an .npz (zip) archive")
        try:
            _check_directory_size(fh, zipfile)
            fh.seek(0)
            archive = zipfile.ZipFile(fh)
        except BadFile:
            raise
        except _read_errors() as exc:
            raise BadFile(f"the archive is truncated or damaged ({_reason(exc)})") from exc
        with archive:
            return _read_archive(_Entries(archive, zipfile))


def _check_directory_size(fh: IO[bytes], zipfile: Any) -> None:
    """Refuse a central directory too large for MAX_ENTRIES, before zipfile parses it.

    zipfile reads every entry the directory lists, whatever their number: a
    10 MiB file can list 200 000 entries, which take a second and 100 MiB to
    parse. The end record says how large the directory is.
    """
    end_record = getattr(zipfile, "_EndRecData", None)  # zipfile's own reading of it
    if end_record is None:  # pragma: no cover - a Python without it: zipfile checks alone
        return
    end = end_record(fh)
    if end is None:
        raise BadFile("the archive is truncated or damaged (no end of central directory)")
    entries, directory = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    # 46 bytes, a name of at most 255 and zip64's extra field of 28 per entry
    if entries > MAX_ENTRIES or directory > MAX_ENTRIES * (46 + 255 + 28):
        raise BadFile(
            f"the archive lists {entries} entries in a directory of {directory} bytes; "
            f"a crnn model has at most {MAX_ENTRIES}"
        )


class _Entries:
    """The .npy entries of an archive, read by name (as numpy.load's NpzFile does), checked.

    Each entry must be stored uncompressed (crnn never compresses, and an
    inflated entry could be any size), and an entry's .npy header must
    declare exactly the bytes the entry holds: no entry makes crnn read or
    allocate more than the entry's size in the file. (zipfile refuses
    entries that overlap: their local headers name them.)
    """

    def __init__(self, archive: _zipfile.ZipFile, zipfile: Any) -> None:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise BadFile(
                f"the archive has {len(infos)} entries; a crnn model has at most {MAX_ENTRIES}"
            )
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise BadFile(
                    f"entry {info.filename!r} is compressed (zip method {info.compress_type}); "
                    "crnn writes uncompressed archives and never inflates an entry"
                )
            if info.compress_size != info.file_size:
                raise BadFile(
                    f"entry {info.filename!r} is damaged: stored, but its sizes differ "
                    f"({info.compress_size} and {info.file_size} bytes)"
                )
        self._archive = archive
        # the names numpy.load gives: a ".npy" suffix dropped (the last entry of a name wins)
        self._infos = {i.filename.removesuffix(".npy"): i for i in infos}
        self.files = list(self._infos)

    def __getitem__(self, key: str) -> NDArray[Any]:
        info = self._infos[key]
        with self._archive.open(info) as f:
            return _read_npy(f, info.file_size, key)


def _read_npy(f: IO[bytes], size: int, key: str) -> NDArray[Any]:
    """Read one .npy entry of size bytes, the way numpy.lib.format.read_array does."""
    fmt = np.lib.format
    if f.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:
        raise BadFile(f"entry {key!r} is not an .npy array (its header is damaged or missing)")
    version = tuple(f.read(2))
    readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    if version not in readers:
        raise BadFile(f"entry {key!r} is an .npy of version {version}, which crnn never writes")
    shape, fortran, dtype = readers[version](f)  # type: ignore[no-untyped-call, unused-ignore]
    if dtype.hasobject:
        raise BadFile(
            f"entry {key!r} holds pickled Python objects, which crnn never writes "
            "(and does not load, as that could run code from the file)"
        )
    count = 1
    for k in shape:
        count *= k
    declared, held = count * dtype.itemsize, size - f.tell()
    if declared != held or dtype.itemsize == 0:
        raise BadFile(
            f"entry {key!r} is damaged: its header declares {declared} bytes of data "
            f"({shape} of {dtype}), the entry holds {held}"
        )
    data = bytearray(f.read(held))  # writable, as numpy.load's arrays are
    if len(data) != held:
        raise BadFile(f"entry {key!r} is truncated")
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _entry(npz: _Entries, key: str) -> NDArray[Any]:
    try:
        return npz[key]
    except BadFile:
        raise
    except _read_errors() as exc:
        raise BadFile(f"entry {key!r} is truncated or damaged ({_reason(exc)})") from exc


def _field(
    meta: Mapping[str, Any],
    key: str,
    kind: type[_T],
    check: Callable[[_T], bool] | None = None,
    what: str | None = None,
) -> _T:
    if key not in meta:
        raise BadFile(f"the metadata has no {key!r} field")
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, kind) or (check and not check(value)):
        raise BadFile(f"the metadata's {key!r} must be {what}, got {value!r}")
    return value


def _read_archive(npz: _Entries) -> Contents:
    keys = set(npz.files)
    if METADATA_KEY not in keys:
        shown = ", ".join(sorted(keys)[:6]) or "none"
        raise BadFile(
            f"not a crnn model file: an .npz archive without a {METADATA_KEY!r} entry "
            f"(its entries: {shown})"
        )
    raw = _entry(npz, METADATA_KEY)
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise BadFile(f"the {METADATA_KEY!r} entry is not a JSON string")
    # numpy turns any 4-byte value into a character, even beyond Unicode, and
    # such a str breaks the interpreter's invariants (json raises SystemError)
    codes = np.frombuffer(raw.astype(raw.dtype.newbyteorder("=")).tobytes(), dtype=np.uint32)
    if ((codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))).any():
        raise BadFile(f"the {METADATA_KEY!r} entry holds code points that are not Unicode text")
    import json

    try:
        meta = json.loads(str(raw[()]))
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting beyond Python's limit
        raise BadFile(f"the metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise BadFile(f"not a crnn model file: the metadata's format is not {FORMAT_NAME!r}")
    writer = meta.get("crnn_version")
    writer = writer if isinstance(writer, str) else "an unknown version"
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadFile(
            f"unknown format version {version!r} (crnn {__version__} reads format "
            f"versions 1 to {FORMAT_VERSION})"
        )
    if version > FORMAT_VERSION:
        raise BadFile(
            f"the file has format version {version}, newer than this crnn reads: it was "
            f"written by crnn {writer}, and crnn {__version__} reads format versions "
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
        raise BadFile(f"the metadata lists no array {missing[0]!r}")
    unlisted = sorted(keys - set(listed) - {METADATA_KEY})
    if unlisted:
        raise BadFile(f"the archive holds entries the metadata does not list: {unlisted}")
    expected = _expected_shapes(n, d, m)
    arrays = {}
    for name, info in listed.items():
        if name not in keys:
            raise BadFile(f"missing array {name!r}")
        if not isinstance(info, dict):
            raise BadFile(f"the metadata of array {name!r} is not a JSON object")
        arr = _entry(npz, name)
        if arr.dtype != dtype:
            raise BadFile(f"array {name!r} has dtype {arr.dtype}, not the model's {dtype}")
        shape = info.get("shape")
        want = expected.get(name, tuple(shape) if isinstance(shape, list) else None)
        if arr.shape != want or shape != list(arr.shape):
            raise BadFile(
                f"array {name!r} has shape {arr.shape}, expected {want} "
                f"(input_size={n}, hidden_size={d}, output_size={m})"
            )
        if info.get("sha256") != _digest(arr):
            raise BadFile(f"array {name!r} is damaged: its checksum does not match")
        if not np.isfinite(arr).all():
            raise BadFile(f"array {name!r} holds NaN or infinity")
        arrays[name] = arr
    return Contents((n, d, m), dtype, arrays, options, writer)
