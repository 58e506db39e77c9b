"""The lab's wireguard-go processes: told apart by their start time, stopped for sure."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def proc_start_time(pid: int) -> int | None:
    """The start time of a live process (clock ticks since boot), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # fields[0] is field 3, state
        return None
    return int(fields[19])  # field 22, starttime


def _reap(pid: int) -> None:
    # a lab brought up by this very process (tests) left children: collect them
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, start_time: int, timeout: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL, the process `pid` if it still has `start_time`. True once gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        if proc_start_time(pid) != start_time:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if proc_start_time(pid) != start_time:
                return True
            time.sleep(0.02)
    return proc_start_time(pid) != start_time
