"""Atomic file writes: readers see the old content or the new, never half of it.

Every OSError of a write is an OperationError here, "cannot write PATH: why",
so that a command never has to turn one into a message itself; the one
exception is FileExistsError of a write that may only create (`exclusive`),
an answer its caller expects.

A write replaces the final target of a symbolic link, at the target's place,
and the link stays a link (as editors and `sed -i --follow-symlinks` do);
creating (`exclusive`) never goes through a link: a link there, even a
dangling one, is a file that exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import struct
import tempfile
from dataclasses import dataclass

from hercc.diagnostics import OperationError


@dataclass(frozen=True)
class Staged:
    """New content synced to a temporary file next to its target, not in place yet.

    `commit` puts it in place, `discard` drops it: a caller can get several
    writes ready and make them land together, or none of them.
    """

    shown: str  # the path as the caller named it, for messages
    target: str  # the file to replace: `shown` with symbolic links followed
    tmp: str
    exclusive: bool

    def commit(self) -> None:
        """Rename over the target (link, for `exclusive`) and sync its directory."""
        try:
            if self.exclusive:
                os.link(self.tmp, self.target)  # fails if anything is there: nothing replaced
                os.unlink(self.tmp)
            else:
                os.replace(self.tmp, self.target)
        except OSError as exc:
            self.discard()
            if self.exclusive and isinstance(exc, FileExistsError):
                raise
            raise write_error(self.shown, exc) from None
        except BaseException:
            self.discard()
            raise
        _sync_directory(os.path.dirname(self.target))

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def stage(
    path: str | os.PathLike[str],
    data: str | bytes,
    mode: int | None = None,
    *,
    exclusive: bool = False,
) -> Staged:
    """`data` (str as UTF-8) for `path`, written and synced next to it: see write_atomic.

    The temporary file has a unique name (two writers of one path never share
    it) and is made 0600 before any data goes in. OperationError (nothing
    left behind) if it cannot be written.
    """
    shown = os.fspath(path)
    target = shown if exclusive else os.path.realpath(shown)
    if mode is None:
        mode = _mode_of(target)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=os.path.dirname(os.path.abspath(target)),
            prefix=f".{os.path.basename(target)}.",
            suffix=".tmp",
        )
    except OSError as exc:
        raise write_error(shown, exc) from None
    staged = Staged(shown, target, tmp, exclusive)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
    except OSError as exc:
        staged.discard()
        raise write_error(shown, exc) from None
    except BaseException:
        staged.discard()
        raise
    return staged


def write_atomic(
    path: str | os.PathLike[str],
    data: str | bytes,
    mode: int | None = None,
    *,
    exclusive: bool = False,
) -> None:
    """Write `data` (str as UTF-8) to `path` through a temporary file in its directory.

    The temporary file is synced, given `mode` and renamed over `path` (over
    its final target, when `path` is a symbolic link); then the directory is
    synced, so the new name survives a crash too. Without `mode`, an existing
    file keeps its permissions and a new one gets what open() would give it.
    `exclusive`: only create, FileExistsError if `path` exists (a hard link
    instead of a rename, so nothing is ever replaced). On any failure the
    temporary file is removed and `path` is left as it was: OperationError.
    """
    stage(path, data, mode, exclusive=exclusive).commit()


def make_dirs(path: str | os.PathLike[str], mode: int) -> None:
    """Create a directory and its missing parents, each given `mode` whatever the umask;
    leave existing ones alone. OperationError "cannot create PATH: why" on failure."""
    missing: list[str] = []
    at = os.path.abspath(path)
    while not os.path.isdir(at):
        missing.append(at)
        at = os.path.dirname(at)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
            os.chmod(directory, mode)  # mkdir's mode passes through the umask
        except FileExistsError:
            if not os.path.isdir(directory):  # else made meanwhile, by another process
                it = "it exists and" if directory == missing[0] else directory
                raise OperationError(f"cannot create {path}: {it} is not a directory") from None
        except OSError as exc:
            raise OperationError(f"cannot create {path}: {exc.strerror or exc}") from None


# linux/fs.h: FS_IOC_GETFLAGS, FS_IOC_SETFLAGS (the kernel reads an int) and FS_TOPDIR_FL
_GET_FLAGS, _SET_FLAGS, _TOP_DIRECTORY = 0x80086601, 0x40086602, 0x00020000


def mark_top_directory(path: str) -> None:
    """Mark a directory as the top of directory hierarchies (chattr +T): ext4's
    allocator then spreads its subdirectories over the disk, as it spreads
    those of /. Best effort: a filesystem without the flag is left as it is."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = struct.unpack("i", fcntl.ioctl(fd, _GET_FLAGS, bytes(4)))[0]
            if not flags & _TOP_DIRECTORY:
                fcntl.ioctl(fd, _SET_FLAGS, struct.pack("i", flags | _TOP_DIRECTORY))
        finally:
            os.close(fd)


def write_error(path: str, exc: OSError) -> OperationError:
    """The one message of a write that failed."""
    return OperationError(f"cannot write {path}: {exc.strerror or exc}")


def _mode_of(path: str) -> int:
    """The permissions of the file at `path`, or those open() would give a new one."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # missing, or not ours to look at: as open() would make it
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
