"""`hercc lab status`: what of a recorded lab is still there.

Per lab: the recorded namespaces that exist, and per WireGuard interface
whether its recorded wireguard-go still runs (same PID and start time) and
how many of its peers have handshaken, how long ago (`wg show`); per other
daemon (named, the workloads' servers, the gateways' HAProxy and
wireguard-go) whether it still runs. Read-only,
and kept apart from check and up/down for that reason.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from hercc.diagnostics import LabError
from hercc.lab.daemons import Daemon
from hercc.lab.daemons import alive as daemon_alive
from hercc.lab.persistent.statefile import Interface, LabState, alive
from hercc.lab.underlay import netns_exists
from hercc.sysio.process import run


@dataclass(frozen=True)
class InterfaceStatus:
    iface: Interface
    alive: bool
    peers: int | None  # None: the interface could not be read
    handshaken: int
    latest_age: float | None  # seconds since the newest handshake on this interface


@dataclass(frozen=True)
class LabStatus:
    state: LabState
    namespaces_present: list[str]
    interfaces: list[InterfaceStatus]
    daemons: list[tuple[Daemon, bool]] = dataclasses.field(default_factory=list)  # and alive

    @property
    def healthy(self) -> bool:
        return (
            self.state.status == "up"
            and len(self.namespaces_present) == len(self.state.namespaces)
            and all(i.alive for i in self.interfaces)
            and all(ok for _, ok in self.daemons)
        )


def _handshakes(iface: Interface) -> tuple[int | None, int, float | None]:
    if not netns_exists(iface.ns):
        return None, 0, None
    done = run(
        ["wg", "show", iface.name, "latest-handshakes"],
        netns=iface.ns,
        check=False,
        timeout=5,
        error=LabError,
    )
    if done.returncode != 0:
        return None, 0, None
    stamps = [int(f[1]) for f in (ln.split() for ln in done.stdout.splitlines()) if len(f) == 2]
    seen = [s for s in stamps if s > 0]
    age = time.time() - max(seen) if seen else None
    return len(stamps), len(seen), age


def lab_status(state: LabState) -> LabStatus:
    present = [ns for ns in state.namespaces if netns_exists(ns)]
    ifaces = []
    for iface in state.interfaces:
        peers, handshaken, age = _handshakes(iface)
        ifaces.append(InterfaceStatus(iface, alive(iface), peers, handshaken, age))
    daemons = [(d, daemon_alive(d)) for d in state.daemons]
    return LabStatus(state, present, ifaces, daemons)
