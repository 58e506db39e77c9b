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
from hercc.sysio.files import make_dirs
from hercc.sysio.lock import LockTimeout, locked


class LabLocked(LabError):
    """Another `hercc lab` command holds the lab's lock, and --lock-timeout ran out."""


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

    `timeout` as hercc.sysio.lock.locked (None: wait as long as it takes);
    `on_wait` is called once if the lock is held by someone else, before
    waiting. `create`: make the lab's directory (`up`); otherwise a lab
    without one is NoSuchLab.
    """
    directory = lab_dir(name, state_dir)
    if create:
        make_dirs(directory, 0o700)
    elif not directory.is_dir():
        raise NoSuchLab(f"no lab named {name!r} (no {directory})")
    path = directory / LOCK_FILE
    try:
        with locked(
            path,
            what=f"lab {name!r}",
            timeout=timeout,
            on_wait=None if on_wait is None else lambda _holder: on_wait(),
        ):
            yield directory
    except LockTimeout as exc:
        raise LabLocked(f"lab {name!r} is busy with another `hercc lab` command: {exc}") from None
    except FileNotFoundError:  # `down` removed the lab while we waited
        raise NoSuchLab(f"lab {name!r} was taken down meanwhile") from None
