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
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

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
    """Hold the lock on `path` (created, with its directory, when missing) inside the block.

    `what` names the lock in the LockTimeout message ("node alpha").
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not _try(fd, mode):
            holder = _holder(fd)
            if timeout is not None and timeout <= 0:
                raise LockTimeout(what, holder, 0)
            if on_wait is not None:
                on_wait(holder)
            if timeout is None:
                fcntl.flock(fd, mode)  # blocks; Ctrl-C still interrupts it
            else:
                deadline = time.monotonic() + timeout
                while not _try(fd, mode):
                    if time.monotonic() >= deadline:
                        raise LockTimeout(what, _holder(fd), timeout)
                    time.sleep(_POLL_S)
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
