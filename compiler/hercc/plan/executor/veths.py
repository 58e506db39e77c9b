"""The executor's veth kind: a pair with both ends in their namespaces, aliased and up.

  create  `ip link add HOST type veth peer name PEER netns PEER_NS` in NS (with
          the MTU when one is given), both ends given the owner alias and brought
          up, and `lo` up in the peer's namespace; a half-made pair is removed.
  delete  `ip link del HOST`; a pair that is gone already is fine. The Restore
          makes it again.

An MTU changes in place (`update`); the peer forces a new pair.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from hercc.diagnostics import OperationError
from hercc.plan.apply import Restore
from hercc.plan.executor.errors import CommandFailed, ExecutorError
from hercc.plan.executor.system import System, ip_argv
from hercc.resources.errors import MalformedId
from hercc.resources.ids import InterfaceId
from hercc.resources.model import Resource

__all__ = ["Veths"]


class Veths:
    """Makes and removes a node's veth pairs through the System boundary."""

    def __init__(self, system: System, alias: str) -> None:
        self.sys = system
        self.alias = alias

    def _id(self, r: Resource) -> InterfaceId:
        try:
            return r.id_as(InterfaceId)
        except MalformedId:
            raise ExecutorError(f"malformed resource id {r.address}") from None

    def create(self, r: Resource) -> None:
        ns, host = self._id(r)
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
        ns, ifname = self._id(after)
        if "mtu" in changed:
            mtu = str(after.attrs["mtu"])
            self.sys.run(ip_argv(ns, ["link", "set", ifname, "mtu", mtu]))
            peer_ns, peer_if = after.attrs["peer_netns"], after.attrs["peer_ifname"]
            self.sys.run(ip_argv(peer_ns, ["link", "set", peer_if, "mtu", mtu]))

    def delete(self, r: Resource) -> Restore:
        ns, host = self._id(r)
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
