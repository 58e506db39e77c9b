"""Advisory locks on a file (`fcntl.flock`), as Terraform locks its state.

`locked(path)` holds an exclusive lock (a change) or, with `shared`, a shared
one (a read that must not see a change half-made) for the time of a `with`
block. The kernel drops a lock with its process, so a crashed holder never
leaves one behind. An exclusive holder writes its PID into the file, so that
a waiter can say who it waits for; it empties the file before it lets go.

A busy lock is waited for: forever (`timeout=None`, the default), at most
`timeout` seconds, or not at all (0), then LockTimeout. `on_wait` is called
once, with the holder's PID (None when unknown: shared holders), when the
lock is busy, so a caller can say why it waits.

A lock file removed or replaced while a process waited for it (`lab down`
deletes the directory it guards) is no longer the lock: the file now at
`path` is locked instead, so two processes never both believe they hold it;
when there is none, the OSError of opening it (FileNotFoundError) says so.
The directory is the caller's to make: a lock must not bring it back. Any
other failure to open the lock file (a read-only directory) is an
OperationError "PATH: cannot lock: why".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

from hercc.diagnostics import OperationError

__all__ = ["LockTimeout", "locked"]

_POLL_S = 0.05


class LockTimeout(OSError):
    """The lock stayed busy for longer than the timeout."""

    def __init__(self, what: str, holder: int | None, timeout: float) -> None:
        who = f"held by PID {holder}" if holder is not None else "held by another process"
        waited = "" if timeout == 0 else f" after waiting {timeout:g} s"
        super().__init__(f"the lock on {what} is {who}{waited}")
        self.holder = holder


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    return None


def _wait(fd: int, mode: int, deadline: float | None, what: str, timeout: float | None) -> None:
    if deadline is None:
        fcntl.flock(fd, mode)  # blocks; Ctrl-C still interrupts it
        return
    while not _try(fd, mode):
        if time.monotonic() >= deadline:
            raise LockTimeout(what, _holder(fd), timeout or 0)
        time.sleep(_POLL_S)


def _still_at(fd: int, path: str | os.PathLike[str]) -> bool:
    """The locked file is the one `path` names now."""
    try:
        here = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _open(path: str | os.PathLike[str]) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise OperationError(f"{os.fspath(path)}: cannot lock: {exc.strerror or exc}") from None


def _try(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def locked(
    path: str | os.PathLike[str],
    *,
    what: str,
    shared: bool = False,
    timeout: float | None = None,
    on_wait: Callable[[int | None], None] | None = None,
) -> Iterator[None]:
    """Hold the lock on `path` (created when missing, in a directory that exists) inside the block.

    `what` names the lock in the LockTimeout message ("node alpha").
    """
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        fd = _open(path)
        try:
            if not _try(fd, mode):
                holder = _holder(fd)
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeout(what, holder, timeout or 0)
                if on_wait is not None and not waited:
                    on_wait(holder)
                waited = True
                _wait(fd, mode, deadline, what, timeout)
            if _still_at(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        os.ftruncate(fd, 0)  # a PID left by a killed holder is stale now
        if not shared:
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            if not shared:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
