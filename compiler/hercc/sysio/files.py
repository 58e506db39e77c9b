"""Atomic file writes: readers see the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def write_atomic(
    path: str | os.PathLike[str],
    data: str | bytes,
    mode: int | None = None,
    *,
    exclusive: bool = False,
) -> None:
    """Write `data` (str as UTF-8) to `path` through a temporary file in its directory.

    The temporary file has a unique name (two writers of one path never share
    it), is synced, given `mode` and renamed over `path`; then the directory is
    synced, so the new name survives a crash too. Without `mode`, an existing
    file keeps its permissions and a new one gets what open() would give it.
    `exclusive`: only create, FileExistsError if `path` exists (a hard link
    instead of a rename, so nothing is ever replaced). On any failure the
    temporary file is removed and `path` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if mode is None:
        mode = _mode_of(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:  # mkstemp made it 0600: no one else sees the data
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _mode_of(path: str) -> int:
    """The permissions of the file at `path`, or those open() would give a new one."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    # os.umask can only be read by setting it, for every thread at once: read /proc first
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)  # the strictest value while it is out of place
    os.umask(mask)
    return mask


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    with contextlib.suppress(OSError):  # not every filesystem syncs a directory; renamed anyway
        os.fsync(fd)
    os.close(fd)
