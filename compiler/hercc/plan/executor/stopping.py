"""Stopping a process the executor started: SIGTERM, then SIGKILL if it lingers.

Only while `runs()` still says the PID is ours (a PID is handed out again):
the probes and the flow exporter record their processes by PID and check
them in /proc before every signal.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable

from hercc.plan.executor.system import Process, System

__all__ = ["stop_process"]


def stop_process(
    system: System,
    pid: int,
    runs: Callable[[], bool],
    proc: Process | None,
    timeout: float,
    poll: float = 0.05,
) -> bool:
    """SIGTERM to `pid`, SIGKILL after `timeout` if it still runs; True once it is gone.

    `proc`: the process when this executor started it (it is waited for, so no
    zombie stays); else the PID is polled in /proc through `runs`.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not runs():
            break
        system.kill(pid, sig)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
            continue
        deadline = time.monotonic() + timeout
        while runs() and time.monotonic() < deadline:
            time.sleep(poll)
    return not runs()
