"""Liveness probes of a node's gateway tunnels: how one runs, and the running ones as Resources.

Why a probe. A node dials its gateways; a gateway has no endpoint for a node
and never dials. When a gateway's WireGuard restarts, it has lost every
session, and the node's persistent keepalives, sent in a session the node
still thinks valid, start no new handshake: WireGuard starts one only when
data it sent got no answer within 15 s (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT),
or at rekey time (two minutes). So each tunnel carries a little data: a
`ping` of the gateway's tunnel address every INTERVAL_S seconds, run in the
tunnel's namespace (`probe_argv`). The gateway's kernel answers it, and a
restarted gateway is handshaken with again within about 20 s.

The executor (plan/executor/probes.py) starts a probe detached and records
its PID in STATE_DIR/<node>.probes.json (`probe_pid_file`: "NS/IF" -> PID).
A probe runs when its recorded process is alive, sits in NS and runs
exactly `probe_argv` (`Procs`, the /proc boundary; `ProcProbes` reads
/proc). `read_probes` gives the running ones as

  probe  "<NS>/<IF>": target (the gateway's tunnel address), interval (s)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from hercc.resources.errors import MalformedId
from hercc.resources.gateway_naming import netns_arg
from hercc.resources.ids import InterfaceId, parse_id
from hercc.resources.model import FORCES_NEW, Resource
from hercc.sysio import procfs

__all__ = [
    "INTERVAL_S",
    "ProcProbes",
    "Procs",
    "probe_argv",
    "probe_of",
    "probe_pid_file",
    "read_probes",
]

INTERVAL_S = 5  # well inside the keepalive (25 s): back within 5 + 15 s


def probe_argv(target: str, interval: int) -> list[str]:
    """The probe: quiet numeric pings of `target`, one every `interval` seconds, forever."""
    return ["ping", "-n", "-q", "-i", str(interval), "-W", "1", target]


def probe_of(argv: Sequence[str]) -> tuple[str, int] | None:
    """(target, interval) of a probe's arguments; None when they are no probe's."""
    if len(argv) != len(probe_argv("", 0)) or not argv[4].isdigit():
        return None
    target, interval = argv[-1], int(argv[4])
    return (target, interval) if list(argv) == probe_argv(target, interval) else None


def probe_pid_file(state_dir: str | os.PathLike[str], node: str) -> Path:
    """Where the executor records the probes of `node` ("NS/IF" -> PID)."""
    return Path(state_dir) / f"{node}.probes.json"


class Procs(Protocol):
    def argv_in(self, pid: int, ns: str) -> list[str] | None:
        """The arguments of `pid` when it is alive and in namespace `ns`, else None."""
        ...


def _netns_file(ns: str) -> str:
    where = netns_arg(ns)
    return "/proc/1/ns/net" if where is None else f"/run/netns/{where}"


class ProcProbes:
    """/proc: a process's arguments and network namespace."""

    def argv_in(self, pid: int, ns: str) -> list[str] | None:
        try:
            mine = os.stat(f"/proc/{pid}/ns/net")
            theirs = os.stat(_netns_file(ns))
        except OSError:
            return None
        if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
            return None
        return procfs.cmdline(pid)


def read_probes(pid_file: Path, procs: Procs) -> list[Resource]:
    """The recorded probes that run (the module docstring), as `probe` Resources."""
    out: list[Resource] = []
    for ident, pid in sorted(procfs.read_pid_file(pid_file).items()):
        try:
            ns = parse_id(InterfaceId, ident).ns
        except MalformedId:
            continue
        found = probe_of(procs.argv_in(pid, ns) or [])
        if found is None:
            continue
        target, interval = found
        out.append(
            Resource(
                "probe",
                ident,
                {"target": target, "interval": interval},
                forces_new=FORCES_NEW["probe"],
                parent=f"wireguard.{ident}",
            )
        )
    return out
