"""Advisory locks on files (fcntl.flock): one writer at a time, released when its process dies.

`hold(path, timeout=..., error=...)` holds an exclusive lock on `path` for a
with-block. The kernel drops the lock with the last descriptor, so a holder
that crashes never leaves a stale lock behind (unlike a PID file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

POLL = 0.05  # seconds between two tries while waiting with a timeout


@contextlib.contextmanager
def hold(
    path: str | Path, *, timeout: float | None, error: Callable[[str], Exception]
) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0600 if missing) during the with-block.

    `timeout`: None waits as long as it takes, 0 fails at once when the lock
    is held, else waits up to that many seconds. Fails with `error(message)`
    on timeout or when the file cannot be opened. A lock file that was
    removed or replaced while we waited for it (its owner deleted the
    directory it guards) is no longer the lock: the new file at `path` is
    taken instead, so two processes never both believe they hold it.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise error(f"cannot open the lock {path}: {exc.strerror or exc}") from None
        try:
            if not _acquire(fd, deadline):
                raise error(f"{path} is held by another process (waited {timeout:g} s)")
            if _still_at(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, deadline: float | None) -> bool:
    if deadline is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL, left))


def _still_at(fd: int, path: str | Path) -> bool:
    """The locked file is the one `path` names now."""
    try:
        here = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
