"""The desired enterprise L2 links of a node: bridges, their ports, VXLANs and VLANs.

Built from the same `NodeLinks` the networkd and netplan backends render
(backends/enterprise_links.py), in the namespace `Naming.links_netns` (the
host's own, HOST_NETNS, on a real node; the lab node's underlay namespace in
the lab). LNS below is that namespace:

  bridge  LNS/<br>     every bridge the node names: a bridge block's ("br-" + name)
                       and one a VXLAN names that no block declares (as networkd
                       makes it); attrs: up
  port    LNS/<IF>     each port of a bridge block: an existing interface, attached
                       (master) but never owned; attrs: bridge; under its bridge
  vxlan   LNS/vx-<name>  attrs: vni, local, remote, port, mtu (vxlan_mtu: the
                       underlay's 1500 less 50 bytes over IPv4, 70 over IPv6, as networkd is told),
                       bridge (or None), up; under its bridge when it has one. Its
                       `dev` (the underlay interface holding `local`) is found at
                       apply time and left out here: any device is fine.
  vlan    LNS/vl-<name>  attrs: parent, vlan_id, up
  address LNS/vl-<name>/<cidr>  the VLAN's address, under it
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from hercc import ir
from hercc.backends.enterprise_links import bridge_members, node_links, vxlan_mtu
from hercc.resources.gateway_naming import HOST_NETNS
from hercc.resources.ids import AddressId, InterfaceId, format_id
from hercc.resources.model import FORCES_NEW, Resource
from hercc.resources.naming import Naming

__all__ = ["link_resources", "links_netns"]


def links_netns(naming: Naming) -> str:
    """The namespace of a node's enterprise links in resource ids."""
    return naming.links_netns if naming.links_netns is not None else HOST_NETNS


def link_resources(model: ir.IR, node: ir.Node, naming: Naming) -> Iterator[Resource]:
    links = node_links(model, node.name)
    if links.empty():
        return
    ns = links_netns(naming)
    bridges: dict[str, str] = {}  # bridge interface -> its resource address
    for name in bridge_members(links):
        bridge = Resource("bridge", format_id(InterfaceId(ns, name)), {"up": True})
        bridges[name] = bridge.address
        yield bridge
    for a in links.attachments:  # existing interfaces only: never one Hercules makes
        if a.bridge is not None:
            yield Resource(
                "port",
                format_id(InterfaceId(ns, a.ifname)),
                {"bridge": a.bridge},
                parent=bridges[a.bridge],
            )
    for x in links.vxlans:
        v = x.vxlan
        yield Resource(
            "vxlan",
            format_id(InterfaceId(ns, x.ifname)),
            {
                "vni": v.vni,
                "local": v.local,
                "remote": v.remote,
                "port": v.port,
                "mtu": vxlan_mtu(v),
                "bridge": v.bridge,
                "up": True,
            },
            forces_new=FORCES_NEW["vxlan"],
            parent=bridges[v.bridge] if v.bridge is not None else None,
        )
    for y in links.vlans:
        vl = y.vlan
        vlan = Resource(
            "vlan",
            format_id(InterfaceId(ns, y.ifname)),
            {"parent": vl.parent, "vlan_id": vl.id, "up": True},
            forces_new=FORCES_NEW["vlan"],
        )
        yield vlan
        if vl.address is not None:
            cidr = format_id(AddressId(ns, y.ifname, str(ipaddress.ip_interface(vl.address))))
            yield Resource("address", cidr, parent=vlan.address)
