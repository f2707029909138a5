# SPDX-License-Identifier: BSD-3-Clause
"""The model side of the file: :func:`save` and :func:`load`, i.e. ``crnn.save`` and ``crnn.load``.

``crnn._io`` holds the file format and knows no model class; :class:`crnn.RNN`
turns itself into the format's named arrays and options (:meth:`RNN.save`)
and back (:meth:`RNN.load`). This module only gives those two methods the
names of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crnn import _io  # noqa: F401  (``crnn.save`` imports the format with it)
from crnn._rnn import RNN

if TYPE_CHECKING:
    from crnn._typing import PathLike

__all__ = ["load", "save"]


def save(model: RNN, path: PathLike, *, overwrite: bool = True) -> str:
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
        existing regular file is replaced; its permission bits are kept.
    overwrite : bool, default True
        False: never replace a file. The new file is given its name only
        if the name is free at that moment (a hard link, which the system
        refuses atomically otherwise), so that of two saves racing for one
        new name, one wins and the other raises FileExistsError; nothing
        is lost.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        If model is not an :class:`RNN`, path is not a path or overwrite
        is not a bool.
    ValueError
        If a weight holds NaN or infinity (such a model could not be
        loaded), or an array does not have the model's shape or dtype.
    FileExistsError
        If overwrite is False and path exists.
    IsADirectoryError
        If path is a directory.
    OSError
        If the file cannot be written, or path is a device, FIFO or
        socket (only regular files are replaced: ``save(rnn, os.devnull)``
        never turns /dev/null into a file); the previous file, if any, is
        then left as it was.

    Notes
    -----
    The file is written to a temporary file in the same directory
    (created exclusively under an unpredictable name, never through a
    symlink), flushed and synced to disk, then renamed over ``path`` with
    :func:`os.replace` (or linked to it, with ``overwrite=False``), so that
    ``path`` always holds either the old model or the complete new one,
    even if the process dies. The temporary file is removed on any error.
    The arrays are copied first: a model that another thread trains
    meanwhile is saved as some state of its weights, whose checksums
    match (training it from two threads at once is another matter: see
    the README's section on threads). The pickle-free format is described in ``crnn._io``; the file
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
    if not isinstance(model, RNN):
        raise TypeError(f"model must be a crnn.RNN, got {type(model).__name__}")
    return model.save(path, overwrite=overwrite)


def load(path: PathLike) -> RNN:
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
    return RNN.load(path)
