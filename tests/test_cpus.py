"""usable_cpus: the affinity, capped by the tightest cgroup CPU quota (v2 and v1), on fake trees."""

from __future__ import annotations

import os
from pathlib import Path

from hercc.sysio.cpus import cgroup_cpu_quota, usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


def _file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _proc(tmp_path: Path, text: str) -> str:
    _file(tmp_path / "proc-cgroup", text)
    return str(tmp_path / "proc-cgroup")


def test_v2_the_tightest_quota_of_the_cgroup_and_those_above(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _file(root / "cpu.max", "max 100000\n")
    _file(root / "ci" / "cpu.max", "150000 100000\n")  # 1.5 CPUs above the job
    _file(root / "ci" / "job" / "cpu.max", "max 100000\n")
    proc = _proc(tmp_path, "0::/ci/job\n")
    assert cgroup_cpu_quota(proc, root) == 1.5
    assert usable_cpus(proc, root) == min(AFFINITY, 2)  # part of a CPU is a CPU to use
    _file(root / "ci" / "job" / "cpu.max", "50000 100000\n")
    assert cgroup_cpu_quota(proc, root) == 0.5
    assert usable_cpus(proc, root) == 1


def test_v1_cfs_quota_over_period(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _file(root / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_quota_us", "100000\n")
    _file(root / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_period_us", "100000\n")
    _file(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _file(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    proc = _proc(tmp_path, "4:memory:/docker/c1\n3:cpu,cpuacct:/docker/c1\n0::/\n")
    assert cgroup_cpu_quota(proc, root) == 1.0
    assert usable_cpus(proc, root) == 1


def test_no_quota_anywhere_is_the_affinity(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _file(root / "cpu.max", "max 100000\n")
    _file(root / "x" / "cpu.max", "garbage\n")  # unreadable as a quota: none
    proc = _proc(tmp_path, "0::/x/gone\n")  # a cgroup whose directory is not there
    assert cgroup_cpu_quota(proc, root) is None
    assert usable_cpus(proc, root) == AFFINITY
    assert cgroup_cpu_quota(str(tmp_path / "missing"), root) is None
    assert usable_cpus() >= 1  # this machine's own, whatever it is
