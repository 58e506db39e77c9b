"""The executor's enterprise L2 kinds: bridge, vxlan, vlan and port, as netlink requests.

Each change is one or two pyroute2 `link` requests sent through
`System.link(ns, command, request)`: a request names interfaces, and
`link_requests.link_kwargs` turns the names into the indexes pyroute2 takes (so tests
compare the requests by name, without a kernel):

  bridge  add {ifname, kind: bridge}; set {ifname, ifalias, state: up}
  vxlan   add {ifname, kind: vxlan, vxlan_id, vxlan_local, vxlan_group (the unicast
          remote; vxlan_local6 and vxlan_group6 over IPv6), vxlan_port, vxlan_link
          (the interface holding `local`, when one does), mtu}; set {ifname, ifalias,
          master (its bridge), state: up}
  vlan    add {ifname, kind: vlan, link (the parent), vlan_id}; set {ifname, ifalias,
          state: up}
  port    set {ifname, master}: attached only. Its delete detaches it (master None:
          nomaster); the interface is never created, changed otherwise or deleted.

A device Hercules makes carries the node's alias (`hercules:<node>`), set in
the second request, since the kernel ignores IFLA_IFALIAS on a new link; if
that fails, the new device is deleted again. Delete is `del {ifname}`
(already gone is fine), restored by creating it again from the live
resource. A VXLAN's vni, local, remote and port never change in place
(resources/model.FORCES_NEW): the plan replaces it.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Sequence
from typing import Any

from hercc.diagnostics import OperationError
from hercc.plan.apply import Restore
from hercc.plan.executor.errors import ExecutorError
from hercc.plan.executor.system import System
from hercc.resources.ids import InterfaceId
from hercc.resources.model import Resource
from hercc.state.links import L2_KINDS as LINK_KINDS

__all__ = ["L2_KINDS", "L2Links"]

# The link kinds the state reads (bridge, vxlan, vlan), and the ports of our bridges.
L2_KINDS = LINK_KINDS | {"port"}


class L2Links:
    """Bridges, VXLANs, VLANs and bridge ports through `System.link` (see the module doc)."""

    def __init__(self, system: System, alias: str) -> None:
        self.sys = system
        self.alias = alias

    def create(self, r: Resource) -> None:
        ns, ifname = r.id_as(InterfaceId)
        a = r.attrs
        if r.kind == "port":
            self.sys.link(ns, "set", {"ifname": ifname, "master": a["bridge"]})
            return
        request: dict[str, Any] = {"ifname": ifname, "kind": r.kind}
        finish: dict[str, Any] = {"ifname": ifname, "ifalias": self.alias}
        if r.kind == "vxlan":
            six = "6" if ipaddress.ip_address(a["local"]).version == 6 else ""
            request |= {
                "vxlan_id": a["vni"],
                f"vxlan_local{six}": a["local"],
                f"vxlan_group{six}": a["remote"],
                "vxlan_port": a["port"],
            }
            dev = self.sys.interface_of(ns, str(a["local"]))
            if dev is not None:
                request["vxlan_link"] = dev
            if a.get("mtu"):
                request["mtu"] = a["mtu"]
            if a.get("bridge") is not None:
                finish["master"] = a["bridge"]
        elif r.kind == "vlan":
            request |= {"link": a["parent"], "vlan_id": a["vlan_id"]}
        elif r.kind != "bridge":
            raise ExecutorError(f"{r.address}: not an L2 link")
        finish["state"] = "up" if a.get("up", True) else "down"
        self.sys.link(ns, "add", request)
        try:
            self.sys.link(ns, "set", finish)
        except OperationError:
            with contextlib.suppress(OperationError):
                self.sys.link(ns, "del", {"ifname": ifname})
            raise

    def delete(self, r: Resource) -> Restore:
        ns, ifname = r.id_as(InterfaceId)
        if r.kind == "port":
            self.sys.link(ns, "set", {"ifname": ifname, "master": None})
        else:
            self.sys.link(ns, "del", {"ifname": ifname})
        return lambda: self.create(r)

    def update(self, before: Resource, after: Resource, changed: Sequence[str]) -> None:
        ns, ifname = after.id_as(InterfaceId)
        request: dict[str, Any] = {"ifname": ifname}
        for name in changed:
            value = after.attrs.get(name)
            if name == "up":
                request["state"] = "up" if value else "down"
            elif name == "bridge":
                request["master"] = value
            elif name == "mtu" and after.kind == "vxlan":
                request["mtu"] = value
            else:
                raise ExecutorError(f"{after.address}: {name} cannot change in place")
        if len(request) > 1:
            self.sys.link(ns, "set", request)
