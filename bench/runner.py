"""Run a command as a child and measure it: wall seconds and peak RSS (MiB)."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def measure(argv: list[str], **popen: object) -> tuple[float, float]:
    """Wall time and the child's own peak RSS (os.wait4 reports it per child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)  # type: ignore[call-overload]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])}... failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def hercc() -> list[str]:
    """The hercc of this checkout, run by the current interpreter."""
    return [sys.executable, "-m", "hercc"]
