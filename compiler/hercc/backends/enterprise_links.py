"""A node's enterprise L2 links (VXLAN, VLAN, bridge) as the interfaces both renderers write.

The networkd and netplan backends render the same `NodeLinks`: the interfaces
Hercules creates (named by hercc.resources.naming: "vx-", "vl-", "br-" + the
block's name), and what each existing interface (a VLAN's parent, a bridge's
port) must be told: the bridge it joins and the VLANs stacked on it. Existing
interfaces are attached, never created.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from hercc import ir
from hercc.resources.naming import bridge_ifname, vlan_ifname, vxlan_ifname

UNDERLAY_MTU = 1500
# outer Ethernet 14 + IP (IPv4 20, IPv6 40) + UDP 8 + VXLAN 8
VXLAN_OVERHEAD = {4: 50, 6: 70}


def vxlan_mtu(vxlan: ir.Vxlan) -> int:
    """The VXLAN device's MTU: the underlay's less what encapsulation adds over its IP version."""
    return UNDERLAY_MTU - VXLAN_OVERHEAD[ipaddress.ip_address(vxlan.remote).version]


@dataclass(frozen=True)
class VxlanLink:
    ifname: str
    enterprise: str
    vxlan: ir.Vxlan


@dataclass(frozen=True)
class VlanLink:
    ifname: str
    enterprise: str
    vlan: ir.Vlan


@dataclass(frozen=True)
class BridgeLink:
    ifname: str
    enterprise: str
    bridge: ir.Bridge


@dataclass(frozen=True)
class Attachment:
    """What an interface Hercules does not own is told: its bridge and its VLANs."""

    ifname: str
    bridge: str | None
    vlans: tuple[str, ...]


@dataclass(frozen=True)
class NodeLinks:
    vxlans: tuple[VxlanLink, ...]
    vlans: tuple[VlanLink, ...]
    bridges: tuple[BridgeLink, ...]
    attachments: tuple[Attachment, ...]  # existing interfaces, by name

    def empty(self) -> bool:
        return not (self.vxlans or self.vlans or self.bridges)


def node_links(model: ir.IR, node: str) -> NodeLinks:
    """The L2 links of `node` across every enterprise, each kind sorted by interface name."""
    vxlans: list[VxlanLink] = []
    vlans: list[VlanLink] = []
    bridges: list[BridgeLink] = []
    for e in model.enterprise:
        vxlans += (VxlanLink(vxlan_ifname(v.name), e.name, v) for v in e.vxlan if v.node == node)
        vlans += (VlanLink(vlan_ifname(v.name), e.name, v) for v in e.vlan if v.node == node)
        bridges += (
            BridgeLink(bridge_ifname(b.name), e.name, b) for b in e.bridge if b.node == node
        )
    owned = {x.ifname for x in vxlans} | {y.ifname for y in vlans} | {b.ifname for b in bridges}
    bridge_of: dict[str, str] = {}
    stacked: defaultdict[str, list[str]] = defaultdict(list)
    for b in bridges:
        for port in b.bridge.ports:
            bridge_of[port] = b.ifname
    for vl in vlans:
        stacked[vl.vlan.parent].append(vl.ifname)
    existing = sorted((set(bridge_of) | set(stacked)) - owned)
    return NodeLinks(
        tuple(sorted(vxlans, key=lambda x: x.ifname)),
        tuple(sorted(vlans, key=lambda x: x.ifname)),
        tuple(sorted(bridges, key=lambda x: x.ifname)),
        tuple(Attachment(i, bridge_of.get(i), tuple(sorted(stacked[i]))) for i in existing),
    )


def bridge_members(links: NodeLinks) -> dict[str, list[str]]:
    """Every bridge named on the node (a bridge block's, or one a VXLAN names) -> its members."""
    members: defaultdict[str, list[str]] = defaultdict(list)
    for b in links.bridges:
        members[b.ifname] += b.bridge.ports
    for v in links.vxlans:
        if v.vxlan.bridge is not None:
            members[v.vxlan.bridge].append(v.ifname)
    return {name: sorted(members[name]) for name in sorted(members)}


def named_bridges(links: NodeLinks) -> dict[str, str]:
    """The bridges VXLANs name that no bridge block declares -> the VXLANs, for a comment."""
    declared = {b.ifname for b in links.bridges}
    named: defaultdict[str, list[str]] = defaultdict(list)
    for v in links.vxlans:
        if v.vxlan.bridge is not None and v.vxlan.bridge not in declared:
            named[v.vxlan.bridge].append(f"vxlan {v.vxlan.name}")
    return {name: ", ".join(named[name]) for name in sorted(named)}
