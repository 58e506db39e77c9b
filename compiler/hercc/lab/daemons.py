"""The lab's long-running processes other than the nodes' wireguard-go: started, recorded, stopped.

`named` in the internet namespace, a server per workload, HAProxy and
wireguard-go per gateway. Each runs in its own session (it outlives `hercc
lab up`), inside its namespace through `ip netns exec`, which execs it: the
PID is the daemon's own. A Daemon records the PID with its start time, so
that `stop_daemon` never signals a process that merely reuses the number.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hercc.diagnostics import LabError
from hercc.sysio.process import netns_argv, start
from hercc.sysio.procfs import proc_start_time, same_process, stop


@dataclass
class Daemon:
    role: str  # named | server | haproxy | wireguard-go
    name: str  # what it serves: a zone set ("dns"), a workload, a gateway
    ns: str
    pid: int
    start_time: int
    log: str


def start_daemon(
    role: str,
    name: str,
    ns: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
) -> Daemon:
    """Start argv in namespace `ns`; LabError if it is gone at once (its log says why)."""
    proc = start(netns_argv(ns, argv), log=log, env=env or dict(os.environ), error=LabError)
    started = proc_start_time(proc.pid)
    if started is None:
        raise LabError(f"{role} for {name} exited at once: {tail(log)}")
    return Daemon(role, name, ns, proc.pid, started, str(log))


def alive(d: Daemon) -> bool:
    return same_process(d.pid, d.start_time)


def stop_daemon(d: Daemon) -> bool:
    """SIGTERM, then SIGKILL, the recorded process (only while it is the recorded one)."""
    return stop(d.pid, d.start_time)


def stop_all(daemons: Sequence[Daemon]) -> list[str]:
    """Stop every daemon, the last started first; what would not exit."""
    return [
        f"{d.role} of {d.name} (pid {d.pid}) did not exit"
        for d in reversed(daemons)
        if not stop_daemon(d)
    ]


def wait_alive(d: Daemon, ready: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until `ready()` is true while `d` runs; LabError with its log otherwise."""
    deadline = time.monotonic() + seconds
    while not ready():
        if not alive(d):
            raise LabError(f"{d.role} for {d.name} (pid {d.pid}) exited: {tail(Path(d.log))}")
        if time.monotonic() > deadline:
            raise LabError(f"{d.role} for {d.name} not ready within {seconds:g} s")
        time.sleep(0.02)


def tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
