"""Processes by PID: /proc, told apart by their start time, stopped for sure; PID files.

A PID alone names a process only until it exits: the kernel hands the
number out again. A PID together with the process's start time (clock ticks
since boot, /proc/PID/stat field 22) names one process for good, so nothing
here signals a PID whose start time is not the one recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from hercc.sysio.files import make_dirs, write_atomic


def proc_start_time(pid: int) -> int | None:
    """The start time of a live process (clock ticks since boot), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "PID (comm) ", comm may hold spaces
    if fields[0] in ("Z", "X"):  # fields[0] is field 3, state
        return None
    return int(fields[19])  # field 22, starttime


def same_process(pid: int, start_time: int) -> bool:
    """Whether `pid` is alive and still the process that had `start_time`."""
    return proc_start_time(pid) == start_time


def cmdline(pid: int) -> list[str] | None:
    """The arguments of a live process, None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if proc_start_time(pid) is None:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def comm(pid: int) -> str | None:
    """The name of a process (its executable's, as the kernel keeps it), None if gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def kill(pid: int, sig: int) -> None:
    """Send `sig` to `pid`; a process that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # a process started by this very one (tests bring labs up in-process): collect it
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, start_time: int, timeout: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL, the process `pid` if it still has `start_time`. True once gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not same_process(pid, start_time):
            return True
        kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not same_process(pid, start_time):
                return True
            time.sleep(0.02)
    return not same_process(pid, start_time)


def read_pid_file(path: Path) -> dict[str, int]:
    """A PID file, a JSON object of name -> PID; empty when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, int)}


def write_pid_file(path: Path, pids: Mapping[str, int]) -> None:
    """Replace a PID file atomically (its directory made 0700 if missing).

    OperationError on failure."""
    make_dirs(path.parent, 0o700)
    write_atomic(path, json.dumps(dict(pids), indent=2, sort_keys=True) + "\n")
