"""The lock of a named lab: one `hercc lab up|apply|down` at a time per lab.

The lock is <root>/<name>/lock, held with flock (hercc.sysio.lock) for the
whole command: an `apply` plans and applies under it, so two applies never
interleave, and a `down` that comes second waits and then removes all, so
the state file can never come back after it. Every command loads the state
only once it holds the lock. `down` deletes the directory with the lock in
it; a command that was waiting then finds the lab gone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from hercc.diagnostics import LabError
from hercc.lab.persistent.statefile import LOCK_FILE, NoSuchLab, lab_dir
from hercc.sysio.lock import hold


class LabLocked(LabError):
    """Another `hercc lab` command holds the lab's lock, and --lock-timeout ran out."""


class _Busy(Exception):
    """The first, non-waiting try found the lock held."""


@contextlib.contextmanager
def lab_locked(
    name: str,
    state_dir: Path | None = None,
    *,
    timeout: float | None,
    on_wait: Callable[[], None] | None = None,
    create: bool = False,
) -> Iterator[Path]:
    """Hold lab `name`'s lock during the with-block; yields the lab's directory.

    `timeout` as hercc.sysio.lock.hold (None: wait as long as it takes);
    `on_wait` is called once if the lock is held by someone else, before
    waiting. `create`: make the lab's directory (`up`); otherwise a lab
    without one is NoSuchLab.
    """
    directory = lab_dir(name, state_dir)
    if create:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise NoSuchLab(f"no lab named {name!r} (no {directory})")
    path = directory / LOCK_FILE

    def locked(message: str) -> LabLocked:
        return LabLocked(f"lab {name!r} is busy with another `hercc lab` command: {message}")

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(hold(path, timeout=0, error=_Busy))
        except _Busy:
            if timeout == 0:
                raise locked(f"{path} is held by another process") from None
            if on_wait is not None:
                on_wait()
            try:
                stack.enter_context(hold(path, timeout=timeout, error=locked))
            except LabLocked:
                if not directory.is_dir():
                    raise NoSuchLab(f"lab {name!r} was taken down meanwhile") from None
                raise
        yield directory
