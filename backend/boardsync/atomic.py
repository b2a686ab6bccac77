"""Write a file atomically and durably: a reader, or a SIGKILL at any moment, sees the old
file or the new one, never half of either.

Why its own module: the state file and ``boardsync state export`` both need it, and the steps
(temp file in the same directory, fsync, ``os.replace``, fsync of the directory) are easy to
get subtly wrong when copied.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, body: bytes) -> None:
    """Replace ``path`` with ``body`` (mode 0600), creating its directory if needed.

    Raises:
        OSError: the directory or file could not be written; ``path`` is unchanged.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exact, whatever the umask or a leftover temp file had
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
