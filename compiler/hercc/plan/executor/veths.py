"""The executor's `veth` kind: a workload's pair, both ends in their namespaces, aliased and up.

Moved out of SystemExecutor by kind (system_executor.py stays small): create
makes the pair with `ip link add ... type veth peer ... netns`, names both
ends with the node's alias and brings them (and the workload's `lo`) up;
delete removes the pair by its end (already gone is fine), restored by
creating it again; an MTU change is made in place on both ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from hercc.diagnostics import OperationError
from hercc.plan.apply import Restore
from hercc.plan.executor.errors import CommandFailed, ExecutorError
from hercc.plan.executor.system import System, ip_argv
from hercc.resources.ids import InterfaceId
from hercc.resources.model import Resource

__all__ = ["Veths"]


class Veths:
    """veth pairs through `System.run` (`ip`)."""

    def __init__(self, system: System, alias: str) -> None:
        self.sys = system
        self.alias = alias

    def create(self, r: Resource) -> None:
        ns, host = r.id_as(InterfaceId)
        peer_ns = r.attrs.get("peer_netns")
        peer_if = r.attrs.get("peer_ifname")
        if not peer_ns or not peer_if:
            raise ExecutorError(f"{r.address}: needs peer_netns and peer_ifname")
        mtu = [*(["mtu", str(r.attrs["mtu"])] if r.attrs.get("mtu") else [])]
        peer = ["peer", "name", peer_if, *mtu, "netns", peer_ns]
        self.sys.run(ip_argv(ns, ["link", "add", host, *mtu, "type", "veth", *peer]))
        try:
            self.sys.run(ip_argv(ns, ["link", "set", host, "alias", self.alias, "up"]))
            self.sys.run(ip_argv(peer_ns, ["link", "set", peer_if, "alias", self.alias, "up"]))
            self.sys.run(ip_argv(peer_ns, ["link", "set", "lo", "up"]))
        except OperationError:
            with contextlib.suppress(OperationError):
                self.sys.run(ip_argv(ns, ["link", "del", host]))
            raise

    def update(self, after: Resource, changed: Sequence[str]) -> None:
        ns, ifname = after.id_as(InterfaceId)
        if "mtu" in changed:
            mtu = str(after.attrs["mtu"])
            self.sys.run(ip_argv(ns, ["link", "set", ifname, "mtu", mtu]))
            peer_ns, peer_if = after.attrs["peer_netns"], after.attrs["peer_ifname"]
            self.sys.run(ip_argv(peer_ns, ["link", "set", peer_if, "mtu", mtu]))

    def delete(self, r: Resource) -> Restore:
        ns, host = r.id_as(InterfaceId)
        try:
            self.sys.run(ip_argv(ns, ["link", "del", host]))
        except CommandFailed:
            if not self._gone(ns, host):
                raise
        return lambda: self.create(r)

    def _gone(self, ns: str, ifname: str) -> bool:
        try:
            self.sys.run(ip_argv(ns, ["link", "show", ifname]))
        except CommandFailed:
            return True
        return False
