"""Run a command as a child and measure it: wall seconds and peak RSS (MiB)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time


def measure(argv: list[str], cwd: str | None = None) -> tuple[float, float]:
    """Wall time and the child's own peak RSS (os.wait4 reports it per child).

    Standard error goes to a temporary file, not a pipe: a child that writes
    more than a pipe holds would block while we wait for it to exit. The
    filesystems are synced first, outside the timing: a build syncs what it
    wrote, and must not also pay for the gigabytes the run before it left
    dirty.
    """
    os.sync()
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            sys.exit(f"{' '.join(argv[:3])}... failed ({proc.returncode}):\n{tail}")
    return wall, usage.ru_maxrss / 1024


def hercc() -> list[str]:
    """The hercc of this checkout, run by the current interpreter."""
    return [sys.executable, "-m", "hercc"]
