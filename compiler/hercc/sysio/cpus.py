"""How many CPUs this process can keep busy: its affinity, capped by a cgroup CPU quota.

A CI job in a container often sees every CPU of its host but may use two of
them: the quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` over
`cpu.cfs_period_us`) of its cgroup or of any cgroup above it. Workers past
the quota would only be throttled in turn.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(proc_cgroup: str = "/proc/self/cgroup", root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may run on, no more than its cgroups' CPU quota allows (at least 1)."""
    cpus = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(proc_cgroup, root)
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota)))


def cgroup_cpu_quota(
    proc_cgroup: str = "/proc/self/cgroup", root: Path = CGROUP_ROOT
) -> float | None:
    """The tightest CPU quota, in CPUs, of this process's cgroup and those above it (or None)."""
    try:
        lines = Path(proc_cgroup).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2, the unified hierarchy
            for directory in _up_from(root, path):
                quotas += _found(cpu_max_quota, directory / "cpu.max")
        elif "cpu" in controllers.split(","):
            for directory in _up_from(root / controllers, path):
                quotas += _found(cfs_quota, directory / "cpu.cfs_quota_us")
    return min(quotas, default=None)


def cpu_max_quota(text: str, _: Path) -> float | None:
    """cgroup v2 cpu.max, "QUOTA PERIOD" or "max PERIOD", in CPUs."""
    quota, period = text.split()
    return None if quota == "max" else int(quota) / int(period)


def cfs_quota(text: str, quota_file: Path) -> float | None:
    """cgroup v1 cpu.cfs_quota_us (-1: none) over the cpu.cfs_period_us next to it, in CPUs."""
    quota = int(text)
    if quota < 0:
        return None
    return quota / int((quota_file.parent / "cpu.cfs_period_us").read_text(encoding="utf-8"))


def _up_from(mount: Path, path: str) -> list[Path]:
    """The cgroup directory of `path` under `mount`, and every one above it up to the mount."""
    parts = [p for p in path.split("/") if p]
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _found(parse: Callable[[str, Path], float | None], path: Path) -> list[float]:
    """[the quota in `path`], or [] when the file is missing, unreadable, odd or says none."""
    try:
        quota = parse(path.read_text(encoding="utf-8"), path)
    except (OSError, ValueError, ZeroDivisionError):
        return []
    return [] if quota is None or quota <= 0 else [float(quota)]
