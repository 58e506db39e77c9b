"""What `hercc plan` and `hercc apply` share for nodes and gateways: root, and the lock.

A plan holds a shared lock on its target, an apply an exclusive one, in
`<state-dir>/<owner>.lock` (owner: the node's name, or "gateway:<gw>"), waited
for, or for at most --lock-timeout seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import TextIO

from hercc.diagnostics import OperationError, UsageError
from hercc.sysio.lock import LockTimeout, locked


def require_root() -> None:
    if os.geteuid() != 0:
        raise OperationError(
            "hercc plan and apply need root (they read and change network namespaces "
            "and WireGuard devices); run them with sudo"
        )


@contextlib.contextmanager
def owner_lock(
    args: argparse.Namespace, owner: str, what: str, err: TextIO, *, shared: bool
) -> Iterator[None]:
    """The lock of `owner` (`what`: "node N", "gateway G") under --state-dir."""
    if args.lock_timeout is not None and args.lock_timeout < 0:
        raise UsageError("--lock-timeout must not be negative")

    def waiting(holder: int | None) -> None:
        who = f"PID {holder}" if holder is not None else "another hercc"
        err.write(f"hercc: waiting for the lock on {what} held by {who}...\n")

    path = os.path.join(args.state_dir, f"{owner}.lock")
    try:
        os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OperationError(f"{args.state_dir}: cannot create: {exc.strerror or exc}") from None
    lock = locked(path, what=what, shared=shared, timeout=args.lock_timeout, on_wait=waiting)
    with contextlib.ExitStack() as stack:
        try:  # only taking the lock: errors of the block are the caller's
            stack.enter_context(lock)
        except LockTimeout as exc:
            raise OperationError(
                f"{exc} ({path}); another hercc plan or apply is running on this "
                f"{what.split()[0]}: wait for it, or try again with a longer --lock-timeout"
            ) from None
        except OSError as exc:  # the lock file cannot be made or opened
            raise OperationError(f"{path}: cannot lock: {exc.strerror}") from None
        yield
