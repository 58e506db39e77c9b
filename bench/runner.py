"""Run a command as a child and measure it: wall seconds and peak RSS (MiB), with its children."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time


def measure(argv: list[str], cwd: str | None = None) -> tuple[float, float]:
    """Wall time, and the peak RSS of the child with its descendants, summed (MiB).

    A build forks worker processes: their memory counts with the child's. The
    sum is sampled every SAMPLE_S (pages that fork shares count once per
    process, so it errs high); os.wait4 gives the child's own peak, which the
    figure never falls below. Standard error goes to a temporary file, not a
    pipe: a child that writes more than a pipe holds would block while we wait
    for it to exit. The filesystems are synced first, outside the timing: a
    build syncs what it wrote, and must not also pay for the gigabytes the run
    before it left dirty.
    """
    os.sync()
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        peak = [0]
        done = threading.Event()
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peak, done), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            sys.exit(f"{' '.join(argv[:3])}... failed ({proc.returncode}):\n{tail}")
    return wall, max(usage.ru_maxrss, peak[0]) / 1024


SAMPLE_S = 0.02


def _sample_tree(pid: int, peak: list[int], done: threading.Event) -> None:
    while not done.wait(SAMPLE_S):
        peak[0] = max(peak[0], _tree_rss_kib(pid))


def _tree_rss_kib(root: int) -> int:
    """VmRSS of root and every descendant, in KiB (0 for those gone meanwhile)."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    pending.extend(int(child) for child in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def hercc() -> list[str]:
    """The hercc of this checkout, run by the current interpreter."""
    return [sys.executable, "-m", "hercc"]
