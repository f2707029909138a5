# SPDX-License-Identifier: BSD-3-Clause
"""Write a file safely: :func:`write_atomically`, the one way crnn writes a file.

Used by the model files (``crnn._io``) and by the ``crnn`` command's CSV and
plot outputs. Knows nothing of models.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["sync_directory", "write_atomically"]

#: How much of the target's name the temporary file's name keeps: with the
#: dot, the random part and the suffix, at most 40 + 22 characters (248 bytes
#: of UTF-8), so that a target whose name is as long as the system allows
#: still gets a temporary file.
_KEPT_NAME = 40

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def write_atomically(
    path: str, write: Callable[[IO[Any]], object], mode: str = "wb", *, replace: bool = True
) -> None:
    """Write a file through a synced temporary file, then give it its name.

    Parameters
    ----------
    path : str
        The file to write. Through a symlink, the file it points to is
        replaced. An existing file's permission bits are kept; a new file
        gets 0o666 less the umask, as :func:`open` gives.
    write : callable
        ``write(fileobj)`` writes the whole content to an open file object.
    mode : {"wb", "w"}, default "wb"
        Binary, or text in UTF-8.
    replace : bool, default True
        True: an existing regular file at ``path`` is replaced. False: the
        file is created only if nothing has the name ``path`` at the moment
        it is put there (a hard link, which the system refuses if the name
        is taken); otherwise :class:`FileExistsError`, and nothing is
        changed. Of two writers racing for one name, one succeeds and the
        other gets the error.

    Raises
    ------
    FileExistsError
        If replace is False and ``path`` exists.
    IsADirectoryError
        If ``path`` is a directory.
    OSError
        If ``path`` is a device, FIFO or socket (``errno.EINVAL``): only a
        regular file is replaced, never a device node by a file. Or if the
        file cannot be written.

    Notes
    -----
    The temporary file is created in the same directory, exclusively
    (``O_EXCL``, ``O_NOFOLLOW``: a planted file or symlink is never written
    through) under an unpredictable name, written, flushed and synced to
    disk, then renamed over ``path`` (:func:`os.replace`) or linked to it,
    and the directory is synced so that the new name itself is durable:
    ``path`` always holds either the old content or the complete new one,
    even if the process dies. On any error the temporary file is removed
    and the error raised; ``path`` is then left as it was.
    """
    import secrets

    # replace: through a symlink, replace what it points to; otherwise the name
    # itself must be free (a symlink, even a dangling one, takes it)
    target = os.path.realpath(path) if replace else os.path.abspath(path)
    directory, base = os.path.split(target)
    if replace:
        _check_replaceable(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for name in ("O_NOFOLLOW", "O_CLOEXEC", "O_BINARY"):
        flags |= getattr(os, name, 0)
    while True:
        tmp = os.path.join(directory, f".{base[:_KEPT_NAME]}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
            break
        except FileExistsError:  # pragma: no cover - 64 random bits collided
            continue
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            with contextlib.suppress(OSError):  # keep an existing file's permissions
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            os.replace(tmp, target)
        else:
            _create(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_directory(directory)


def _check_replaceable(target: str) -> None:
    try:
        mode = os.stat(target).st_mode
    except OSError:  # no such file (yet): it is created
        return
    if stat.S_ISREG(mode):
        return
    kind = next((kind for test, kind in _KINDS if test(mode)), "not a regular file")
    import errno

    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"{target!r} is a directory; give a file name")
    raise OSError(
        errno.EINVAL, f"{target!r} is {kind}; crnn replaces only a regular file with a file"
    )


def _create(tmp: str, target: str) -> None:
    """Give the finished tmp the name target, which must be free; tmp is then removed."""
    try:
        os.link(tmp, target)  # atomic, and refused (EEXIST) if the name is taken
    except FileExistsError:
        import errno

        raise FileExistsError(errno.EEXIST, "the file exists; it is not replaced", target) from None
    except OSError:  # no hard links here (some file systems): claim the name, then rename
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        os.close(os.open(target, flags, 0o600))
        try:
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)  # the empty file that claimed the name
            raise
        return
    os.unlink(tmp)


def sync_directory(directory: str) -> None:
    """Make a rename in directory durable (POSIX); best effort elsewhere."""
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
