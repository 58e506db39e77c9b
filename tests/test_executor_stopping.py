"""stop_process: SIGTERM first, SIGKILL for a process that ignores it, nothing to one not ours."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from hercc.plan.executor.stopping import stop_process


class Signals:
    """The one System method stop_process uses, sending for real and recording."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def kill(self, pid: int, sig: int) -> None:
        self.sent.append(sig)
        os.kill(pid, sig)


def _start(script: str) -> subprocess.Popen[bytes]:
    """sh running `script`, once it says it is ready (its traps are set by then)."""
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_a_process_that_ends_on_sigterm_gets_nothing_else() -> None:
    proc = _start("echo ready; exec sleep 30")
    system: Any = Signals()
    assert stop_process(system, proc.pid, lambda: proc.poll() is None, proc, timeout=5)
    assert system.sent == [15] and proc.returncode == -15


def test_one_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    proc = _start("trap '' TERM; echo ready; while :; do sleep 0.05; done")
    system: Any = Signals()
    assert stop_process(system, proc.pid, lambda: proc.poll() is None, proc, timeout=0.3)
    assert system.sent == [15, 9] and proc.returncode == -9


def test_a_pid_that_is_no_longer_ours_is_not_signalled() -> None:
    proc = _start("echo ready; exec sleep 30")
    system: Any = Signals()
    try:
        assert stop_process(system, proc.pid, lambda: False, None, timeout=0.3)
        assert system.sent == [] and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
