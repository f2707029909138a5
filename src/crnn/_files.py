# SPDX-License-Identifier: BSD-3-Clause
"""Write a file safely: :func:`write_atomically`, the one way crnn replaces a file.

Used by the model files (``crnn._io``) and by the ``crnn`` command's CSV and
plot outputs. Knows nothing of models.
"""

import contextlib
import os
import stat

__all__ = ["sync_directory", "write_atomically"]


def write_atomically(path, write, mode="wb"):
    """Write a file through a synced temporary file and :func:`os.replace`.

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

    Notes
    -----
    The temporary file is created (exclusively) in the same directory,
    written, flushed and synced to disk, then renamed over ``path``, and the
    directory is synced so that the rename itself is durable: ``path``
    always holds either the old content or the complete new one, even if the
    process dies. On any error the temporary file is removed and the error
    raised; ``path`` is then left as it was.
    """
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
        text = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode, **text) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # keep an existing file's permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_directory(directory)


def sync_directory(directory):
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
