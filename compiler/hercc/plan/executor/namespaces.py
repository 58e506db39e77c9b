"""The executor's `netns` and `sysctl` kinds, moved out of SystemExecutor by kind.

netns   `ip netns add` (+ lo up) and OwnedRegistry.add; delete: `ip netns del`,
        OwnedRegistry.remove; restore recreates it (its children come back
        through their own undo entries).
sysctl  `ip netns exec NS sysctl -q -w key=value`; delete writes the default
        (resources.sysctl: a sysctl at its default is no resource).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hercc.diagnostics import OperationError
from hercc.plan.apply import Restore
from hercc.plan.executor.system import System, ip_argv
from hercc.resources.ids import SysctlId
from hercc.resources.model import Resource
from hercc.resources.sysctl import sysctl_default
from hercc.state.registry import OwnedRegistry
from hercc.sysio.process import netns_argv

__all__ = ["Namespaces"]

NETNS_DIR = Path("/run/netns")


class Namespaces:
    """Namespaces (recorded in the node's registry) and their sysctls."""

    def __init__(self, system: System, registry: OwnedRegistry) -> None:
        self.sys = system
        self.registry = registry

    def create_netns(self, r: Resource) -> None:
        ns = r.id
        self.sys.run(["ip", "netns", "add", ns])
        try:
            self.registry.add(ns)
            self.sys.run(ip_argv(ns, ["link", "set", "lo", "up"]))
        except OperationError:
            with contextlib.suppress(OperationError):
                self.sys.run(["ip", "netns", "del", ns])
            raise

    def delete_netns(self, r: Resource) -> Restore:
        ns = r.id
        if self.sys.exists(NETNS_DIR / ns):
            self.sys.run(["ip", "netns", "del", ns])
        self.registry.remove(ns)
        return lambda: self.create_netns(r)

    def _write(self, ns: str, key: str, value: str) -> None:
        self.sys.run(netns_argv(ns, ["sysctl", "-q", "-w", f"{key}={value}"]))

    def create_sysctl(self, r: Resource) -> None:
        ns, key = r.id_as(SysctlId)
        self._write(ns, key, str(r.attrs["value"]))

    def delete_sysctl(self, r: Resource) -> Restore:
        ns, key = r.id_as(SysctlId)
        if self.sys.exists(NETNS_DIR / ns):
            self._write(ns, key, sysctl_default(key))
        return lambda: self._write(ns, key, str(r.attrs["value"]))
